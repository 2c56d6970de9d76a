"""Garbage collection: delete packs nothing can reach, never one something can.

A pack is garbage when none of its indexed blobs is reachable from a commit or an open commit.
gc runs in three steps, each safe against writers running at the same time:

1. **mark**: walk every root in a snapshot of the metadata (the tree nodes reached kept in
   memory, the chunks in sorted runs on disk past 262,144: :mod:`haathi.pfs.markset`), then
   merge the marks with the index, both in digest order, into the packs that hold a mark;
2. **condemn**: under gc's lock, walk the roots added since the snapshot, then mark the
   still-unreachable packs ``condemned``. New writes no longer
   reuse their blobs (they store fresh copies). A write that began before and reuses one
   revives its pack when it commits (``keep_reused``);
3. **sweep**: packs condemned at least the grace period ago lose their index rows, then their
   objects. Objects with no pack row (left by a crash) are deleted once older than
   ``orphan_grace``.

A write still running when a pack it reused is swept fails at commit time with a clear error
and commits nothing. Packs that hold any live blob are kept whole (no repacking yet).

gc first checks that the metadata and the object store record the same store ID (and again
before deleting objects no pack row names): objects it cannot account for are never deleted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from haathi.errors import InvalidArgument
from haathi.meta import blob_index
from haathi.pfs.context import PfsContext, now
from haathi.pfs.identity import verify_identity
from haathi.pfs.reach import Marker, Snapshot, snapshot
from haathi.storage.blobs import pack_key


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one gc run did."""

    reachable_blobs: int
    packs_kept: int
    packs_condemned: int
    packs_deleted: int
    bytes_deleted: int
    orphans_deleted: int

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def recheck(conn: Connection, snap: Snapshot, marker: Marker) -> set[str]:
    """Under gc's lock: mark what was added since ``snap``; the packs now holding the index
    rows of newly reached digests."""
    marker.track_added()
    marker.mark(snapshot(conn, since=snap))
    return blob_index.packs_of(conn, marker.take_added())


MAX_GRACE_S = 100 * 365 * 86400.0  # longer is the same: nothing is that old


def _grace(name: str, seconds: float) -> float:
    """A grace period in seconds: at least 0 (a negative orphan grace would delete the packs of
    writes in flight), longer ones (even infinite) capped at :data:`MAX_GRACE_S`."""
    try:
        value = float(seconds)
    except OverflowError:
        value = math.inf
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"gc {name} must be a number of seconds, got {seconds!r}") from exc
    if math.isnan(value) or value < 0:
        raise InvalidArgument(f"gc {name} must be at least 0 seconds, got {seconds!r}")
    return min(value, MAX_GRACE_S)


def gc(ctx: PfsContext, *, grace_s: float = 600.0, orphan_grace_s: float = 3600.0) -> GcReport:
    """Delete unreachable packs condemned at least ``grace_s`` ago; condemn newly found ones."""
    grace_s, orphan_grace_s = _grace("grace", grace_s), _grace("orphan grace", orphan_grace_s)
    verify_identity(ctx.db, ctx.blobs.objects, "gc")  # never judge objects by foreign metadata
    with Marker(ctx.nodes, ctx.blobs.spool_dir, strict=True) as marker:
        with ctx.db.read() as conn:
            snap = snapshot(conn)
        marker.mark(snap)

        with ctx.db.read() as conn:
            reached = Counted(marker.reached())
            live = live_packs(blob_index.digest_packs_sorted(conn), reached)
            reached.drain()
            pack_rows = blob_index.pack_states(conn)
        candidates = {p for p, state in pack_rows if state == "live" and p not in live}
        kept = sum(1 for _, state in pack_rows if state == "live") - len(candidates)

        with ctx.db.write() as conn:
            blob_index.bump_epoch(conn)
            candidates -= recheck(conn, snap, marker)
            blob_index.condemn(conn, sorted(candidates), now())
    deleted, freed = _sweep(ctx, now() - timedelta(seconds=grace_s))
    orphans = _delete_orphans(ctx, orphan_grace_s)
    return GcReport(reached.count, kept, len(candidates), deleted, freed, orphans)


def live_packs(rows: Iterable[tuple[bytes, str]], reached: Iterable[bytes]) -> set[str]:
    """The packs holding a reached digest: index rows ``(digest, pack)`` and the reached
    digests, both in increasing digest order, merged in one pass (neither held in memory)."""
    live: set[str] = set()
    it = iter(reached)
    cur = next(it, None)
    for digest, pack in rows:
        while cur is not None and cur < digest:
            cur = next(it, None)
        if cur is None:
            break
        if cur == digest:
            live.add(pack)
    return live


class Counted:
    """An iterator that counts what it gave (:meth:`drain` reads the rest, counted too)."""

    def __init__(self, items: Iterable[bytes]) -> None:
        self._it = iter(items)
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for item in self._it:
            self.count += 1
            yield item

    def drain(self) -> None:
        for _ in self:
            pass


def _sweep(ctx: PfsContext, cutoff: datetime) -> tuple[int, int]:
    """Drop packs condemned before ``cutoff`` (and not revived): index rows, then objects."""
    with ctx.db.write() as conn:
        blob_index.bump_epoch(conn)
        doomed = blob_index.condemned_before(conn, cutoff)
        ids = [pack for pack, _ in doomed]
        blob_index.drop_packs(conn, ids)
    for pack in ids:  # a crash here leaves orphan objects, which a later gc deletes
        ctx.blobs.objects.delete(pack_key(pack))
    return len(ids), sum(size for _, size in doomed)


def _delete_orphans(ctx: PfsContext, min_age_s: float) -> int:
    """Delete pack objects that no pack row names, once older than ``min_age_s``."""
    limit = time.time() - min_age_s
    old = {
        o.key.rsplit("/", 1)[-1]: o.key
        for o in ctx.blobs.objects.list_objects("packs/")
        if o.modified <= limit
    }
    if not old:
        return 0
    verify_identity(ctx.db, ctx.blobs.objects, "gc")  # again, just before deleting unnamed objects
    # Under gc's lock: a writer indexing one of these packs either already has (its row is
    # found below) or will find the object gone when it checks, and fail cleanly.
    with ctx.db.write() as conn:
        blob_index.bump_epoch(conn)
        indexed = blob_index.pack_ids(conn)
        orphans = [key for pack, key in old.items() if pack not in indexed]
        for key in orphans:
            ctx.blobs.objects.delete(key)
    return len(orphans)
