"""Live updates of a job's pages, and of a spout's or service's output: server-sent events at
the page's URL plus ``/events`` (``{job}/events``: its state and progress; ``{job}/logs/events``,
``?datum=D``: those and each datum's output as the job records it; ``{pipeline}/events?since=N``:
the lines its program prints after line N). ``console.js`` listens and changes the page in place.

A stream holds no server thread while it waits: it is a coroutine on the server's event loop
that sleeps between polls, and each poll is one short hop to a request thread (the caller's
token checked again, the job read, and its logs read again only when its counts moved: a
running job records its datums about once a second). It ends, with an ``end`` event, when the
job ends (the browser then stops listening), when the caller's token stops working or the
job goes away; silently when the browser goes away, or when the server stops
(:meth:`Streams.close_all`: the browser's ``EventSource`` reconnects to the next server).
A server takes at most :data:`MAX_STREAMS` at once (each costs a poll a second): past that it
answers 503, and the page stays as it was rendered.

Events (``data`` is JSON; what people wrote is shown with its control characters escaped, as
the pages show it):

- ``job``: ``{state, reason, ended, summary, percent, segments}`` (:class:`Progress`), sent
  when it changes;
- ``log``: ``{datum, short, output, link}``, once per datum that printed something;
- ``capped``: more output than a page shows (``{command}`` prints all of it);
- ``lines``: ``{lines: [{seq, run, text}]}``, a spout's or service's new lines (its stream
  never ends by itself: the program runs on);
- ``end``: ``{state, why}`` (``why``: ``ended``, ``signed-out``, ``gone``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from haathi.console import session
from haathi.console.logs import Shown, cli_command
from haathi.console.progress import Progress
from haathi.console.render import visible
from haathi.errors import (
    FailedPrecondition,
    HaathiError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from haathi.models.ids import repo_key

log = logging.getLogger("haathi.console")

MAX_STREAMS = 200  # at once, per server process
LINES_PER_EVENT = 500  # of a daemon's output (the rest comes at the next poll)
FIRST_DELAY_S = 1.0  # between polls while the job moves (it records about once a second)
MAX_DELAY_S = 5.0  # ...backing off to this while nothing changes
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
RETRY_MS = 3000  # how soon a browser reconnects when a stream breaks


class Streams:
    """The live streams of one console: how many are open, and whether the server stops."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self.open = 0
        self.stopping = asyncio.Event()  # bound to the server's loop at its first wait

    def close_all(self) -> None:
        """End every stream now and refuse new ones (the server is stopping; call it on the
        server's event loop)."""
        self.stopping.set()


def event(kind: str, data: dict[str, Any]) -> str:
    """One server-sent event (its JSON on one line: newlines and U+2028 escaped)."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=True)}\n\n"


@dataclass
class Update:
    """What one poll found: events to send, and whether the stream is over."""

    events: list[str] = field(default_factory=list)
    over: bool = False


class Watch(Protocol):
    """What a stream polls: a job, or a daemon's output."""

    @property
    def what(self) -> str: ...  # (named in the server's log when a poll fails)

    def poll(self) -> Update: ...


def _ended(why: str, exc: HaathiError | None = None) -> Update:
    data = {"state": "", "why": why} | ({"message": visible(exc.message)} if exc else {})
    return Update([event("end", data)], over=True)


def _polled(poll: Callable[[], Update], *gone: type[HaathiError]) -> Update:
    """``poll()`` as the caller; its errors as events that end the stream (``gone``: what
    it watches is no longer there for the caller)."""
    try:
        return poll()
    except Unauthenticated:
        return _ended("signed-out")
    except gone as exc:
        return _ended("gone", exc)


@dataclass
class JobWatch:
    """What a stream knows of its job between polls (the polls run in request threads, one
    at a time)."""

    request: Request
    key: str
    job: str
    logs: bool
    datum: str | None = None
    last: Progress | None = None
    shown: Shown | None = None

    def poll(self) -> Update:
        """Read the job as the caller (and its logs if they may have grown); the caller's
        errors as events that end the stream."""
        return _polled(self._poll, NotFound, PermissionDenied)

    @property
    def what(self) -> str:
        return f"job {self.key}@{self.job}"

    def _poll(self) -> Update:
        api = session.caller_api(self.request)
        info = api.inspect_job(self.key, self.job)
        now = Progress.of(info)
        update = Update()
        moved = now != self.last
        if moved:
            update.events.append(event("job", now.to_event()))
        if self.logs and moved:
            if self.shown is None:
                self.shown = Shown(self.key, info.id, set())
            if not self.shown.capped:
                _, logs = api.logs(self.key, info.id, self.datum)
                for e in self.shown.take(logs):
                    data = {"datum": e.datum, "short": e.datum[:12], "output": visible(e.output),
                            "link": e.link}  # fmt: skip
                    update.events.append(event("log", data))
                if self.shown.capped:
                    command = cli_command(self.key, info.id, self.datum)
                    update.events.append(event("capped", {"command": command}))
        self.last = now
        if info.state.terminal:
            update.events.append(event("end", {"state": info.state.value, "why": "ended"}))
            update.over = True
        return update


