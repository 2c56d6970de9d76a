"""Applies a framed ``modify`` body (see :mod:`haathi.models.wire`) as it arrives.

The header is read and its ops checked first. Then the Api applies the ops in a worker thread
while the event loop reads the body: each ``put`` op's stream hands out its frames' bytes as
they come in (at most :data:`QUEUE_BATCHES` batches ahead of the ingest), so a file is
chunked, hashed and stored while it uploads — never held whole in memory nor spooled to disk
first.

A truncated body, a malformed frame, bytes after the last op or a body over the size limit
make the put's stream raise, so the change fails before it commits: nothing is committed.
When the change fails for another reason before the body has been read (a missing repo), the
rest of the body is read and dropped, so that the client, still sending, gets the error.
"""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, BinaryIO, TypeVar, cast

import anyio
import anyio.from_thread
from starlette.concurrency import run_in_threadpool

from haathi.errors import HaathiError, InvalidArgument, TooLarge
from haathi.models import paths
from haathi.models.bounds import check_description
from haathi.models.ops import CopyOp, DeleteOp, Op, PutOp
from haathi.models.refspec import parse_file
from haathi.models.wire import FRAME, MAX_FRAME, MAX_HEADER

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
T = TypeVar("T")

BATCH_BYTES = 1024 * 1024  # bytes handed to the ingest thread per hop
QUEUE_BATCHES = 8  # batches read ahead of the ingest (8 MiB)


class _Body:
    """Exact reads over a request's ASGI messages (views of them, no copies), counting
    against a limit."""

    def __init__(self, receive: Receive, limit: int | None) -> None:
        self._receive = receive
        self._pieces: deque[memoryview] = deque()
        self._have = 0
        self._limit = limit
        self.total = 0
        self.ended = False  # the last message has been received

    async def _more(self) -> bool:
        while not self.ended:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.ended = True
                raise InvalidArgument("upload truncated: the client went away; nothing was written")
            if not message.get("more_body", False):
                self.ended = True
            chunk = message.get("body", b"")
            if chunk:
                self.total += len(chunk)
                if self._limit is not None and self.total > self._limit:
                    raise TooLarge(
                        f"upload is larger than this server accepts ({self._limit} bytes); "
                        "nothing was written",
                        limit=self._limit,
                    )
                self._pieces.append(memoryview(chunk))
                self._have += len(chunk)
                return True
        return False

    async def some(self, n: int, what: str) -> memoryview:
        """Up to ``n`` (> 0) of the next bytes, as soon as any have arrived."""
        if not self._have and not await self._more():
            raise InvalidArgument(f"upload truncated in {what}; nothing was written")
        head = self._pieces[0]
        if len(head) <= n:
            self._pieces.popleft()
        else:
            self._pieces[0] = head[n:]
            head = head[:n]
        self._have -= len(head)
        return head

    async def exactly(self, n: int, what: str) -> bytes:
        parts = []
        while n:
            part = await self.some(n, what)
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    async def line(self, limit: int) -> bytes:
        while True:
            buffered = b"".join(self._pieces)
            head, newline, rest = buffered.partition(b"\n")
            if newline:
                self._pieces = deque([memoryview(rest)] if rest else [])
                self._have = len(rest)
                return head
            if len(buffered) > limit or not await self._more():
                raise InvalidArgument("upload has no header; nothing was written")

    async def at_end(self) -> bool:
        return not self._have and not await self._more()

    async def drain(self) -> None:
        """Read and drop the rest of the body (up to the limit)."""
        self._pieces.clear()
        self._have = 0
        try:
            while await self._more():
                self._pieces.clear()
                self._have = 0
        except HaathiError:
            pass


def _header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"upload header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("ops"), list):
        raise InvalidArgument("upload header must be an object with a list of ops")
    return header


def _flag(op: dict[str, Any], key: str) -> bool:
    value = op.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"op field {key!r} must be true or false")
    return value


def _text(op: dict[str, Any], key: str) -> str:
    value = op.get(key)
    if not isinstance(value, str):
        raise InvalidArgument(f"op field {key!r} must be a string")
    return value


class _End:
    """Marks the end of one put's bytes in the queue."""


_END = _End()
_Item = list[memoryview] | _End | HaathiError


class _PutStream(io.RawIOBase):
    """The bytes of put number ``index``, read from the upload's queue (in the worker thread
    applying the ops)."""

    def __init__(self, upload: Upload, index: int) -> None:
        self._upload = upload
        self._index = index
        self._views: deque[memoryview] = deque()
        self._done = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        """Wait for the next batch; False at the end of this put's bytes."""
        item = self._upload.receive(self._index)
        if isinstance(item, _End):
            self._done = True
            return False
        if isinstance(item, HaathiError):
            raise item
        self._views.extend(item)
        return True

    def readinto(self, b: Any) -> int:
        while not self._views:
            if self._done or not self._next():
                return 0
        out = memoryview(b).cast("B")
        n = 0
        while self._views and n < len(out):
            view = self._views[0]
            k = min(len(view), len(out) - n)
            out[n : n + k] = view[:k]
            n += k
            if k == len(view):
                self._views.popleft()
            else:
                self._views[0] = view[k:]
        return n


