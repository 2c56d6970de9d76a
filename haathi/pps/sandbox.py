"""Run user code for datums, in a sandbox when one is available.

A :class:`Sandbox` runs the datums of one datum set, one after another, from one scratch
directory ``S``: ``S/pfs/<input>/...`` holds the current datum's input files
(:meth:`Sandbox.new_datum` removes the previous datum's), ``S/pfs/out/`` is emptied before each
attempt (:meth:`Sandbox.clear_out`) and receives the outputs, and ``S/tmp/`` is the user code's
``/tmp``. Like a Pachyderm worker's user container, which runs its datums one after another,
``/tmp`` persists from datum to datum within a datum set (and only within it). User code is
written against Pachyderm's paths, ``/pfs/<input>`` and ``/pfs/out``; two sandboxes provide them:

``bwrap`` (bubblewrap; no root, no Docker)
    One sandbox per datum set: :mod:`haathi.pps.launcher` runs in it as PID 1 and starts each
    run, so a run costs a process start, not a sandbox start. The user code sees part of the
    host read-only (the system, its interpreters and programs, listed paths; never the store,
    haathi's config and tokens, or credentials: :mod:`haathi.pps.hostview`), a fresh ``/dev``
    and ``/proc`` (its own PID namespace: it cannot see or signal haathi), a private writable
    ``/tmp`` (``S/tmp``), ``/pfs`` read-only showing ``S/pfs`` (the current datum's inputs
    only), ``/pfs/out`` writable, and no network (its own network namespace has only a
    loopback device). When haathi runs as root, user code runs as :data:`UNPRIVILEGED`
    (``nobody``) with no capabilities. The working directory is ``working_dir``, else the
    caller's if it is visible inside, else ``/``. ``PWD`` is set to
    it; otherwise the environment is exactly the given mapping. When the command exits, every
    process it left behind is killed and reaped before the run returns.

``none`` (bubblewrap missing or unusable)
    No isolation: network is not blocked and the host's files are writable. Pachyderm paths are
    mapped instead: every ``/pfs`` that starts a path (``/pfs/...`` or a bare ``/pfs``) in the
    argv, the stdin text, the working directory and the environment values becomes
    ``S/pfs``, so literal ``/pfs/...`` paths there keep working; paths hard-coded inside the
    user's own files are not rewritten (read them from the ``<input>`` environment variables,
    or install bubblewrap). ``TMPDIR`` is ``S/tmp`` unless the mapping sets it. Processes left
    behind in the command's process group are killed when it exits; one that started its own
    session escapes (bubblewrap has no such gap).

Either way the command runs in its own process group, stdin is the given text (else
``/dev/null``), and stdout and stderr are captured together in arrival order, keeping the last
:data:`OUTPUT_CAP` bytes. A process killed by signal N reports exit code 128 + N, as a shell
does; a missing command is 127 and one that cannot be executed (a script without a ``#!``
line included) 126. A timeout or the ``cancel`` event kills the run: under ``none`` the whole
group (SIGTERM, then SIGKILL 2 s later), under ``bwrap`` the sandbox and everything in it at
once (the next run starts a fresh sandbox, with the same ``/tmp``). If the sandbox itself
breaks (its launcher dies), the run fails with no exit code and a note saying why, and the next
run starts a fresh sandbox.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import math
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.pps import launcher
from haathi.pps.hostview import HostView, Layout

SANDBOXES = ("auto", "bwrap", "none")

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

UNPRIVILEGED = (65534, 65534)
"""The user and group (``nobody``/``nogroup``) user code runs as in a bwrap sandbox when
haathi runs as root."""

_EMPTY = ".empty"  # in the scratch directory: an empty directory that masks hidden ones
_PATH_ARGS = 2  # a command's program and its script: checked for host files the sandbox hides
_SOCKET_DIR = ".sock"  # in the scratch directory: where a container's launcher connects
START_TIMEOUT = 120.0
"""Seconds a container's launcher has to connect (the runtime starting the container)."""
# `/pfs` where it starts a path: not preceded by a path character, not followed by a name one.
_PFS_RE = re.compile(r"(?<![\w.\-/~$})\]])/pfs(?![\w.\-])")
_CHILD_PID_RE = re.compile(rb'"child-pid":\s*(\d+)')
_LOG_TAIL = 4096  # bytes of bubblewrap's and the launcher's own messages quoted on a failure


