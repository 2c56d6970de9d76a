"""Running the app: ``haathi serve`` in the foreground, or a background thread (tests)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from haathi.api import Api
from haathi.config import store_config
from haathi.errors import InvalidArgument
from haathi.runtime import open_store
from haathi.server.app import create_app
from haathi.server.ports import PortRouter, WorkerHeader, listen, url
from haathi.server.s3.app import create_s3_app
from haathi.server.s3.callers import RepoBackend
from haathi.server.s3.gateway import Gateway
from haathi.server.s3.multipart import DEFAULT_SPOOL_BYTES, UploadLimits
from haathi.server.sidecar import JobGatewayFactory
from haathi.server.zerocopy import ZeroCopySend

DEFAULT_BIND = "127.0.0.1:8650"
OPEN_WARNING = (
    "warning: {host} is not a loopback address and auth is off: anyone who can reach it can "
    "read and write every repo (haathi auth activate turns auth on)"
)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling the app as it begins to stop (``on_stop``, on its event
    loop): the console ends its live streams then, where uvicorn would wait for each to end
    on its own."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.on_stop()
        await super().shutdown(sockets)


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


def parse_s3_bind(s3_bind: str | None, host: str, port: int) -> tuple[str, int] | None:
    """Where the S3 gateway listens: ``auto`` (the server's host, its port + 1, or any free
    port when the server's is 0), ``host:port``, or None / ``none`` / ``off`` for no gateway."""
    if s3_bind is None or s3_bind.lower() in ("none", "off", ""):
        return None
    if s3_bind.lower() == "auto":
        return host, port + 1 if port else 0
    return parse_bind(s3_bind)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Bound:
    """Sockets bound by a server's parent process for its workers: the API's, the S3
    gateway's (None in a worker that serves no gateway) and the gateway's URL (which every
    worker reports, the gateway's or not)."""

    sock: socket.socket
    s3_sock: socket.socket | None
    s3_url: str | None


class Server:
    """The app serving ``api`` on a socket bound at construction (port 0: any free port), and
    its S3 gateway on a second socket (``s3_bind``: ``auto`` is the server's port + 1, any port
    when that is 0; None or ``none`` serves no gateway; ``s3_uploads``: the bounds on its
    multipart uploads, by default with a spool at least as large as ``max_upload_bytes``).

    A worker of a multi-process server (:mod:`haathi.server.workers`) is given its sockets,
    bound by the parent (``bound``), and its number (``worker``: sent back in the
    ``X-Haathi-Worker`` header of every response)."""

    def __init__(
        self,
        api: Api,
        bind: str = DEFAULT_BIND,
        *,
        run_worker: bool = True,
        max_upload_bytes: int | None = None,
        log_level: str = "warning",
        s3_bind: str | None = "auto",
        s3_uploads: UploadLimits | None = None,
        bound: Bound | None = None,
        worker: int | None = None,
    ) -> None:
        if run_worker:
            api.runner.check()  # a server whose jobs cannot run here does not start
        self.run_worker, self.max_upload_bytes, self.s3_uploads = (
            run_worker, max_upload_bytes, s3_uploads,
        )  # fmt: skip
        self.log_level = log_level
        if bound is not None:
            self.sock, self.s3_sock, self._s3_url = bound.sock, bound.s3_sock, bound.s3_url
            self.host = str(self.sock.getsockname()[0])
        else:
            self._bind(bind, s3_bind)
        self.port = int(self.sock.getsockname()[1])
        self.gateway: Gateway | None = None
        self.api = api
        app: Any = create_app(
            api, run_worker=run_worker, max_upload_bytes=max_upload_bytes,
            s3_endpoint=self.s3_url,
        )  # fmt: skip
        on_stop = app.state.console_streams.close_all
        if self.s3_sock is not None:
            if s3_uploads is None:  # room on the spool for at least one upload of the most
                spool = max(DEFAULT_SPOOL_BYTES, max_upload_bytes or 0)
                s3_uploads = UploadLimits(max_spool_bytes=spool)
            self.gateway = Gateway(
                RepoBackend(api), max_upload_bytes=max_upload_bytes, upload_limits=s3_uploads
            )
            app = PortRouter(app, {self.s3_port: create_s3_app(self.gateway)})
        if worker is not None:
            app = WorkerHeader(app, worker)
        app = ZeroCopySend(app)  # outermost: it is handed uvicorn's own send
        # idle connections live longer here than in clients' pools (httpx: 5 s), so a client
        # never reuses a connection the server is closing
        config = uvicorn.Config(
            app, log_level=log_level, access_log=False, lifespan="on", timeout_keep_alive=30,
            interface="asgi3",
        )  # fmt: skip
        self.uvicorn = _Uvicorn(config, on_stop)
        self._thread: threading.Thread | None = None

    def _bind(self, bind: str, s3_bind: str | None) -> None:
        host, port = parse_bind(bind)
        self.sock = listen(host, port)
        self.host = host
        self.s3_sock = None
        try:
            s3 = parse_s3_bind(s3_bind, host, port)
            if s3 is not None:
                try:
                    self.s3_sock = listen(*s3)
                except InvalidArgument as exc:
                    raise InvalidArgument(
                        f"S3 gateway: {exc} (--s3-bind HOST:PORT puts it elsewhere, --s3-bind "
                        "none serves without it)"
                    ) from exc
                if self.s3_sock.getsockname()[1] == self.sock.getsockname()[1]:
                    raise InvalidArgument("--s3-bind needs a port other than the server's")
        except BaseException:
            self.close_sockets()
            raise
        self._s3_url = None if self.s3_sock is None else url(*self.s3_sock.getsockname()[:2])

    def _sockets(self) -> list[socket.socket]:
        return [s for s in (self.sock, self.s3_sock) if s is not None]

    def close_sockets(self) -> None:
        for s in self._sockets():
            s.close()

    def _close(self) -> None:
        self.close_sockets()
        self.close_store()

    def close_store(self) -> None:
        """Close the store (and the S3 gateway's spool), not the sockets."""
        if self.gateway is not None:
            self.gateway.close()
        self.api.close()

    @classmethod
    def for_store(cls, address: str, overrides: dict[str, Any], bind: str, **kw: Any) -> Server:
        api = Api(open_store(store_config(address, overrides)), gateways=JobGatewayFactory())
        try:
            return cls(api, bind, **kw)
        except BaseException:
            api.close()
            raise

    @property
    def url(self) -> str:
        return url(self.host, self.port)

    @property
    def s3_port(self) -> int:
        assert self.s3_sock is not None
        return int(self.s3_sock.getsockname()[1])

    @property
    def s3_url(self) -> str | None:
        """The S3 gateway's endpoint (None when the server has none)."""
        return self._s3_url

    @property
    def warning(self) -> str | None:
        """What to print when the bind (or the S3 gateway's) is reachable from other hosts
        and auth is off."""
        hosts = [self.host]
        if self.s3_sock is not None:
            hosts.append(str(self.s3_sock.getsockname()[0]))
        exposed = [h for h in dict.fromkeys(hosts) if not is_loopback(h)]
        if not exposed or self.api.auth_active():
            return None
        return OPEN_WARNING.format(host=" and ".join(exposed))

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C / SIGTERM), then close the store."""
        try:
            self.uvicorn.run(sockets=self._sockets())
        finally:
            self._close()

    def start(self) -> Server:
        """Serve from a background thread; returns once the server accepts requests."""
        self._thread = threading.Thread(
            target=self.uvicorn.run,
            kwargs={"sockets": self._sockets()},
            daemon=True,
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
        self._close()
