"""``HaathiFile``: the file object ``HaathiFileSystem.open`` returns.

Reading, it streams the file from one commit (a branch is pinned to its head commit when the
file is opened, so every read sees the same bytes). A read continues the open stream when it
starts at most :data:`SKIP_AHEAD` past where the stream is (sequential reads are one
stream); otherwise it opens a new stream at its offset (a ranged read: only the chunks from
there on are fetched). Writing, the bytes are spooled to a
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
SKIP_AHEAD = 1 << 20  # a forward gap up to this is read through, a longer one is a new stream


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
        if self._stream is None or not 0 <= start - self._stream_at <= SKIP_AHEAD:
            self._drop_stream()
            self._stream = self.fs._open_stream(self.target, start)
            self._stream_at = start
        stream = self._stream
        if start > self._stream_at:  # a short gap: read through it
            self._stream_at += len(self.fs._read(stream, start - self._stream_at))
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
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.writable():
            self.discard()  # an error inside the block: write nothing
            self.closed = True
            return
        self.close()