@dataclass(frozen=True)
class RunResult:
    """How one run of user code ended, and what it printed."""

    returncode: int | None  # None when timed out, cancelled, or the sandbox broke
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
    with (
        tempfile.TemporaryDirectory(prefix="haathi-bwrap-probe-") as tmp,
        Sandbox("bwrap", Path(tmp), found) as sandbox,
    ):
        res = sandbox.run(
            ["/bin/sh", "-c", "exit 0"], stdin=None, env={}, working_dir="/", timeout=30
        )
    if res.returncode != 0:
        why = res.output.decode(errors="replace").strip().splitlines()
        how = "timed out" if res.timed_out else f"exit code {res.returncode}"
        return None, f"{found}: {why[-1] if why else how}"
    return found, ""


def resolve_sandbox(requested: str, *, isolate: bool = False) -> str:
    """The sandbox to use: ``auto`` is ``bwrap`` when bubblewrap works here, else ``none``.

    With ``isolate`` (auth is on: user code is not the store owner's), ``none`` is never the
    answer: asking for it, or ``auto`` without a working bubblewrap, is FailedPrecondition.
    """
    if requested not in SANDBOXES:
        raise InvalidArgument(
            f"unknown sandbox {requested!r} (expected one of {', '.join(SANDBOXES)})",
            sandbox=requested,
        )
    if requested == "none" and isolate:
        raise FailedPrecondition(
            "auth is on, so user code must run in an isolating sandbox: sandbox none is "
            "refused (use auto or bwrap)",
            sandbox=requested,
        )
    if requested == "none":
        return "none"
    path, why = _probe_bwrap()
    if path is not None:
        return "bwrap"
    if requested == "auto" and not isolate:
        return "none"
    raise (FailedPrecondition if isolate else InvalidArgument)(
        f"bubblewrap (bwrap) is not installed or cannot create a sandbox here: {why}"
        + ("; auth is on, so user code does not run without a sandbox" if isolate else ""),
        sandbox=requested,
    )


def sandbox_note(requested: str, chosen: str) -> str:
    """Why ``requested`` became ``chosen``, when that is worth saying (``auto`` fell back to
    no sandbox); else ``""``."""
    if requested == "auto" and chosen == "none":
        return f"no isolation: bubblewrap cannot run here ({_probe_bwrap()[1]})"
    return ""


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


def _bwrap_argv(bwrap: str, scratch: Path, layout: Layout) -> list[str]:
    """bwrap and its options for a sandbox on ``scratch``; the command follows ``--``.

    The host shows through as ``layout`` says (:mod:`haathi.pps.hostview`). ``/pfs`` is a
    read-only view of ``S/pfs``, so the inputs the host puts there for each datum show inside;
    ``/pfs/out`` is ``S/pfs/out`` (the host empties it in place: the mount holds that
    directory).
    """
    argv = [bwrap, *layout.base_args()]
    pfs = scratch / "pfs"
    argv += ["--dev", "/dev", "--proc", "/proc", "--bind", str(scratch / "tmp"), "/tmp"]
    argv += layout.late_args(str(scratch / _EMPTY))
    argv += ["--ro-bind", str(pfs), "/pfs", "--bind", str(pfs / "out"), "/pfs/out"]
    argv += ["--remount-ro", "/"]
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--die-with-parent", "--as-pid-1", "--chdir", "/"]
    if os.geteuid() == 0:  # the launcher needs these to become UNPRIVILEGED, then has none
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return argv


def _sandbox_cwd(working_dir: str | None, layout: Layout, as_user: bool) -> str:
    """The working directory inside the bwrap sandbox: ``working_dir``, else the caller's when
    the sandbox shows it (and, ``as_user``, :data:`UNPRIVILEGED` may enter it), else ``/``."""
    if working_dir:
        return working_dir
    try:
        cwd = os.getcwd()
        enterable = not as_user or os.stat(cwd).st_mode & 0o001
    except OSError:
        return "/"
    return cwd if enterable and layout.visible(cwd) else "/"


# ---------------------------------------------------------------------------------------------
# Running


