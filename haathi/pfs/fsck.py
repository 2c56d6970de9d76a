"""Checking a store: the metadata database is sound, and so is every index row, pack, tree
node and chunk a commit needs.

With ``fix``, what is safely repairable is repaired: index rows of blobs that are missing,
truncated or corrupt are dropped when nothing reaches them (so no new write reuses a bad
copy), pack rows whose object is gone are dropped once none of their blobs is indexed, and
temp files left by killed writers are removed. Data a commit needs is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from haathi.errors import HaathiError, InvalidArgument
from haathi.meta import blob_index
from haathi.meta.integrity import check_database
from haathi.models import paths
from haathi.models.info import Problem
from haathi.pfs import branches, commits
from haathi.pfs.collisions import ChangeView, Clash, find_clashes
from haathi.pfs.context import PfsContext
from haathi.pfs.gc import recheck
from haathi.pfs.reach import Marker, Snapshot, snapshot
from haathi.storage.blobs import (
    BlobLocation,
    check_pack_layout,
    pack_key,
    remove_stale_spools,
)
from haathi.tree import prolly
from haathi.tree.entry import FileEntry


def fsck(ctx: PfsContext, *, fast: bool = False, fix: bool = False) -> list[Problem]:
    """Every problem found (each marked ``fixed`` in ``extra`` when ``fix`` repaired it).

    The metadata database is checked first, by its engine. When it is damaged nothing is
    repaired, and what its damage keeps from being read is reported, not raised."""
    found = [
        Problem(
            "error" if f.damage else "warning", "corrupt_metadata", "metadata database",
            f"the metadata database is damaged: {f.message}" if f.damage else f.message,
            "restore the metadata database from a backup (`haathi fsck --fix` does not "
            "repair it)" if f.damage else "",
        )
        for f in check_database(ctx.db, fast=fast)
    ]  # fmt: skip
    damaged = any(p.severity == "error" for p in found)
    try:
        return found + _check_store(ctx, fast=fast, fix=fix and not damaged)
    except HaathiError as exc:
        if not damaged:
            raise
        return [*found, Problem(
            "error", "unchecked", "store",
            f"the blob index, packs, trees and branch heads could not be checked: {exc}",
            "restore the metadata database from a backup, then run `haathi fsck` again",
        )]  # fmt: skip


def _check_store(ctx: PfsContext, *, fast: bool, fix: bool) -> list[Problem]:
    """Problems of the blob index, packs, trees and branch heads."""
    with ctx.db.read() as conn:
        pack_rows = blob_index.pack_sizes(conn)
        indexed_packs = blob_index.packs_indexed(conn)
        snap = snapshot(conn)
        commit_ids = {(r.repo_id, r.id) for r in commits.tree_rows(conn)}
        heads = branches.all_heads(conn)

    problems: list[Problem] = []
    sizes = {p: _size(ctx, p) for p in sorted(set(pack_rows) | indexed_packs)}
    missing_packs = [p for p, size in sizes.items() if size is None]
    for pack in missing_packs:
        problems.append(Problem(
            "error", "missing_pack", pack,
            f"pack {pack} is in the index but missing from the object store",
            "restore the pack from a backup; `haathi fsck --fix` drops its index rows if "
            "nothing needs its blobs",
        ))  # fmt: skip
    bad = dict(_check_blobs(ctx, sizes, pack_rows, fast, problems))

    chunks = _ChunkCheck(ctx, problems)
    with Marker(ctx.nodes, ctx.blobs.spool_dir, strict=False, on_entry=chunks.entry) as marker:
        marker.mark(snap)
        chunks.flush()
        problems.extend(marker.problems)
        needed = marker.reached_among(bad)
        for digest, pack in bad.items():
            if digest in needed:
                problems.append(Problem(
                    "error", "needed_blob_lost", digest.hex(),
                    f"blob {digest.hex()} (pack {pack}) is needed by a commit and is unreadable",
                    "restore the pack from a backup; the files using it cannot be read",
                ))  # fmt: skip

        for repo_id, repo, name, head in heads:
            if head is not None and (repo_id, head) not in commit_ids:
                problems.append(Problem(
                    "error", "dangling_head", f"{repo}@{name}",
                    f"branch {repo}@{name} points at commit {head}, which does not exist",
                    f"move the branch: `haathi create branch {repo}@{name} --head <commit>`",
                ))  # fmt: skip
        problems.extend(tree_path_problems(ctx))
        if fix:
            problems = _fix(ctx, problems, bad, set(missing_packs), snap, marker)
        return problems


class _ChunkCheck:
    """Reports the chunks of the files reached that are not in the index, looking them up a
    batch at a time (the index is not held in memory: a store may have millions of blobs)."""

    BATCH = 500

    def __init__(self, ctx: PfsContext, problems: list[Problem]) -> None:
        self.ctx, self.problems = ctx, problems
        self.pending: list[tuple[bytes, FileEntry, str]] = []

    def entry(self, e: FileEntry, where: str) -> None:
        self.pending.extend((digest, e, where) for digest, _ in e.chunk_list())
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        with self.ctx.db.read() as conn:
            found = blob_index.indexed(conn, list({d for d, _, _ in self.pending}))
        for digest, e, where in self.pending:
            if digest not in found:
                self.problems.append(Problem(
                    "error", "missing_chunk", digest.hex(),
                    f"{where}:{e.path} needs chunk {digest.hex()}, which is not in the index",
                    "the file's data is lost; restore from a backup or delete the file",
                ))  # fmt: skip
        self.pending = []


def tree_path_problems(ctx: PfsContext) -> list[Problem]:
    """Paths that writes now refuse, in trees of older stores: a file that is also a
    directory, a name in two Unicode spellings, a name or path too long to restore.

    Each commit is compared with its parent (equal subtrees skipped), so a problem is reported
    at the commits that made or changed it, and the cost follows the history's changes.
    """
    with ctx.db.read() as conn:
        rows = list(commits.tree_rows(conn, finished=True))
    roots = {(r.repo_id, r.id): r.root for r in rows}
    problems: list[Problem] = []
    for r in rows:
        where = f"{r.repo}@{r.id}"
        branch = f"{r.repo}@{r.branch or r.id}"
        before = roots.get((r.repo_id, r.parent)) if r.parent else None
        too_long: list[tuple[str, InvalidArgument]] = []
        written = _written(ctx, before, r.root, too_long)
        try:
            clashes: dict[object, Clash] = {}  # one per file that is a directory too, and
            for c in find_clashes(ChangeView(r.root, [], ctx.nodes), written):  # per pair of
                key = frozenset((c.upper, c.other)) if c.spelling else c.upper  # spellings
                clashes.setdefault(key, c)
        except HaathiError:
            continue  # an unreadable tree node: the reachability check reports it
        for path, exc in too_long:
            problems.append(Problem(
                "error", "long_path", f"{where}:{path}", f"{where}: {exc}",
                f"`get file -r` cannot restore it: move it to a shorter path in a new "
                f"commit (haathi copy file, then delete file {branch}:{path})",
            ))  # fmt: skip
        for c in clashes.values():
            if c.spelling:
                problems.append(Problem(
                    "warning", "path_spelling", f"{where}:{c.upper}", f"{where}: {c.message}",
                    f"keep one spelling: delete the other in a new commit (haathi delete file "
                    f"-r {branch}:<path>)",
                ))  # fmt: skip
            else:
                problems.append(Problem(
                    "error", "path_collision", f"{where}:{c.upper}", f"{where}: {c.message}",
                    f"`get file -r` cannot restore it: keep one of them in a new commit on each "
                    f"branch that has both, e.g. `haathi delete file {branch}:{c.upper}` (copy "
                    "it to another path first to keep it; the files in the directory stay)",
                ))  # fmt: skip
    return problems


def _written(
    ctx: PfsContext,
    before: bytes | None,
    root: bytes | None,
    too_long: list[tuple[str, InvalidArgument]],
) -> Iterator[str]:
    """The paths a commit wrote (``root`` against its parent's ``before``), streamed (a first
    commit may hold millions); those too long to restore are added to ``too_long``."""
    for path, _, new in prolly.diff(before, root, ctx.nodes):
        if new is None:
            continue
        try:
            paths.check_length(path)
        except InvalidArgument as exc:
            too_long.append((path, exc))
        yield path


def _size(ctx: PfsContext, pack: str) -> int | None:
    """The pack object's size, None if it is missing."""
    try:
        return ctx.blobs.objects.size(pack_key(pack))
    except HaathiError:
        return None


