"""A raw HTTP client for tests of what a server answers before it has read a request's body."""

from __future__ import annotations

import time
from dataclasses import dataclass
from http.client import HTTPConnection
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the end of the request's headers to the whole answer


def headers_only(url: str, method: str, path: str, headers: dict[str, str]) -> Answer:
    """Send a request's line and headers (announcing a body with ``Content-Length``) but not
    one byte of its body, and read what the server answers."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=20)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        start = time.monotonic()
        response = conn.getresponse()
        body = response.read()
        seconds = time.monotonic() - start
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                      seconds)  # fmt: skip
    finally:
        conn.close()
