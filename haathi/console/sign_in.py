"""Signing in and out (``/sign-in``, ``/sign-out``): see :mod:`haathi.console.session`.

The sign-in page takes a token (``haathi auth get-auth-token``, or the one ``haathi auth
login`` saved), checks it with the server, keeps it in a cookie and goes on to the page the
browser came from. With auth off there is nothing to sign in to: it goes straight on.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from haathi.console import render, session, urls
from haathi.console.pages import base_context, read_form
from haathi.errors import Unauthenticated

ENDED = "Your token no longer works (it expired or was revoked): sign in again."


def _form(request: Request, nxt: str, *, status: int = 200, error: str | None = None) -> Response:
    notice = ENDED if request.query_params.get("ended") and error is None else None
    body = render.html(
        "sign_in.html", **base_context(request, None), next=nxt, error=error, notice=notice
    )
    return HTMLResponse(body, status_code=status)


def _show(request: Request) -> Response:
    nxt = urls.local_path(request.query_params.get("next"))
    if not session.store_api(request).auth_active():
        return RedirectResponse(nxt, status_code=303)
    return _form(request, nxt)


def _submit(request: Request, form: dict[str, str]) -> Response:
    nxt = urls.local_path(form.get("next"))
    api = session.store_api(request)
    if not api.auth_active():
        return RedirectResponse(nxt, status_code=303)
    token = form.get("token", "").strip()
    if not token:
        return _form(request, nxt, status=400, error="Paste a token to sign in.")
    try:
        if len(token) > session.MAX_TOKEN_CHARS or not token.isascii():
            raise Unauthenticated("that is not a haathi token")
        api.caller_for_token(token)
    except Unauthenticated as exc:
        return _form(request, nxt, status=401, error=f"Not signed in: {exc.message}")
    response = RedirectResponse(nxt, status_code=303)
    session.keep_token(request, response, token)
    return response


def _sign_out(request: Request) -> Response:
    target = urls.SIGN_IN if session.store_api(request).auth_active() else urls.OVERVIEW
    response = RedirectResponse(target, status_code=303)
    session.forget_token(request, response)
    return response


async def show(request: Request) -> Response:
    """``GET /sign-in``: the form (with auth off: on to ``next``)."""
    return await run_in_threadpool(_show, request)


async def submit(request: Request) -> Response:
    """``POST /sign-in``: check the token; keep it and go on, or show the form again."""
    form = await read_form(request)
    return await run_in_threadpool(_submit, request, form)


async def sign_out(request: Request) -> Response:
    """``POST /sign-out``: forget the token in this browser."""
    return await run_in_threadpool(_sign_out, request)
