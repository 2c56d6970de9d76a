"""Run one attempt of user code for one datum, in a sandbox when one is available.

A datum's scratch directory ``S`` holds ``S/pfs/<input>/...`` (its input files), ``S/pfs/out/``
(empty; the user code writes its outputs there) and ``S/tmp/``. User code is written against
Pachyderm's paths, ``/pfs/<input>`` and ``/pfs/out``; two sandboxes provide them:

``bwrap`` (bubblewrap; no root, no Docker)
    The user code sees the host's files read-only (its interpreters, virtualenvs and code work,
    ``HOME`` is readable), a fresh ``/dev`` and ``/proc`` (its own PID namespace), a private
    writable ``/tmp`` (``S/tmp``), ``/pfs/<input>`` read-only, ``/pfs/out`` writable, and no
    network (its own network namespace has only a loopback device). When haathi runs as root,
    root inside keeps Docker's default capabilities only (no ``CAP_SYS_ADMIN``: it cannot undo
    the mounts). The working directory is ``working_dir``, else the caller's if it is visible
    inside, else ``/``. bubblewrap sets ``PWD``; otherwise the environment is exactly the given
    mapping. When the command exits, every process it left behind dies with its PID namespace.

``none`` (bubblewrap missing or unusable)
    No isolation: network is not blocked and the host's files are writable. Pachyderm paths are
    mapped instead: every ``/pfs`` that starts a path (``/pfs/...`` or a bare ``/pfs``) in the
    argv, the stdin text, the working directory and the environment values becomes
    ``S/pfs``, so literal ``/pfs/...`` paths there keep working; paths hard-coded inside the
    user's own files are not rewritten (read them from the ``<input>`` environment variables,
    or install bubblewrap). ``TMPDIR`` is ``S/tmp`` unless the mapping sets it. Processes left
    behind in the command's process group are killed when it exits; one that started its own
    session escapes (bubblewrap has no such gap).

Either way the command runs in its own process group; a timeout or the ``cancel`` event kills
the whole group (SIGTERM, then SIGKILL 2 s later; under bubblewrap the sandbox and everything in
it go down at the SIGTERM), and stdout and stderr are captured together in arrival order,
keeping the last :data:`OUTPUT_CAP` bytes. A process killed by signal N reports exit code
128 + N, as a shell does.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from haathi.errors import InvalidArgument

SANDBOXES = ("auto", "bwrap", "none")

OUTPUT_CAP = 1 << 20
"""Bytes of output kept per run (the last ones)."""

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL when a run is stopped."""

CANCEL_POLL = 0.05
"""Seconds between checks of the ``cancel`` event while the command is quiet."""

EXIT_POLL = 0.005
"""Seconds between exit checks where the kernel has no pidfd (before Linux 5.3)."""

DRAIN_AFTER_EXIT = 1.0
"""Seconds to keep reading output after the command exits, for escaped processes (``none``)."""

# Docker's default capabilities, minus CAP_MKNOD and CAP_NET_RAW: what root keeps inside.
_ROOT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
)
# Top-level host entries the sandbox replaces with its own.
_SHADOWED = ("dev", "proc", "tmp", "pfs")
# `/pfs` where it starts a path: not preceded by a path character, not followed by a name one.
_PFS_RE = re.compile(r"(?<![\w.\-/~$})\]])/pfs(?![\w.\-])")
_BWRAP_EXEC_RE = re.compile(
    rb"\Abwrap: execvp (.*): (No such file or directory|Permission denied)\n\Z", re.DOTALL
)


@dataclass(frozen=True)
class RunResult:
    """How one run of user code ended, and what it printed."""

    returncode: int | None  # None when timed out or cancelled
    timed_out: bool
    cancelled: bool
    duration: float  # seconds, start to exit
    output: bytes  # stdout and stderr interleaved; the last OUTPUT_CAP bytes, with a note if cut


# ---------------------------------------------------------------------------------------------
# Choosing a sandbox

_probe_lock = threading.Lock()
_probe_result: tuple[str | None, str] | None = None  # (bwrap path or None, why not)


def _probe_bwrap() -> tuple[str | None, str]:
    """Find bubblewrap and check it can build our sandbox here (once per process)."""
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            _probe_result = _probe_bwrap_uncached()
        return _probe_result


def _probe_bwrap_uncached() -> tuple[str | None, str]:
    found = shutil.which("bwrap")
    if found is None:
        return None, "bwrap is not on PATH (install the bubblewrap package)"
    with tempfile.TemporaryDirectory(prefix="haathi-bwrap-probe-") as tmp:
        scratch = Path(tmp)
        for sub in ("pfs/in", "pfs/out", "tmp"):
            (scratch / sub).mkdir(parents=True)
        argv = [*_bwrap_argv(found, scratch, ["in"], None), "--", "/bin/sh", "-c", "exit 0"]
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{found}: {exc}"
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        return None, f"{found} exited with {proc.returncode}: {why[-1] if why else 'no output'}"
    return found, ""


