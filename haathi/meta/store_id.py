"""The store ID and chunker kept in the metadata database (the ``store_info`` table's one row)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select

from haathi.meta.database import insert_ignore
from haathi.meta.schema import store_info
from haathi.storage.chunker import LEGACY


def stored_id(conn: Connection) -> str | None:
    """The store ID the metadata records, None if it records none yet (a store made before
    store IDs existed, or one being created)."""
    row = conn.execute(select(store_info.c.store_id).where(store_info.c.id == 1)).first()
    return None if row is None else str(row[0])


def stored_chunker(conn: Connection) -> str:
    """The chunker that cuts the store's files (the legacy one if none is recorded)."""
    row = conn.execute(select(store_info.c.chunker).where(store_info.c.id == 1)).first()
    return LEGACY if row is None or row[0] is None else str(row[0])


def claim_id(conn: Connection, store_id: str, chunker: str) -> str:
    """Record ``store_id`` and ``chunker`` unless an ID is recorded already; the ID recorded
    now."""
    insert_ignore(
        conn, store_info, ["id"],
        id=1, store_id=store_id, created_at=datetime.now(UTC), chunker=chunker,
    )  # fmt: skip
    recorded = stored_id(conn)
    assert recorded is not None
    return recorded
