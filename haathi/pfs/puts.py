"""Storing the files a write puts, in the order of its ops, with the parallelism that pays.

- A large file (4 MiB or more) is stored on a thread: hashing and compression release the GIL.
- Small local files, once a write has put a few hundred, are read, hashed and compressed
  by helper processes (:mod:`haathi.storage.encoder`), a batch at a time ahead of the
  write, which stores their blobs itself: the per-file system calls and hashing of a million
  small files leave the write's core. The helpers start in the background (a new
  interpreter: a few hundred milliseconds), and the write stores the files itself until
  they are ready.
- Everything else is stored on the write's own thread.

Everything this thread stores is stored in the ops' order (a directory's files lie in its
packs in path order, so a restore reads them back in long runs), and every change reaches
the change log in the ops' order.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from haathi.errors import InvalidArgument
from haathi.models.ops import LocalOpener, ProgressFn, PutOp
from haathi.pfs import staging
from haathi.pfs.changelog import ChangeLog
from haathi.pfs.ingest import ingest_bytes, ingest_encoded, ingest_stream
from haathi.storage.blobs import BlobWriter
from haathi.storage.chunker import SMALL
from haathi.storage.encoder import Encoders, Result, Unreadable

PARALLEL_MIN_SIZE = 4 * 1024 * 1024  # a file this large is stored on a thread
HELPERS_AFTER = 256  # small local files a write stores itself before it starts helpers
BATCH_FILES = 256  # small local files per helper batch, at most
BATCH_BYTES = 4 * 1024 * 1024
AHEAD = 1024  # ops whose changes wait at most (for a large file or a batch still running)


@dataclass(eq=False)
class _Batch:
    """Small local files a helper process reads and encodes."""

    ops: list[PutOp]
    result: Future[list[Result]]


_Job = Future[list[staging.Change]] | list[staging.Change] | PutOp | _Batch


def _kind(op: PutOp) -> str:
    return staging.APPEND if op.append else staging.PUT


def _small_local(op: PutOp) -> bool:
    """Whether ``op`` puts a local file small enough to be read whole."""
    return isinstance(op.open, LocalOpener) and op.size_hint is not None and op.size_hint <= SMALL


def _local_path(op: PutOp) -> str:
    assert isinstance(op.open, LocalOpener)
    return op.open.path


def put_one(writer: BlobWriter, op: PutOp, progress: ProgressFn | None) -> list[staging.Change]:
    """Store one put's file here; its change."""
    size = op.size_hint
    if _small_local(op):
        assert isinstance(op.open, LocalOpener) and size is not None
        data = op.open.read_small(size)  # (most files of a large directory)
        if data is not None:
            entry = ingest_bytes(writer, op.path, data, progress)
            return [staging.Change(_kind(op), op.path, entry)]
    with op.open() as stream:
        entry = ingest_stream(
            writer, op.path, stream, label=op.label, progress=progress, size_hint=size
        )
    return [staging.Change(_kind(op), op.path, entry)]


def _helpers(parallelism: int) -> int:
    """Helper processes for ``parallelism``: the cores but this process's, at most."""
    if parallelism < 2:
        return 0
    return min(parallelism, os.cpu_count() or 1) - 1


