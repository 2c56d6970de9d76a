"""The changes one write makes, in order, kept on disk once they are many.

A write of a million files holds none of their entries in memory: past :data:`SPILL` changes
the log moves to an unnamed temp file (gone with the process, even one that is killed), and
is read back as often as needed: to build the tree, and again when the branch head moved
meanwhile and the tree is built on the new head.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgpack

from haathi.pfs import staging
from haathi.tree.entry import FileEntry

SPILL = 4096  # changes kept in memory; more go to a temp file
READ_BLOCK = 1 << 20


class ChangeLog:
    """An append-only list of changes that can be read any number of times."""

    def __init__(self, spool_dir: Path) -> None:
        self._spool_dir = spool_dir
        self._memory: list[staging.Change] = []
        self._file: IO[bytes] | None = None
        self._packer = msgpack.Packer()
        self._count = 0
        self._last: str | None = None
        self.sorted_puts = True  # every change writes a file, each path after the one before

    def __len__(self) -> int:
        return self._count

    def add(self, change: staging.Change) -> None:
        if self.sorted_puts and (
            change.op not in (staging.PUT, staging.APPEND)
            or (self._last is not None and change.path <= self._last)
        ):
            self.sorted_puts = False
        self._last = change.path
        self._count += 1
        if self._file is not None:
            self._write(change)
            return
        self._memory.append(change)
        if len(self._memory) > SPILL:
            self._file = tempfile.TemporaryFile(dir=self._spool_dir, buffering=READ_BLOCK)  # noqa: SIM115 - closed in close()
            for ch in self._memory:
                self._write(ch)
            self._memory = []

    def _write(self, ch: staging.Change) -> None:
        assert self._file is not None
        entry = None if ch.entry is None else ch.entry.encode()
        self._file.write(self._packer.pack((ch.op, ch.path, entry)))

    def __iter__(self) -> Iterator[staging.Change]:
        if self._file is None:
            yield from list(self._memory)
            return
        self._file.flush()
        fd = self._file.fileno()
        unpacker = msgpack.Unpacker()
        offset = 0
        while block := os.pread(fd, READ_BLOCK, offset):
            offset += len(block)
            unpacker.feed(block)
            for op, path, entry in unpacker:
                yield staging.Change(op, path, None if entry is None else FileEntry.decode(entry))

    def paths(self) -> Iterator[str]:
        return (ch.path for ch in self)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = []

    def __enter__(self) -> ChangeLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
