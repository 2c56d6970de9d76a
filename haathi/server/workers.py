"""``haathi serve --workers N``: N server processes on the same listening sockets.

The parent process binds the sockets and checks the store as a one-process server does
(:class:`~haathi.server.serve.Server`), then starts N worker processes and supervises them; it
serves nothing itself. The workers are spawned (fresh interpreters, each opening the store
itself: nothing opened by the parent, no thread and no database connection, is inherited
through a fork) and are handed the already listening sockets, so the kernel gives each new
connection to one of them (a pre-fork server, as gunicorn's, rather than a port per worker).

- Every worker serves the REST API. Worker 0 also runs the job runner (queued jobs and cron
  ticks: one runner, so a cron tick is never taken twice) and the S3 gateway (its multipart
  uploads live in that process's memory); ``wait commit`` and ``POST /v1/jobs/run`` work in
  any worker, as jobs are claimed and waited on through the database.
- What the workers share is in the database (commits, branch heads, job claims, tokens;
  :meth:`~haathi.meta.database.Database.named_lock` for branch writers), plus one number in
  shared memory: the auth epoch (:class:`~haathi.api.access.AuthOffMemo`), so auth activated
  through one worker is enforced by all at once.
- A worker that dies is started again in its place, with its role, and the parent says so on
  stderr. A worker that fails before it serves (its store cannot be opened), or more than
  :data:`MAX_RESTARTS` deaths within :data:`RESTART_WINDOW_S`, stop the whole server with
  exit code 1: it would fail the same way again.
- SIGTERM or SIGINT to the parent: every worker gets SIGTERM and stops gracefully (the job
  runner gives back the job it was running); one still running after :data:`STOP_TIMEOUT_S`
  (or at a second signal) is killed. A worker also gets SIGTERM when its parent dies (Linux:
  ``PR_SET_PDEATHSIG``), so not even a killed parent leaves one behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from haathi import interrupts
from haathi.api import Api
from haathi.api.access import SharedCounter
from haathi.config import store_config
from haathi.errors import HaathiError
from haathi.runtime import open_store
from haathi.server.s3.multipart import UploadLimits
from haathi.server.serve import Bound, Server
from haathi.server.sidecar import JobGatewayFactory

MAX_WORKERS = 64
STOP_TIMEOUT_S = 30.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Plan:
    """What every worker is given (pickled to it): the store and the server's settings."""

    address: str
    overrides: dict[str, Any]
    run_worker: bool
    max_upload_bytes: int | None
    log_level: str
    s3_uploads: UploadLimits | None
    s3_url: str | None


def serve(server: Server, count: int, address: str, overrides: dict[str, Any],
          say: Callable[[str], None]) -> int:  # fmt: skip
    """Serve ``server``'s sockets with ``count`` worker processes, each opening the store at
    ``address`` itself (``server`` has checked it, and is closed here); the exit code."""
    plan = Plan(
        address, overrides, server.run_worker, server.max_upload_bytes, server.log_level,
        server.s3_uploads, server.s3_url,
    )  # fmt: skip
    server.close_store()
    try:
        return Workers(plan, server.sock, server.s3_sock, count, say).run()
    finally:
        server.close_sockets()


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    ready: Connection  # says "serving" once, or ends (the worker died before it served)
    heard: bool = False
    serving: bool = False