def open_sandbox(sandbox: str, scratch: Path, view: HostView | None = None) -> Sandbox:
    """A :class:`Sandbox` of the kind requested (``auto``, ``bwrap`` or ``none``) on ``scratch``,
    showing the host as ``view`` says (bwrap)."""
    kind = resolve_sandbox(sandbox)
    return Sandbox(kind, scratch, _probe_bwrap()[0] if kind == "bwrap" else None, view)


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
    view: HostView | None = None,
) -> RunResult:
    """Run ``argv`` once, in a sandbox of its own, for the datum whose inputs are in ``scratch``
    (``S/pfs/<name>`` for each of ``input_names``); see :meth:`Sandbox.run`."""
    _check_input_names(input_names)
    view = (view or HostView()).with_programs(argv[:1], env.get("PATH", ""))
    with open_sandbox(sandbox, scratch, view) as box:
        return box.run(
            argv, stdin=stdin, env=env, working_dir=working_dir, timeout=timeout, cancel=cancel
        )


class Sandbox:
    """Where the user code of one datum set runs, datum after datum (see the module docstring).

    Use it from the thread that made it (bubblewrap's ``--die-with-parent`` watches that
    thread), and close it; it is a context manager. The scratch directory stays the caller's.
    """

    def __init__(
        self,
        kind: str,
        scratch: Path,
        bwrap: str | None = None,
        view: HostView | None = None,
        launch: Launch | None = None,
    ) -> None:
        """``kind`` is ``bwrap`` (``bwrap`` is then its path, and ``view`` says what of the
        host it shows) or ``none``; see :func:`open_sandbox`. With ``launch`` (a container of
        an image, :mod:`haathi.pps.containers`), ``kind`` names its runtime and ``launch``
        starts it."""
        if launch is None and (
            kind not in ("bwrap", "none") or (kind == "bwrap") != (bwrap is not None)
        ):
            raise ValueError(f"bad sandbox kind {kind!r} (bwrap: {bwrap!r})")
        self.kind = kind
        self.scratch = Path(os.path.abspath(scratch))
        for sub in ("tmp", "pfs/out"):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        if launch is None and bwrap is not None:
            as_user = os.geteuid() == 0
            layout = (view or HostView()).layout(unprivileged=as_user)
            launch = _HostLaunch(bwrap, layout, UNPRIVILEGED if as_user else None)
        self.launch = launch
        """How the sandbox's launcher starts (None: no sandbox, ``none``)."""
        self.pfs = "/pfs" if launch is not None else str(self.scratch / "pfs")
        """What ``/pfs`` is for the user code."""
        if launch is not None:
            (self.scratch / _EMPTY).mkdir(mode=0o555, exist_ok=True)
            if launch.owner is not None and os.geteuid() == 0:
                for sub in ("tmp", "pfs/out"):  # user code's own: it runs as launch.owner
                    os.chown(self.scratch / sub, *launch.owner)
        self._session: _Session | None = None
        if launch is not None:
            # Start now: the launcher boots while the caller prepares the first datum. If it
            # cannot start, the first run says why.
            with contextlib.suppress(OSError):
                self._start_session()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the sandbox and whatever runs in it (the scratch directory stays)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def new_datum(self, input_names: Sequence[str]) -> Path:
        """Remove the previous datum's inputs and outputs; returns ``S/pfs``, where this datum's
        inputs go (as ``S/pfs/<name>`` for each of ``input_names``)."""
        _check_input_names(input_names)
        pfs = self.scratch / "pfs"
        with os.scandir(pfs) as entries:
            for entry in entries:
                if entry.name != "out":
                    _remove(entry)
        self.clear_out()
        return pfs

    def clear_out(self) -> None:
        """Empty ``S/pfs/out`` in place (a bwrap sandbox's mount holds that very directory)."""
        out = self.scratch / "pfs" / "out"
        try:
            with os.scandir(out) as entries:
                for entry in entries:
                    _remove(entry)
        except FileNotFoundError:  # removed by user code running without a sandbox
            out.mkdir()

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None,
        env: Mapping[str, str],
        working_dir: str | None = None,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run ``argv`` once for the current datum; never raises for the user code's faults.

        ``stdin`` is the text written to the command (``None``: ``/dev/null``); ``env`` is its
        whole environment.
        """
        if not argv:
            raise InvalidArgument("the command (transform.cmd) is empty")
        if self.launch is not None:
            return self._run_inside(argv, stdin, env, working_dir, timeout, cancel)
        return self._run_here(argv, stdin, env, working_dir, timeout, cancel)

    def _run_here(
        self,
        argv: Sequence[str],
        stdin: str | None,
        env: Mapping[str, str],
        working_dir: str | None,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> RunResult:
        """No sandbox: a process of our own, with ``/pfs`` paths mapped to ``S/pfs``."""
        pfs = self.pfs
        full_argv = [map_pfs(arg, pfs) for arg in argv]
        full_env = {key: map_pfs(value, pfs) for key, value in env.items()}
        full_env.setdefault("TMPDIR", str(self.scratch / "tmp"))
        cwd = map_pfs(working_dir, pfs) if working_dir else None
        stdin_bytes = None if stdin is None else map_pfs(stdin, pfs).encode()
        start = time.monotonic()
        with _Pipes(stdin_bytes is not None) as pipes:
            try:
                proc = subprocess.Popen(
                    full_argv,
                    stdin=subprocess.DEVNULL if pipes.in_r < 0 else pipes.in_r,
                    stdout=pipes.out_w,
                    stderr=pipes.out_w,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                stage = "cwd" if cwd is not None and exc.filename == cwd else "exec"
                return _start_failure(stage, exc.errno, exc.strerror, full_argv[0], cwd, start)
            pipes.close_child_ends()
            out, timed_out, cancelled = _supervise(
                _Process(proc), pipes, stdin_bytes, start, timeout, cancel
            )
        code = proc.returncode
        return _result(out, 128 - code if code < 0 else code, timed_out, cancelled, start)

    def _run_inside(
        self,
        argv: Sequence[str],
        stdin: str | None,
        env: Mapping[str, str],
        working_dir: str | None,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> RunResult:
        """A request to the launcher in this datum set's sandbox (started if need be)."""
        assert self.launch is not None
        cwd = self.launch.cwd(working_dir)
        hidden = self.launch.hidden(argv)
        if hidden:
            message = (
                f"haathi: {hidden} is on the host, but the sandbox does not show it (it shows "
                "the system, the programs' installs and [pipelines] sandbox_paths; the host's "
                "/tmp and home directories are hidden): move it, list it in sandbox_paths, or "
                "run the pipeline in an image that has it\n"
            )
            return RunResult(127, False, False, 0.0, message.encode())
        stdin_bytes = None if stdin is None else stdin.encode()
        start = time.monotonic()
        if self._session is not None and not self._session.alive():
            self.close()  # it died between runs: nothing was lost, start a fresh one
        try:
            session = self._session or self._start_session()
        except OSError as exc:
            note = f"haathi: cannot start the {self.kind} sandbox: {exc}\n"
            return _result(_Output(), None, False, False, start, note)
        connected = session.connect()
        run = _LauncherRun(session)
        with _Pipes(stdin_bytes is not None) as pipes:
            if connected and session.send(argv, {**env, "PWD": cwd}, cwd, pipes.child_fds()):
                pipes.close_child_ends()
                out, timed_out, cancelled = _supervise(
                    run, pipes, stdin_bytes, start, timeout, cancel
                )
            else:  # the launcher is gone
                out, timed_out, cancelled = _Output(), False, False
        note = ""
        if run.reply is None or session.stopped:
            if run.reply is None and not (timed_out or cancelled):
                note = session.failure()
            self.close()
        reply = run.reply
        if reply is not None and reply[0] != "exit" and not (timed_out or cancelled):
            return _start_failure(reply[0], reply[1], reply[2], argv[0], cwd, start)
        code = reply[1] if reply is not None else None
        return _result(out, code, timed_out, cancelled, start, note)

    def _start_session(self) -> _Session:
        assert self.launch is not None
        self._session = _Session(self.launch, self.scratch)
        return self._session


