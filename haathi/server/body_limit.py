"""Request body limits of the REST API, enforced before a route reads a byte.

A request whose ``Content-Length`` passes its limit is answered 413 at once: the client need
not send the body (nor the server read it) to learn it is refused. A body without a length
(``Transfer-Encoding: chunked``) is counted as it streams and refused once it passes the
limit. Uploads (``POST .../modify``) have the server's ``--max-upload`` (none by default);
every other route takes a JSON document of at most :data:`MAX_JSON_BYTES` (less under a
smaller ``--max-upload``), so no request can make the server hold a huge body in memory.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haathi.errors import TooLarge
from haathi.server.envelope import error_response

MAX_JSON_BYTES = 8 * 1024 * 1024  # far above any spec, description or metadata edit


def is_upload(scope: Scope) -> bool:
    """Whether the request is a framed upload (the only route whose body holds file bytes)."""
    return scope.get("method") == "POST" and str(scope.get("path", "")).endswith("/modify")


def _declared(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _too_large(limit: int, what: str) -> TooLarge:
    return TooLarge(
        f"{what} is larger than this server accepts ({limit} bytes); nothing was written",
        limit=limit,
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, error: TooLarge) -> None:
    """Answer 413 and close the connection: the rest of the body is never read."""
    response = error_response(error)
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


class BodyLimit:
    """ASGI middleware refusing request bodies over their limit (see the module)."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int | None) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    def limit(self, scope: Scope) -> tuple[int | None, str]:
        """The request's limit (None: none) and what to call its body in the error."""
        if is_upload(scope):
            return self.max_upload_bytes, "upload"
        most = MAX_JSON_BYTES
        if self.max_upload_bytes is not None:
            most = min(most, self.max_upload_bytes)
        return most, "request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit(scope)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _declared(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, _too_large(limit, what))
            return
        total = 0
        refused = answered = False

        async def counted() -> Message:
            nonlocal total, refused
            message = await receive()
            total += len(message.get("body", b""))
            if total > limit and not refused:
                refused = True  # answer here: a route may turn errors in its body into a 400
                if not answered:
                    await _refuse(scope, receive, send, _too_large(limit, what))
            return {"type": "http.disconnect"} if refused else message

        async def unless_refused(message: Message) -> None:
            nonlocal answered
            if not refused:  # else the route, reading a disconnect, answers no one
                answered = True
                await send(message)

        await self.app(scope, counted, unless_refused)
