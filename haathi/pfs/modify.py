"""Applying a batch of file operations (put, append, delete, copy) as one atomic change."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from haathi.errors import NotFound
from haathi.models import paths
from haathi.models.bounds import check_description
from haathi.models.ops import CopyOp, DeleteOp, Op, ProgressFn, PutOp
from haathi.models.refspec import CommitSpec
from haathi.models.text import check_text
from haathi.pfs import files, lifecycle, staging
from haathi.pfs.context import PfsContext
from haathi.pfs.ingest import ingest_stream
from haathi.storage.blobs import BlobWriter
from haathi.tree import prolly

PARALLEL_MIN_SIZE = 4 * 1024 * 1024


def _put(writer: BlobWriter, op: PutOp, progress: ProgressFn | None) -> staging.Change:
    with op.open() as stream:
        entry = ingest_stream(
            writer, op.path, stream, label=op.label, progress=progress, size_hint=op.size_hint
        )
    return staging.Change(staging.APPEND if op.append else staging.PUT, op.path, entry)


def _copy(ctx: PfsContext, op: CopyOp) -> list[staging.Change]:
    _, _, entry = files.lookup(ctx, op.source)
    kind = staging.APPEND if op.append else staging.PUT
    if entry is not None:
        return [staging.Change(kind, op.path, entry.moved(op.path))]
    src_prefix = paths.dir_prefix(op.source.path)
    dst_prefix = paths.dir_prefix(op.path)
    below = files.walk_files(ctx, op.source)[1]
    moved = (e.moved(paths.check_length(dst_prefix + e.path[len(src_prefix) :])) for e in below)
    return [staging.Change(kind, e.path, e) for e in moved]


def _canonical(op: Op) -> Op:
    """``op`` naming its path's canonical form (a caller's op may say ``a//b``)."""
    if isinstance(op, DeleteOp):
        path = paths.normalize(op.path)
    else:
        path = paths.normalize_for_write(op.path)
    return op if path == op.path else replace(op, path=path)


def _planned(ops: Sequence[Op], copies: dict[int, list[staging.Change]]) -> list[staging.Change]:
    """The changes ``ops`` make, in order (a put's entry is not known yet)."""
    out: list[staging.Change] = []
    for i, op in enumerate(ops):
        if isinstance(op, PutOp):
            out.append(staging.Change(staging.APPEND if op.append else staging.PUT, op.path))
        elif isinstance(op, DeleteOp):
            out.append(staging.Change(staging.RDELETE if op.recursive else staging.DELETE, op.path))
        else:
            out.extend(copies[i])
    return out


def _check_deletes(ctx: PfsContext, spec: CommitSpec, ops: Sequence[Op]) -> None:
    deletes = [op for op in ops if isinstance(op, DeleteOp)]
    if not deletes:
        return
    try:
        _, root = files.open_tree(ctx, spec)
    except NotFound:
        root = None
    for op in deletes:
        if prolly.get(root, op.path, ctx.nodes) is not None:
            continue
        if files.is_dir(ctx, root, op.path):
            if op.recursive:
                continue
            raise NotFound(f"{op.path} is a directory: use -r to delete it", path=op.path)
        raise NotFound(f"file {op.path} not found in {spec}", path=op.path)


def modify(
    ctx: PfsContext,
    spec: CommitSpec,
    ops: Sequence[Op],
    *,
    parallelism: int = 1,
    progress: ProgressFn | None = None,
    description: str = "",
) -> str:
    """Apply ``ops`` in order as one atomic change; returns the commit written to.

    Everything is validated and all bytes are stored before anything becomes visible: a
    failure (bad path, unreadable source, a path that would be a file and a directory) leaves
    the repo as it was. Paths are checked before any byte is read.
    """
    check_text(description, "the commit message")
    check_description(description, "the commit message")
    lifecycle.write_target(ctx, spec)
    ops = [_canonical(op) for op in ops]
    _check_deletes(ctx, spec, ops)
    copies = {i: _copy(ctx, op) for i, op in enumerate(ops) if isinstance(op, CopyOp)}
    checked = lifecycle.check_paths(ctx, spec, _planned(ops, copies))
    changes: list[list[staging.Change]] = [[] for _ in ops]
    since_epoch = lifecycle.gc_epoch_now(ctx)
    writer = ctx.blobs.writer()
    try:
        puts = [(i, op) for i, op in enumerate(ops) if isinstance(op, PutOp)]
        # Threads pay off for large files (hashing and compression release the GIL); small
        # files go faster on one thread.
        large = [(i, op) for i, op in puts if (op.size_hint or 0) >= PARALLEL_MIN_SIZE]
        small = [(i, op) for i, op in puts if (op.size_hint or 0) < PARALLEL_MIN_SIZE]
        if parallelism > 1 and len(large) > 1:
            with ThreadPoolExecutor(max_workers=parallelism) as pool:
                futures = [(i, pool.submit(_put, writer, op, progress)) for i, op in large]
                for i, op in small:
                    changes[i] = [_put(writer, op, progress)]
                for i, fut in futures:
                    changes[i] = [fut.result()]
        else:
            for i, op in puts:
                changes[i] = [_put(writer, op, progress)]
        for i, each in enumerate(ops):
            if isinstance(each, DeleteOp):
                kind = staging.RDELETE if each.recursive else staging.DELETE
                changes[i] = [staging.Change(kind, each.path)]
            elif isinstance(each, CopyOp):
                changes[i] = copies[i]
                writer.track(d for c in changes[i] if c.entry for d, _ in c.entry.chunk_list())
        flat = [c for group in changes for c in group]
        return lifecycle.commit_changes(ctx, spec, flat, description, writer, since_epoch, checked)
    except BaseException:
        writer.abort()
        raise
