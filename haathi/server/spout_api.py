"""A spout's API: what its program reaches at ``$HAATHI_ADDRESS`` (:mod:`haathi.pps.daemons`).

It is haathi's own REST API, its routes of repos, branches, commits and files
(:mod:`haathi.server.routes_pfs`), over the worker's Api confined to the spout's output repo
(:mod:`haathi.api.confined`), and only to the holder of the token the worker gave the
program (``$HAATHI_TOKEN``): ``haathi put file $PPS_PIPELINE_NAME@master -f ...`` and
``haathi.connect()`` work inside as outside. The jobs a write starts are queued, never run
here: the workers run them (``/v1/jobs/run`` runs nothing and says nothing waits). It is
served by uvicorn on a thread of the worker, on the socket the spout's sandbox relays to.
"""

from __future__ import annotations

import hmac
import socket
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from haathi.api import Api
from haathi.errors import Unauthenticated
from haathi.models.info import RunSummary
from haathi.models.wire import API_PREFIX
from haathi.pps.sidecars import SpoutScope
from haathi.server import envelope, routes_pfs
from haathi.server.body_limit import BodyLimit
from haathi.server.deps import ApiDep, ServerSettings, get_api
from haathi.server.offload import OffloadingRouter
from haathi.server.sidecar import ThreadServer

_bearer = HTTPBearer(auto_error=False, description="the spout's token ($HAATHI_TOKEN)")
jobs_router = OffloadingRouter(prefix=API_PREFIX)


@jobs_router.post("/jobs/queue", tags=["jobs"])
def queue_jobs(api: ApiDep) -> dict[str, Any]:
    """Record a job for every output commit that writes started."""
    return {"queued": api.queue_jobs()}


@jobs_router.post("/jobs/run", tags=["jobs"])
def run_jobs(api: ApiDep) -> dict[str, Any]:
    """Queue the jobs the spout's writes started (the workers run them) and return."""
    api.queue_jobs()
    return RunSummary().to_dict()


def create_spout_app(api: Api, scope: SpoutScope) -> FastAPI:
    """The app serving spout ``scope.pipeline``'s program, over ``api`` confined to its
    output repo."""
    view = api.confined_view(scope.pipeline)
    token = scope.token.encode()

    async def spout_api(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Api:
        given = b"" if credentials is None else credentials.credentials.encode()
        if not hmac.compare_digest(given, token):
            raise Unauthenticated(
                f"this is spout {scope.pipeline}'s API: it takes the token its program is "
                "given ($HAATHI_TOKEN) and no other"
            )
        return view

    app = FastAPI(title=f"haathi: spout {scope.pipeline}", openapi_url=None, docs_url=None)
    app.state.api = view
    app.state.settings = ServerSettings()
    app.dependency_overrides[get_api] = spout_api
    envelope.install(app)
    app.add_middleware(BodyLimit, max_upload_bytes=None)
    app.include_router(routes_pfs.router)
    app.include_router(jobs_router)
    return app


class SpoutApiFactory:
    """Serves spouts their API over ``api`` (:class:`haathi.pps.sidecars.SpoutApis`)."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def open(self, listener: socket.socket, scope: SpoutScope) -> ThreadServer:
        return ThreadServer(
            create_spout_app(self.api, scope), listener, what=f"spout {scope.pipeline}'s API",
            name=f"haathi-spout-api-{scope.pipeline}",
        )  # fmt: skip
