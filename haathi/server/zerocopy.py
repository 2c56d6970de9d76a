"""The ASGI zero-copy send extension (``http.response.zerocopysend``) on ``haathi serve``'s
connections: a response sends a range of a file from the file (``os.sendfile``), without
copying it through the server's memory, and with Python's lock let go while the kernel
sends it (uvloop's own writes hold the lock: they kept the threads that read and verify the
next bytes waiting).

uvicorn does not offer the extension; :class:`ZeroCopySend`, the outermost layer of the app
that uvicorn runs, offers it where it can: on a plain-HTTP connection of uvicorn's
httptools protocol (its ``send`` is a method of the request's cycle, which holds the
connection's transport and counts the bytes still owed to the Content-Length). A range is
sent, once what the transport holds has gone out, to a duplicate of the connection's socket,
waiting on the loop whenever the socket is full; the cycle's count then goes down by as
many bytes. Anywhere else (TLS, uvicorn's other protocols, another server, the tests'
in-process transport) the extension is not offered, and a route sends bytes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXTENSION = "http.response.zerocopysend"
CYCLE_MODULE = "uvicorn.protocols.http.httptools_impl"  # the cycle whose fields are known


def offered(scope: Scope) -> bool:
    """Whether the request's connection takes zero-copy sends."""
    return EXTENSION in (scope.get("extensions") or {})


def _file_sender_cycle(scope: Scope, send: Send) -> Any | None:
    """uvicorn's cycle behind ``send``, if file ranges can go to its plain socket."""
    cycle = getattr(send, "__self__", None)
    if scope["type"] != "http" or scope.get("scheme") != "http" or cycle is None:
        return None
    if type(cycle).__module__ != CYCLE_MODULE:
        return None
    transport = getattr(cycle, "transport", None)
    if (
        not isinstance(getattr(cycle, "expected_content_length", None), int)
        or not isinstance(getattr(cycle, "disconnected", None), bool)
        or transport is None
        or not hasattr(transport, "get_write_buffer_size")
        or transport.get_extra_info("sslcontext") is not None
        or transport.get_extra_info("socket") is None
    ):
        return None
    return cycle


class ZeroCopySend:
    """ASGI middleware: offers :data:`EXTENSION` on the connections where it can be served
    (module docstring), and serves it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cycle = _file_sender_cycle(scope, send)
        if cycle is None:
            await self.app(scope, receive, send)
            return
        scope["extensions"] = {**(scope.get("extensions") or {}), EXTENSION: {}}
        sender = _FileSender(cycle, send, scope.get("method") == "HEAD")
        try:
            await self.app(scope, receive, sender.send)
        finally:
            sender.close()


class _FileSender:
    """One request's ``send``: zero-copy messages served here, every other one passed on."""

    def __init__(self, cycle: Any, send: Send, head: bool) -> None:
        self.cycle, self._send, self.head = cycle, send, head
        self.transport = cycle.transport
        self.fd: int | None = None  # our duplicate of the connection's socket
        self.broken = False  # the client went away during a send of ours

    async def send(self, message: Message) -> None:
        if message["type"] != EXTENSION:
            await self._send(message)
            return
        count, offset = int(message["count"]), int(message["offset"])
        cycle = self.cycle
        if not (self.head or cycle.disconnected or self.broken):
            if count > cycle.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            await self._sendfile(message["file"].fileno(), offset, count)
        cycle.expected_content_length -= min(count, cycle.expected_content_length)
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _sendfile(self, file: int, offset: int, count: int) -> None:
        while self.transport.get_write_buffer_size():  # the head (or bytes sent before) first
            await self._writable()
        sock = self._socket()
        while count:
            try:  # from the page cache: the range was read (to verify it) just before
                sent = os.sendfile(sock, file, offset, count)
            except BlockingIOError:  # the socket is full: the client has not read enough yet
                await self._writable()
                continue
            except (BrokenPipeError, ConnectionResetError):  # the client went away
                self.broken = True
                self.transport.close()
                return
            if sent == 0:  # the file ended before the range: never claim it was sent
                raise RuntimeError(f"a file ended {count} bytes before the range sent from it")
            offset += sent
            count -= sent

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        sock = self._socket()
        loop.add_writer(sock, wake)
        try:
            await ready
        finally:
            loop.remove_writer(sock)

    def _socket(self) -> int:
        # a duplicate: the loop watches the transport's own descriptor (and may not be
        # asked to watch it twice); both refer to the same socket, so bytes sent on either
        # follow each other in the order they were sent
        if self.fd is None:
            self.fd = os.dup(self.transport.get_extra_info("socket").fileno())
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
