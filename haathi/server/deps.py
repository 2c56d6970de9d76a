"""What a route gets from the app: the Api (and, later, the caller's identity)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from haathi.api import Api


@dataclass(frozen=True)
class ServerSettings:
    max_upload_bytes: int | None = None


def get_api(request: Request) -> Api:
    """The Api of this app (the hook where a per-request identity will be checked)."""
    api = request.app.state.api
    assert isinstance(api, Api)
    return api


def get_settings(request: Request) -> ServerSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ServerSettings)
    return settings


ApiDep = Annotated[Api, Depends(get_api)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
