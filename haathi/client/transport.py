"""How :class:`~haathi.client.remote.RemoteApi` reaches a server: httpx, imported without
its command-line client, and a TCP transport that builds TLS settings only for ``https://``.

Two costs of a remote ``haathi`` command's start-up that it never uses: ``import httpx``
also imports ``httpx._main`` (the ``httpx`` command), which imports click, rich and pygments
when they are installed (~40 ms of CPU; httpx2 made it lazy: pydantic/httpx2#947); and each
transport loads certifi's CA bundle (~20 ms) even for ``http://``. httpx skips its command
when that import fails, so the first import here makes it fail (``httpx.main``, the entry
point of the ``httpx`` command, which haathi never calls, is then httpx's stub;
``httpx._main`` can still be imported afterwards).
"""

from __future__ import annotations

import importlib
import socket
import ssl
import sys


def _import_httpx_without_its_command() -> None:
    if "httpx" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # its import: ImportError
    try:
        importlib.import_module("httpx")
    except ImportError:  # an httpx that needs its command: imported below as it is
        pass
    finally:
        del sys.modules["httpx._main"]


_import_httpx_without_its_command()

import httpx  # noqa: E402

__all__ = ["httpx", "tcp_transport"]


def tcp_transport(url: str) -> httpx.HTTPTransport:
    """HTTP over TCP to ``url``, with no Nagle delay between a request's head and its
    streamed body. For ``http://`` its TLS context trusts no one: it is never used."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    if url.startswith("https://"):
        return httpx.HTTPTransport(socket_options=nodelay)
    no_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA to verify against
    return httpx.HTTPTransport(socket_options=nodelay, verify=no_tls)