class Launch:
    """How a sandbox session starts its launcher (:mod:`haathi.pps.launcher`) and stops it.

    The host sandbox (:class:`_HostLaunch`) and the containers of images
    (:mod:`haathi.pps.containers`) differ only here; a session (:class:`_Session`) and the
    launcher protocol are the same for all.
    """

    kind = ""
    owner: tuple[int, int] | None = None
    """Who user code runs as, host-side: ``S/tmp`` and ``S/pfs/out`` are given to it."""
    listens = False
    """The launcher connects to ``S/.sock/launcher.sock`` (a container), instead of inheriting
    its end of a socket pair."""
    info_fd = True
    """The command reports the launcher's PID on ``--info-fd`` (bwrap); else :meth:`stop`
    ends it."""

    def argv(self, scratch: Path, sock_fd: int, info_fd: int) -> list[str]:
        """The command that starts the launcher, talking on ``sock_fd``."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The command's environment."""
        return {}

    def cwd(self, working_dir: str | None) -> str:
        """The working directory of a run asking for ``working_dir``."""
        return working_dir or "/"

    def stop(self) -> None:
        """Kill everything in the sandbox from outside (when there is no launcher PID)."""

    def hidden(self, argv: Sequence[str]) -> str:
        """A file the command names that exists on the host but not inside (``""``: none)."""
        return ""


