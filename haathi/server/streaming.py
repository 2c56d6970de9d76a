"""A streamed response body read ahead of its send, in the server's request threads, within a
bound on the bytes held; and the response that sends a file's verified ranges from its packs.

Reading a stored file (pack reads, BLAKE3 checks; both let go of Python's lock) and sending
it (on the event loop) run on two cores at once: a worker thread reads batch after batch,
without a hop back to the loop in between, until :data:`AHEAD_BYTES` are waiting to be sent;
the loop sends them and, once the backlog has fallen to half of that, hands the reading to a
worker thread again. A client that reads slowly holds at most :data:`AHEAD_BYTES` of the
server's memory and no thread: the reading stops (the thread goes back to the pool) until
the loop has sent what it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Generic, TypeVar

from fastapi.responses import StreamingResponse
from starlette.types import Message, Send

from haathi.server import zerocopy
from haathi.storage.blobs import StoredRange

READ_BATCH = 1024 * 1024
SEND_PIECE = 64 * 1024
# read and not yet sent, per response at most (+ one batch); a longer way ahead was slower
# (1 GiB over loopback at load 7-8: 8 MiB 626, 4 MiB 796, 2 MiB 875, 1 MiB 891 MiB/s): the
# bytes are sent and received again while the caches still hold them from their check
AHEAD_BYTES = 2 * 1024 * 1024

# a piece of a body: bytes, or a verified range of a pack (sent from the file)
Piece = TypeVar("Piece", bytes, "bytes | StoredRange")


def size(piece: bytes | StoredRange) -> int:
    return len(piece) if isinstance(piece, bytes) else piece.length


def batched(chunks: Iterator[Piece]) -> Iterator[list[Piece]]:
    """The chunks in batches of about :data:`READ_BATCH` bytes. A batch's large chunks are
    sent as they are (joining them into one piece copied every byte once more: 10% of the
    server's CPU reading a large file); runs of small ones (tar headers, small files) are
    joined into one piece, and stored ranges that follow each other in a pack into one range
    (one send, where each piece costs one through every layer of the app)."""
    batch: list[Piece] = []
    small: list[bytes] = []
    total = 0
    for chunk in chunks:
        n = size(chunk)
        if isinstance(chunk, bytes) and n < SEND_PIECE:
            small.append(chunk)
        else:
            if small:
                batch.append(b"".join(small))
                small = []
            last = batch[-1] if batch else None
            joined = (
                last.then(chunk)
                if isinstance(last, StoredRange) and isinstance(chunk, StoredRange)
                else None
            )
            if joined is None:
                batch.append(chunk)
            else:
                batch[-1] = joined
        total += n
        if total >= READ_BATCH:
            if small:
                batch.append(b"".join(small))
                small = []
            yield batch
            batch, total = [], 0
    if small:
        batch.append(b"".join(small))
    if batch:
        yield batch


class _Ahead(Generic[Piece]):
    """The state a response's reader (a worker thread) and its sender (the loop) share."""

    def __init__(self, batches: Iterator[list[Piece]], loop: asyncio.AbstractEventLoop) -> None:
        self.batches: Iterator[list[Piece]] = batches
        self.loop = loop
        self.lock = threading.Lock()
        self.pieces: deque[Piece] = deque()
        self.held = 0  # bytes in ``pieces``
        self.done = False  # the batches are exhausted (or failed: ``error``)
        self.error: BaseException | None = None
        self.reading = False  # a worker thread is reading (or about to)
        self.stopped = False  # the sender has gone: the reader stops and closes the batches
        self.waiting = False  # the sender waits for ``ready``
        self.ready = asyncio.Event()
        self.context = contextvars.copy_context()

    def read(self) -> None:
        """In a worker thread: batches until :data:`AHEAD_BYTES` are held or the end."""
        while True:
            try:
                batch = next(self.batches, None)
            except BaseException as exc:  # raised to the sender after the bytes before it
                batch, self.error = None, exc
            with self.lock:
                if batch is None:
                    self.done = True
                elif not self.stopped:  # else nobody is going to send it
                    self.pieces.extend(batch)
                    self.held += sum(size(p) for p in batch)
                more = not self.done and not self.stopped and self.held < AHEAD_BYTES
                self.reading = more
                wake, self.waiting = self.waiting, False
                stopped = self.stopped and not self.reading
            if wake:
                self.loop.call_soon_threadsafe(self.ready.set)
            if stopped:
                self.close()
            if not more:
                return

    def start(self) -> None:
        """Hand the reading to a worker thread (with the request's context variables)."""
        self.loop.run_in_executor(None, self.context.run, self.read)

    def close(self) -> None:
        """Close the batches (a generator: the reads it has under way end)."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # the response is over: nobody to tell
                close()


async def read_ahead(batches: Iterator[list[Piece]]) -> AsyncGenerator[Piece, None]:
    """The pieces of ``batches``, read ahead in worker threads while they are sent (module
    docstring). An error of the batches is raised after the pieces before it."""
    ahead: _Ahead[Piece] = _Ahead(batches, asyncio.get_running_loop())
    ahead.reading = True
    ahead.start()
    try:
        while True:
            piece: Piece | None = None
            with ahead.lock:
                if ahead.pieces:
                    piece = ahead.pieces.popleft()
                    ahead.held -= size(piece)
                elif ahead.done:
                    if ahead.error is not None:
                        raise ahead.error
                    return
                else:
                    ahead.waiting = True
                    ahead.ready.clear()
                restart = not ahead.reading and not ahead.done and ahead.held <= AHEAD_BYTES // 2
                ahead.reading = ahead.reading or restart
            if restart:
                ahead.start()
            if piece is None:
                await ahead.ready.wait()
            else:
                yield piece
    finally:  # sent to the end, failed, or the client went away
        with ahead.lock:
            ahead.stopped = True
            ahead.pieces.clear()  # (a range holds its pack file open)
            idle = not ahead.reading
        if idle and not ahead.done:  # else the reader closes them when it stops; not awaited
            ahead.loop.run_in_executor(None, ahead.close)  # (this task may be cancelled)


class FileResponse(StreamingResponse):
    """A file's bytes streamed from ``pieces``: bytes as they are, stored ranges with the
    zero-copy send (:mod:`haathi.server.zerocopy`), which is asked for only where the
    server offers it."""

    def __init__(
        self, pieces: AsyncGenerator[bytes | StoredRange, None], headers: dict[str, str]
    ) -> None:
        super().__init__(_no_body(), media_type="application/octet-stream", headers=headers)
        self.pieces = pieces

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        message: Message = {}
        try:
            async for piece in self.pieces:
                if isinstance(piece, bytes):
                    message = {"type": "http.response.body", "body": piece, "more_body": True}
                else:
                    message = {"type": zerocopy.EXTENSION, "file": piece.pack,
                               "offset": piece.offset, "count": piece.length,
                               "more_body": True}  # fmt: skip
                del piece
                await send(message)
        finally:  # also when cancelled (the client went away): the reading stops, and the
            # pack files it holds open are closed now, not once the frames of the send that
            # was cut short (kept by its traceback) are collected
            message.clear()
            await self.pieces.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield
