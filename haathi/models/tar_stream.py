"""The wire format of a bulk read (``read_files`` over HTTP): a POSIX (pax) tar stream, one
member per file in path order, each carrying its :class:`FileInfo` as JSON in the pax header
``HAATHI.info``. Any tar reads it (``curl .../tar | tar x``); the remote client reads the
infos back."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO

from haathi.errors import Corrupt, StorageError
from haathi.models.info import FileInfo

INFO_KEY = "HAATHI.info"
BLOCK = tarfile.BLOCKSIZE


def tar_of(files: Iterator[tuple[FileInfo, Iterator[bytes]]]) -> Iterator[bytes]:
    """The tar stream of ``files``, produced as their bytes are read."""

    def member(info: FileInfo) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(info.path.lstrip("/"))
        entry.pax_headers = {INFO_KEY: json.dumps(info.to_dict(), sort_keys=True)}
        return entry

    return pax_stream(files, member)


def pax_stream(
    files: Iterator[tuple[FileInfo, Iterator[bytes]]],
    member: Callable[[FileInfo], tarfile.TarInfo],
) -> Iterator[bytes]:
    """A POSIX (pax) tar stream of ``files`` as their bytes are read, each under the header
    ``member(info)`` gives (its size and mode set here); a file whose bytes come short or
    long of its size raises :class:`Corrupt` there."""
    for info, chunks in files:
        header = member(info)
        header.size, header.mode = info.size_bytes, 0o644
        yield header.tobuf(tarfile.PAX_FORMAT)
        sent = 0
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
        if sent != info.size_bytes:  # the stream would be out of step from here on
            raise Corrupt(f"{info.path} gave {sent} bytes, not its {info.size_bytes}")
        yield b"\0" * (-sent % BLOCK)
    yield b"\0" * (2 * BLOCK)


def files_of(stream: BinaryIO, what: str) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
    """The files of a tar stream made by :func:`tar_of` (a file's bytes can be read only
    until the next file is taken); a stream that breaks off is a StorageError naming
    ``what``."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                info = FileInfo.from_dict(json.loads(member.pax_headers[INFO_KEY]))
                yield info, _content(tar.extractfile(member), what)
    except (tarfile.TarError, EOFError, KeyError, ValueError) as exc:
        raise StorageError(f"reading {what} from the server stopped: {exc}") from exc


def _content(fh: IO[bytes] | None, what: str) -> Iterator[bytes]:
    try:
        while fh is not None and (block := fh.read(1 << 20)):
            yield block
    except (tarfile.TarError, EOFError) as exc:
        raise StorageError(f"reading {what} from the server stopped: {exc}") from exc
