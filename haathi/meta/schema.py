"""The metadata schema (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
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