@dataclass
class DaemonWatch:
    """A spout's or service's output after line ``since``, between polls."""

    request: Request
    key: str
    since: int

    @property
    def what(self) -> str:
        return f"the output of {self.key}"

    def poll(self) -> Update:
        # (FailedPrecondition: no longer a spout or service)
        return _polled(self._poll, NotFound, PermissionDenied, FailedPrecondition)

    def _poll(self) -> Update:
        api = session.caller_api(self.request)
        lines = api.daemon_logs(self.key, since=self.since, limit=LINES_PER_EVENT)
        if not lines:
            return Update()
        self.since = lines[-1].seq
        shown = [{"seq": x.seq, "run": x.run, "text": visible(x.text)} for x in lines]
        return Update([event("lines", {"lines": shown})])


class EventStream(StreamingResponse):
    """A ``text/event-stream`` answer that stops as soon as the browser goes away (whatever
    the ASGI server's version: it listens for the disconnect itself)."""

    def __init__(self, events: AsyncIterator[str]) -> None:
        headers = {"X-Accel-Buffering": "no"}  # a proxy in front passes each event on
        super().__init__(events, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = False
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone = True
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await send({"type": "http.response.start", "status": self.status_code,
                            "headers": self.raw_headers})  # fmt: skip
                async for text in self.body_iterator:
                    body = text if isinstance(text, bytes) else str(text).encode()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                group.cancel_scope.cancel()
        finally:  # cut off between two events: the stream's own clean-up runs now, not at GC
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
        if not gone:
            with suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _stream(watch: Watch, first: Update, streams: Streams) -> AsyncIterator[str]:
    streams.open += 1
    try:
        yield f"retry: {RETRY_MS}\n\n"
        update, delay, quiet = first, FIRST_DELAY_S, 0.0
        while True:
            for text in update.events:
                yield text
            if update.over:
                return
            delay = FIRST_DELAY_S if update.events else min(delay * 1.5, MAX_DELAY_S)
            quiet = 0.0 if update.events else quiet + delay
            if quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield ": still here\n\n"
            with suppress(TimeoutError):
                await asyncio.wait_for(streams.stopping.wait(), delay)
            if streams.stopping.is_set():
                return  # no end event: the browser reconnects to the next server
            try:
                update = await run_in_threadpool(watch.poll)
            except HaathiError as exc:  # e.g. the store is busy: try again at the next poll
                log.warning("console: a live update of %s failed: %s", watch.what, exc.message)
                update = Update()
    finally:
        streams.open -= 1


def _refusal(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status)


def endpoint(*, logs: bool) -> Callable[[Request], Any]:
    """The events of a job's page (``logs``: of its logs page)."""

    def watch(request: Request, key: str) -> JobWatch:
        datum = request.query_params.get("datum") or None if logs else None
        return JobWatch(request, key, request.path_params["job"], logs, datum)

    return _endpoint("log_events" if logs else "job_events", watch)


def _since(request: Request) -> int:
    raw = request.query_params.get("since", "0")
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidArgument(f"since must be a line's number, got {raw[:20]!r}")
    return int(raw)


def _endpoint(
    name: str, make: Callable[[Request, str], JobWatch | DaemonWatch]
) -> Callable[[Request], Any]:
    """A route's events: of the watch ``make`` makes of the request and its pipeline's key."""

    async def events(request: Request) -> Response:
        streams: Streams = request.app.state.streams
        if streams.stopping.is_set() or streams.open >= streams.limit:
            return _refusal(503, "too many live views: reload the page later")
        params = request.path_params
        try:
            watch = make(request, repo_key(params["project"], params["pipeline"]))
            first = await run_in_threadpool(watch._poll)  # errors as statuses, not events
        except Unauthenticated as exc:
            return _refusal(401, exc.message)
        except HaathiError as exc:
            return _refusal(exc.http_status, exc.message)
        return EventStream(_stream(watch, first, streams))

    events.__name__ = events.__qualname__ = name
    return events


daemon_events = _endpoint(
    "daemon_events", lambda request, key: DaemonWatch(request, key, _since(request))
)
"""The events of a spout's or service's page: the lines its program prints."""