def resolve_sandbox(requested: str) -> str:
    """The sandbox to use: ``auto`` is ``bwrap`` when bubblewrap works here, else ``none``."""
    if requested not in SANDBOXES:
        raise InvalidArgument(
            f"unknown sandbox {requested!r} (expected one of {', '.join(SANDBOXES)})",
            sandbox=requested,
        )
    if requested == "none":
        return "none"
    path, why = _probe_bwrap()
    if path is not None:
        return "bwrap"
    if requested == "auto":
        return "none"
    raise InvalidArgument(
        f"bubblewrap (bwrap) is not installed or cannot create a sandbox here: {why}",
        sandbox=requested,
    )


def pfs_path(scratch: Path, sandbox: str) -> str:
    """What ``/pfs`` is for user code in this sandbox."""
    if resolve_sandbox(sandbox) == "bwrap":
        return "/pfs"
    return str(Path(os.path.abspath(scratch)) / "pfs")


def map_pfs(text: str, pfs: str) -> str:
    """Rewrite every ``/pfs`` that starts a path in ``text`` to ``pfs``."""
    if "/pfs" not in text:
        return text
    return _PFS_RE.sub(lambda _m: pfs, text)


# ---------------------------------------------------------------------------------------------
# Building the command line


def _check_input_names(input_names: Sequence[str]) -> None:
    for name in input_names:
        if not name or "/" in name or "\0" in name or name in (".", "..", "out"):
            raise InvalidArgument(f"bad input name for /pfs: {name!r}", input=name)


def _bwrap_argv(
    bwrap: str, scratch: Path, input_names: Sequence[str], cwd: str | None
) -> list[str]:
    argv = [bwrap, *_host_root_args()]
    pfs = scratch / "pfs"
    argv += ["--dev", "/dev", "--proc", "/proc", "--bind", str(scratch / "tmp"), "/tmp"]
    argv += ["--dir", "/pfs"]
    for name in input_names:
        argv += ["--ro-bind-try", str(pfs / name), f"/pfs/{name}"]  # absent input: absent
    argv += ["--bind", str(pfs / "out"), "/pfs/out", "--remount-ro", "/"]
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--die-with-parent", "--chdir", cwd or "/"]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]
        for cap in _ROOT_CAPS:
            argv += ["--cap-add", cap]
    return argv


_ROOT_ARGS: tuple[float, list[str]] | None = None
ROOT_SCAN_TTL = 5.0
"""Seconds a scan of the host's top-level entries is reused (it costs ~0.7 ms per datum)."""


def _host_root_args() -> list[str]:
    """bwrap arguments showing the host's top-level entries read-only (cached briefly)."""
    global _ROOT_ARGS
    cached = _ROOT_ARGS
    if cached is not None and time.monotonic() - cached[0] < ROOT_SCAN_TTL:
        return cached[1]
    args: list[str] = []
    with os.scandir("/") as entries:
        for entry in entries:
            if entry.name in _SHADOWED:
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), entry.path]
            elif entry.is_dir() and _is_empty_dir(entry.path):
                args += ["--dir", entry.path]  # as seen, without the cost of a mount
            elif entry.is_dir() or entry.is_file():
                args += ["--ro-bind-try", entry.path, entry.path]
    _ROOT_ARGS = (time.monotonic(), args)
    return args


def _is_empty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def _sandbox_cwd(working_dir: str | None) -> str:
    """The working directory inside the bwrap sandbox."""
    if working_dir:
        return working_dir
    try:
        cwd = os.getcwd()
    except OSError:
        return "/"
    for top in _SHADOWED:
        if cwd == f"/{top}" or cwd.startswith(f"/{top}/"):
            return "/"
    return cwd


# ---------------------------------------------------------------------------------------------
# Running


