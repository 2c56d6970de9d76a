"""The one place errors become HTTP responses: every error is the JSON envelope
``{"code", "message", "details"}`` of :meth:`haathi.errors.HaathiError.to_dict` with the
class's HTTP status. Bad requests (validation) are ``invalid_argument`` (400); an unknown route
``not_found``; anything unexpected ``internal`` (500) without a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from haathi.errors import HaathiError, InvalidArgument, NotFound

log = logging.getLogger("haathi.server")


def error_response(exc: HaathiError) -> JSONResponse:
    body = json.loads(json.dumps(exc.to_dict(), default=str))
    return JSONResponse(body, status_code=exc.http_status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(parts)


async def _haathi_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HaathiError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(InvalidArgument(_validation_message(exc)))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    err: HaathiError
    if exc.status_code == 404:
        err = NotFound(f"no such route: {exc.detail}")
    elif exc.status_code == 405:
        err = InvalidArgument("method not allowed on this route")
    else:
        err = HaathiError(str(exc.detail))
        return JSONResponse(err.to_dict(), status_code=exc.status_code)
    return error_response(err)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("internal error", exc_info=exc)
    return error_response(HaathiError(f"internal error: {type(exc).__name__}: {exc}"))


def install(app: FastAPI) -> None:
    handlers: dict[Any, Any] = {
        HaathiError: _haathi_error,
        RequestValidationError: _validation_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
