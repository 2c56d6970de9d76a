"""The FastAPI application: the Api's operations as REST routes, errors as one envelope, and
the job runner in the background for the app's lifetime."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from haathi.api import Api
from haathi.server import envelope, offload, routes_auth, routes_pfs, routes_pps
from haathi.server.body_limit import BodyLimit
from haathi.server.deps import ServerSettings


def _version() -> str:
    try:
        return version("haathi")
    except PackageNotFoundError:
        return "0"


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
    return app
