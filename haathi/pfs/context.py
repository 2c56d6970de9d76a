"""What every PFS operation works with: the database, the blob store and the node store."""

from __future__ import annotations

import functools
import getpass
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from haathi.meta.database import Database
from haathi.storage.blobs import BlobStore
from haathi.tree.prolly import NodeStore


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime | None) -> datetime | None:
    """Times as stored (SQLite drops the zone) made timezone-aware UTC again."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


def metadata_of(text: object) -> dict[str, str]:
    """A ``metadata`` column (a JSON object of strings) as a dict; {} if empty or unreadable."""
    if not text:
        return {}
    try:
        value = json.loads(str(text))
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


AUTHOR_MAX = 128  # the width of ``commits.author``


def os_user() -> str | None:
    """The OS user running this process, or None when it cannot be told (no login name in the
    environment and no passwd entry, as in some containers)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None
    return name[:AUTHOR_MAX] or None


@dataclass
class PfsContext:
    """``author`` is who the user commits made through this context are recorded as made by:
    the OS user by default (an authenticated user, once a server knows who is calling)."""

    db: Database
    blobs: BlobStore
    nodes: NodeStore
    author: str | None = field(default_factory=os_user)

    @classmethod
    def create(cls, db: Database, blobs: BlobStore, author: str | None = None) -> PfsContext:
        """A context whose user commits are by ``author`` (default: the OS user)."""
        nodes = NodeStore(blobs.get, functools.partial(blobs.iter_blobs, keep=True))
        return cls(db, blobs, nodes, author if author is not None else os_user())
