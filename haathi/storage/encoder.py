"""Reading small local files and encoding their blobs in helper processes.

A put of a million small files spends most of its time, file by file, on system calls
(open, read, close), hashing and compression, on one core: Python runs one thread at a time.
Helper processes do that for batches of files, ahead of the write; the write then stores the
encoded blobs in the files' order (:meth:`~haathi.storage.blobs.BlobWriter.put_encoded`). A
blob's digest is checked again whenever it is read, as every blob's is.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import NamedTuple

import blake3

from haathi import interrupts
from haathi.storage.blobs import encode
from haathi.storage.chunker import MIN_CHUNK, chunk_bytes


class Encoded(NamedTuple):
    """A file read and encoded: its size, its chunks (digest, codec, payload, raw length)."""

    size: int
    blobs: list[tuple[bytes, int, bytes, int]]


class Unreadable(NamedTuple):
    """A file that could not be read: why (``strerror``)."""

    why: str


Result = Encoded | Unreadable | None  # None: not a regular file of at most the size given


def encode_files(files: Sequence[tuple[str, int]], chunker: str) -> list[Result]:
    """Per local file (path, the size it was seen with): its blobs, encoded; why it could not
    be read; or None when it is not a regular file of at most that size (the write then reads
    it as a stream). Reads as :meth:`haathi.models.ops.LocalOpener.read_small` does."""
    out: list[Result] = []
    flags = os.O_RDONLY | os.O_CLOEXEC
    for path, size in files:
        try:
            fd = os.open(path, flags)
            try:
                data = os.read(fd, size + 1) if stat.S_ISREG(os.fstat(fd).st_mode) else None
            finally:
                os.close(fd)
        except OSError as exc:
            out.append(Unreadable(str(exc.strerror or exc)))
            continue
        if data is None or len(data) > size:
            out.append(None)
            continue
        pieces = (data,) if len(data) <= MIN_CHUNK else chunk_bytes(data, chunker)
        blobs = []
        for p in pieces:
            if p:
                codec, payload = encode(p)
                blobs.append((blake3.blake3(p).digest(), codec, payload, len(p)))
        out.append(Encoded(len(data), blobs))
    return out


class Encoders:
    """Helper processes running :func:`encode_files`, a batch at a time (new interpreters:
    the writing process may run threads, which a fork would copy in any state). When one
    dies, what it was given fails with :class:`~concurrent.futures.process.BrokenProcessPool`
    and the pool takes no more."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        with interrupts.held():
            self._pool = ProcessPoolExecutor(
                processes, mp_context=context, initializer=interrupts.ignore
            )

    def submit(self, files: Sequence[tuple[str, int]], chunker: str) -> Future[list[Result]]:
        with interrupts.held():  # (a submit may start a process)
            return self._pool.submit(encode_files, list(files), chunker)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
