"""Reading files: get, open, inspect, list, glob, diff — from finished or open commits."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice, takewhile, tee
from typing import TypeVar

from haathi.errors import FailedPrecondition, NotFound
from haathi.models import paths
from haathi.models.glob import compile_glob
from haathi.models.info import ChangeKind, DiffEntry, FileInfo, FileType
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.models.text import check_text
from haathi.pfs import staging
from haathi.pfs.commits import CommitRow, get_commit, resolve
from haathi.pfs.context import PfsContext
from haathi.storage.blobs import StoredRange
from haathi.tree import prolly
from haathi.tree.entry import FileEntry
from haathi.tree.prolly import OverlaySink


def tree_of(ctx: PfsContext, commit: CommitRow) -> bytes | None:
    """The tree root of a commit; an open commit's staged changes are applied in memory."""
    if commit.finished:
        return commit.root
    with ctx.db.read() as conn:
        base, changes = staging.open_commit_state(conn, commit)
    if not changes:
        return base
    edits = staging.edits_for(base, changes, ctx.nodes)
    return prolly.apply(base, edits, ctx.nodes, OverlaySink(ctx.nodes))


def open_tree(ctx: PfsContext, spec: CommitSpec) -> tuple[CommitRow, bytes | None]:
    with ctx.db.read() as conn:
        commit = resolve(conn, spec)
    return commit, tree_of(ctx, commit)


def file_info(commit: CommitRow, e: FileEntry) -> FileInfo:
    return FileInfo(
        repo=commit.repo,
        commit=commit.id,
        path=e.path,
        type=FileType.FILE,
        size_bytes=e.size,
        hash=e.hash.hex(),
        chunks=e.chunk_count,
        datum=e.datum,
    )


def dir_info(ctx: PfsContext, commit: CommitRow, root: bytes | None, path: str) -> FileInfo:
    prefix = paths.dir_prefix(path)
    _, size = (
        prolly.totals(root, ctx.nodes)
        if path == "/"
        else prolly.range_totals(root, prefix, path + "0", ctx.nodes)
    )
    return FileInfo(commit.repo, commit.id, path, FileType.DIR, size)


def is_dir(ctx: PfsContext, root: bytes | None, path: str) -> bool:
    if path == "/":
        return True
    return next(prolly.iter_prefix(root, paths.dir_prefix(path), ctx.nodes), None) is not None


def lookup(ctx: PfsContext, spec: FileSpec) -> tuple[CommitRow, bytes | None, FileEntry | None]:
    """The commit, its root, and the file entry at the path (None for a directory)."""
    commit, root = open_tree(ctx, spec.commit)
    entry = prolly.get(root, spec.path, ctx.nodes) if spec.path != "/" else None
    if entry is None and not is_dir(ctx, root, spec.path):
        raise NotFound(
            f"file {spec.path} not found in {commit.repo}@{commit.id}",
            repo=commit.repo,
            commit=commit.id,
            path=spec.path,
        )
    return commit, root, entry


def file_entry(ctx: PfsContext, spec: FileSpec) -> tuple[CommitRow, FileEntry]:
    commit, _, entry = lookup(ctx, spec)
    if entry is None:
        raise FailedPrecondition(
            f"{spec.path} is a directory, not a file (use -r to get a directory)",
            path=spec.path,
        )
    return commit, entry


