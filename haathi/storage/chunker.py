"""Content-defined chunking (FastCDC, compiled) over streams of any size, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from fastcdc.fastcdc_cy import fastcdc_cy

MIN_CHUNK = 64 * 1024
AVG_CHUNK = 256 * 1024
MAX_CHUNK = 1024 * 1024
WINDOW = 8 * 1024 * 1024
SMALL = 1024 * 1024


def chunk_bytes(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """Cut an in-memory buffer into content-defined chunks."""
    view = memoryview(data)
    if len(view) <= MIN_CHUNK:
        if len(view):
            yield view
        return
    for c in fastcdc_cy(view, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK):
        yield view[c.offset : c.offset + c.length]


def _fill(stream: BinaryIO, target: memoryview) -> int:
    """Read into ``target`` (``readinto`` when the stream has it); 0 at end of stream."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        n = readinto(target)
        return int(n or 0)
    data = stream.read(len(target))
    target[: len(data)] = data
    return len(data)


def chunk_stream(stream: BinaryIO) -> Iterator[memoryview]:
    """Cut a stream into chunks; boundaries equal those of :func:`chunk_bytes` on the whole.

    The stream is read into two alternating windows (no per-chunk copies): a yielded view is
    valid until the next-but-one window is read, so consumers copy or hash it right away.
    """
    # Small files (the common case) are read whole, without a window.
    head = stream.read(SMALL)
    while len(head) < SMALL:
        more = stream.read(SMALL - len(head))
        if not more:
            yield from chunk_bytes(head)
            return
        head += more
    buffers = [bytearray(WINDOW + MAX_CHUNK), bytearray(WINDOW + MAX_CHUNK)]
    which = 0
    carry = memoryview(head)
    eof = False
    while True:
        buf = memoryview(buffers[which])
        which ^= 1
        n = len(carry)
        buf[:n] = carry
        while n < len(buf) and not eof:
            got = _fill(stream, buf[n:])
            if got == 0:
                eof = True
            n += got
        window = buf[:n]
        if eof:
            yield from chunk_bytes(window)
            return
        cuts = list(fastcdc_cy(window, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK))
        # The last cut may only end because the window ends: carry it into the next one.
        for c in cuts[:-1]:
            yield window[c.offset : c.offset + c.length]
        carry = window[cuts[-1].offset :] if len(cuts) > 1 else window
