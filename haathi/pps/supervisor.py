"""Watching a run of user code: feed its stdin, collect its output, enforce its timeout and
the ``cancel`` event, and leave nothing of it running.

:func:`supervise` watches a :class:`Child`: a :class:`Process` started here (sandbox ``none``),
leading its own process group, or a run in a launcher session
(:class:`haathi.pps.session.LauncherRun`). Stdout and stderr arrive on one pipe
(:class:`Pipes`), in arrival order; :class:`Output` keeps the last :data:`OUTPUT_CAP` bytes. A
stopped run gets SIGTERM, then SIGKILL :data:`KILL_GRACE` seconds later.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Protocol

OUTPUT_CAP = 1 << 20
"""Bytes of output kept per run (the last ones)."""

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL when a run is stopped (``none``); seconds a bwrap
sandbox is given to go down before its whole process group is killed."""

CANCEL_POLL = 0.05
"""Seconds between checks of the ``cancel`` event while the command is quiet."""

EXIT_POLL = 0.005
"""Seconds between exit checks where the kernel has no pidfd (before Linux 5.3)."""

DRAIN_AFTER_EXIT = 1.0
"""Seconds to keep reading output after the command exits, for escaped processes (``none``)."""


class Child(Protocol):
    """A started command, as :func:`supervise` watches it."""

    exit_fd: int | None  # readable when it may have exited (None: poll ``exited``)

    def exited(self) -> bool: ...

    def broken(self) -> bool: ...  # it can no longer exit normally (its sandbox is gone)

    def stop(self, sig: signal.Signals) -> None: ...

    def after_exit(self) -> None: ...  # kill what it left behind

    def finish(self) -> None: ...  # whatever happened: nothing of it is left running


class Process:
    """A command started here (sandbox ``none``), leading its own process group."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.exit_fd = _pidfd(proc.pid)

    def exited(self) -> bool:
        return _exited(self.proc.pid)

    def broken(self) -> bool:
        return False

    def stop(self, sig: signal.Signals) -> None:
        signal_group(self.proc.pid, sig)

    def after_exit(self) -> None:
        # The leader has exited but is not reaped yet, so its group ID cannot be reused: kill
        # whatever it left behind in the group.
        signal_group(self.proc.pid, signal.SIGKILL)

    def finish(self) -> None:
        if self.exit_fd is not None:
            os.close(self.exit_fd)
        if self.proc.returncode is None:  # not reaped yet, so the group ID is still ours
            signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Pipes:
    """A run's output pipe and, when it has stdin text, its stdin pipe (raw descriptors)."""

    def __init__(self, with_stdin: bool) -> None:
        self.out_r, self.out_w = os.pipe()
        self.in_r = self.in_w = -1
        if with_stdin:
            try:
                self.in_r, self.in_w = os.pipe()
            except OSError:
                self.close()
                raise

    def __enter__(self) -> Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def child_fds(self) -> list[int]:
        return [self.out_w] if self.in_r < 0 else [self.out_w, self.in_r]

    def close_child_ends(self) -> None:
        self.out_w = close_fd(self.out_w)
        self.in_r = close_fd(self.in_r)

    def close_stdin(self) -> None:
        self.in_w = close_fd(self.in_w)

    def close(self) -> None:
        self.close_child_ends()
        self.close_stdin()
        self.out_r = close_fd(self.out_r)


