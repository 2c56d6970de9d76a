"""The FastAPI application: the Api's operations as REST routes, errors as one envelope, the
web console at every other path, and the job runner in the background for the app's
lifetime."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Scope

from haathi.api import Api
from haathi.console.app import create_console
from haathi.models.wire import API_PREFIX
from haathi.server import (
    envelope,
    offload,
    routes_auth,
    routes_pfs,
    routes_pps,
    routes_projects,
    routes_secrets,
    routes_transactions,
)
from haathi.server.body_limit import BodyLimit
from haathi.server.deps import ServerSettings


def _version() -> str:
    try:
        return version("haathi")
    except PackageNotFoundError:
        return "0"


class ConsoleMount(Mount):
    """The console (:mod:`haathi.console`) at ``/``: every path but the REST API's
    (``api_paths`` and below them), whose unknown routes and wrong methods keep their JSON
    errors."""

    def __init__(self, app: ASGIApp, api_paths: tuple[str, ...]) -> None:
        super().__init__("", app=app)
        self.api_paths = api_paths

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = str(scope.get("path", ""))
        if any(path == p or path.startswith(p + "/") for p in self.api_paths):
            return Match.NONE, {}
        return super().matches(scope)


def create_app(
    api: Api,
    *,
    run_worker: bool = True,
    max_upload_bytes: int | None = None,
    s3_endpoint: str | None = None,
) -> FastAPI:
    """The app serving ``api``. With ``run_worker`` a background thread runs queued jobs and
    cron ticks while the app runs (started and stopped by the app's lifespan, which also
    gives the loop its pool of request threads).
    ``s3_endpoint``: where the server's S3 gateway listens (reported by ``/v1/store``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        requests = offload.install_executor()
        stop = threading.Event()
        worker: threading.Thread | None = None
        if run_worker:
            api.runner.check()  # its sandbox and executor start here (made once, shared)
            worker = threading.Thread(
                target=api.run_worker, args=(stop,), name="haathi-job-runner", daemon=True
            )
            worker.start()
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=30)
            requests.shutdown(wait=False)

    app = FastAPI(
        title="haathi",
        version=_version(),
        description="Version control for data with pipelines: every operation of the haathi "
        "Client over HTTP. Bodies are the `-o json` shapes; errors are "
        '`{"code", "message", "details"}`.',
        lifespan=lifespan,
    )
    app.state.api = api
    app.state.settings = ServerSettings(max_upload_bytes=max_upload_bytes)
    app.state.s3_endpoint = s3_endpoint
    envelope.install(app)
    app.add_middleware(BodyLimit, max_upload_bytes=max_upload_bytes)
    app.include_router(routes_pfs.router)
    app.include_router(routes_pps.router)
    app.include_router(routes_auth.router)
    app.include_router(routes_secrets.router)
    app.include_router(routes_projects.router)
    app.include_router(routes_transactions.router)
    api_paths = (API_PREFIX, app.openapi_url, app.docs_url, app.redoc_url)
    console = create_console(api, max_upload_bytes=max_upload_bytes)
    app.state.console_streams = console.state.streams  # ended by the server as it stops
    app.router.routes.append(ConsoleMount(console, tuple(filter(None, api_paths))))
    return app
