"""Listening sockets, and one ASGI app per socket: the REST API on the server's port, the S3
gateway on its own (one uvicorn server, one event loop, for both)."""

from __future__ import annotations

import os
import socket

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haathi.errors import InvalidArgument


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: no Nagle delay between a response's head and body
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"cannot bind {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(1024)
    return sock


def url(host: str, port: int) -> str:
    """``http://host:port`` to reach a socket bound at ``host`` (a wildcard: via loopback)."""
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class PortRouter:
    """An ASGI app handing each connection to the app of the local port it came in on (the
    ``main`` app for any other port, and for lifespan events)."""

    def __init__(self, main: ASGIApp, by_port: dict[int, ASGIApp]) -> None:
        self.main = main
        self.by_port = by_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] in ("http", "websocket") else None
        app = self.by_port.get(server[1], self.main) if server else self.main
        await app(scope, receive, send)


class WorkerHeader:
    """An ASGI app adding ``X-Haathi-Worker: N; pid=P`` to every response of ``app``: which
    worker process of a multi-process server (``haathi serve --workers``) answered."""

    def __init__(self, app: ASGIApp, worker: int) -> None:
        self.app = app
        self.header = (b"x-haathi-worker", f"{worker}; pid={os.getpid()}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, with_header)