class _HostLaunch(Launch):
    """bwrap showing the host as ``layout`` says, the host's Python running the launcher."""

    kind = "bwrap"

    def __init__(self, bwrap: str, layout: Layout, user: tuple[int, int] | None) -> None:
        self.bwrap, self.layout, self.user = bwrap, layout, user
        self.owner = user

    def argv(self, scratch: Path, sock_fd: int, info_fd: int) -> list[str]:
        argv = [*_bwrap_argv(self.bwrap, scratch, self.layout), "--info-fd", str(info_fd), "--"]
        return argv + launcher_argv([sys.executable], str(sock_fd), self.user)

    def cwd(self, working_dir: str | None) -> str:
        return _sandbox_cwd(working_dir, self.layout, self.user is not None)

    def hidden(self, argv: Sequence[str]) -> str:
        for arg in argv[:_PATH_ARGS]:
            on_host = arg.startswith("/") and not arg.startswith("/pfs") and os.path.exists(arg)
            if on_host and not self.layout.visible(os.path.normpath(arg)):
                return arg
        return ""


def launcher_argv(python: Sequence[str], sock: str, user: tuple[int, int] | None) -> list[str]:
    """``python`` (a command) running the launcher on ``sock`` (an inherited descriptor's
    number, or a socket's path), becoming ``user`` first if given."""
    argv = [*python, "-I", "-S", "-c", _launcher_source(), sock]
    return argv + [str(n) for n in user or ()]


def _remove(entry: os.DirEntry[str]) -> None:
    """Delete a file, a symlink or a directory tree, as far as it can (as ``rm -rf``)."""
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _result(
    out: _Output,
    code: int | None,
    timed_out: bool,
    cancelled: bool,
    start: float,
    note: str = "",
) -> RunResult:
    duration = time.monotonic() - start
    output = out.kept()
    dropped = out.total - len(output)
    if dropped:
        output = (
            f"[haathi: output truncated: the first {dropped} bytes were dropped]\n".encode()
            + output
        )
    return RunResult(
        returncode=None if timed_out or cancelled else code,
        timed_out=timed_out,
        cancelled=cancelled,
        duration=duration,
        output=output + note.encode(),
    )


def _start_failure(
    stage: str, err: int | None, strerror: str | None, program: str, cwd: str | None, start: float
) -> RunResult:
    """The result of a command that did not start: ``stage`` is ``cwd`` or ``exec``."""
    if stage == "cwd":
        message, code = f"haathi: cannot enter working directory {cwd}: {strerror}", 1
    elif err == errno.ENOENT:
        message, code = f"haathi: command not found: {program}", 127
    elif err in (errno.EACCES, errno.ENOEXEC, errno.EISDIR):
        message, code = f"haathi: cannot execute {program}: {strerror}", 126
    else:
        message, code = f"haathi: cannot start {program}: {strerror}", 126
    return RunResult(code, False, False, time.monotonic() - start, (message + "\n").encode())


# ---------------------------------------------------------------------------------------------
# The bwrap session

_LAUNCHER_SOURCE: str | None = None


def _launcher_source() -> str:
    global _LAUNCHER_SOURCE
    if _LAUNCHER_SOURCE is None:
        _LAUNCHER_SOURCE = Path(launcher.__file__).read_text()
    return _LAUNCHER_SOURCE


class _Session:
    """A bwrap sandbox on ``scratch`` with :mod:`haathi.pps.launcher` in it as PID 1."""

    def __init__(self, launch: Launch, scratch: Path) -> None:
        self.launch = launch
        self.stopped = False  # killed from here (timeout, cancel, or broken)
        self._buf = bytearray()
        self._child_pid: int | None = None  # the launcher's, as the host sees it
        with contextlib.ExitStack() as on_error, contextlib.ExitStack() as child_ends:
            # the sandbox's own messages, and the launcher's if it fails
            self._log: IO[bytes] = on_error.enter_context(
                tempfile.TemporaryFile(prefix="haathi-sandbox-")
            )
            self._listener: socket.socket | None = None
            self.sock, inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            on_error.callback(self.sock.close)
            child_ends.callback(inside.close)
            pass_fds = [inside.fileno()]
            if launch.listens:  # a container: its launcher connects to a socket mounted in
                self.sock.close()  # replaced by the accepted connection (connect())
                self._listener = _listen(scratch / _SOCKET_DIR / "launcher.sock")
                on_error.callback(self._listener.close)
                pass_fds = []
            self._info_fd, info_w = os.pipe()  # bwrap writes the launcher's PID there
            on_error.callback(_close, self._info_fd)
            child_ends.callback(_close, info_w)
            if not launch.info_fd:
                self._info_fd = _close(self._info_fd)
            self.proc = subprocess.Popen(
                launch.argv(scratch, inside.fileno(), info_w),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=launch.env(),
                pass_fds=(*pass_fds, info_w),
                start_new_session=True,
            )
            on_error.pop_all()

    def alive(self) -> bool:
        return not self.stopped and self.proc.poll() is None

    def connect(self) -> bool:
        """Wait for a container's launcher to connect (at most :data:`START_TIMEOUT`); False
        if it stopped or never came."""
        listener, self._listener = self._listener, None
        if listener is None:
            return True
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while self.proc.poll() is None and time.monotonic() < deadline:
                if _readable(listener, 0.05):
                    self.sock = listener.accept()[0]
                    return True
        finally:
            listener.close()
        return False

    def send(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, fds: list[int]) -> bool:
        """Ask the launcher to run ``argv`` with ``fds`` (see :mod:`haathi.pps.launcher`);
        False if it is gone."""
        payload = marshal.dumps((
            [os.fsencode(arg) for arg in argv],
            {os.fsencode(key): os.fsencode(value) for key, value in env.items()},
            os.fsencode(cwd),
        ))  # fmt: skip
        message = len(payload).to_bytes(4, "big") + payload
        try:
            sent = socket.send_fds(self.sock, [message], fds, socket.MSG_NOSIGNAL)
            if sent < len(message):
                self.sock.sendall(message[sent:], socket.MSG_NOSIGNAL)
        except OSError:
            return False
        return True

    def receive(self) -> tuple[bool, tuple[Any, ...] | None]:
        """(done, reply): (False, None) while the reply is incomplete, (True, None) when the
        launcher is gone."""
        try:
            chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False, None
        except OSError:
            chunk = b""
        if not chunk:
            return True, None
        self._buf += chunk
        if len(self._buf) < 4 or len(self._buf) < 4 + int.from_bytes(self._buf[:4], "big"):
            return False, None
        reply = marshal.loads(bytes(self._buf[4:]))
        self._buf.clear()
        return True, tuple(reply)

    def kill(self) -> None:
        """Kill the launcher, so everything in the sandbox; returns once all of it is gone."""
        self.stopped = True
        if self.proc.poll() is not None:
            pid = self._launcher_pid()  # it may outlive bwrap (see _LauncherRun.broken)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            return
        if not self.launch.info_fd:
            self.launch.stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_GRACE)
        pid = self._launcher_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            # bwrap exits once the launcher has, and the launcher (PID 1) only once the kernel
            # has killed and reaped everything else in its PID namespace.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_GRACE)
        if self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def _launcher_pid(self) -> int | None:
        if self._child_pid is None and self._info_fd >= 0:
            data = bytearray()
            deadline = time.monotonic() + KILL_GRACE
            with selectors.DefaultSelector() as sel:
                sel.register(self._info_fd, selectors.EVENT_READ)
                while sel.select(max(0.0, deadline - time.monotonic())):
                    chunk = os.read(self._info_fd, 4096)
                    if not chunk:
                        break
                    data += chunk
            self._info_fd = _close(self._info_fd)
            found = _CHILD_PID_RE.search(data)
            self._child_pid = int(found.group(1)) if found else None
        return self._child_pid

    def failure(self) -> str:
        """Why the sandbox broke (its launcher died): a note for the run's output."""
        self.kill()
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - _LOG_TAIL))
        said = self._log.read().decode(errors="replace").strip()
        code = self.proc.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return (
            f"haathi: the {self.launch.kind} sandbox stopped unexpectedly ({how})"
            + (f"; it said:\n{said}" if said else "")
            + "\n"
        )

    def close(self) -> None:
        """End the session and everything in it (killing the idle launcher is the quickest;
        a container's runtime is given a moment to see it exit and clean up)."""
        try:
            if not self.launch.info_fd and not self.stopped and self.proc.poll() is None:
                self.sock.close()  # the launcher exits at end of file
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(KILL_GRACE)
            self.kill()
        finally:
            self.sock.close()
            self._info_fd = _close(self._info_fd)
            self._log.close()


