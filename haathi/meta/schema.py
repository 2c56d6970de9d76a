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


def _widened(length: int, before: int) -> String:
    """A VARCHAR migration 0016 widened on PostgreSQL; SQLite keeps the declared length of
    ``before`` (it enforces none, and changing it would rebuild the table)."""
    return String(length).with_variant(String(before), "sqlite")


# Projects group repos and pipelines; ``default`` always exists (migration 0016 makes it).
projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("metadata", Text, nullable=False, default="{}"),
)

# ``name`` is the repo's key: the bare name in the default project, else ``project/name``;
# ``project`` repeats the key's project, for listing a project's repos.
repos = Table(
    "repos",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", _widened(128, 64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("metadata", Text, nullable=False, default="{}"),
    Column("project", String(64), nullable=False, server_default="default"),
    Index("ix_repos_project", "project"),
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
    Column("trigger", Text, nullable=True),  # JSON: models/trigger.py (Pachyderm's Trigger)
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
    # the input branches whose head it was (JSON list; NULL in stores before migration 0016)
    Column("from_branches", Text, nullable=True),
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
    # numbers never reused (migration 0021): gc marks the changes staged after one it saw
    sqlite_autoincrement=True,
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
    Column("name", _widened(128, 64), nullable=False, unique=True),  # a key, as repos.name
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # RUNNING | PAUSED
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("project", String(64), nullable=False, server_default="default"),
    Index("ix_pipelines_project", "project"),
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
    # JSON of the job's egress once it reached it (target, state, attempts, counts, error)
    Column("egress", Text, nullable=True),
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

# Role bindings: ``resource`` is ``cluster`` or ``repo:KEY``.
role_bindings = Table(
    "role_bindings",
    metadata,
    Column("resource", _widened(200, 80), primary_key=True),
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

# Secrets (``create secret``): each one's values are one AES-256-GCM ciphertext (of the JSON
# ``{key: base64 value}``, the name as associated data) under the store's key, which lives in a
# file outside this database (``<store>/secrets.key``); ``key_id`` names that key.
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("keys", Text, nullable=False),  # JSON list of the key names (not secret): c["keys"]
    Column("key_id", String(16), nullable=False),
    Column("nonce", LargeBinary(12), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=True),
)

# Transactions (``start transaction`` ... ``finish transaction``): the requests each holds, as
# a JSON list in order, with the responses of their dry runs; ``version`` grows with each
# request added. A transaction's row goes when it is finished or deleted.
transactions = Table(
    "transactions",
    metadata,
    Column("id", String(32), primary_key=True),  # also the ID of the commits it starts
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("version", Integer, nullable=False),
    Column("ops", Text, nullable=False),  # JSON list of haathi.models.transaction ops
    Column("responses", Text, nullable=False),  # JSON list, one per op
)

# The long-lived programs of spout and service pipelines (one row each, made with the
# pipeline): which worker runs it (``runner``, under a lease as a job's), how it goes, and for
# a service the job it serves and the port it is published on.
daemons = Table(
    "daemons",
    metadata,
    Column("pipeline_id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # spout | service
    Column("state", String(16), nullable=False),  # STARTING | RUNNING | CRASHING | PAUSED
    Column("reason", Text, nullable=True),
    Column("runner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=True),  # the spec version it runs
    Column("job_commit", String(32), nullable=True),  # a service: the job it serves
    Column("port", Integer, nullable=True),  # where it is published on 127.0.0.1
    Column("restarts", Integer, nullable=False, default=0),
    Column("started_at", DateTime(timezone=True), nullable=True),
)

# What a spout's or service's program printed (stdout and stderr, secrets masked), line by
# line; each pipeline keeps its newest lines only (haathi.pps.daemon_records.LOG_KEEP).
daemon_logs = Table(
    "daemon_logs",
    metadata,
    Column("pipeline_id", Integer, primary_key=True),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("run", Integer, nullable=False),  # which start of the program (1, 2, ...)
    Column("text", Text, nullable=False),
)
