"""A port published on the host's loopback: each connection to ``127.0.0.1:PORT`` is relayed
to a service in its sandbox (:meth:`haathi.pps.sandbox.Sandbox.publish`), byte for byte both
ways, until either side closes. A connection made while the service is (re)starting waits for
it a few seconds (:data:`CONNECT_WAIT_S`), as the sandbox's own relay does.

Threads, not an event loop: a service has few connections, and the worker running it has no
loop of its own. :meth:`PortRelay.close` stops listening and cuts every open connection.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable

ACCEPT_TICK = 0.2  # seconds between looks at whether the relay was closed
CONNECT_WAIT_S = 5.0  # how long a connection waits for the service to listen
_CHUNK = 1 << 16
HOST = "127.0.0.1"


class PortInUse(OSError):
    """The port to publish on is taken."""


class PortRelay:
    """Listens on ``127.0.0.1:port`` (0: any free port) and relays each connection to a new
    one that ``connect`` makes; PortInUse if the port is taken."""

    def __init__(self, port: int, connect: Callable[[], socket.socket], name: str) -> None:
        self._connect = connect
        try:
            self._listener = socket.create_server((HOST, port), backlog=64)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(exc.errno, f"port {port} is in use on {HOST}") from exc
            raise
        self._listener.settimeout(ACCEPT_TICK)
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=name)
        self._thread.start()

    def close(self) -> None:
        """Stop listening, and close every relayed connection."""
        self._closed.set()
        self._thread.join()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> PortRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # gone before it was taken, or no descriptor left
                self._closed.wait(ACCEPT_TICK)
                continue
            conn.settimeout(None)
            threading.Thread(
                target=self._relay, args=(conn,), daemon=True, name=self._thread.name
            ).start()

    def _relay(self, conn: socket.socket) -> None:
        other = self._connect_soon()
        if other is None:  # the service did not come: the client sees the close
            conn.close()
            return
        with self._lock:
            if self._closed.is_set():
                conn.close()
                other.close()
                return
            self._open.update((conn, other))
        try:
            _pump(conn, other)
        finally:
            with self._lock:
                self._open.difference_update((conn, other))
            conn.close()
            other.close()

    def _connect_soon(self) -> socket.socket | None:
        """A connection to the service, waiting up to :data:`CONNECT_WAIT_S` for it to
        listen (it is starting, or starting again over a new datum); None if it does not."""
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                return self._connect()
            except OSError:
                if time.monotonic() > deadline or self._closed.wait(ACCEPT_TICK / 2):
                    return None


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both sides have closed (a side's end of file is passed on
    as a shutdown) or one fails."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as sel:
        for sock in peer:
            sel.register(sock, selectors.EVENT_READ)
        reading = 2
        while reading:
            for key, _ in sel.select():
                side: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = side.recv(_CHUNK)
                    if data:
                        peer[side].sendall(data)
                        continue
                    peer[side].shutdown(socket.SHUT_WR)
                except OSError:
                    return
                sel.unregister(side)
                reading -= 1
