"""The in-process Api behind a test's Client, for tests that look at stored internals.

Embedded it is the Client's own; remote, it is the Api of the server the Client talks to
(the same store), so such tests still run every request over HTTP."""

from __future__ import annotations

from haathi.api import Api
from haathi.client import Client


def inner(client: Client) -> Api:
    api = getattr(client, "server_api", None) or client._api
    assert isinstance(api, Api)
    return api
