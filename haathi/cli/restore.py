"""Writing files out (``get file``): a restore of many files writes them on several threads.

Creating a file costs a few system calls that release the GIL, so small files are handed to
writer threads while the main thread reads (and verifies) the next ones; a large file is
written as it is read. A file whose bytes fail to read is never left half written.
"""

from __future__ import annotations

import os
import queue
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from haathi.errors import FailedPrecondition
from haathi.models.info import FileInfo

WRITERS = 4
SMALL = 1 << 20  # a file up to this size is read whole, then written by a writer thread
IN_FLIGHT = 256  # files read but not yet written, at most (at most IN_FLIGHT x SMALL bytes)
LARGE_IN_FLIGHT = 2  # larger files being written at once, each holding at most
BLOCKS_IN_FLIGHT = 16  # this many blocks (chunks of at most 1 MiB) read but not yet written
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def restore(files: Iterable[tuple[FileInfo, Iterator[bytes]]], base: str, out: Path) -> None:
    """Write each file below ``base`` to its place below ``out`` (a file ``base`` itself to
    ``out/<its name>``); FailedPrecondition naming the file when one cannot be written."""
    made: set[Path] = set()
    pending: deque[Future[None]] = deque()
    large: list[Future[None]] = []
    with ThreadPoolExecutor(WRITERS, thread_name_prefix="haathi-write") as pool:
        try:
            for f, content in files:
                rel = f.path[len(base) :].lstrip("/") if f.path != base else Path(f.path).name
                dest = out / rel
                if dest.parent not in made:
                    _guarded(f, dest, dest.parent.mkdir, parents=True, exist_ok=True)
                    made.add(dest.parent)
                if f.size_bytes <= SMALL:
                    data = [b"".join(content)]  # read and verified before anything is written
                    pending.append(pool.submit(_guarded, f, dest, write_out, data, dest))
                    while len(pending) > IN_FLIGHT:
                        pending.popleft().result()
                else:  # written by a writer thread as the main thread reads and verifies it
                    while sum(not p.done() for p in large) >= LARGE_IN_FLIGHT:
                        wait(large, return_when=FIRST_COMPLETED)
                    blocks: queue.Queue[bytes | None] = queue.Queue(BLOCKS_IN_FLIGHT)
                    fut = pool.submit(_guarded, f, dest, write_out, _taken(blocks), dest)
                    large = [p for p in large if not p.done()] + [fut]
                    pending.append(fut)
                    _hand_over(content, blocks, fut)
            while pending:
                pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


class _ReadFailed(Exception):
    """The file's bytes failed to read (the reading thread raises the reason)."""


def _hand_over(
    content: Iterator[bytes], blocks: queue.Queue[bytes | None], writer: Future[None]
) -> None:
    """Put ``content``'s blocks on ``blocks`` for ``writer``, then None; if reading fails, the
    writer is told to drop the file (and waited for) before the error goes on."""
    try:
        for block in content:
            _put(blocks, block, writer)
    except BaseException:
        _put(blocks, b"", writer, failed=True)
        wait([writer])
        raise
    _put(blocks, None, writer)


def _put(
    blocks: queue.Queue[bytes | None],
    item: bytes | None,
    writer: Future[None],
    *,
    failed: bool = False,
) -> None:
    """Queue ``item`` unless the writer has stopped (its error is raised here instead)."""
    while not writer.done():
        try:
            blocks.put(_FAILED if failed else item, timeout=0.05)
            return
        except queue.Full:
            continue
    writer.result()


_FAILED = b"\0haathi: read failed"  # a marker object, told apart by identity


def _taken(blocks: queue.Queue[bytes | None]) -> Iterator[bytes]:
    """The blocks put on ``blocks`` until None; _ReadFailed when the reader failed."""
    while (block := blocks.get()) is not None:
        if block is _FAILED:
            raise _ReadFailed
        yield block


def _guarded(f: FileInfo, dest: Path, act: Callable[..., None], *args: Any, **kw: Any) -> None:
    """``act(*args, **kw)``, an OSError turned into a one-line error naming the file."""
    try:
        act(*args, **kw)
    except OSError as exc:  # e.g. a path too long here, or a tree of an older haathi
        raise FailedPrecondition(  # holding a file and a directory at one path
            f"cannot write {dest} ({f.path} of {f.repo}@{f.commit}): {exc.strerror or exc}"
        ) from exc


def write_streamed(content: Iterator[bytes], dest: Path) -> None:
    """:func:`write_out` on a writer thread while this thread reads (and verifies) the next
    blocks: a large file's reads (GETs, from S3) and its writes to disk overlap."""
    blocks: queue.Queue[bytes | None] = queue.Queue(BLOCKS_IN_FLIGHT)
    with ThreadPoolExecutor(1, thread_name_prefix="haathi-write") as pool:
        writer = pool.submit(write_out, _taken(blocks), dest)
        _hand_over(content, blocks, writer)
        writer.result()


def write_out(content: Iterable[bytes], dest: Path) -> None:
    """Write ``content`` to ``dest``; a read that fails (damaged data) leaves no partial file.
    A new file is written in place; an existing one is replaced only once the new bytes are
    all written, through a temporary file (create + rename costs 7x a create: a restore into
    an empty directory, the usual case, does without)."""
    try:
        _write_new(content, dest)
    except FileExistsError:
        # a short name: the file's own may already be as long as a name can be
        tmp = dest.with_name(f".haathi-{secrets.token_hex(8)}.tmp")
        try:
            _write_new(content, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)


def _write_new(content: Iterable[bytes], path: Path) -> None:
    """Create ``path`` (FileExistsError if it exists) with ``content``; removed again if the
    content fails."""
    fd = os.open(path, _CREATE, 0o666)
    try:
        for block in content:
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
