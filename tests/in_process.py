"""haathi's process boundaries, crossed in this process: the CLI (:func:`run_cli`) and the
server (:class:`AppTransport`, :class:`InProcessServer`).

``haathi serve`` without a socket: the server's ASGI app in this process, behind a
synchronous httpx transport (httpx's own ``ASGITransport`` is async only, and Starlette's
TestClient reads whole bodies), so that ``RemoteApi`` runs every request through the real
routes, middleware and error envelopes at the cost of a function call instead of a TCP
round trip and a uvicorn server.

:class:`AppTransport` does for one app what uvicorn does, minus the network: the app runs on
an event loop in a background thread, with its lifespan (the server's job runner runs
meanwhile). A request is a task; the thread that sent it feeds the request body to the app
as the app asks for it, and takes the response body chunk by chunk (both stream, with one
chunk in flight). Messages follow uvicorn's (ASGI spec 2.3): ``http.disconnect`` once the
response is complete or the client has gone; sends after the client has gone are dropped;
an app that fails before it answers gives a 500, after it has begun, a cut-off body.

What it does not do is what tests of the real server are for (they use the ``server``
fixture): sockets, timeouts, several connections at once, the S3 gateway's port.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import os
import queue
import signal
import sys
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx

from haathi.api import Api
from haathi.client import Client
from haathi.client.remote import RemoteApi
from haathi.config import store_config
from haathi.runtime import open_store
from haathi.server.app import create_app
from haathi.server.sidecar import JobGatewayFactory

Message = MutableMapping[str, Any]


def run_cli(
    args: list[str], *, env: dict[str, str], cwd: Path, input: bytes | None = None
) -> tuple[int, bytes, bytes]:
    """Run ``haathi ARGS`` through its entry point (:func:`haathi.cli.main.run`) in this
    process, as a shell would start it: with ``env`` added to the environment, ``cwd`` as the
    working directory and ``input`` on stdin; returns (exit code, stdout, stderr). What the
    command changes of the process (environment, directory, streams, its SIGTERM handler) is
    put back afterwards. It costs a function call where a process costs ~0.7 s of imports;
    tests of the process itself (signals, ``python -m haathi``) run the real one."""
    from haathi.cli.main import run

    out, err = io.BytesIO(), io.BytesIO()
    streams = (
        io.TextIOWrapper(io.BytesIO(input or b""), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams, saved_sigterm = (
        (sys.stdin, sys.stdout, sys.stderr),
        signal.getsignal(signal.SIGTERM),
    )
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        run(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        for stream in streams[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        signal.signal(signal.SIGTERM, saved_sigterm)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return code, out.getvalue(), err.getvalue()


ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Coroutine[Any, Any, None],
]

log = logging.getLogger(__name__)


class _Exchange:
    """One request and its response, between the client's thread and the app's task.

    The app's side (``receive``, ``send``) runs on the loop; it posts events to the client's
    thread, which alone touches the request body and the response: ``pull`` (the app wants
    the next piece of the body), ``start``, ``body`` and ``done`` (the app returned)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: httpx.Request) -> None:
        self.loop = loop
        self.request = request
        assert isinstance(request.stream, httpx.SyncByteStream)
        self.body = iter(request.stream)
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.timeout = (request.extensions.get("timeout") or {}).get("read")
        # the app's side, on the loop
        self.body_read = False
        self.started = False
        self.complete = False
        self.gone = False
        self.ended = asyncio.Event()  # the response is complete or the client has gone

    # the app's side -----------------------------------------------------------------------
    async def receive(self) -> Message:
        if not self.body_read and not self.ended.is_set():
            piece: asyncio.Future[bytes | None] = self.loop.create_future()
            self.events.put(("pull", piece))
            if await self._unless_ended(piece):
                chunk = piece.result()
                self.body_read = chunk is None
                return {
                    "type": "http.request",
                    "body": chunk or b"",
                    "more_body": not self.body_read,
                }
            piece.cancel()
        await self.ended.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.gone:
            return
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {message['type']}")
            self.started = True
            self.events.put(("start", message["status"], list(message.get("headers", []))))
            return
        if self.complete:
            raise RuntimeError(f"{message['type']} sent after the response was complete")
        if message["type"] != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {message['type']}")
        more = bool(message.get("more_body", False))
        chunk = b"" if self.request.method == "HEAD" else bytes(message.get("body", b""))
        taken: asyncio.Future[None] = self.loop.create_future()
        self.events.put(("body", chunk, more, taken))
        if not more:
            self.complete = True
            self.ended.set()
            return
        await self._unless_ended(taken)

    async def _unless_ended(self, future: asyncio.Future[Any]) -> bool:
        """Wait for ``future``, or for the exchange to end; whether ``future`` is done."""
        ended = asyncio.ensure_future(self.ended.wait())
        waits: list[asyncio.Future[Any]] = [future, ended]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        return future.done()

    def run(self, app: ASGIApp, scope: Message) -> None:
        """Start the app's task (on the loop)."""
        task = self.loop.create_task(app(scope, self.receive, self.send))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("exception in the ASGI application", exc_info=error)
        self.events.put(("done", error))

    def _client_gone(self) -> None:
        self.gone = True
        self.ended.set()

    # the client's side --------------------------------------------------------------------
    def client_gone(self) -> None:
        self.loop.call_soon_threadsafe(self._client_gone)

    def _resolve(self, future: asyncio.Future[Any], value: Any) -> None:
        def resolve() -> None:
            if not future.done():  # else the app stopped waiting for it
                future.set_result(value)

        self.loop.call_soon_threadsafe(resolve)

    def next_event(self) -> tuple[Any, ...]:
        """The app's next ``start``, ``body`` or ``done``, feeding it the request body as it
        asks (an error reading the body: the app sees the client go, the caller the error)."""
        while True:
            try:
                event = self.events.get(timeout=self.timeout)
            except queue.Empty:
                self.client_gone()
                message = "the app did not answer in time"
                raise httpx.ReadTimeout(message, request=self.request) from None
            if event[0] != "pull":
                return event
            try:
                chunk = next(self.body, None)
            except BaseException:
                self.client_gone()
                raise
            self._resolve(event[1], chunk)


