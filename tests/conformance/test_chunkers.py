"""Every chunker cuts the same bytes the same way, whether they come whole or as a stream, into
chunks the sizes the store expects; an edit changes only the chunks around it."""

from __future__ import annotations

import io
import random

import pytest

from haathi.storage import chunker
from haathi.storage.chunker import MAX_CHUNK, MIN_CHUNK, WINDOW, chunk_bytes, chunk_stream

pytestmark = pytest.mark.parametrize("name", [chunker.FASTCDC_2016, chunker.FASTCDC_2020])


def cuts(pieces: object) -> list[int]:
    return [len(p) for p in pieces]  # type: ignore[attr-defined]


class Trickle(io.RawIOBase):
    """A stream that hands out at most 100,000 bytes per read, like a socket."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), 100_000, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


DATA = random.Random(3).randbytes(2 * WINDOW + 3 * MAX_CHUNK + 12_345)  # crosses windows


def test_a_stream_is_cut_where_the_whole_buffer_is(name: str) -> None:
    whole = cuts(chunk_bytes(DATA, name))
    assert cuts(chunk_stream(io.BytesIO(DATA), name)) == whole
    assert cuts(chunk_stream(Trickle(DATA), name)) == whole  # type: ignore[arg-type]
    for hint in (0, 5000, len(DATA), 3 * len(DATA)):  # a size hint, right or wrong, sizes reads
        assert cuts(chunk_stream(Trickle(DATA), name, hint)) == whole  # type: ignore[arg-type]
        small = DATA[:70_000]
        assert cuts(chunk_stream(Trickle(small), name, hint)) == cuts(chunk_bytes(small, name))  # type: ignore[arg-type]
    assert sum(whole) == len(DATA)
    pieces = list(chunk_stream(io.BytesIO(DATA), name))
    assert b"".join(bytes(p) for p in chunk_bytes(DATA, name)) == DATA
    assert len(pieces) > 2 * WINDOW // MAX_CHUNK


def test_chunks_are_between_the_minimum_and_the_maximum(name: str) -> None:
    sizes = cuts(chunk_bytes(DATA, name))
    assert all(MIN_CHUNK <= n <= MAX_CHUNK for n in sizes[:-1])
    assert 0 < sizes[-1] <= MAX_CHUNK


def test_small_inputs_are_one_chunk_and_empty_input_none(name: str) -> None:
    assert cuts(chunk_bytes(DATA[:MIN_CHUNK], name)) == [MIN_CHUNK]
    assert cuts(chunk_stream(io.BytesIO(DATA[:1000]), name)) == [1000]
    assert cuts(chunk_stream(io.BytesIO(b""), name)) == []


def test_an_edit_changes_only_the_chunks_around_it(name: str) -> None:
    edited = bytearray(DATA)
    edited[WINDOW : WINDOW + 100] = bytes(100)  # 100 bytes overwritten mid-file
    before = {bytes(p) for p in chunk_bytes(DATA, name)}
    after = [bytes(p) for p in chunk_stream(io.BytesIO(bytes(edited)), name)]
    assert sum(p not in before for p in after) <= 2
