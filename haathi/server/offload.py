"""Plain (sync) routes run in a worker thread in one hop, their JSON encoded there too.

FastAPI runs a sync route with three hops to a thread: one for each sync dependency, one for
the call and one to check the result against the return annotation, and each hop costs more
than a point lookup in the store. A route of an :class:`OffloadingRouter` is wrapped instead:
the request's coroutine awaits one call in the loop's executor that runs the route and
encodes its result (a :class:`~starlette.responses.Response` it returns is sent as it is).
The dependencies are ``async``; one that must do blocking work (the caller's token is
checked in the database) returns a :class:`Deferred` for such a route, done in the same hop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.types import Scope

REQUEST_THREADS = 40  # as many as FastAPI's own pool (anyio's default)


def install_executor() -> ThreadPoolExecutor:
    """Give the running loop an executor with :data:`REQUEST_THREADS` threads (the default
    has min(32, cores + 4): a few waiting requests, e.g. ``wait commit``, would stall the
    rest). The caller shuts it down."""
    executor = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="haathi-request")
    asyncio.get_running_loop().set_default_executor(executor)
    return executor


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, with the caller's context variables."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(None, context.run, fn, *args)


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` as a JSON body (the encoding FastAPI's JSONResponse uses)."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode(), status_code=status_code, media_type="application/json")


class Deferred:
    """A dependency's value still to be computed by ``fn(*args)``: an offloaded route gets the
    result, computed in the worker thread that runs it (see :func:`runs_in_thread`)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    def resolve(self) -> Any:
        return self.fn(*self.args)


def runs_in_thread(scope: Scope) -> bool:
    """Whether the request's route is offloaded, so its dependencies may return a
    :class:`Deferred`."""
    return getattr(scope.get("endpoint"), "__haathi_offloaded__", False) is True


def _offloaded(route: Callable[..., Any], status_code: int | None) -> Callable[..., Any]:
    def call(kwargs: dict[str, Any]) -> Response:
        args = {k: v.resolve() if isinstance(v, Deferred) else v for k, v in kwargs.items()}
        result = route(**args)
        return result if isinstance(result, Response) else json_response(result, status_code or 200)

    @functools.wraps(route)  # FastAPI reads the route's parameters through __wrapped__
    async def endpoint(**kwargs: Any) -> Response:
        return await in_thread(call, kwargs)  # type: ignore[no-any-return]

    endpoint.__haathi_offloaded__ = True  # type: ignore[attr-defined]
    return endpoint


class OffloadingRouter(APIRouter):
    """An APIRouter whose sync routes run in one hop to a worker thread (module docstring);
    the OpenAPI spec still comes from their signatures and return annotations."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _offloaded(endpoint, kwargs.get("status_code"))
        super().add_api_route(path, endpoint, **kwargs)
