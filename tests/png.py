"""PNG files for the tests, by hand (no image library is installed): 8-bit grayscale ones to
feed pipelines, and a decoder for what OpenCV and ImageMagick write."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Picture:
    """A decoded PNG: ``pixels[y][x]`` is a tuple of 8-bit samples (RGB for a palette)."""

    width: int
    height: int
    pixels: list[list[tuple[int, ...]]]

    def __getitem__(self, xy: tuple[int, int]) -> tuple[int, ...]:
        return self.pixels[xy[1]][xy[0]]


def write(width: int, height: int, gray: bytes) -> bytes:
    """An 8-bit grayscale PNG of ``gray`` (row by row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\0" + gray[y * width : (y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def read(data: bytes) -> Picture:
    """Decode a non-interlaced PNG of 8- or 16-bit samples (16-bit ones keep their high
    byte), checking every chunk's CRC: what OpenCV and ImageMagick write."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    chunks: dict[bytes, bytes] = {}
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IDAT":
            idat += body
        chunks.setdefault(kind, body)
        pos += 12 + length
    assert b"IEND" in chunks, "truncated PNG"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth in (8, 16) and interlace == 0, f"depth {depth}, interlace {interlace}"
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    step = channels * depth // 8  # bytes per pixel
    stride = width * step
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    prev, rows = bytearray(stride), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 :][:stride])
        for i in range(stride) if kind else ():  # undo the row's filter
            a = line[i - step] if i >= step else 0
            b = prev[i]
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            else:  # Paeth
                c = prev[i - step] if i >= step else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        samples = line[:: depth // 8]
        row = [tuple(samples[x * channels : (x + 1) * channels]) for x in range(width)]
        if colour == 3:
            palette = chunks[b"PLTE"]
            row = [tuple(palette[3 * p[0] : 3 * p[0] + 3]) for p in row]
        rows.append(row)
        prev = line
    return Picture(width, height, rows)
