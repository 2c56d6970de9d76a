"""Large response bodies over plain HTTP/1.1 connections of the standard library
(``http.client``), kept alive in a small pool of their own.

Through httpx, every 64 KiB read from the socket is copied four times by its HTTP/1.1 parser
(h11's receive buffer, then two slices and a ``bytes``), and each piece costs a parser event:
reading 1 GiB from a server on loopback took 0.65 s of the client's CPU. Here the body goes
from the socket into each 1 MiB piece with one copy (0.2 s), or straight into the reader's
own buffer (:meth:`Response.readinto`: no piece to copy out of). :class:`RemoteApi` uses this for
file contents when it talks plain HTTP to the server itself: not over TLS, not through a
proxy, not through a transport given to it (tests serve requests in process).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Generator, Mapping
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies_environment, proxy_bypass

PIECE = 1024 * 1024  # bytes per piece of a body
IDLE_S = 20.0  # an idle connection is dropped before the server's keep-alive (30 s) ends it
POOL = 4  # idle connections kept


def direct(url: str) -> bool:
    """Whether bodies from ``url`` can come over a plain connection of this module: plain
    HTTP, and no proxy configured for it (httpx would use the one the environment names)."""
    split = urlsplit(url)
    if split.scheme != "http" or split.hostname is None:
        return False
    proxies = getproxies_environment()
    return not proxies.get("http") or bool(proxy_bypass(split.hostname))


class Response:
    """A response whose body is read as it is wanted; its connection goes back to the pool
    once the body has been read to its end (and is closed otherwise)."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        raw: http.client.HTTPResponse,
        release: Callable[[http.client.HTTPConnection], None],
    ) -> None:
        self._conn, self._raw, self._release = conn, raw, release
        self.status = raw.status

    def header(self, name: str) -> str | None:
        return self._raw.getheader(name)

    def read(self) -> bytes:
        """The whole (small) body."""
        try:
            return self._raw.read()
        finally:
            self.close()

    def pieces(self) -> Generator[bytes, None, None]:
        """The body in pieces of up to :data:`PIECE` bytes (http.client's errors and
        ``OSError`` pass through); the connection is released at the end."""
        try:
            while piece := self._raw.read(PIECE):
                yield piece
        finally:
            self.close()

    def readinto(self, b: memoryview) -> int:
        """The body's next bytes, read from the socket straight into ``b`` (0: its end, and
        the connection is released; http.client's errors and ``OSError`` pass through)."""
        try:
            n = self._raw.readinto(b)
        except BaseException:
            self.close()
            raise
        if not n and len(b):
            self.close()
        return n

    def close(self) -> None:
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        raw = self._raw
        if raw.isclosed() and raw.length == 0 and not raw.will_close:
            self._release(conn)  # read to its end: the connection can carry the next request
        else:
            conn.close()


class Downloads:
    """GET requests to one server over a pool of kept-alive ``http.client`` connections."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float) -> None:
        split = urlsplit(url)
        assert split.hostname is not None
        self.host, self.port = split.hostname, split.port or 80
        self.prefix = split.path.rstrip("/")
        self.headers = dict(headers)
        self.timeout = timeout
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()

    def get(self, path: str, params: Mapping[str, int | str] | None = None) -> Response:
        """Send ``GET path?params``; the response once its head has come (``OSError`` or an
        ``http.client.HTTPException`` if the server cannot be reached)."""
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        conn = self._pooled()
        if conn is not None:
            try:
                return self._send(conn, target)
            except (OSError, http.client.HTTPException):
                conn.close()  # the server closed it meanwhile: a new connection, once
        return self._send(self._connect(), target)

    def _send(self, conn: http.client.HTTPConnection, target: str) -> Response:
        try:
            conn.request("GET", target, headers=self.headers)
            raw = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Response(conn, raw, self._release)

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(None)  # a body may pause for long (as httpx: no read timeout)
        return conn

    def _pooled(self) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                since, conn = self._idle.pop()
                if now - since < IDLE_S:
                    return conn
                conn.close()
        return None

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL:
                self._idle.append((time.monotonic(), conn))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()
