"""Content-defined chunking (FastCDC, compiled) over streams of any size, in bounded memory.

A store records which chunker cuts its files (a file's hash names its chunk list, so the same
bytes must always be cut the same way in one store). New stores use ``fastcdc-2020``
(``pyfastcdc``: twice as fast, and it releases the GIL, so several files are cut at once);
stores made before the choice was recorded keep ``fastcdc-2016`` (the ``fastcdc`` package).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from haathi.errors import IncompatibleStore

MIN_CHUNK = 64 * 1024
AVG_CHUNK = 256 * 1024
MAX_CHUNK = 1024 * 1024
WINDOW = 8 * 1024 * 1024
SMALL = 1024 * 1024

FASTCDC_2016 = "fastcdc-2016"
FASTCDC_2020 = "fastcdc-2020"
DEFAULT = FASTCDC_2020
LEGACY = FASTCDC_2016  # what stores made before the choice was recorded use

# A cutter yields (offset, length) of each chunk of a buffer longer than MIN_CHUNK.
Cutter = Callable[[memoryview], Iterator[tuple[int, int]]]


def _fastcdc_2016() -> Cutter:
    from fastcdc.fastcdc_cy import fastcdc_cy

    def cut(view: memoryview) -> Iterator[tuple[int, int]]:
        for c in fastcdc_cy(view, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK):
            yield c.offset, c.length

    return cut


def _fastcdc_2020() -> Cutter:
    from pyfastcdc import FastCDC

    cdc = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)

    def cut(view: memoryview) -> Iterator[tuple[int, int]]:
        for c in cdc.cut_buf(view):
            yield c.offset, c.length

    return cut


_MAKERS: dict[str, Callable[[], Cutter]] = {
    FASTCDC_2016: _fastcdc_2016,
    FASTCDC_2020: _fastcdc_2020,
}
_cutters: dict[str, Cutter] = {}


def check_chunker(name: str) -> str:
    """``name`` if haathi knows that chunker, else IncompatibleStore."""
    if name not in _MAKERS:
        raise IncompatibleStore(
            f"the store's files are cut by chunker {name!r}, which this haathi does not know "
            f"(it knows {', '.join(sorted(_MAKERS))}): upgrade haathi"
        )
    return name


def _cutter(name: str) -> Cutter:
    cut = _cutters.get(name)
    if cut is None:
        cut = _cutters[name] = _MAKERS[check_chunker(name)]()
    return cut


def chunk_bytes(
    data: bytes | bytearray | memoryview, chunker: str = DEFAULT
) -> Iterator[memoryview]:
    """Cut an in-memory buffer into content-defined chunks."""
    view = memoryview(data)
    if len(view) <= MIN_CHUNK:
        if len(view):
            yield view
        return
    for offset, length in _cutter(chunker)(view):
        yield view[offset : offset + length]


def _fill(stream: BinaryIO, target: memoryview) -> int:
    """Read into ``target`` (``readinto`` when the stream has it); 0 at end of stream."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        n = readinto(target)
        return int(n or 0)
    data = stream.read(len(target))
    target[: len(data)] = data
    return len(data)


def chunk_stream(
    stream: BinaryIO, chunker: str = DEFAULT, size_hint: int | None = None
) -> Iterator[memoryview]:
    """Cut a stream into chunks; boundaries equal those of :func:`chunk_bytes` on the whole.

    The stream is read into two alternating windows (no per-chunk copies): a yielded view is
    valid until the next-but-one window is read, so consumers copy or hash it right away.
    ``size_hint``, the size the stream is expected to have, only sizes the first reads.
    """
    # Small files (the common case) are read whole, without a window.
    ask = SMALL if size_hint is None else min(SMALL, size_hint + 1)
    head = stream.read(ask)
    while len(head) < SMALL:
        more = stream.read(min(ask, SMALL - len(head)))
        if not more:
            yield from chunk_bytes(head, chunker)
            return
        head += more
        ask = SMALL  # more than the hint said
    cut = _cutter(chunker)
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
            yield from chunk_bytes(window, chunker)
            return
        cuts = list(cut(window))
        # The last cut may only end because the window ends: carry it into the next one.
        for offset, length in cuts[:-1]:
            yield window[offset : offset + length]
        carry = window[cuts[-1][0] :] if len(cuts) > 1 else window
