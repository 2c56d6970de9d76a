"""The S3 gateway as an ASGI app (Starlette; not part of the REST API's OpenAPI spec).

Path-style addressing: ``/`` is the service, ``/BUCKET`` a bucket, ``/BUCKET/KEY`` an object.
Each request is authenticated (:mod:`~haathi.server.s3.callers`), dispatched
(:mod:`~haathi.server.s3.routing`), and any error answered as an S3 ``<Error>`` document with
the status of its S3 code (:mod:`~haathi.server.s3.errors`).
"""

from __future__ import annotations

import logging
import uuid

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from haathi.errors import HaathiError
from haathi.server.s3 import xml
from haathi.server.s3.body import unread_body
from haathi.server.s3.buckets import parse_bucket
from haathi.server.s3.callers import authenticate
from haathi.server.s3.errors import s3_code
from haathi.server.s3.gateway import Call, Gateway
from haathi.server.s3.routing import handler

log = logging.getLogger("haathi.server.s3")
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


def split_path(path: str) -> tuple[str | None, str | None]:
    """(bucket, key) of a path-style request path (None where the path has none)."""
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket or None, key or None


def error_response(
    exc: HaathiError, request: Request, request_id: str, has_key: bool
) -> Response:
    status, code = s3_code(exc, has_key=has_key)
    headers: dict[str, str] = {}
    size = exc.details.get("actual_size")
    if code == "InvalidRange" and isinstance(size, int):
        headers["Content-Range"] = f"bytes */{size}"
    if request.method == "HEAD":  # no body: clients read the status alone
        return Response(status_code=status, headers=headers)
    body = xml.error(code, exc.message, request.url.path, request_id)
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


async def handle(gateway: Gateway, request: Request) -> Response:
    """Answer one S3 request."""
    request_id = uuid.uuid4().hex[:16].upper()
    bucket_name, key = split_path(request.url.path)
    response = await _answer(gateway, request, request_id, bucket_name, key)
    response.headers["x-amz-request-id"] = request_id
    if unread_body(request):
        response.headers["Connection"] = "close"
    return response


async def _answer(
    gateway: Gateway, request: Request, request_id: str, bucket_name: str | None,
    key: str | None,
) -> Response:
    try:
        scope = request.scope
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_path = scope.get("raw_path", b"").decode("latin-1") or request.url.path
        raw_query = scope.get("query_string", b"").decode("latin-1")
        access = await run_in_threadpool(
            authenticate, gateway.api, request.method, raw_path, raw_query, headers
        )
        bucket = parse_bucket(bucket_name) if bucket_name else None
        call = Call(gateway, access, request, bucket, key)
        return await handler(call)(call)
    except HaathiError as exc:
        return error_response(exc, request, request_id, key is not None)
    except Exception as exc:
        log.error("S3 gateway internal error", exc_info=exc)
        err = HaathiError(f"internal error: {type(exc).__name__}: {exc}")
        return error_response(err, request, request_id, key is not None)


def create_s3_app(gateway: Gateway) -> Starlette:
    """The gateway's app: every path and method goes to :func:`handle`."""

    async def endpoint(request: Request) -> Response:
        return await handle(gateway, request)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=METHODS)])
