"""What a preloader's forked child does (:mod:`haathi.cli.preload`): become the process the
client would have been (:func:`become`), run its command (:func:`command`) and end as the
interpreter ends (:func:`finish`)."""

from __future__ import annotations

import atexit
import gc
import io
import locale
import os
import resource
import signal
import sys
import threading
import time
import traceback
from contextlib import suppress
from dataclasses import dataclass
from typing import Any


@dataclass
class Request:
    """What a child needs to become the client's process: the request and its descriptors
    (stdin, stdout, stderr, working directory)."""

    message: dict[str, Any]
    fds: list[int]


def become(request: Request) -> None:
    """Turn this forked child into the process the client would have been."""
    m = request.message
    with suppress(OSError):
        os.setpgid(0, 0)  # its own process group: what a terminal sends the group, it gets
    stdin, stdout, stderr, cwd = request.fds
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        os.dup2(fd, target)
    os.fchdir(cwd)
    for fd in set(request.fds) - {0, 1, 2}:
        os.close(fd)
    os.umask(int(m["umask"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(m["env"]).items()})
    with suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")  # as the interpreter does at start-up
    time.tzset()
    _limits(m)
    names = ("<stdin>", "<stdout>", "<stderr>")
    streams = [_stdio(fd, names[fd], *m["stdio"][fd]) for fd in (0, 1, 2)]
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]
    sys.argv = [str(a) for a in m["argv"]]
    if "tempfile" in sys.modules:  # it keeps $TMPDIR's answer from its first use
        setattr(sys.modules["tempfile"], "tempdir", None)  # noqa: B010
    from haathi.cli import render

    render.reopen()
    _signals(m)


def _limits(m: dict[str, Any]) -> None:
    for name, (soft, hard) in dict(m.get("limits") or {}).items():
        if hasattr(resource, name):
            with suppress(OSError, ValueError):
                resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
    with suppress(OSError):
        nice = int(m.get("nice", 0))
        if nice != os.getpriority(os.PRIO_PROCESS, 0):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    with suppress(OSError, ValueError):
        os.sched_setaffinity(0, [int(c) for c in m.get("cpus") or []])


def _stdio(fd: int, name: str, encoding: str, errors: str, buffered: bool) -> io.TextIOWrapper:
    """A standard stream as the interpreter makes it at start-up (create_stdio in
    Python/pylifecycle.c), with the client's encoding, errors and buffering."""
    write = fd > 0
    binary: Any = open(  # noqa: SIM115 - it lives as long as the process
        fd, "wb" if write else "rb", buffering=-1 if buffered or not write else 0, closefd=False
    )
    raw = binary.raw if hasattr(binary, "raw") else binary
    raw.name = name
    stream = io.TextIOWrapper(
        binary,
        encoding=encoding,
        errors=errors,
        newline="\n",
        line_buffering=buffered and (raw.isatty() or fd == 2),
        write_through=not buffered,
    )
    setattr(stream, "mode", "w" if write else "r")  # noqa: B010
    return stream


def _signals(m: dict[str, Any]) -> None:
    """The client's dispositions (ignored stays ignored; SIGINT raises KeyboardInterrupt),
    then its mask: a signal the client forwarded meanwhile arrives now."""
    signal.set_wakeup_fd(-1)
    ignored = {int(s) for s in m.get("ignored") or []}
    for num in signal.valid_signals():
        if num in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler: Any = signal.SIG_DFL
        if num in ignored:
            handler = signal.SIG_IGN
        elif num == signal.SIGINT:
            handler = signal.default_int_handler
        with suppress(OSError, ValueError):
            signal.signal(num, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [int(s) for s in m.get("mask") or []])


def command(request: Request) -> int:
    """Run the command; its exit code as the interpreter would make it from how the command
    ended (negative: the signal to end with)."""
    from haathi.cli.main import run

    try:
        run([str(a) for a in request.message["argv"][1:]])
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with suppress(Exception):
        sys.stderr.write(f"{code}\n")
    return 1


def finish(code: int) -> None:
    """End as the interpreter ends (Py_FinalizeEx): wait for non-daemon threads, run the
    ``atexit`` callbacks, flush the standard streams (a failure makes the exit code 120).
    What it skips is tearing down the modules the preloader imported: that costs ~30 ms of
    CPU and shows nothing."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    gc.collect()  # finalizers of this command's own cycles (the preloader's are frozen)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception as exc:
            if stream is sys.stdout:
                with suppress(Exception):
                    sys.stderr.write(f"Exception ignored in: {stream!r}\n")
                    sys.stderr.write("".join(traceback.format_exception_only(exc)))
                    sys.stderr.flush()
            code = 120
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [-code])
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)
