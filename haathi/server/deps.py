"""What a route gets from the app: the Api as the caller may use it, and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from haathi.api import Api


@dataclass(frozen=True)
class ServerSettings:
    max_upload_bytes: int | None = None


_bearer = HTTPBearer(auto_error=False, description="a haathi token (once auth is activated)")


def get_api(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Api:
    """The Api as the request's caller may use it: with auth on, a view acting as the holder
    of the bearer token (no or a bad token: Unauthenticated, 401)."""
    api = request.app.state.api
    assert isinstance(api, Api)
    return api.for_token(None if credentials is None else credentials.credentials)


def get_settings(request: Request) -> ServerSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ServerSettings)
    return settings


ApiDep = Annotated[Api, Depends(get_api)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
