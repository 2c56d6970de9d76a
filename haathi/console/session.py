"""Who the browser is: the signed-in token, kept in a cookie, and the Api as its holder.

With auth on, signing in checks a token and keeps it in the ``haathi_token`` cookie:
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), ``Secure``
over HTTPS, for the browser's session; never in a URL. Every page then calls the same
:meth:`~haathi.api.Api.for_token` the REST routes call, so a page shows what that token's
holder may read, as the API would. A token that stopped working (expired, revoked) sends
the browser back to the sign-in page, the cookie forgotten. Signing out forgets the token in
this browser (it stays valid elsewhere: ``haathi auth revoke`` ends it). With auth off there
is no sign-in: every page acts as the server does for any client.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from haathi.api import Api
from haathi.console import csrf, urls

MAX_TOKEN_CHARS = 1024  # haathi's tokens have 64; anything longer is not one


def store_api(request: Request) -> Api:
    """The server's Api, unrestricted: only for signing in (use :func:`caller_api`)."""
    api = request.app.state.api
    assert isinstance(api, Api)
    return api


def token_of(request: Request) -> str | None:
    return request.cookies.get(csrf.TOKEN_COOKIE) or None


def caller_api(request: Request) -> Api:
    """The Api as the signed-in caller (with auth off, the Api itself); Unauthenticated when
    auth is on and the browser has no working token."""
    return store_api(request).for_token(token_of(request))


def here(request: Request) -> str:
    """The path (and query) of the request: where to come back to after signing in."""
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


def to_sign_in(request: Request) -> Response:
    """The redirect to the sign-in page (303), forgetting a token that no longer works."""
    had_token = token_of(request) is not None
    target = urls.sign_in(here(request) if request.method == "GET" else None, ended=had_token)
    response = RedirectResponse(target, status_code=303)
    if had_token:
        forget_token(request, response)
    return response


def keep_token(request: Request, response: Response, token: str) -> None:
    """Sign the browser in: keep ``token``, and start a new session (a new CSRF token)."""
    secure = csrf.is_https(request.scope)
    response.headers.append("set-cookie", csrf.cookie_header(csrf.TOKEN_COOKIE, token,
                                                             secure=secure))  # fmt: skip
    response.headers.append("set-cookie", csrf.session_cookie(csrf.new_session(), secure=secure))


def forget_token(request: Request, response: Response) -> None:
    """Sign the browser out: drop the token cookie and start a new session."""
    secure = csrf.is_https(request.scope)
    response.headers.append(
        "set-cookie", csrf.cookie_header(csrf.TOKEN_COOKIE, "", secure=secure, max_age=0)
    )
    response.headers.append("set-cookie", csrf.session_cookie(csrf.new_session(), secure=secure))
