"""Turning byte streams into file entries: chunk, hash, compress, pack."""

from __future__ import annotations

from typing import BinaryIO

from haathi.errors import InvalidArgument
from haathi.models.ops import ProgressFn
from haathi.storage.blobs import BlobWriter
from haathi.storage.chunker import chunk_bytes, chunk_stream
from haathi.tree.entry import FileEntry


def ingest_stream(
    writer: BlobWriter,
    path: str,
    stream: BinaryIO,
    *,
    label: str = "",
    progress: ProgressFn | None = None,
    size_hint: int | None = None,
) -> FileEntry:
    """Store the stream's bytes as chunks and return the entry naming them (``size_hint``:
    the size the stream is expected to have, if known)."""
    chunks: list[tuple[bytes, int]] = []
    try:
        for piece in chunk_stream(stream, writer.chunker, size_hint):
            chunks.append((writer.put(piece), len(piece)))
            if progress is not None:
                progress(len(piece), 0)
    except OSError as exc:
        what = label or path
        raise InvalidArgument(
            f"cannot read {what}: {exc.strerror or exc}; nothing was written"
        ) from exc
    if progress is not None:
        progress(0, 1)
    return FileEntry.from_chunks(path, chunks)


def ingest_bytes(
    writer: BlobWriter, path: str, data: bytes, progress: ProgressFn | None = None
) -> FileEntry:
    """Store bytes already read (a small file whole), as :func:`ingest_stream` stores a
    stream: the same chunks."""
    chunks = [(writer.put(piece), len(piece)) for piece in chunk_bytes(data, writer.chunker)]
    if progress is not None:
        progress(len(data), 1)
    return FileEntry.from_chunks(path, chunks)


def ingest_encoded(
    writer: BlobWriter,
    path: str,
    chunks: list[tuple[bytes, int, bytes, int]],
    size: int,
    progress: ProgressFn | None = None,
) -> FileEntry:
    """Store a small file's chunks already hashed and encoded (by a helper process, see
    :mod:`haathi.storage.encoder`): (digest, codec, payload, raw length) each."""
    stored = [(writer.put_encoded(*c), c[3]) for c in chunks]
    if progress is not None:
        progress(size, 1)
    return FileEntry.from_chunks(path, stored)