class Puts:
    """Stores the files of a write's puts (see the module) and logs its changes in order."""

    def __init__(
        self, writer: BlobWriter, log: ChangeLog, progress: ProgressFn | None, parallelism: int
    ) -> None:
        self.writer, self.log, self.progress = writer, log, progress
        self.threads = ThreadPoolExecutor(parallelism) if parallelism > 1 else None
        self.helpers = _helpers(parallelism)
        self.encoders: Encoders | None = None
        self.ready: Future[list[Result]] | None = None  # done once the helpers run
        self.helping = False  # the helpers run
        self.small = 0  # small local files seen
        self.batch: list[PutOp] = []
        self.batch_bytes = 0
        self.batches = 0  # batches in ``ahead``
        self.ahead: deque[_Job] = deque()  # every op's changes, in order, until logged

    def put(self, op: PutOp) -> None:
        size = op.size_hint
        if self.threads is not None and (size or 0) >= PARALLEL_MIN_SIZE:
            self._submit()
            self.ahead.append(self.threads.submit(put_one, self.writer, op, self.progress))
        elif self.helpers and _small_local(op):
            self.small += 1
            if self.small == HELPERS_AFTER:
                self.encoders = Encoders(self.helpers)
                self.ready = self.encoders.submit([], self.writer.chunker)
            if not self.helping:
                if self.ready is None or not self.ready.done():
                    self._here(op)
                    return
                if self.ready.exception() is not None:  # (the helpers could not start)
                    self._no_helpers()
                    self._here(op)
                    return
                self.helping = True
            self.batch.append(op)
            self.batch_bytes += size or 0
            if len(self.batch) < BATCH_FILES and self.batch_bytes < BATCH_BYTES:
                return  # (nothing to advance before the batch is handed over)
            self._submit()
        else:
            self._here(op)
            return
        self._advance()

    def add(self, changes: list[staging.Change]) -> None:
        """Changes that need no storing (deletes, copies), in their place."""
        self._submit()
        self.ahead.append(changes)
        self._advance()

    def finish(self) -> None:
        """Store and log everything."""
        self._submit()
        self._advance(wait=True)

    def close(self, cancel: bool = False) -> None:
        if self.threads is not None:
            self.threads.shutdown(cancel_futures=cancel)
        if self.encoders is not None:
            self.encoders.close(cancel)

    def _here(self, op: PutOp) -> None:
        """Store ``op``'s file on this thread, in its turn."""
        self._submit()
        if not self.ahead:  # (most puts: nothing waits, so straight to the log)
            self.log.add(put_one(self.writer, op, self.progress)[0])
            return
        self.ahead.append(op)
        self._advance()

    def _submit(self) -> None:
        """Hand the files gathered to a helper."""
        if not self.batch:
            return
        assert self.encoders is not None
        files = [(_local_path(op), op.size_hint or 0) for op in self.batch]
        ops, self.batch, self.batch_bytes = self.batch, [], 0
        try:
            encoded = self.encoders.submit(files, self.writer.chunker)
        except BrokenProcessPool:
            self._no_helpers()
            self.ahead.extend(ops)  # (stored here, in their turn)
            return
        self.ahead.append(_Batch(ops, encoded))
        self.batches += 1

    def _no_helpers(self) -> None:
        """Store every small file here from now on: a helper died or could not start (the
        files it held are stored here too, see :meth:`_advance`)."""
        self.helpers, self.helping = 0, False

    def _advance(self, wait: bool = False) -> None:
        """Store and log the jobs at the front that are done (all of them with ``wait``; else
        as many as keep the ops waiting within :data:`AHEAD` and the batches within two per
        helper)."""
        while self.ahead:
            head = self.ahead[0]
            due = wait or len(self.ahead) > AHEAD or self.batches > 2 * self.helpers
            if isinstance(head, _Batch):
                if not (due or head.result.done()):
                    return
                try:
                    results: list[Result] = head.result.result()
                except BrokenProcessPool:
                    self._no_helpers()
                    results = [None] * len(head.ops)  # (None: read here)
                for op, result in zip(head.ops, results, strict=True):
                    self.log.add(self._encoded(op, result))
                self.batches -= 1
            elif isinstance(head, Future):
                if not (due or head.done()):
                    return
                for ch in head.result():
                    self.log.add(ch)
            elif isinstance(head, PutOp):
                self.log.add(put_one(self.writer, head, self.progress)[0])
            else:
                for ch in head:
                    self.log.add(ch)
            self.ahead.popleft()

    def _encoded(self, op: PutOp, result: Result) -> staging.Change:
        """Store a file a helper read and encoded (or, when it could not, here)."""
        if result is None:
            return put_one(self.writer, op, self.progress)[0]
        if isinstance(result, Unreadable):
            raise InvalidArgument(
                f"cannot read {_local_path(op)}: {result.why}; nothing was written"
            )
        entry = ingest_encoded(self.writer, op.path, result.blobs, result.size, self.progress)
        return staging.Change(_kind(op), op.path, entry)
