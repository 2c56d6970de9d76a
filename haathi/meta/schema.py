"""The metadata schema (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

repos = Table(
    "repos",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("metadata", Text, nullable=False, default="{}"),
)

branches = Table(
    "branches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repo_id", Integer, ForeignKey("repos.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("head", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("metadata", Text, nullable=False, default="{}"),
    UniqueConstraint("repo_id", "name", name="uq_branch_repo_name"),
)

commits = Table(
    "commits",
    metadata,
    Column("repo_id", Integer, ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("branch", String(64), nullable=True),
    Column("parent", String(32), nullable=True),
    Column("origin", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("root", LargeBinary(32), nullable=True),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("file_count", BigInteger, nullable=False, default=0),
    Column("description", Text, nullable=False, default=""),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("metadata", Text, nullable=False, default="{}"),
    Column("author", String(128), nullable=True),  # who made a user commit
    Index("ix_commits_repo_seq", "repo_id", "seq"),
    Index("ix_commits_parent", "repo_id", "parent"),
)

commit_provenance = Table(
    "commit_provenance",
    metadata,
    Column("repo_id", Integer, primary_key=True),
    Column("commit_id", String(32), primary_key=True),
    Column("from_repo_id", Integer, primary_key=True),
    Column("from_commit_id", String(32), primary_key=True),
    Index("ix_commit_provenance_from", "from_repo_id", "from_commit_id"),
)

staged = Table(
    "staged",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("repo_id", Integer, nullable=False),
    Column("commit_id", String(32), nullable=False),
    Column("op", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("payload", LargeBinary, nullable=True),
    Index("ix_staged_commit", "repo_id", "commit_id", "seq"),
    # on PostgreSQL over ``path COLLATE "C"`` (migration 0008): paths compare byte for byte
    Index("ix_staged_path", "repo_id", "commit_id", "path"),
)

packs = Table(
    "packs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # gc: "live", or "condemned" (unreachable when gc marked it; deleted after a grace period
    # unless a write that started before the condemnation turns out to use it)
    Column("state", String(16), nullable=False, server_default="live"),
    Column("condemned_at", DateTime(timezone=True), nullable=True),
    Index("ix_packs_state", "state"),
)

# One row (id 1): bumped by every gc condemnation and sweep, so a write that spans one checks
# that the blobs it reuses are still there.
gc_state = Table(
    "gc_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("pack", String(32), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("raw_length", BigInteger, nullable=False),
    Column("codec", Integer, nullable=False),
    Index("ix_blobs_pack", "pack"),
)

# Branch provenance: commits on (from_repo, from_branch) propagate to (repo, branch) with the
# same commit ID (a pipeline's output branch is provenant on its input branches).
branch_provenance = Table(
    "branch_provenance",
    metadata,
    Column("repo_id", Integer, primary_key=True),
    Column("branch", String(64), primary_key=True),
    Column("from_repo_id", Integer, primary_key=True),
    Column("from_branch", String(64), primary_key=True),
    Index("ix_branch_provenance_from", "from_repo_id", "from_branch"),
)

pipelines = Table(
    "pipelines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # RUNNING | PAUSED
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every version of every pipeline's effective spec: jobs name the version they ran.
pipeline_versions = Table(
    "pipeline_versions",
    metadata,
    Column("pipeline_id", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),  # effective spec, canonical JSON
    Column("spec_hash", String(64), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One job per output commit (pipeline output repo @ commit set ID).
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline_id", Integer, nullable=False),
    Column("commit_id", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("base_commit", String(32), nullable=True),
    Column("data_total", Integer, nullable=False, default=0),
    Column("data_processed", Integer, nullable=False, default=0),
    Column("data_skipped", Integer, nullable=False, default=0),
    Column("data_failed", Integer, nullable=False, default=0),
    Column("data_recovered", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("runner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("context", Text, nullable=False, default="{}"),  # executor, versions, platform
    UniqueConstraint("pipeline_id", "commit_id", name="uq_job_pipeline_commit"),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_commit", "commit_id"),
)

# Every datum of every job (skipped ones too, so a job's rows are its complete datum set).
datums = Table(
    "datums",
    metadata,
    Column("job_id", Integer, primary_key=True),
    Column("datum_id", String(64), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("inputs", Text, nullable=False),  # JSON: [{name, repo, branch, commit, path, hash, ...}]
    Column("outputs", Text, nullable=False, default="[]"),  # JSON: [[path, hash, size], ...]
    Column("env", Text, nullable=False, default="{}"),
    Column("reason", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("duration", Float, nullable=True),
    Column("log", Text, nullable=False, default=""),
    Column("source_job", Integer, nullable=True),  # the job that ran it (earlier if SKIPPED)
    Column("exit_code", Integer, nullable=True),  # of the last attempt
)

# A job that keeps most of its datums as another job recorded them: its datum set is that
# job's rows (shown as SKIPPED, read with this job's input commits) and its own rows in
# ``datums`` (datums it ran, or skipped with another outcome), which take precedence. A job
# without a row here has all its datums in ``datums``; a kept job always has.
kept_datums = Table(
    "kept_datums",
    metadata,
    Column("job_id", Integer, primary_key=True),
    Column("from_job_id", Integer, nullable=False),
    Column("commits", Text, nullable=False),  # JSON: [[repo, branch, commit], ...] of the job
)

# Which input paths (a file, or a directory as ``/dir/``) each datum of each job read: the
# index behind downstream lineage ("which outputs came from this input file?").
datum_inputs = Table(
    "datum_inputs",
    metadata,
    Column("job_id", Integer, primary_key=True),
    Column("repo_id", Integer, primary_key=True),
    Column("path", Text, primary_key=True),
    Column("datum_id", String(64), primary_key=True),
)

# Auth (off until activated). One row (id 1) in ``auth_config`` while auth is active.
auth_config = Table(
    "auth_config",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("activated_at", DateTime(timezone=True), nullable=False),
)

# Tokens are stored as their SHA-256 (a token is 256 random bits: a plain hash cannot be
# reversed or guessed); ``expires_at`` NULL = never.
auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Index("ix_auth_tokens_subject", "subject"),
)

# Role bindings: ``resource`` is ``cluster`` or ``repo:NAME``.
role_bindings = Table(
    "role_bindings",
    metadata,
    Column("resource", String(80), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("role", String(32), primary_key=True),
)

# The store's identity (one row, id 1): a random ID also written beside the packs in the object
# store (``store-id``), so that metadata and objects of different stores are never mixed.
store_info = Table(
    "store_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("store_id", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("chunker", String(32)),  # how files are cut: haathi.storage.chunker
)