def _check_blobs(
    ctx: PfsContext,
    sizes: dict[str, int | None],
    recorded: dict[str, int],
    fast: bool,
    problems: list[Problem],
) -> Iterator[tuple[bytes, str]]:
    """Check each indexed blob and each pack as a whole (its size; unless ``fast``, every
    byte), reading each pack and its index rows once, one pack at a time; yields (digest,
    pack) of bad indexed blobs."""
    for pack, size in sizes.items():
        with ctx.db.read() as conn:
            locs = blob_index.pack_blobs(conn, pack)
        if size is None:
            yield from ((loc.digest, pack) for loc in locs)
            continue
        if pack in recorded and size != recorded[pack]:
            written = f"it is {size} bytes, {recorded[pack]} were written"
            problems.append(_damaged_pack(pack, written))
        data = b"" if fast else ctx.blobs.objects.get_range(pack_key(pack), 0, size)
        if not fast:
            problems.extend(_check_pack(ctx, pack, data, locs))
        for loc in locs:
            if loc.offset + loc.length > size:
                problems.append(Problem(
                    "error", "truncated_blob", loc.digest.hex(),
                    f"blob {loc.digest.hex()} lies beyond the end of pack {loc.pack}",
                    "restore the pack from a backup",
                ))  # fmt: skip
                yield loc.digest, pack
                continue
            if fast:
                continue
            try:
                ctx.blobs.read_stored(loc, data[loc.offset : loc.offset + loc.length])
            except HaathiError as exc:
                problems.append(Problem(
                    "error", "corrupt_blob", loc.digest.hex(), str(exc),
                    "restore the pack from a backup; the files using this blob cannot be read",
                ))  # fmt: skip
                yield loc.digest, pack


