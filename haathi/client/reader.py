"""A raw binary stream over an iterator of chunks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class ReadsInto(Protocol):
    """Chunks that can also be read straight into a caller's buffer (no chunk to copy from)."""

    def readinto(self, b: memoryview) -> int: ...


class ChunkReader(io.RawIOBase):
    """Reads the concatenation of ``chunks`` (fetched lazily; read straight into the caller's
    buffer where they can be, :class:`ReadsInto`). Closing it closes them."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._into = chunks.readinto if isinstance(chunks, ReadsInto) else None
        self._buf = memoryview(b"")
        self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._into is not None and not self._buf:
            return self._into(memoryview(b).cast("B"))
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None and not self.closed:
            close()
        super().close()