class _ResponseBody(httpx.SyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        while not self.complete:
            event = self.exchange.next_event()
            if event[0] == "done":
                self.complete = True  # the connection is closed: nothing more will come
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body",
                    request=self.exchange.request,
                )
            _, chunk, more, taken = event
            self.exchange._resolve(taken, None)
            self.complete = not more
            if chunk:
                yield chunk

    def close(self) -> None:
        if not self.complete:
            self.complete = True
            self.exchange.client_gone()


class AppTransport(httpx.BaseTransport):
    """Serves requests with an ASGI app running in this process (see the module); the app's
    lifespan runs from :meth:`start` to :meth:`stop`. Clients share it: their ``close()``
    leaves the app running."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="haathi-in-process-app", daemon=True
        )
        self._lifespan: tuple[asyncio.Queue[Message], asyncio.Queue[Message]] | None = None
        self._lifespan_task: asyncio.Task[None] | None = None

    def _on_loop(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result()

    async def _lifespan_event(self, kind: str) -> None:
        assert self._lifespan is not None and self._lifespan_task is not None
        to_app, from_app = self._lifespan
        await to_app.put({"type": f"lifespan.{kind}"})
        answer = asyncio.ensure_future(from_app.get())
        await asyncio.wait([answer, self._lifespan_task], return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            self._lifespan_task.result()  # the app's error, if it raised one
            raise RuntimeError(f"the app's lifespan ended during {kind}")
        message = answer.result()
        if message["type"] != f"lifespan.{kind}.complete":
            raise RuntimeError(f"lifespan {kind} failed: {message.get('message', '')}")

    async def _startup(self) -> None:
        self._lifespan = (asyncio.Queue(), asyncio.Queue())
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}  # fmt: skip
        to_app, from_app = self._lifespan
        self._lifespan_task = self.loop.create_task(self.app(scope, to_app.get, from_app.put))
        await self._lifespan_event("startup")

    def start(self) -> AppTransport:
        """Start the loop and the app's lifespan; returns once the app has started."""
        self._thread.start()
        try:
            self._on_loop(self._startup())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def stop(self) -> None:
        """Shut the app down (its lifespan), then the loop."""
        try:
            self._on_loop(self._lifespan_event("shutdown"))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        raw_path = url.raw_path.partition(b"?")[0]
        path = raw_path.decode("ascii")
        scope: Message = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "client": ("127.0.0.1", 50000),
            "scheme": url.scheme,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "state": dict(self.state),
            "method": request.method,
            "path": urllib.parse.unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": url.query,
        }
        exchange = _Exchange(self.loop, request)
        # the app's task gets a context of its own, as a server's would, not the caller's
        self.loop.call_soon_threadsafe(exchange.run, self.app, scope, context=contextvars.Context())
        event = exchange.next_event()
        if event[0] == "done":  # as uvicorn answers for an app that failed before answering
            return httpx.Response(
                500,
                headers={"content-type": "text/plain; charset=utf-8", "connection": "close"},
                content=b"Internal Server Error",
                request=request,
            )
        _, status, headers = event
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseBody(exchange),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    def close(self) -> None:
        """A client closing: the app runs on for the others (:meth:`stop` ends it)."""


class InProcessServer:
    """A store served by the server's app through an :class:`AppTransport`: what the
    ``remote`` shape of the ``client`` fixture talks to. ``url`` only names it (no socket)."""

    url = "http://haathi.in-process"

    def __init__(
        self, api: Api, *, run_worker: bool = True, max_upload_bytes: int | None = None
    ) -> None:
        if run_worker:
            api.runner.check()  # as Server: a server whose jobs cannot run here does not start
        self.api = api
        app = create_app(api, run_worker=run_worker, max_upload_bytes=max_upload_bytes)
        self.transport = AppTransport(app)

    @classmethod
    def for_store(cls, address: str, **kw: Any) -> InProcessServer:
        api = Api(open_store(store_config(address, {})), gateways=JobGatewayFactory())
        try:
            return cls(api, **kw)
        except BaseException:
            api.close()
            raise

    def start(self) -> InProcessServer:
        try:
            self.transport.start()
        except BaseException:
            self.api.close()
            raise
        return self

    def connect(self, *, token: str | None = None, run_jobs: bool = True) -> Client:
        """A Client of the server, as ``haathi.connect(url)`` makes one."""
        return Client(RemoteApi(self.url, token=token, transport=self.transport), run_jobs=run_jobs)

    def stop(self) -> None:
        try:
            self.transport.stop()
        finally:
            self.api.close()