class Upload:
    """The ops of a ``modify`` body whose header has been read; the puts' bytes follow."""

    def __init__(self, body: _Body, ops: list[Op], puts: int, description: str) -> None:
        self._body = body
        self.ops = ops
        self.description = description
        self._puts = puts
        self._send, self._recv = anyio.create_memory_object_stream[_Item](QUEUE_BATCHES)
        self._current = 0  # the put whose bytes the queue holds now
        self._error: HaathiError | None = None

    @classmethod
    async def start(cls, receive: Receive, *, limit: int | None) -> Upload:
        """Read the header and check its ops (raises on a bad one: nothing was written)."""
        body = _Body(receive, limit)
        length = await body.line(32)
        try:
            n = int(length)
        except ValueError as exc:
            raise InvalidArgument("upload must start with the header length") from exc
        if not 0 < n <= MAX_HEADER:
            raise InvalidArgument(f"upload header length {n} is out of range")
        header = _header(await body.exactly(n, "the header"))
        upload = cls(body, [], 0, "")
        for op in header["ops"]:
            if not isinstance(op, dict):
                raise InvalidArgument("each upload op must be an object")
            kind = op.get("op")
            if kind == "put":
                dest = paths.normalize_for_write(_text(op, "path"))
                upload.ops.append(PutOp(dest, upload._opener(upload._puts), _flag(op, "append")))
                upload._puts += 1
            elif kind == "delete":
                upload.ops.append(
                    DeleteOp(paths.normalize(_text(op, "path")), _flag(op, "recursive"))
                )
            elif kind == "copy":
                upload.ops.append(CopyOp(
                    parse_file(_text(op, "source")), paths.normalize_for_write(_text(op, "path")),
                    _flag(op, "append"),
                ))  # fmt: skip
            else:
                raise InvalidArgument(f"unknown upload op {kind!r}: use put, delete or copy")
        description = header.get("description", "")
        if not isinstance(description, str):
            raise InvalidArgument("upload description must be a string")
        upload.description = check_description(description, "the commit message")
        return upload

    def _opener(self, index: int) -> Callable[[], BinaryIO]:
        def open_put() -> BinaryIO:
            return cast(BinaryIO, _PutStream(self, index))  # read and readinto are enough

        return open_put

    def receive(self, index: int) -> _Item:
        """The next batch of put ``index`` (from the worker thread)."""
        if index != self._current:
            raise HaathiError(f"upload: put {index} read while put {self._current} is queued")
        try:
            item = anyio.from_thread.run(self._recv.receive)
        except anyio.EndOfStream:
            item = self._error or InvalidArgument("upload truncated; nothing was written")
        if isinstance(item, _End):
            self._current += 1
        return item

    async def _pump(self) -> None:
        """Parse the puts' frames into the queue; an error goes into the queue too."""
        body = self._body
        async with self._send:
            try:
                for k in range(self._puts):
                    batch: list[memoryview] = []
                    size = 0
                    while True:
                        (n,) = FRAME.unpack(await body.exactly(FRAME.size, "a frame length"))
                        if n == 0:
                            break
                        if n > MAX_FRAME:
                            raise InvalidArgument(f"upload frame of {n} bytes is too large")
                        while n:
                            view = await body.some(n, "file data")
                            n -= len(view)
                            batch.append(view)
                            size += len(view)
                            if size >= BATCH_BYTES:
                                await self._send.send(batch)
                                batch, size = [], 0
                    if k == self._puts - 1 and not await body.at_end():
                        raise InvalidArgument(
                            "upload has bytes after its last op; nothing was written"
                        )
                    if batch:
                        await self._send.send(batch)
                    await self._send.send(_END)
            except HaathiError as exc:
                self._error = exc
                await self._send.send(exc)

    async def apply(self, fn: Callable[[list[Op], str], T]) -> T:
        """``fn(ops, description)`` in a worker thread while the body is read into the puts.
        Returns once the whole body has been read."""
        if not self._puts:
            if not await self._body.at_end():
                raise InvalidArgument("upload has bytes after its last op; nothing was written")
            return await run_in_threadpool(fn, self.ops, self.description)
        result: list[T] = []
        failure: list[Exception] = []

        async def work() -> None:
            try:
                result.append(await run_in_threadpool(fn, self.ops, self.description))
            except Exception as exc:
                failure.append(exc)
            finally:
                tg.cancel_scope.cancel()  # the pump, if fn failed before reading every byte

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump)
            tg.start_soon(work)
        if failure:
            if not self._body.ended and not isinstance(self._error, TooLarge):
                await self._body.drain()  # so that the client, still sending, reads the error
            raise failure[0]
        return result[0]
