"""The blob index (digest -> pack, range) kept in the metadata database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import insert, select

from haathi.meta.database import Database
from haathi.meta.schema import blobs, packs
from haathi.storage.blobs import BlobLocation

_BATCH = 500


class SqlBlobIndex:
    """Implements :class:`haathi.storage.blobs.BlobIndex` on the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def locate(self, digests: Sequence[bytes]) -> dict[bytes, BlobLocation]:
        out: dict[bytes, BlobLocation] = {}
        with self.db.read() as conn:
            for i in range(0, len(digests), _BATCH):
                part = list(digests[i : i + _BATCH])
                rows = conn.execute(select(blobs).where(blobs.c.digest.in_(part)))
                for r in rows:
                    d = bytes(r.digest)
                    out[d] = BlobLocation(d, r.pack, r.offset, r.length, r.raw_length, r.codec)
        return out

    def known(self, digests: Sequence[bytes]) -> set[bytes]:
        out: set[bytes] = set()
        with self.db.read() as conn:
            for i in range(0, len(digests), _BATCH):
                part = list(digests[i : i + _BATCH])
                out.update(
                    bytes(r[0])
                    for r in conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(part)))
                )
        return out

    def add_pack(self, pack: str, size: int, rows: Sequence[BlobLocation]) -> None:
        def txn() -> None:
            with self.db.write() as conn:
                conn.execute(
                    insert(packs).values(id=pack, size=size, created_at=datetime.now(UTC))
                )
                if not rows:
                    return
                present: set[bytes] = set()
                for i in range(0, len(rows), _BATCH):
                    part = [r.digest for r in rows[i : i + _BATCH]]
                    present.update(
                        bytes(r[0])
                        for r in conn.execute(
                            select(blobs.c.digest).where(blobs.c.digest.in_(part))
                        )
                    )
                new = [
                    {
                        "digest": r.digest,
                        "pack": r.pack,
                        "offset": r.offset,
                        "length": r.length,
                        "raw_length": r.raw_length,
                        "codec": r.codec,
                    }
                    for r in rows
                    if r.digest not in present
                ]
                if new:
                    conn.execute(insert(blobs), new)

        self.db.retrying(txn)
