"""What every PFS operation works with: the database, the blob store and the node store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Row, select

from haathi.errors import NotFound
from haathi.meta.database import Database, lock_rows
from haathi.meta.schema import branches, repos
from haathi.storage.blobs import BlobStore
from haathi.tree.prolly import NodeStore


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime | None) -> datetime | None:
    """Times as stored (SQLite drops the zone) made timezone-aware UTC again."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


@dataclass
class PfsContext:
    db: Database
    blobs: BlobStore
    nodes: NodeStore

    @classmethod
    def create(cls, db: Database, blobs: BlobStore) -> PfsContext:
        return cls(db, blobs, NodeStore(blobs.get))


def repo_row(conn: Connection, name: str, *, lock: bool = False) -> Row[tuple[object, ...]]:
    """The repo's row. With ``lock`` (in a write transaction) the row stays locked until the
    transaction ends: every write that changes a repo's branches or commits takes this lock
    first, so it reads what it depends on only after earlier writers have committed."""
    stmt = select(repos).where(repos.c.name == name)
    rows = lock_rows(conn, stmt) if lock else conn.execute(stmt).all()
    if not rows:
        raise NotFound(f"repo {name} not found", repo=name)
    return rows[0]


def branch_row(conn: Connection, repo_id: int, repo: str, name: str) -> Row[tuple[object, ...]]:
    row = conn.execute(
        select(branches).where(branches.c.repo_id == repo_id, branches.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"branch {name} not found in repo {repo}", repo=repo, branch=name)
    return row
