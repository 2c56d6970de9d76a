"""A raw binary stream over an iterator of chunks."""

from __future__ import annotations

import io
from collections.abc import Iterator


class ChunkReader(io.RawIOBase):
    """Reads the concatenation of ``chunks`` (fetched lazily)."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")
        self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