class _LauncherRun:
    """A run in a bwrap session, as :func:`_supervise` watches it."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.exit_fd: int | None = session.sock.fileno()
        self.reply: tuple[Any, ...] | None = None  # None: no reply (yet)

    def exited(self) -> bool:
        done, self.reply = self.session.receive()
        return done

    def broken(self) -> bool:
        # bwrap gone: as root, the launcher's setuid cleared --die-with-parent, so it may
        # live on, holding the socket; the run is over all the same
        return self.session.proc.poll() is not None

    def stop(self, sig: signal.Signals) -> None:
        self.session.kill()  # the whole sandbox, at once

    def after_exit(self) -> None:
        pass  # the launcher has killed and reaped what the command left behind

    def finish(self) -> None:
        if self.reply is None:
            self.session.kill()


# ---------------------------------------------------------------------------------------------
# Watching a run


class _Child(Protocol):
    """A started command, as :func:`_supervise` watches it."""

    exit_fd: int | None  # readable when it may have exited (None: poll ``exited``)

    def exited(self) -> bool: ...

    def broken(self) -> bool: ...  # it can no longer exit normally (its sandbox is gone)

    def stop(self, sig: signal.Signals) -> None: ...

    def after_exit(self) -> None: ...  # kill what it left behind

    def finish(self) -> None: ...  # whatever happened: nothing of it is left running


class _Process:
    """A command started here (sandbox ``none``), leading its own process group."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.exit_fd = _pidfd(proc.pid)

    def exited(self) -> bool:
        return _exited(self.proc.pid)

    def broken(self) -> bool:
        return False

    def stop(self, sig: signal.Signals) -> None:
        _signal_group(self.proc.pid, sig)

    def after_exit(self) -> None:
        # The leader has exited but is not reaped yet, so its group ID cannot be reused: kill
        # whatever it left behind in the group.
        _signal_group(self.proc.pid, signal.SIGKILL)

    def finish(self) -> None:
        if self.exit_fd is not None:
            os.close(self.exit_fd)
        if self.proc.returncode is None:  # not reaped yet, so the group ID is still ours
            _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class _Pipes:
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

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def child_fds(self) -> list[int]:
        return [self.out_w] if self.in_r < 0 else [self.out_w, self.in_r]

    def close_child_ends(self) -> None:
        self.out_w = _close(self.out_w)
        self.in_r = _close(self.in_r)

    def close_stdin(self) -> None:
        self.in_w = _close(self.in_w)

    def close(self) -> None:
        self.close_child_ends()
        self.close_stdin()
        self.out_r = _close(self.out_r)


def _listen(path: Path) -> socket.socket:
    """A Unix socket listening at ``path`` (its directory made), open to any user: the
    launcher may run as another one."""
    path.parent.mkdir(mode=0o755, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bound through a descriptor of its directory: a socket's path may have 107 bytes at most,
    # and the scratch directory may be deeper than that
    where = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        sock.bind(f"/proc/self/fd/{where}/{path.name}")
        os.chmod(path, 0o777)
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    finally:
        os.close(where)
    return sock


def _readable(sock: socket.socket, wait: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        return bool(sel.select(wait))


def _close(fd: int) -> int:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    return -1


def _supervise(
    child: _Child,
    pipes: _Pipes,
    stdin_bytes: bytes | None,
    start: float,
    timeout: float | None,
    cancel: threading.Event | None,
) -> tuple[_Output, bool, bool]:
    """Feed stdin, collect output, enforce the timeout and the cancel event until the command
    exits, then read the rest of its output; nothing of it is left running on return.

    Returns (output, timed out, cancelled).
    """
    out = _Output()
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


def _feed_stdin(pipes: _Pipes, sel: selectors.BaseSelector, pending: memoryview) -> memoryview:
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


def _close_stdin(pipes: _Pipes, sel: selectors.BaseSelector) -> None:
    if pipes.in_w >= 0:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(pipes.in_w)
        pipes.close_stdin()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
