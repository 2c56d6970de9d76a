"""The blob index (digest -> pack, range) kept in the metadata database."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from haathi.errors import Conflict
from haathi.meta.database import Database, batches, param_marks
from haathi.meta.schema import gc_state, packs
from haathi.storage.blobs import BlobLocation

_CONDEMNED = "SELECT id FROM packs WHERE state = 'condemned'"


class SqlBlobIndex:
    """Implements :class:`haathi.storage.blobs.BlobIndex` on the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _select(
        self, columns: str, digests: Sequence[bytes], where: str = ""
    ) -> list[tuple[Any, ...]]:
        """Rows of ``columns`` for the indexed ``digests`` (raw SQL: this is the hot path)."""
        out: list[tuple[Any, ...]] = []
        with self.db.read() as conn:
            for part in batches(digests):
                marks = param_marks(conn, len(part))
                sql = f"SELECT {columns} FROM blobs WHERE digest IN ({marks}) {where}"
                out.extend(tuple(r) for r in conn.exec_driver_sql(sql, tuple(part)))
        return out

    def locate(self, digests: Sequence[bytes]) -> dict[bytes, BlobLocation]:
        rows = self._select('digest, pack, "offset", length, raw_length, codec', digests)
        return {bytes(r[0]): BlobLocation(bytes(r[0]), *r[1:]) for r in rows}

    def known(self, digests: Sequence[bytes]) -> set[bytes]:
        """Indexed digests a new write may reuse: those in packs gc has not condemned."""
        return {
            bytes(r[0]) for r in self._select("digest", digests, f"AND pack NOT IN ({_CONDEMNED})")
        }

    def add_pack(
        self, pack: str, size: int, rows: Sequence[BlobLocation], check: Callable[[], None]
    ) -> None:
        """Index a stored pack. ``check`` (is the pack's object still there?) runs inside the
        transaction, which holds gc's lock: gc cannot delete the object as an orphan meanwhile.
        """
        # Many rows per pack: bypass per-row statement processing. A digest indexed meanwhile
        # by another writer keeps its first location (its copy here becomes garbage), unless
        # that location is in a condemned pack: then the fresh copy takes over.
        params = [(r.digest, r.pack, r.offset, r.length, r.raw_length, r.codec) for r in rows]

        def txn() -> None:
            with self.db.write() as conn:
                sql = (
                    'INSERT INTO blobs (digest, pack, "offset", length, raw_length, codec) '
                    f"VALUES ({param_marks(conn, 6)}) ON CONFLICT (digest) DO UPDATE SET "
                    'pack = excluded.pack, "offset" = excluded."offset", '
                    "length = excluded.length, raw_length = excluded.raw_length, "
                    f"codec = excluded.codec WHERE blobs.pack IN ({_CONDEMNED})"
                )
                gc_epoch(conn)
                conn.execute(insert(packs).values(id=pack, size=size, created_at=datetime.now(UTC)))
                if params:
                    conn.exec_driver_sql(sql, params)
                check()

        self.db.retrying(txn)


def gc_epoch(conn: Connection, lock: str | None = "share") -> int:
    """The gc epoch. With ``lock`` it stays locked until the transaction ends: ``"share"``d
    by writers (so gc waits for them), ``"exclusive"`` for gc (so they wait for gc)."""
    stmt = select(gc_state.c.epoch).where(gc_state.c.id == 1)
    if lock is not None:
        stmt = stmt.with_for_update(read=lock == "share")
    return int(conn.execute(stmt).scalar_one())


def keep_reused(conn: Connection, since_epoch: int, digests: Collection[bytes]) -> None:
    """Before a write that began at gc epoch ``since_epoch`` commits references to
    ``digests``: if gc ran meanwhile, revive the condemned packs holding them, or raise
    :class:`Conflict` if gc already deleted one (the write then makes no commit)."""
    if gc_epoch(conn) == since_epoch or not digests:
        return
    wanted = list(digests)
    found: dict[bytes, str] = {}
    revive: set[str] = set()
    for part in batches(wanted):
        sql = (
            "SELECT b.digest, b.pack, p.state FROM blobs b JOIN packs p ON p.id = b.pack "
            f"WHERE b.digest IN ({param_marks(conn, len(part))})"
        )
        for digest, pack, state in conn.exec_driver_sql(sql, tuple(part)):
            found[bytes(digest)] = str(pack)
            if state == "condemned":
                revive.add(str(pack))
    if len(found) < len(wanted):
        raise Conflict(
            f"garbage collection removed {len(wanted) - len(found)} stored blobs this write "
            "was reusing while it ran; nothing was committed: run the write again"
        )
    if revive:
        conn.execute(
            update(packs).where(packs.c.id.in_(revive)).values(state="live", condemned_at=None)
        )


def pack_count(conn: Connection) -> int:
    """How many packs the index records."""
    return int(conn.execute(select(func.count()).select_from(packs)).scalar_one())


def any_pack_known(conn: Connection, ids: Sequence[str]) -> bool:
    """Whether the index records any of the packs ``ids``."""
    return any(
        conn.execute(select(packs.c.id).where(packs.c.id.in_(part)).limit(1)).first()
        for part in batches(ids)
    )