def read_content(ctx: PfsContext, entry: FileEntry, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of the file, reading (and verifying) only the chunks that hold them.

    Before it returns, every chunk after the first is located and its pack checked to hold it
    (no data read), and the first chunk is read and verified: a file whose data is missing or
    truncated fails here, before any of its bytes goes out (a chunk damaged in place, same
    size, is only found when it is read)."""
    wanted, skip = _wanted(ctx, entry, start, end)
    blobs = ctx.blobs.iter_blobs(wanted, keep=len(wanted) == 1)  # a small file: kept in the cache
    return _first_read(_slice(blobs, skip, max(end - start, 0)))


def read_stored_content(
    ctx: PfsContext, entry: FileEntry, start: int, end: int
) -> Iterator[bytes | StoredRange]:
    """As :func:`read_content`, but the chunks a local store holds raw come as the verified
    :class:`StoredRange` of their bytes in their packs (for a server to send from the files)."""
    wanted, skip = _wanted(ctx, entry, start, end)
    blobs = ctx.blobs.iter_stored(wanted, keep=len(wanted) == 1)
    return _first_read(_slice(blobs, skip, max(end - start, 0)))


def _wanted(ctx: PfsContext, entry: FileEntry, start: int, end: int) -> tuple[list[bytes], int]:
    """The chunks that hold bytes [start, end), each checked readable but the first (no data
    read), and how many bytes of the first come before ``start``."""
    wanted: list[bytes] = []
    skip = 0
    pos = 0
    for digest, n in entry.chunk_list():
        if pos >= end:
            break
        if pos + n > start:
            if not wanted:
                skip = start - pos
            wanted.append(digest)
        pos += n
    ctx.blobs.check_readable(wanted[1:])
    return wanted, skip


def _first_read(pieces: Iterator[Piece]) -> Iterator[Piece]:
    """``pieces``, the first one read already (its errors are raised here)."""
    first = next(pieces, None)
    return iter(()) if first is None else chain([first], pieces)


Piece = TypeVar("Piece", bytes, "bytes | StoredRange")


def _slice(chunks: Iterator[Piece], skip: int, left: int) -> Iterator[Piece]:
    """``left`` bytes of the concatenated ``chunks`` after the first ``skip``."""
    for data in chunks:
        piece = data[skip : skip + left] if isinstance(data, bytes) else data.part(skip, left)
        size = len(piece) if isinstance(piece, bytes) else piece.length
        skip = 0
        left -= size
        if size:
            yield piece
        if left <= 0:
            return


def inspect_file(ctx: PfsContext, spec: FileSpec) -> FileInfo:
    commit, root, entry = lookup(ctx, spec)
    return file_info(commit, entry) if entry else dir_info(ctx, commit, root, spec.path)


def list_file(
    ctx: PfsContext, spec: FileSpec, start: str | None = None, limit: int | None = None
) -> list[FileInfo]:
    """The immediate children of a directory (or the file itself), in path order: those whose
    place in that order (:attr:`FileInfo.list_key`) is ``start`` or after it (found by a seek, not a
    scan), at most ``limit`` of them. A page of a huge directory costs its own entries."""
    commit, root, entry = lookup(ctx, spec)
    if entry is not None:
        found = [] if start is not None and entry.path < start else [file_info(commit, entry)]
        return found[:limit]
    return list(islice(_children(ctx, commit, root, spec.path, start or ""), limit))


def _children(
    ctx: PfsContext, commit: CommitRow, root: bytes | None, path: str, start: str
) -> Iterator[FileInfo]:
    prefix = paths.dir_prefix(path)
    entries = prolly.iter_from(root, max(prefix, start), ctx.nodes)
    while (e := next(entries, None)) is not None and e.path.startswith(prefix):
        rest = e.path[len(prefix) :]
        if "/" not in rest:
            yield file_info(commit, e)
            continue
        sub = prefix + rest.split("/", 1)[0]
        if sub + "/" >= start:
            yield dir_info(ctx, commit, root, sub)
        # '0' sorts right after '/': seek past the whole subdirectory
        entries = prolly.iter_from(root, sub + "0", ctx.nodes)


def walk_files(
    ctx: PfsContext, spec: FileSpec, start: str | None = None
) -> tuple[CommitRow, Iterator[FileEntry]]:
    """Every file at or below the path (in path order; with ``start``, those whose path is
    ``start`` or after it, found by a seek, not a scan)."""
    commit, root, entry = lookup(ctx, spec)
    if entry is not None:
        return commit, iter([] if start is not None and entry.path < start else [entry])
    prefix = paths.dir_prefix(spec.path)
    if start is None or start <= prefix:
        return commit, prolly.iter_prefix(root, prefix, ctx.nodes)
    below = prolly.iter_from(root, start, ctx.nodes)
    return commit, takewhile(lambda e: e.path.startswith(prefix), below)


def read_files(ctx: PfsContext, spec: FileSpec) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
    """Every file at or below the path, in path order, each with its bytes (verified): what a
    restore (``get file -r``) reads. One walk of the tree, and the blobs of all the files
    looked up in batches, where reading file by file costs a resolve, a tree walk and a
    lookup per file. A file's bytes can be read only until the next file is taken. A bad
    path raises here, before the first file."""
    commit, entries = walk_files(ctx, spec)
    return _with_contents(ctx, commit, entries)


def _with_contents(
    ctx: PfsContext, commit: CommitRow, entries: Iterator[FileEntry]
) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
    listed, chunked = tee(entries)
    blobs = ctx.blobs.iter_blobs(d for e in chunked for d, _ in e.chunk_list())
    for entry in listed:
        content = islice(blobs, entry.chunk_count)
        yield file_info(commit, entry), content
        for _ in content:  # what the caller left unread: the next file starts after it
            pass


def glob_file(ctx: PfsContext, spec: CommitSpec, pattern: str) -> list[FileInfo]:
    """Files and directories whose path matches a Pachyderm glob."""
    g = compile_glob(check_text(pattern, f"glob pattern {pattern!r}"))
    commit, root = open_tree(ctx, spec)
    literal = g.literal_prefix
    scan_from = literal[: literal.rfind("/") + 1] or "/"
    out: list[FileInfo] = []
    seen_dirs: set[str] = set()
    if g.pattern == "/":  # only the pattern "/" names the root (as in Pachyderm)
        out.append(dir_info(ctx, commit, root, "/"))
    for e in prolly.iter_prefix(root, scan_from, ctx.nodes):
        parts = e.path.split("/")
        for i in range(2, len(parts)):
            d = "/".join(parts[:i])
            if d not in seen_dirs:
                seen_dirs.add(d)
                if g.match(d):
                    out.append(dir_info(ctx, commit, root, d))
        if g.match(e.path):
            out.append(file_info(commit, e))
    return sorted(out, key=lambda f: f.path)


def diff_file(
    ctx: PfsContext,
    new: FileSpec,
    old: FileSpec | None,
    start: str | None = None,
    limit: int | None = None,
) -> list[DiffEntry]:
    """Files added, removed or modified between two commits (default: the new one's parent),
    in path order: from the path ``start`` on (the walk skips what comes before it, equal or
    not), at most ``limit`` of them (a page of a huge change)."""
    new_commit, new_root = open_tree(ctx, new.commit)
    if old is None:
        if new_commit.parent is None:
            old_commit, old_root, old_path = None, None, new.path
        else:
            with ctx.db.read() as conn:
                old_commit = get_commit(
                    conn, new_commit.repo_id, new.commit.repo, new_commit.parent
                )
            old_root, old_path = tree_of(ctx, old_commit), new.path
    else:
        old_commit, old_root = open_tree(ctx, old.commit)
        old_path = old.path
    out: list[DiffEntry] = []
    new_prefix = paths.dir_prefix(new.path)
    old_prefix = paths.dir_prefix(old_path)

    def within(p: str, path: str, prefix: str) -> bool:
        return path == "/" or p == path or p.startswith(prefix)

    for p, o, n in prolly.diff(old_root, new_root, ctx.nodes, lo=start or ""):
        if limit is not None and len(out) >= limit:
            break
        o = o if o is not None and within(p, old_path, old_prefix) else None
        n = n if n is not None and within(p, new.path, new_prefix) else None
        if o is None and n is None:
            continue
        kind = ChangeKind.MODIFIED if o and n else ChangeKind.ADDED if n else ChangeKind.REMOVED
        if o and n and o.hash == n.hash and o.size == n.size:
            continue
        out.append(
            DiffEntry(
                path=p,
                change=kind,
                new=file_info(new_commit, n) if n else None,
                old=file_info(old_commit, o) if o and old_commit else None,
            )
        )
    return out
