"""The blob index (digest -> pack, range) kept in the metadata database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from haathi.meta.database import Database
from haathi.meta.schema import packs
from haathi.storage.blobs import BlobLocation

_BATCH = 500


class SqlBlobIndex:
    """Implements :class:`haathi.storage.blobs.BlobIndex` on the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def _mark(self) -> str:
        return "?" if self.db.engine.dialect.paramstyle == "qmark" else "%s"

    def _select(self, columns: str, digests: Sequence[bytes]) -> list[tuple[Any, ...]]:
        """Rows of ``columns`` for the indexed ``digests`` (raw SQL: this is the hot path)."""
        out: list[tuple[Any, ...]] = []
        with self.db.read() as conn:
            for i in range(0, len(digests), _BATCH):
                part = tuple(digests[i : i + _BATCH])
                marks = ", ".join([self._mark] * len(part))
                sql = f"SELECT {columns} FROM blobs WHERE digest IN ({marks})"
                out.extend(tuple(r) for r in conn.exec_driver_sql(sql, part))
        return out

    def locate(self, digests: Sequence[bytes]) -> dict[bytes, BlobLocation]:
        rows = self._select('digest, pack, "offset", length, raw_length, codec', digests)
        return {bytes(r[0]): BlobLocation(bytes(r[0]), *r[1:]) for r in rows}

    def known(self, digests: Sequence[bytes]) -> set[bytes]:
        return {bytes(r[0]) for r in self._select("digest", digests)}

    def add_pack(self, pack: str, size: int, rows: Sequence[BlobLocation]) -> None:
        # Many rows per pack: bypass per-row statement processing. A digest indexed meanwhile
        # by another writer keeps its first location (its copy here becomes garbage).
        mark = self._mark
        sql = (
            'INSERT INTO blobs (digest, pack, "offset", length, raw_length, codec) '
            f"VALUES ({', '.join([mark] * 6)}) ON CONFLICT (digest) DO NOTHING"
        )
        params = [(r.digest, r.pack, r.offset, r.length, r.raw_length, r.codec) for r in rows]

        def txn() -> None:
            with self.db.write() as conn:
                conn.execute(
                    insert(packs).values(id=pack, size=size, created_at=datetime.now(UTC))
                )
                if params:
                    conn.exec_driver_sql(sql, params)

        self.db.retrying(txn)