def close_fd(fd: int) -> int:
    """Close ``fd`` if it is open (``-1``: it is not), ignoring errors; returns ``-1``."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    return -1


def supervise(
    child: Child,
    pipes: Pipes,
    stdin_bytes: bytes | None,
    start: float,
    timeout: float | None,
    cancel: threading.Event | None,
    sink: Sink | None = None,
) -> tuple[Output, bool, bool]:
    """Feed stdin, collect output (each chunk also to ``sink`` as it comes), enforce the
    timeout and the cancel event until the command exits, then read the rest of its output;
    nothing of it is left running on return.

    Returns (output, timed out, cancelled).
    """
    out = Output(sink)
    timed_out = cancelled = False
    kill_at: float | None = None  # set once stopping: when SIGTERM turns into SIGKILL
    deadline = None if timeout is None else start + timeout
    pending = memoryview(stdin_bytes or b"")
    sel = selectors.DefaultSelector()
    try:
        sel.register(pipes.out_r, selectors.EVENT_READ, "out")
        if child.exit_fd is not None:
            sel.register(child.exit_fd, selectors.EVENT_READ, "exit")
        if pipes.in_w >= 0:
            os.set_blocking(pipes.in_w, False)
            sel.register(pipes.in_w, selectors.EVENT_WRITE, "in")
        exited = False
        out_open = True
        while not exited:
            now = time.monotonic()
            if kill_at is None and deadline is not None and now >= deadline:
                timed_out = True
            elif kill_at is None and cancel is not None and cancel.is_set():
                cancelled = True
            if kill_at is None and (timed_out or cancelled):
                child.stop(signal.SIGTERM)
                kill_at = now + KILL_GRACE
            elif kill_at is not None and now >= kill_at:
                child.stop(signal.SIGKILL)
                kill_at = math.inf
            wait = _next_wait(now, deadline, cancel, kill_at)
            if child.exit_fd is None:
                wait = EXIT_POLL if wait is None else min(wait, EXIT_POLL)
                exited = child.exited()
            if not exited and child.broken():
                exited = child.exited() or True  # a reply sent just before still counts
            for key, _ in sel.select(wait):
                if key.data == "exit":
                    exited = child.exited() or exited
                elif key.data == "out":
                    if not out.read(pipes.out_r):
                        sel.unregister(pipes.out_r)
                        out_open = False
                else:
                    pending = _feed_stdin(pipes, sel, pending)
        child.after_exit()
        _close_stdin(pipes, sel)
        drain_until = time.monotonic() + DRAIN_AFTER_EXIT
        while out_open:
            wait = drain_until - time.monotonic()
            if wait <= 0 or not sel.select(wait) or not out.read(pipes.out_r):
                break
    finally:
        sel.close()
        child.finish()
    return out, timed_out, cancelled


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3
        return None


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited; it stays unreaped, so its group ID is still ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


Sink = Callable[[bytes], None]
"""Takes each chunk of a command's output as it comes (a long-lived program's log)."""


class Output:
    """Output bytes as they arrive, keeping at least the last OUTPUT_CAP (and passing each
    chunk to ``sink``)."""

    def __init__(self, sink: Sink | None = None) -> None:
        self.buf = bytearray()
        self.total = 0
        self.sink = sink

    def read(self, fd: int) -> bool:
        """Read one chunk from ``fd``; False at end of file."""
        chunk = os.read(fd, 65536)
        self.total += len(chunk)
        if self.sink is not None and chunk:
            self.sink(chunk)
        self.buf += chunk
        if len(self.buf) > 2 * OUTPUT_CAP:
            del self.buf[: len(self.buf) - OUTPUT_CAP]
        return bool(chunk)

    def kept(self) -> bytes:
        return bytes(self.buf[-OUTPUT_CAP:])


def _next_wait(
    now: float, deadline: float | None, cancel: threading.Event | None, kill_at: float | None
) -> float | None:
    """How long the supervisor may sleep before it has something to check."""
    if kill_at is not None:
        return None if kill_at == math.inf else max(0.0, kill_at - now)
    waits = [CANCEL_POLL] if cancel is not None else []
    if deadline is not None:
        waits.append(max(0.0, deadline - now))
    return min(waits) if waits else None


def _feed_stdin(pipes: Pipes, sel: selectors.BaseSelector, pending: memoryview) -> memoryview:
    try:
        written = os.write(pipes.in_w, pending[:65536])
    except BlockingIOError:
        return pending
    except OSError:  # the command closed its stdin
        _close_stdin(pipes, sel)
        return pending[:0]
    pending = pending[written:]
    if not pending:
        _close_stdin(pipes, sel)
    return pending


def _close_stdin(pipes: Pipes, sel: selectors.BaseSelector) -> None:
    if pipes.in_w >= 0:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(pipes.in_w)
        pipes.close_stdin()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pgid``, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
