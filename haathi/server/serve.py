"""Running the app: ``haathi serve`` in the foreground, or a background thread (tests)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

import uvicorn

from haathi.api import Api
from haathi.config import store_config
from haathi.errors import InvalidArgument
from haathi.runtime import open_store
from haathi.server.app import create_app

DEFAULT_BIND = "127.0.0.1:8650"
OPEN_WARNING = (
    "warning: {host} is not a loopback address and auth is off: anyone who can reach it can "
    "read and write every repo (haathi auth activate turns auth on)"
)


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; a bare ``:port`` is loopback) as (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep:
        host, port = bind, DEFAULT_BIND.rpartition(":")[2]
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError as exc:
        raise InvalidArgument(f"--bind {bind!r}: expected host:port") from exc
    if not 0 <= number <= 65535:
        raise InvalidArgument(f"--bind {bind!r}: port out of range")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """The app serving ``api`` on a socket bound at construction (port 0: any free port)."""

    def __init__(
        self, api: Api, bind: str = DEFAULT_BIND, *, run_worker: bool = True,
        max_upload_bytes: int | None = None, log_level: str = "warning",
    ) -> None:
        host, port = parse_bind(bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: no Nagle delay between a response's head and body
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise InvalidArgument(f"cannot bind {host}:{port}: {exc.strerror or exc}") from exc
        self.sock.listen(1024)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.api = api
        app = create_app(api, run_worker=run_worker, max_upload_bytes=max_upload_bytes)
        # idle connections live longer here than in clients' pools (httpx: 5 s), so a client
        # never reuses a connection the server is closing
        config = uvicorn.Config(
            app, log_level=log_level, access_log=False, lifespan="on", timeout_keep_alive=30
        )
        self.uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @classmethod
    def for_store(cls, address: str, overrides: dict[str, Any], bind: str, **kw: Any) -> Server:
        api = Api(open_store(store_config(address, overrides)))
        try:
            return cls(api, bind, **kw)
        except BaseException:
            api.close()
            raise

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if self.host == "0.0.0.0" else "[::1]"
        return f"http://{host}:{self.port}"

    @property
    def warning(self) -> str | None:
        """What to print when the bind is reachable from other hosts and auth is off."""
        if is_loopback(self.host) or self.api.auth_active():
            return None
        return OPEN_WARNING.format(host=self.host)

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C / SIGTERM), then close the store."""
        try:
            self.uvicorn.run(sockets=[self.sock])
        finally:
            self.sock.close()
            self.api.close()

    def start(self) -> Server:
        """Serve from a background thread; returns once the server accepts requests."""
        self._thread = threading.Thread(
            target=self.uvicorn.run, kwargs={"sockets": [self.sock]}, daemon=True,
            name=f"haathi-serve-{self.port}",
        )
        self._thread.start()
        while not self.uvicorn.started:
            if not self._thread.is_alive():
                raise RuntimeError("haathi server thread died while starting")
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sock.close()
        self.api.close()
