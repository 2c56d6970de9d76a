"""The console's one CSRF mechanism: a per-session token checked on every request that is not
a read (any method but GET, HEAD and OPTIONS), before any route runs.

Each browser holds a random session ID in the ``haathi_session`` cookie (HttpOnly,
SameSite=Strict; set on its first visit, replaced at sign-in and sign-out). Its CSRF token is
an HMAC of the session's ID and the signed-in token (:func:`csrf_token`): pages carry it (a
hidden ``csrf_token`` form field, the ``csrf-token`` meta tag for scripts), and a write must
send it back, as that form field (``application/x-www-form-urlencoded``) or as the
``X-CSRF-Token`` header (a script's request; an upload). Another site can neither read it nor
compute it. A request without it, with a wrong one, or whose ``Origin`` is another site's is
refused (403) before it reaches a route: nothing changes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "haathi_session"
TOKEN_COOKIE = "haathi_token"  # the signed-in token (haathi.console.session)
FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 64 * 1024  # a form that carries its token in the body (files go by fetch)
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

Refusal = Callable[[Scope, str], Response]


def new_session() -> str:
    return secrets.token_urlsafe(32)


def cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies (a malformed Cookie header: those that parse)."""
    jar: SimpleCookie = SimpleCookie()
    for value in Headers(scope=scope).getlist("cookie"):
        try:
            jar.load(value)
        except Exception:  # http.cookies raises CookieError, and others on odd input
            continue
    return {k: m.value for k, m in jar.items()}


def session_of(scope: Scope) -> str:
    """The request's session ID (put in the scope by :class:`CsrfGuard`)."""
    return str(scope["state"]["console_session"])


def csrf_token(session: str, token: str | None) -> str:
    """The CSRF token of a session (and of the token signed in through it, if any)."""
    message = b"haathi console csrf\0" + (token or "").encode()
    return hmac.new(session.encode(), message, hashlib.sha256).hexdigest()


def session_cookie(session: str, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that gives a browser its session ID."""
    return cookie_header(SESSION_COOKIE, session, secure=secure)


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A console cookie: HttpOnly, SameSite=Strict, for the whole site; ``max_age`` 0 deletes
    it (None: it lasts as long as the browser's session)."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def is_https(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


def _same_origin(scope: Scope, origin: str) -> bool:
    host = Headers(scope=scope).get("host", "")
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


class CsrfGuard:
    """ASGI middleware: gives each browser a session, refuses writes without its CSRF token
    (``refusal`` renders the 403)."""

    def __init__(self, app: ASGIApp, *, refusal: Refusal) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        jar = cookies(scope)
        session = jar.get(SESSION_COOKIE, "")
        fresh = not _SESSION_RE.fullmatch(session)
        if fresh:
            session = new_session()
        scope.setdefault("state", {})["console_session"] = session
        if scope["method"] not in SAFE_METHODS:
            why, receive = await self._check(scope, receive, jar, None if fresh else session)
            if why is not None:
                await self.refusal(scope, why)(scope, receive, send)
                return
        if fresh:
            send = _setting_session(send, session_cookie(session, secure=is_https(scope)))
        await self.app(scope, receive, send)

    async def _check(
        self, scope: Scope, receive: Receive, jar: dict[str, str], session: str | None
    ) -> tuple[str | None, Receive]:
        """Why the write is refused (None: it is not), and how the route reads its body."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and not _same_origin(scope, origin):  # "null" too
            return f"the request came from another site ({origin})", receive
        if headers.get("sec-fetch-site") == "cross-site":
            return "the request came from another site", receive
        if session is None:
            return "the browser sent no console session (cookies off, or a stale page)", receive
        sent = headers.get(HEADER)
        if sent is None:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/x-www-form-urlencoded":
                body, receive = await _buffered(receive)
                if body is None:
                    return "the form is too large", receive
                sent = parse_qs(body.decode("latin-1")).get(FIELD, [None])[0]
        if not sent:
            return "the request carries no CSRF token", receive
        wanted = csrf_token(session, jar.get(TOKEN_COOKIE))
        if not hmac.compare_digest(sent.encode("latin-1", "replace"), wanted.encode()):
            return "the CSRF token does not match this session (reload the page)", receive
        return None, receive


async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """The request's whole body (None past :data:`MAX_FORM_BYTES`), and a ``receive`` that
    hands it to the route again."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        more = bool(message.get("more_body", False))
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _setting_session(send: Send, value: str) -> Send:
    """``send`` adding the new session's cookie to the response, unless the route set the
    session cookie itself (sign-in and sign-out replace it)."""
    header = (b"set-cookie", value.encode("latin-1"))
    prefix = f"{SESSION_COOKIE}=".encode()

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(k == b"set-cookie" and v.startswith(prefix) for k, v in headers):
                message = {**message, "headers": [*headers, header]}
        await send(message)

    return sending