@dataclass
class Workers:
    """The parent's side: starts ``count`` workers serving ``sock`` (worker 0 also
    ``s3_sock``) and keeps them running until a signal stops them; ``say`` prints a line for
    the operator."""

    plan: Plan
    sock: socket.socket
    s3_sock: socket.socket | None
    count: int
    say: Callable[[str], None]
    _mp: Any = field(default_factory=lambda: multiprocessing.get_context("spawn"))
    _workers: list[_Worker] = field(default_factory=list)
    _deaths: list[float] = field(default_factory=list)
    _signals: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.auth_epoch = self._mp.RawValue("Q", 0)

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (exit code 0), or until the workers cannot be kept
        running (1)."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            self._workers = [self._start(i) for i in range(self.count)]
            return self._supervise(wake_r)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in handlers.items():
                signal.signal(s, handler)
            os.close(wake_r)
            os.close(wake_w)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)
        if len(self._signals) > 1:  # a second Ctrl-C: no more waiting for graceful stops
            for w in self._workers:
                if w.process.is_alive():
                    w.process.kill()

    def _start(self, index: int) -> _Worker:
        ready_r, ready_w = self._mp.Pipe(duplex=False)
        process = self._mp.Process(
            target=worker_main,
            args=(self.plan, index, os.getpid(), self.sock,
                  self.s3_sock if index == 0 else None, self.auth_epoch, ready_w),
            name=f"haathi-serve-worker-{index}",
        )  # fmt: skip
        with interrupts.held():  # (it ignores Ctrl-C once it runs: worker_main)
            process.start()
        ready_w.close()
        return _Worker(index, process, ready_r)

    def _supervise(self, wake: int) -> int:
        while not self._signals:
            waiting: list[Any] = [wake]
            for w in self._workers:
                waiting.append(w.process.sentinel)
                if not w.heard:
                    waiting.append(w.ready)
            woke = wait(waiting)
            if wake in woke:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)
            if self._signals:
                return 0
            for i, w in enumerate(self._workers):
                if not w.heard and w.ready in woke:
                    w.heard = True
                    with contextlib.suppress(EOFError, OSError):
                        w.serving = w.ready.recv() == "serving"
                if w.process.sentinel in woke:
                    replacement = self._replace(w)
                    if replacement is None:
                        return 1
                    self._workers[i] = replacement
        return 0

    def _replace(self, dead: _Worker) -> _Worker | None:
        """A new worker in place of ``dead``; None when the server should stop instead."""
        dead.process.join()
        dead.ready.close()
        how = _exit_text(dead.process.exitcode)
        if not dead.serving:
            self.say(f"haathi serve: worker {dead.index} {how} before it served; stopping")
            return None
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S] + [now]
        if len(self._deaths) > MAX_RESTARTS:
            self.say(
                f"haathi serve: worker {dead.index} {how}, the {len(self._deaths)}th death "
                f"within {RESTART_WINDOW_S:g} s; stopping"
            )
            return None
        self.say(
            f"haathi serve: worker {dead.index} (pid {dead.process.pid}) {how}; starting it again"
        )
        return self._start(dead.index)

    def _stop_all(self) -> None:
        for w in self._workers:
            if w.process.is_alive():
                with contextlib.suppress(OSError):
                    w.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                self.say(
                    f"haathi serve: worker {w.index} did not stop within {STOP_TIMEOUT_S:g} s; "
                    "killing it"
                )
                w.process.kill()
                w.process.join()
            w.ready.close()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before this process could follow it
        sys.exit(0)


def worker_main(
    plan: Plan,
    index: int,
    parent: int,
    sock: socket.socket,
    s3_sock: socket.socket | None,
    auth_epoch: SharedCounter,
    ready: Connection,
) -> None:
    """A worker process: open the store, serve until SIGTERM, close the store."""
    from haathi import allocator

    allocator.tune()
    # libuv (uvloop) accepts one connection at a time, letting the other workers take the
    # next: otherwise the first worker awake takes every connection waiting
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    # Ctrl-C reaches every process of the terminal's group: the parent stops the workers
    interrupts.ignore()
    made: list[Server] = []

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        """Before the server is made: stop at once. After: have uvicorn stop (it may not
        have put its own handler in place yet). uvicorn stops gracefully on SIGTERM, then
        raises it again with this handler back: the store is closed, the process exits 0."""
        if not made:
            raise SystemExit(0)
        made[0].uvicorn.should_exit = True

    signal.signal(signal.SIGTERM, on_sigterm)
    _die_with_parent(parent)
    try:
        made.append(_server(plan, index, sock, s3_sock, auth_epoch))
    except HaathiError as exc:
        print(f"error: haathi serve worker {index}: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    threading.Thread(target=_report_serving, args=(made[0], ready), daemon=True).start()
    made[0].run()


def _server(
    plan: Plan,
    index: int,
    sock: socket.socket,
    s3_sock: socket.socket | None,
    auth_epoch: SharedCounter,
) -> Server:
    api = Api(
        open_store(store_config(plan.address, plan.overrides)), auth_epoch=auth_epoch,
        gateways=JobGatewayFactory(),
    )  # fmt: skip
    try:
        return Server(
            api, run_worker=plan.run_worker and index == 0,
            max_upload_bytes=plan.max_upload_bytes, log_level=plan.log_level,
            s3_uploads=plan.s3_uploads, bound=Bound(sock, s3_sock, plan.s3_url), worker=index,
        )  # fmt: skip
    except BaseException:
        api.close()
        raise


def _report_serving(server: Server, ready: Connection) -> None:
    while not server.uvicorn.started:
        if server.uvicorn.should_exit:
            return
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        ready.send("serving")
        ready.close()
