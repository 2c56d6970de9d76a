"""How a console page answers: as the signed-in caller, in a worker thread, errors as pages.

A page is a function of a :class:`Page` (the request, the Api as its caller, the form of a
write) returning a response; :func:`page` makes it an endpoint. What it raises becomes a
page too, never a traceback: Unauthenticated sends the browser to sign in, NotFound is the
404 page with a way back (:class:`Missing` names the nearest page that exists), any other
``HaathiError`` its message with its HTTP status, anything unexpected a 500 page (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

from haathi.api import Api
from haathi.console import csrf, render, session, urls
from haathi.errors import HaathiError, InvalidArgument, NotFound, Unauthenticated

log = logging.getLogger("haathi.console")


@dataclass
class Page:
    """What a page is given: the request, the Api as the signed-in caller, the form posted."""

    request: Request
    api: Api
    form: dict[str, str] = field(default_factory=dict)

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(
            render.html(template, **base_context(self.request, self.api), **context),
            status_code=status,
        )


class Missing(NotFound):
    """NotFound with the nearest page that exists: the 404 page links back to it."""

    def __init__(self, message: str, back: tuple[str, str]) -> None:
        super().__init__(message)
        self.back = back


@contextmanager
def back_to(label: str, url: str) -> Iterator[None]:
    """Within it, an object that does not exist (or a URL that cannot name one) is a
    :class:`Missing` leading back to ``url``."""
    try:
        yield
    except Missing:
        raise
    except (NotFound, InvalidArgument) as exc:
        raise Missing(exc.message, (label, url)) from exc


def base_context(request: Request, api: Api | None) -> dict[str, Any]:
    """What the layout needs: who is signed in, the CSRF token, where we are."""
    caller = None if api is None else api.caller
    session_id = csrf.session_of(request.scope)
    return {
        "who": None if caller is None else caller.subject,
        "csrf_token": csrf.csrf_token(session_id, session.token_of(request)),
        "path": request.url.path,
    }


def error_page(request: Request, api: Api | None, exc: HaathiError) -> HTMLResponse:
    """``exc`` as a page with its status (404: the way back)."""
    back = exc.back if isinstance(exc, Missing) else None
    return message_page(request, api, exc.message, exc.http_status, back)


def message_page(
    request: Request,
    api: Api | None,
    message: str,
    status: int,
    back: tuple[str, str] | None = None,
) -> HTMLResponse:
    """A page saying ``message``, with HTTP status ``status`` and a link back."""
    title = {404: "Not found", 403: "Not allowed"}.get(status, "Something went wrong")
    body = render.html(
        "error.html",
        **base_context(request, api),
        status=status,
        title=title,
        message=message,
        back=back,
    )
    return HTMLResponse(body, status_code=status)


Handler = Callable[[Page], Response]


def _answer(handler: Handler, request: Request, form: dict[str, str]) -> Response:
    api: Api | None = None
    try:
        api = session.caller_api(request)
        return handler(Page(request, api, form))
    except Unauthenticated:
        return session.to_sign_in(request)
    except HaathiError as exc:
        return error_page(request, api, exc)
    except Exception as exc:
        log.error("console: internal error on %s", request.url.path, exc_info=exc)
        return error_page(request, api, HaathiError(f"internal error ({type(exc).__name__})"))


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a posted form (``application/x-www-form-urlencoded``; none for a read or
    another body), each field's first value."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method in csrf.SAFE_METHODS or kind != "application/x-www-form-urlencoded":
        return {}
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of a page: ``handler`` runs in a worker thread as the signed-in caller."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_answer, handler, request, form)

    endpoint.__name__ = endpoint.__qualname__ = handler.__name__
    return endpoint


async def not_found(request: Request, exc: Exception) -> Response:
    """A URL that is no page (or a method a page does not take): the 404 page."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return message_page(request, None, f"{request.method} is not allowed here", 405)
    message = f"there is no page at {request.url.path}"
    return message_page(request, None, message, 404, ("the overview", urls.OVERVIEW))


def refusal(scope: Scope, why: str) -> Response:
    """A write refused by the CSRF check (403): the page says why; nothing changed."""
    return message_page(Request(scope), None, f"refused: {why}. Nothing was changed.", 403)
