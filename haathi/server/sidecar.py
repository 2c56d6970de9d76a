"""Job sidecars, served: the S3 gateway of a datum set that reads s3 inputs or writes
``s3_out`` (what it serves and how user code reaches it: :mod:`haathi.pps.sidecars`), and a
spout's API (:mod:`haathi.server.spout_api`).

:class:`JobGatewayFactory` is what ``haathi serve``, ``haathi run worker``, the CLI and
``haathi.connect()`` give their store (:class:`~haathi.pps.context.PpsContext` ``gateways``).
It is cheap to make and picklable (a Dask worker opens its datum sets' gateways itself); the
S3 code is imported when a gateway first opens. Each gateway is haathi's S3 gateway app
(:mod:`haathi.server.s3`) over the job's buckets (:mod:`haathi.server.s3.job_buckets`),
served by uvicorn on a thread of the process running the datum set, on the listening socket
it is given, for as long as the datum set runs.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence

    from starlette.types import ASGIApp, Receive, Scope, Send

    from haathi.pfs.context import PfsContext
    from haathi.pps.sidecars import GatewayScope, S3Bucket, SpoutApis

START_TIMEOUT = 30.0  # seconds a gateway has to start serving
SETTLE_TIMEOUT = 5.0  # seconds a run's connections have to close once it has ended
STOP_GRACE = 2  # seconds requests in flight have when a gateway stops


class JobGatewayFactory:
    """Opens job gateways (:class:`haathi.pps.sidecars.JobGateways`), and serves spouts their
    API (:meth:`spout_apis`)."""

    def open(self, ctx: PfsContext, listener: socket.socket, scope: GatewayScope) -> JobGateway:
        return JobGateway(ctx, listener, scope)

    def spout_apis(self, api: Any) -> SpoutApis:
        """Spouts' APIs over ``api`` (an :class:`~haathi.api.Api`: the worker's)."""
        from haathi.server.spout_api import SpoutApiFactory

        return SpoutApiFactory(api)


class _InFlight:
    """The app, counting the requests it is answering."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self._lock:
            self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.count -= 1


class ThreadServer:
    """``app`` (``what`` in errors) served by uvicorn on a thread of this process (named
    ``name``), on ``listener`` (bound and listening), from now until :meth:`close`; ``then``
    runs once it has stopped."""

    def __init__(
        self,
        app: ASGIApp,
        listener: socket.socket,
        *,
        what: str,
        name: str,
        then: Callable[[], None] = lambda: None,
    ) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, lifespan="off", log_config=None, log_level="warning", access_log=False,
            interface="asgi3", timeout_graceful_shutdown=STOP_GRACE,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._listener = listener
        self._then = then
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, daemon=True, name=name
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise OSError(f"{what} did not start")
            time.sleep(0.005)

    def connections(self) -> int:
        """The connections open now."""
        state: Any = getattr(self._server, "server_state", None)
        return len(state.connections) if state is not None else 0

    def close(self) -> None:
        """Stop serving: within uvicorn's tick (0.1 s) the socket is closed; the rest of the
        shutdown (another 0.1 s of uvicorn's) goes on in the background."""
        self._server.should_exit = True
        threading.Thread(target=self._finish, daemon=True, name=self._thread.name).start()

    def _finish(self) -> None:
        self._thread.join(timeout=STOP_GRACE + 5)
        self._listener.close()
        self._then()


class JobGateway:
    """One datum set's gateway (:class:`haathi.pps.sidecars.Gateway`), serving from now on."""

    def __init__(self, ctx: PfsContext, listener: socket.socket, scope: GatewayScope) -> None:
        from haathi.server.s3.app import create_s3_app
        from haathi.server.s3.gateway import Gateway
        from haathi.server.s3.job_buckets import JobBackend, JobBuckets

        self.buckets = JobBuckets(ctx, scope.out_dir, scope.spool_dir, scope.owner)
        self._gateway = Gateway(JobBackend(self.buckets, scope.token), spool_root=scope.spool_dir)
        self._app = _InFlight(create_s3_app(self._gateway))
        self._server = ThreadServer(
            self._app, listener, what="the job's S3 gateway",
            name=f"haathi-s3-sidecar-{scope.job_id[:8]}", then=self._gateway.close,
        )  # fmt: skip

    def serve(self, inputs: Sequence[S3Bucket]) -> None:
        self.buckets.serve(inputs)

    def settle(self) -> None:
        """Wait (at most :data:`SETTLE_TIMEOUT`) until no connection is open and no request
        in flight: the run's processes are gone, so their connections close, and a request
        they sent whole is answered (its write landed) or dropped."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if not self._server.connections() and not self._app.count:
                return
            time.sleep(0.005)

    def close(self) -> None:
        """Stop serving: the job's token works nowhere once the socket is closed."""
        self._server.close()