def _damaged_pack(pack: str, what: str) -> Problem:
    return Problem(
        "error",
        "corrupt_pack",
        pack,
        f"pack {pack} is damaged: {what}",
        "blobs of the pack that check out still read correctly; restore the pack from a "
        "backup (`haathi gc` deletes it once nothing uses its blobs)",
    )


def _check_pack(
    ctx: PfsContext, pack: str, data: bytes, indexed: list[BlobLocation]
) -> list[Problem]:
    """The bytes of a pack outside its indexed blobs: its layout (magic, footer, trailer, no
    gaps), the footer's agreement with the index, and the blobs only the footer lists (copies
    the index does not use) against their hashes."""
    listed, issues = check_pack_layout(pack, data)
    problems = [_damaged_pack(pack, issue) for issue in issues]
    if issues:
        return problems  # what the footer says cannot be trusted
    by_offset = {loc.offset: loc for loc in indexed}
    for loc in listed:
        used = by_offset.pop(loc.offset, None)
        if used is not None:  # checked against its hash with the index's blobs
            if used != loc:
                problems.append(_damaged_pack(
                    pack, f"its footer's entry for the blob at byte {loc.offset} does not "
                    f"match the index (blob {used.digest.hex()})",
                ))  # fmt: skip
            continue
        try:
            ctx.blobs.read_stored(loc, data[loc.offset : loc.offset + loc.length])
        except HaathiError as exc:
            problems.append(Problem(
                "warning", "corrupt_unused_blob", loc.digest.hex(),
                f"{exc} (a copy the index does not use: no file reads it)",
                "nothing to repair for your data; `haathi gc` deletes the pack once nothing "
                "uses its blobs",
            ))  # fmt: skip
    for loc in by_offset.values():
        problems.append(_damaged_pack(
            pack, f"the index places blob {loc.digest.hex()} at byte {loc.offset}, where its "
            "footer lists no blob",
        ))  # fmt: skip
    return problems


def _fix(
    ctx: PfsContext,
    problems: list[Problem],
    bad: dict[bytes, str],
    missing_packs: set[str],
    snap: Snapshot,
    marker: Marker,
) -> list[Problem]:
    """Drop the index rows of bad blobs nothing reaches, then pack rows left with no blob."""
    with ctx.db.write() as conn:
        blob_index.bump_epoch(conn)  # writers that reused one of these blobs fail cleanly
        recheck(conn, snap, marker)
        needed = marker.reached_among(bad)
        drop = {d: pack for d, pack in bad.items() if d not in needed}
        blob_index.drop_blobs(conn, drop)
        dropped = set(drop)
        emptied = {p for p in missing_packs if blob_index.drop_pack_if_empty(conn, p)}
    remove_stale_spools(ctx.blobs.spool_dir)
    out = []
    for p in problems:
        fixed = (
            p.kind in ("truncated_blob", "corrupt_blob") and bytes.fromhex(p.subject) in dropped
        ) or (p.kind == "missing_pack" and p.subject in emptied)
        out.append(replace(p, extra={**p.extra, "fixed": True}) if fixed else p)
    return out
