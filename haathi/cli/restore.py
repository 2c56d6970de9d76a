"""Writing files out (``get file``): a restore of many files writes them in another process.

Creating a file costs a few system calls. A restore of many small files reads (and verifies)
them here and hands them to two writer processes (:mod:`haathi.cli.restore_child`), which
create them on the other cores, each the files of its directories (when the kernel's creates
are slow, as on a busy disk, two at once take half the time); a few files are written here,
and a large file is written by a writer thread as it is read. A file whose bytes fail to read
is never left half written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from haathi.cli import restore_child
from haathi.cli.restore_child import write_out
from haathi.errors import FailedPrecondition
from haathi.models.info import FileInfo

SMALL = 1 << 20  # a file up to this size is read whole, then written
CHILD_AFTER = 128  # small files written here before the rest go to writer processes
WRITER_PROCESSES = 2
LARGE_IN_FLIGHT = 2  # larger files being written at once, each holding at most
BLOCKS_IN_FLIGHT = 16  # this many blocks (chunks of at most 1 MiB) read but not yet written


def restore(
    files: Iterable[tuple[FileInfo, Iterator[bytes]]],
    base: str,
    out: Path,
    *,
    child_after: int = CHILD_AFTER,
) -> None:
    """Write each file below ``base`` to its place below ``out`` (a file ``base`` itself to
    ``out/<its name>``); FailedPrecondition naming the file when one cannot be written. The
    small files after the first ``child_after`` are written by writer processes."""
    made: set[str] = set()  # the directories made, relative to out
    small = 0
    child: _Writers | None = None
    large: list[Future[None]] = []
    with ThreadPoolExecutor(LARGE_IN_FLIGHT, thread_name_prefix="haathi-write") as pool:
        try:
            for f, content in files:
                rel = f.path[len(base) :].lstrip("/") if f.path != base else Path(f.path).name
                folder = rel.rpartition("/")[0]
                if folder not in made:
                    dest = out / rel
                    _guarded(f, dest, dest.parent.mkdir, parents=True, exist_ok=True)
                    made.add(folder)
                if child is not None and f.size_bytes <= SMALL:  # the most files, at least cost
                    child.send(folder, rel, b"".join(content))  # read and verified first
                    continue
                dest = out / rel
                if f.size_bytes > SMALL:  # written by a thread as this one reads and verifies
                    while sum(not p.done() for p in large) >= LARGE_IN_FLIGHT:
                        wait(large, return_when=FIRST_COMPLETED)
                    blocks: queue.Queue[bytes | None] = queue.Queue(BLOCKS_IN_FLIGHT)
                    fut = pool.submit(_guarded, f, dest, write_out, dest, _taken(blocks))
                    large = [p for p in large if not p.done()] + [fut]
                    _hand_over(content, blocks, fut)
                    continue
                data = b"".join(content)  # read and verified before anything is written
                small += 1
                if small <= child_after:
                    _guarded(f, dest, write_out, dest, (data,))
                    continue
                child = _Writers(out, f, base)
                child.send(folder, rel, data)
            if child is not None:
                child.close()
            for p in large:
                p.result()
        finally:
            if child is not None:  # on an error here, the files read before it are written
                child.stop()
            for p in large:
                p.cancel()


class _Writers:
    """Writer processes, one per core up to ``WRITER_PROCESSES``; a directory's files all go to
    one of them (creates in one directory wait for each other in the kernel)."""

    def __init__(self, out: Path, first: FileInfo, base: str) -> None:
        n = max(1, min(WRITER_PROCESSES, os.cpu_count() or 1))
        self._writers = [_Writer(out, first, base) for _ in range(n)]

    def send(self, folder: str, rel: str, data: bytes) -> None:
        self._writers[hash(folder) % len(self._writers)].send(rel, data)

    def close(self) -> None:
        for w in self._writers:
            w.close()

    def stop(self) -> None:
        for w in self._writers:
            w.stop()


class _Writer:
    """A writer process creating files below ``out``: :meth:`send` hands it a file (in batches
    of about 128 KiB), :meth:`close` waits until all are written. A file it cannot write is a
    FailedPrecondition naming it, from whichever call finds out."""

    BATCH = 128 << 10
    PIPE = 1 << 20  # the most a process may ask for, by default

    def __init__(self, out: Path, first: FileInfo, base: str) -> None:
        self._out, self._repo, self._commit = out, first.repo, first.commit
        self._base = base.rstrip("/")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", restore_child.__file__, str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        stdin = self._proc.stdin
        assert stdin is not None
        resize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux: room to read ahead of the writes
        if resize is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(stdin.fileno(), resize, self.PIPE)
        self._batch: list[bytes] = []
        self._size = 0

    def send(self, rel: str, data: bytes) -> None:
        path = os.fsencode(rel)
        self._batch += (restore_child.HEADER.pack(len(path), len(data)), path, data)
        self._size += len(data) + len(path)
        if self._size >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._write_batch():
            self._failed()

    def _write_batch(self) -> bool:
        """Send the batch; False if the process has ended."""
        batch = b"".join(self._batch)
        self._batch.clear()
        self._size = 0
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(batch)
        except (BrokenPipeError, ValueError):  # ended, or closed here already
            return False
        return True

    def close(self) -> None:
        """Send what is left and wait until every file is written."""
        self._flush()
        self._end()
        if self._proc.returncode != 0:
            self._failed()
        self.stop()

    def stop(self) -> None:
        """No more files: the process writes those sent so far, then ends."""
        self._write_batch()
        self._end()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def _end(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it ended
            stdin.close()
        self._proc.wait()

    def _failed(self) -> None:
        self._end()
        stdout = self._proc.stdout
        assert stdout is not None
        said = stdout.read()
        path, _, reason = said.partition(b"\0")
        if not reason:
            raise FailedPrecondition(
                f"cannot write the files below {self._out}: the writer process ended"
                f" (status {self._proc.returncode})"
            )
        rel = os.fsdecode(path)
        raise FailedPrecondition(
            f"cannot write {self._out / rel} ({self._base}/{rel} of {self._repo}@"
            f"{self._commit}): {reason.decode(errors='replace')}"
        )


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
        writer = pool.submit(write_out, dest, _taken(blocks))
        _hand_over(content, blocks, writer)
        writer.result()
