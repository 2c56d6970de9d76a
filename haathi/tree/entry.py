"""Tree entries: one per file (leaves) and one per child node (internal levels)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import blake3

_CHUNK = struct.Struct(">32sQ")


def pack_chunks(chunks: list[tuple[bytes, int]]) -> bytes:
    """Chunk list as bytes: (32-byte digest, 8-byte length) per chunk."""
    return b"".join(_CHUNK.pack(d, n) for d, n in chunks)


def iter_chunks(packed: bytes) -> Iterator[tuple[bytes, int]]:
    yield from _CHUNK.iter_unpack(packed)


def content_hash(packed_chunks: bytes) -> bytes:
    """A file's content hash: BLAKE3 over its chunk digests (content-defined, so stable)."""
    if len(packed_chunks) == _CHUNK.size:  # one chunk (most files)
        return blake3.blake3(packed_chunks[:32]).digest()
    digests = b"".join(packed_chunks[i : i + 32] for i in range(0, len(packed_chunks), 40))
    return blake3.blake3(digests).digest()


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file of a commit: its path, size, content hash, chunk list and writing datum."""

    path: str
    size: int
    hash: bytes
    chunks: bytes
    datum: str | None = None

    @property
    def key(self) -> str:
        return self.path

    @property
    def chunk_count(self) -> int:
        return len(self.chunks) // _CHUNK.size

    def chunk_list(self) -> list[tuple[bytes, int]]:
        return list(iter_chunks(self.chunks))

    def encode(self) -> list[object]:
        return [self.path, self.size, self.hash, self.chunks, self.datum]

    @classmethod
    def decode(cls, raw: list[object]) -> FileEntry:
        path, size, h, chunks, datum = raw
        return cls(path, size, h, chunks, datum)  # type: ignore[arg-type]

    @classmethod
    def from_chunks(
        cls, path: str, chunks: list[tuple[bytes, int]], datum: str | None = None
    ) -> FileEntry:
        packed = pack_chunks(chunks)
        return cls(path, sum(n for _, n in chunks), content_hash(packed), packed, datum)

    def moved(self, path: str) -> FileEntry:
        """The same content under another path (a metadata-only copy)."""
        return FileEntry(path, self.size, self.hash, self.chunks, self.datum)


@dataclass(frozen=True, slots=True)
class NodeRef:
    """An internal entry: a child node, the last key below it, and its subtree totals."""

    key: str
    digest: bytes
    count: int
    size: int

    def encode(self) -> list[object]:
        return [self.key, self.digest, self.count, self.size]

    @classmethod
    def decode(cls, raw: list[object]) -> NodeRef:
        key, digest, count, size = raw
        return cls(key, digest, count, size)  # type: ignore[arg-type]
