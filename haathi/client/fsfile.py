"""``HaathiFile``: the file object ``HaathiFileSystem.open`` returns.

Reading, it streams the file from one commit (a branch is pinned to its head commit when the
file is opened, so every read sees the same bytes). The Client has no ranged reads: a read at
an offset continues the open stream when it lies ahead of it (sequential and forward reads
cost nothing extra) and reopens the stream otherwise. Writing, the bytes are spooled to a
temporary file (in memory up to 8 MiB) and written as one commit when the file is closed;
leaving a ``with`` block by an exception writes nothing.
"""

from __future__ import annotations

import tempfile
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from fsspec.spec import AbstractBufferedFile

if TYPE_CHECKING:
    from haathi.client.filesystem import HaathiFileSystem

SPOOL_IN_MEMORY = 8 << 20
SKIP_PIECE = 1 << 20


class HaathiFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A binary file of a haathi commit (``rb``) or a new file on a branch (``wb``/``ab``/``xb``).

    ``target`` is the haathi refspec (``repo@ref:/path``) the file reads or writes.
    """

    def __init__(
        self, fs: HaathiFileSystem, path: str, mode: str, *, target: str, **kwargs: Any
    ) -> None:
        self.target = target
        self._stream: BinaryIO | None = None
        self._stream_at = 0
        self._spool: IO[bytes] | None = None
        super().__init__(fs, path, mode, **kwargs)

    # reading
    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        if self._stream is None or start < self._stream_at:
            self._drop_stream()
            self._stream = self.fs._open_stream(self.target)
            self._stream_at = 0
        stream = self._stream
        while self._stream_at < start:  # no ranged reads: skip ahead on the stream
            skipped = len(self.fs._read(stream, min(SKIP_PIECE, start - self._stream_at)))
            if not skipped:
                break
            self._stream_at += skipped
        data: bytes = self.fs._read(stream, end - start)
        self._stream_at += len(data)
        return data

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # writing
    def _initiate_upload(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._spool is not None
        self._spool.write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Write the spooled bytes as one commit on the branch."""
        assert self._spool is not None, "commit() of a file that was not written"
        try:
            self._spool.seek(0)
            self.fs._put(self.target, self._spool, append=self.mode == "ab")
        finally:
            self.discard()

    def discard(self) -> None:
        """Throw the spooled bytes away (nothing is written)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._drop_stream()
            if self.autocommit:
                self.discard()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.writable():
            self.discard()  # an error inside the block: write nothing
            self.closed = True
            return
        self.close()
