"""The chunk digests a mark reaches, kept on disk once they are many.

gc and fsck mark every blob that a commit or an open commit reaches. The tree nodes stay in a
set in memory (a walk skips a subtree it has seen, so it asks for each node), but the chunks,
a hundred or more per node, only need to be read back once, in order, beside the index: past
:data:`RUN` of them they are sorted into a run in an unnamed temp file, and read back as one
sorted stream of the runs merged. Memory is then one run's digests however many the store
holds (32 bytes per chunk on disk: 10^8 chunks are 3.2 GB of runs, read in one pass).
"""

from __future__ import annotations

import heapq
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

DIGEST = 32
RUN = 1 << 18  # digests sorted in memory at most (8 MiB of them, ~30 MiB while sorting)
FAN_IN = 64  # runs at most (open files, read buffers): past it they are merged into one
READ_BLOCK = 64 * 1024


class MarkSet:
    """32-byte digests added in any order, any number of times; read back sorted, each once."""

    def __init__(self, spool_dir: Path, run: int | None = None, fan_in: int | None = None) -> None:
        self._spool_dir = spool_dir
        self._run = run or RUN
        self._fan_in = fan_in or FAN_IN
        self._buffer = bytearray()
        self._runs: list[IO[bytes]] = []

    def add(self, digest: bytes) -> None:
        self._buffer += digest
        if len(self._buffer) >= self._run * DIGEST:
            self._spill()

    def update(self, digests: Iterable[bytes]) -> None:
        for d in digests:
            self.add(d)

    @property
    def runs(self) -> int:
        """How many runs are on disk."""
        return len(self._runs)

    def _sorted_buffer(self) -> list[bytes]:
        buf = bytes(self._buffer)
        return sorted({buf[i : i + DIGEST] for i in range(0, len(buf), DIGEST)})

    def _spill(self) -> None:
        if len(self._runs) >= self._fan_in:  # the runs so far become one
            merged_run = self._write(merged(*map(_read_run, self._runs)))
            for run in self._runs:
                run.close()
            self._runs = [merged_run]
        self._runs.append(self._write(iter(self._sorted_buffer())))
        self._buffer = bytearray()

    def _write(self, digests: Iterator[bytes]) -> IO[bytes]:
        run = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115 - closed in close()
        try:
            while block := b"".join(itertools.islice(digests, READ_BLOCK // DIGEST)):
                run.write(block)
            run.flush()
        except BaseException:
            run.close()
            raise
        return run

    def __iter__(self) -> Iterator[bytes]:
        """Every digest added, in increasing order, each once."""
        streams = self.streams()
        return iter(streams[0]) if len(streams) == 1 else merged(*streams)

    def streams(self) -> list[Iterable[bytes]]:
        """Increasing streams that hold every digest added (one may repeat another's): for a
        caller that merges them with streams of its own."""
        return [self._sorted_buffer(), *map(_read_run, self._runs)]

    def close(self) -> None:
        for run in self._runs:
            run.close()
        self._runs = []
        self._buffer = bytearray()

    def __enter__(self) -> MarkSet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _read_run(run: IO[bytes]) -> Iterator[bytes]:
    fd = run.fileno()
    offset = 0
    while block := os.pread(fd, READ_BLOCK, offset):
        offset += len(block)
        for i in range(0, len(block), DIGEST):
            yield block[i : i + DIGEST]


def merged(*sorted_streams: Iterable[bytes]) -> Iterator[bytes]:
    """Increasing streams of digests merged into one, each digest once."""
    last = None
    for d in heapq.merge(*sorted_streams):
        if d != last:
            yield d
            last = d
