"""Applying a batch of file operations (put, append, delete, copy) as one atomic change."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from haathi import allocator
from haathi.errors import InvalidArgument, NotFound
from haathi.models import paths
from haathi.models.bounds import check_description
from haathi.models.ops import CopyOp, DeleteOp, Op, Ops, ProgressFn, PutOp
from haathi.models.refspec import CommitSpec
from haathi.models.text import check_text
from haathi.pfs import collisions, files, lifecycle, staging
from haathi.pfs.changelog import ChangeLog
from haathi.pfs.context import PfsContext
from haathi.pfs.puts import Puts
from haathi.tree import prolly


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


def _streamed(
    ctx: PfsContext, spec: CommitSpec, ops: Iterator[PutOp]
) -> tuple[Iterator[Op], lifecycle.PutsCheck | None]:
    """The puts of ``ops``, each path validated, then checked for clashes against the branch
    head and the earlier paths (while they come in order), as it is reached: before its
    bytes are read. Returns them and the check (None where the write goes to an open commit,
    checked when staged)."""
    check = lifecycle.puts_check(ctx, spec)

    def each() -> Iterator[Op]:
        nonlocal check
        for op in ops:
            if not isinstance(op, PutOp):
                raise InvalidArgument(
                    f"a stream of ops can only put files, got a {type(op).__name__}: give a "
                    "list to delete or copy"
                )
            op = _canonical(op)  # type: ignore[assignment]
            if check is not None and check.puts.ordered(op.path):
                collisions.refuse(check.puts.clash(op.path))
            yield op

    return each(), check


def modify(
    ctx: PfsContext,
    spec: CommitSpec,
    ops: Ops,
    *,
    parallelism: int = 1,
    progress: ProgressFn | None = None,
    description: str = "",
) -> str:
    """Apply ``ops`` in order as one atomic change; returns the commit written to.

    Everything is validated and all bytes are stored before anything becomes visible: a
    failure (bad path, unreadable source, a path that would be a file and a directory) leaves
    the repo as it was. Given a sequence, every path is checked before any byte is read.
    Given an iterator of puts (see :data:`~haathi.models.ops.Ops`), the ops are streamed and
    no memory is held per file: each path is checked before its own bytes are read (against
    the branch's files and the paths before it, while they come in path order), so a bad path
    fails the write after the bytes of the files before it were stored, and those are garbage
    that ``gc`` removes (as after an unreadable file or a crash mid-write).
    """
    check_text(description, "the commit message")
    check_description(description, "the commit message")
    lifecycle.write_target(ctx, spec)
    stream: Iterator[Op]
    copies: dict[int, list[staging.Change]] = {}
    checked: lifecycle.Checked | None = None
    puts_check: lifecycle.PutsCheck | None = None
    if isinstance(ops, Sequence):
        listed = [_canonical(op) for op in ops]
        _check_deletes(ctx, spec, listed)
        copies = {i: _copy(ctx, op) for i, op in enumerate(listed) if isinstance(op, CopyOp)}
        checked = lifecycle.check_paths(ctx, spec, _planned(listed, copies))
        stream = iter(listed)
    else:
        stream, puts_check = _streamed(ctx, spec, ops)
    since_epoch = lifecycle.gc_epoch_now(ctx)
    writer = ctx.blobs.writer()
    with ChangeLog(ctx.blobs.spool_dir) as log, allocator.collector_paused():
        stored = Puts(writer, log, progress, parallelism)
        try:
            for i, op in enumerate(stream):
                if isinstance(op, PutOp):
                    stored.put(op)
                elif isinstance(op, DeleteOp):
                    kind = staging.RDELETE if op.recursive else staging.DELETE
                    stored.add([staging.Change(kind, op.path)])
                else:
                    moved = copies.pop(i)
                    writer.track(d for c in moved if c.entry for d, _ in c.entry.chunk_list())
                    stored.add(moved)
            stored.finish()
            if puts_check is not None:
                checked = puts_check.checked if puts_check.puts.complete else None
            return lifecycle.commit_changes(
                ctx, spec, log, description, writer, since_epoch, checked
            )
        except BaseException:
            stored.close(cancel=True)
            writer.abort()
            raise
        finally:
            stored.close()
