"""What a route gets from the app: the Api as the caller may use it, and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from haathi.api import Api
from haathi.server.offload import Deferred, in_thread, runs_in_thread


@dataclass(frozen=True)
class ServerSettings:
    max_upload_bytes: int | None = None


_bearer = HTTPBearer(auto_error=False, description="a haathi token (once auth is activated)")


async def get_api(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Api:
    """The Api as the request's caller may use it: with auth on, a view acting as the holder
    of the bearer token (no or a bad token: Unauthenticated, 401). While auth is known to be
    off (:meth:`Api.auth_known_off`) that is the Api itself, and nothing is read. Otherwise
    the token is checked in a worker thread: for an offloaded route, in the one that runs it
    (a :class:`~haathi.server.offload.Deferred`, resolved before the route runs)."""
    api = request.app.state.api
    assert isinstance(api, Api)
    if api.auth_known_off():
        return api
    token = None if credentials is None else credentials.credentials
    if runs_in_thread(request.scope):
        return cast(Api, Deferred(api.for_token, token))
    return await in_thread(api.for_token, token)  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ServerSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ServerSettings)
    return settings


ApiDep = Annotated[Api, Depends(get_api)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
