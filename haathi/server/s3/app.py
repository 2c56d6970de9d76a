"""The S3 gateway as an ASGI app (Starlette; not part of the REST API's OpenAPI spec).

Path-style addressing: ``/`` is the service, ``/BUCKET`` a bucket, ``/BUCKET/KEY`` an object.
Each request is authenticated (:mod:`~haathi.server.s3.callers`), dispatched
(:mod:`~haathi.server.s3.routing`), and any error answered as an S3 ``<Error>`` document with
the status of its S3 code (:mod:`~haathi.server.s3.errors`).
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import unquote_to_bytes

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from haathi.errors import HaathiError
from haathi.server.s3 import xml
from haathi.server.s3.body import unread_body
from haathi.server.s3.errors import s3_code, s3_error
from haathi.server.s3.gateway import Call, Gateway
from haathi.server.s3.routing import handler

log = logging.getLogger("haathi.server.s3")
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


def split_path(path: str) -> tuple[str | None, str | None]:
    """(bucket, key) of a path-style request path (None where the path has none)."""
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket or None, key or None


def request_path(request: Request) -> str:
    """The path the client sent, percent-decoded once as UTF-8: a key exactly as the client
    named it. (Not ``request.url.path``: Starlette re-encodes ``?``, ``#`` and ``\\`` there
    and drops tabs and newlines, so such keys would land on other keys.)"""
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):
        return str(request.scope["path"])
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise s3_error("InvalidURI", "the request path is not UTF-8 once percent-decoded; "
                       "keys are UTF-8") from exc  # fmt: skip


def error_response(exc: HaathiError, request: Request, request_id: str, has_key: bool) -> Response:
    status, code = s3_code(exc, has_key=has_key)
    headers: dict[str, str] = {}
    size = exc.details.get("actual_size")
    if code == "InvalidRange" and isinstance(size, int):
        headers["Content-Range"] = f"bytes */{size}"
    if request.method == "HEAD":  # no body: clients read the status alone
        return Response(status_code=status, headers=headers)
    raw = request.scope.get("raw_path")  # as sent (percent-encoded): any XML can carry it
    resource = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    body = xml.error(code, exc.message, resource, request_id)
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


async def handle(gateway: Gateway, request: Request) -> Response:
    """Answer one S3 request."""
    request_id = uuid.uuid4().hex[:16].upper()
    try:
        bucket_name, key = split_path(request_path(request))
    except HaathiError as exc:
        response = error_response(exc, request, request_id, has_key=True)
    else:
        response = await _answer(gateway, request, request_id, bucket_name, key)
    response.headers["x-amz-request-id"] = request_id
    if unread_body(request):
        response.headers["Connection"] = "close"
    return response


async def _answer(
    gateway: Gateway,
    request: Request,
    request_id: str,
    bucket_name: str | None,
    key: str | None,
) -> Response:
    try:
        scope = request.scope
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        access = await run_in_threadpool(
            gateway.backend.authenticate, request.method, raw_path, raw_query, headers
        )
        bucket = access.buckets.bucket(bucket_name) if bucket_name else None
        call = Call(gateway, access, request, bucket, key)
        return await handler(call)(call)
    except HaathiError as exc:
        return error_response(exc, request, request_id, key is not None)
    except Exception as exc:
        log.error("S3 gateway internal error", exc_info=exc)
        err = HaathiError(f"internal error: {type(exc).__name__}: {exc}")
        return error_response(err, request, request_id, key is not None)


def create_s3_app(gateway: Gateway) -> ASGIApp:
    """The gateway's app: every path and method goes to :func:`handle` (no router: a
    Starlette route would not match a path holding a newline, and would answer it 404 in
    plain text rather than as S3)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.method in METHODS:
            response = await handle(gateway, request)
        else:
            response = Response(status_code=405, headers={"Allow": ", ".join(METHODS)})
        await response(scope, receive, send)

    return app