def run_user_code(
    argv: Sequence[str],
    *,
    stdin: str | None,
    env: Mapping[str, str],
    scratch: Path,
    input_names: Sequence[str],
    sandbox: str,
    working_dir: str | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run ``argv`` once for the datum in ``scratch``; never raises for the user code's faults.

    ``stdin`` is the text written to the command (``None``: ``/dev/null``); ``env`` is its whole
    environment. A missing executable gives exit code 127 (126 when not executable).
    """
    if not argv:
        raise InvalidArgument("the command (transform.cmd) is empty")
    _check_input_names(input_names)
    kind = resolve_sandbox(sandbox)
    scratch = Path(os.path.abspath(scratch))
    for sub in ("tmp", "pfs/out"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    stdin_bytes: bytes | None
    if kind == "bwrap":
        bwrap, _ = _probe_bwrap()
        assert bwrap is not None
        full_argv = [*_bwrap_argv(bwrap, scratch, input_names, _sandbox_cwd(working_dir)), "--"]
        full_argv += argv
        full_env = dict(env)
        cwd = None
        stdin_bytes = None if stdin is None else stdin.encode()
    else:
        pfs = str(scratch / "pfs")
        full_argv = [map_pfs(arg, pfs) for arg in argv]
        full_env = {key: map_pfs(value, pfs) for key, value in env.items()}
        full_env.setdefault("TMPDIR", str(scratch / "tmp"))
        cwd = map_pfs(working_dir, pfs) if working_dir else None
        stdin_bytes = None if stdin is None else map_pfs(stdin, pfs).encode()

    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            full_argv,
            stdin=subprocess.DEVNULL if stdin_bytes is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return _spawn_failure(exc, full_argv[0], cwd, time.monotonic() - start)
    with proc:
        output, total, timed_out, cancelled = _supervise(proc, stdin_bytes, start, timeout, cancel)
    duration = time.monotonic() - start
    dropped = total - len(output)
    code = proc.returncode
    if code < 0:
        code = 128 - code
    if kind == "bwrap" and code == 1:
        missing = _BWRAP_EXEC_RE.match(output)
        if missing is not None:
            name = missing.group(1).decode(errors="replace")
            code = 127 if missing.group(2).startswith(b"No such") else 126
            what = "command not found" if code == 127 else "permission denied"
            output = f"haathi: {what}: {name}\n".encode()
    if dropped:
        note = f"[haathi: output truncated: the first {dropped} bytes were dropped]\n"
        output = note.encode() + output
    return RunResult(
        returncode=None if timed_out or cancelled else code,
        timed_out=timed_out,
        cancelled=cancelled,
        duration=duration,
        output=output,
    )


def _spawn_failure(exc: OSError, program: str, cwd: str | None, duration: float) -> RunResult:
    if cwd is not None and exc.filename == cwd:
        message, code = f"haathi: cannot enter working directory {cwd}: {exc.strerror}", 1
    elif exc.errno == errno.ENOENT:
        message, code = f"haathi: command not found: {program}", 127
    elif exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR):
        message, code = f"haathi: cannot execute {program}: {exc.strerror}", 126
    else:
        message, code = f"haathi: cannot start {program}: {exc.strerror or exc}", 126
    return RunResult(code, False, False, duration, (message + "\n").encode())


def _supervise(
    proc: subprocess.Popen[bytes],
    stdin_bytes: bytes | None,
    start: float,
    timeout: float | None,
    cancel: threading.Event | None,
) -> tuple[bytes, int, bool, bool]:
    """Feed stdin, collect output, enforce the timeout and the cancel event, reap everything.

    Returns (kept output, total output bytes, timed out, cancelled).
    """
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    pidfd = _pidfd(proc.pid)  # readable when the process exits (None: poll for that)
    out = _Output()
    timed_out = cancelled = False
    kill_at: float | None = None  # set once stopping: when SIGTERM turns into SIGKILL
    deadline = None if timeout is None else start + timeout
    pending = memoryview(stdin_bytes or b"")
    sel = selectors.DefaultSelector()
    try:
        sel.register(out_fd, selectors.EVENT_READ, "out")
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "in")
        exited = False
        out_open = True
        while not exited:
            now = time.monotonic()
            if kill_at is None and deadline is not None and now >= deadline:
                timed_out = True
            elif kill_at is None and cancel is not None and cancel.is_set():
                cancelled = True
            if kill_at is None and (timed_out or cancelled):
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = now + KILL_GRACE
            elif kill_at is not None and now >= kill_at:
                _signal_group(proc.pid, signal.SIGKILL)
                kill_at = math.inf
            wait = _next_wait(now, deadline, cancel, kill_at)
            if pidfd is None:
                wait = EXIT_POLL if wait is None else min(wait, EXIT_POLL)
                exited = _exited(proc.pid)
            for key, _ in sel.select(wait):
                if key.data == "exit":
                    exited = True
                elif key.data == "out":
                    if not out.read(out_fd):
                        sel.unregister(out_fd)
                        out_open = False
                else:
                    pending = _feed_stdin(proc, sel, pending)
        # The leader has exited but is not reaped yet, so its group ID cannot be reused: kill
        # whatever it left behind in the group, then read what they all wrote.
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.stdin is not None:
            _close_stdin(proc, sel)
        drain_until = time.monotonic() + DRAIN_AFTER_EXIT
        while out_open:
            wait = drain_until - time.monotonic()
            if wait <= 0 or not sel.select(wait) or not out.read(out_fd):
                break
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        if proc.returncode is None:  # not reaped yet, so the group ID is still ours
            _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    return out.kept(), out.total, timed_out, cancelled


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


class _Output:
    """Output bytes as they arrive, keeping at least the last OUTPUT_CAP."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.total = 0

    def read(self, fd: int) -> bool:
        """Read one chunk from ``fd``; False at end of file."""
        chunk = os.read(fd, 65536)
        self.total += len(chunk)
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


def _feed_stdin(
    proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, pending: memoryview
) -> memoryview:
    assert proc.stdin is not None
    try:
        written = os.write(proc.stdin.fileno(), pending[:65536])
    except BlockingIOError:
        return pending
    except (BrokenPipeError, OSError):
        _close_stdin(proc, sel)
        return pending[:0]
    pending = pending[written:]
    if not pending:
        _close_stdin(proc, sel)
    return pending


def _close_stdin(proc: subprocess.Popen[bytes], sel: selectors.BaseSelector) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(KeyError, ValueError):
        sel.unregister(proc.stdin.fileno())
    with contextlib.suppress(OSError):
        proc.stdin.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
