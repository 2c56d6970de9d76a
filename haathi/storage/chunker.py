"""Content-defined chunking (FastCDC, compiled) over streams of any size, in bounded memory."""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from fastcdc.fastcdc_cy import fastcdc_cy

MIN_CHUNK = 64 * 1024
AVG_CHUNK = 256 * 1024
MAX_CHUNK = 1024 * 1024
READ_SIZE = 8 * 1024 * 1024
WINDOW = 64 * 1024 * 1024


def chunk_bytes(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """Cut an in-memory buffer into content-defined chunks."""
    view = memoryview(data)
    if len(view) <= MIN_CHUNK:
        if len(view):
            yield view
        return
    for c in fastcdc_cy(view, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK):
        yield view[c.offset : c.offset + c.length]


def chunk_stream(stream: BinaryIO, *, prefix: bytes = b"") -> Iterator[bytes]:
    """Cut a stream into chunks; boundaries equal those of :func:`chunk_bytes` on the whole.

    ``prefix`` is data logically before the stream (used to re-chunk the tail of a file when
    appending, so an append gives the same chunks as writing the whole file at once).
    """
    pending = bytearray(prefix)
    eof = False
    while not eof:
        while len(pending) < READ_SIZE and not eof:
            block = stream.read(READ_SIZE)
            if not block:
                eof = True
            else:
                pending += block
        if not pending:
            return
        if eof:
            for piece in chunk_bytes(pending):
                yield bytes(piece)
            return
        view = memoryview(pending)
        consumed = 0
        cuts = list(fastcdc_cy(view, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK))
        # The last cut may only end because the buffer ends: keep it for the next round.
        for c in cuts[:-1]:
            yield bytes(view[c.offset : c.offset + c.length])
            consumed = c.offset + c.length
        view.release()
        del pending[:consumed]


def _regular_fd(stream: BinaryIO) -> int | None:
    try:
        fd = stream.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, AttributeError, ValueError):
        return None


def chunk_file(stream: BinaryIO) -> Iterator[memoryview | bytes]:
    """Chunk a stream; a regular file is mapped window by window instead of copied.

    Yields the same chunks as :func:`chunk_stream`. A yielded memoryview stays valid while it
    is referenced; memory use is bounded by two windows.
    """
    fd = _regular_fd(stream)
    if fd is None:
        yield from chunk_stream(stream)
        return
    start = stream.tell()
    size = os.fstat(fd).st_size
    pos = start
    while pos < size:
        base = pos - pos % mmap.ALLOCATIONGRANULARITY
        length = min(size - base, (pos - base) + WINDOW)
        mm = mmap.mmap(fd, length, offset=base, access=mmap.ACCESS_READ)
        mm.madvise(mmap.MADV_SEQUENTIAL)
        view = memoryview(mm)[pos - base :]
        at_end = base + length >= size
        cuts = list(fastcdc_cy(view, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)) if len(view) > MIN_CHUNK \
            else None
        if cuts is None:
            yield view
            pos += len(view)
            continue
        keep = cuts if at_end else cuts[:-1]
        if not keep:  # a window smaller than one chunk: cannot happen with WINDOW >> MAX_CHUNK
            keep = cuts
        for c in keep:
            yield view[c.offset : c.offset + c.length]
        pos += keep[-1].offset + keep[-1].length
        del view, mm  # unmapped once the last yielded view is released
    stream.seek(pos)
