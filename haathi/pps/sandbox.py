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
    loopback device). When haathi runs as root, user code runs as
    :data:`~haathi.pps.bwrap.UNPRIVILEGED` (``nobody``) with no capabilities. The working
    directory is ``working_dir``, else the caller's if it is visible inside, else ``/``.
    ``PWD`` is set to it; otherwise the environment is exactly the given mapping. When the
    command exits, every process it left behind is killed and reaped before the run returns.

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
:data:`~haathi.pps.supervisor.OUTPUT_CAP` bytes. A process killed by signal N reports exit code
128 + N, as a shell does; a missing command is 127 and one that cannot be executed (a script
without a ``#!`` line included) 126. A timeout or the ``cancel`` event kills the run: under
``none`` the whole group (SIGTERM, then SIGKILL 2 s later), under ``bwrap`` the sandbox and
everything in it at once (the next run starts a fresh sandbox, with the same ``/tmp``). If the
sandbox itself breaks (its launcher dies), the run fails with no exit code and a note saying
why, and the next run starts a fresh sandbox.

This module chooses the sandbox and prepares each datum's scratch directory; the parts are
:mod:`haathi.pps.bwrap` (the host sandbox's command line), :mod:`haathi.pps.session` (the
launcher in a sandbox, and the protocol with it) and :mod:`haathi.pps.supervisor` (watching a
run: output, timeout, cancel, clean-up).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.pps.bwrap import EMPTY, UNPRIVILEGED, HostLaunch
from haathi.pps.hostview import HostView
from haathi.pps.session import SOCKET_DIR, SOCKET_MOUNT, Address, Launch, LauncherRun, Session
from haathi.pps.supervisor import Output, Pipes, Process, Sink, supervise

SANDBOXES = ("auto", "bwrap", "none")

# `/pfs` where it starts a path: not preceded by a path character, not followed by a name one.
_PFS_RE = re.compile(r"(?<![\w.\-/~$})\]])/pfs(?![\w.\-])")


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


def probe_bwrap() -> tuple[str | None, str]:
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
    path, why = probe_bwrap()
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
        return f"no isolation: bubblewrap cannot run here ({probe_bwrap()[1]})"
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


def _check_input_names(input_names: Sequence[str]) -> None:
    for name in input_names:
        if not name or "/" in name or "\0" in name or name in (".", "..", "out"):
            raise InvalidArgument(f"bad input name for /pfs: {name!r}", input=name)


# ---------------------------------------------------------------------------------------------
# Running


def open_sandbox(
    sandbox: str,
    scratch: Path,
    view: HostView | None = None,
    mounts: Sequence[tuple[str, str]] = (),
) -> Sandbox:
    """A :class:`Sandbox` of the kind requested (``auto``, ``bwrap`` or ``none``) on ``scratch``,
    showing the host as ``view`` says (bwrap), and ``mounts`` read-only (see
    :class:`Sandbox`)."""
    kind = resolve_sandbox(sandbox)
    return Sandbox(
        kind, scratch, probe_bwrap()[0] if kind == "bwrap" else None, view, mounts=mounts
    )


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
        mounts: Sequence[tuple[str, str]] = (),
    ) -> None:
        """``kind`` is ``bwrap`` (``bwrap`` is then its path, and ``view`` says what of the
        host it shows) or ``none``; see :func:`open_sandbox`. With ``launch`` (a container of
        an image, :mod:`haathi.pps.containers`), ``kind`` names its runtime and ``launch``
        starts it (and shows its own ``mounts``). ``mounts``: host directories the bwrap
        sandbox shows read-only, as (host path, path inside); ``none`` cannot show them."""
        if launch is None and (
            kind not in ("bwrap", "none") or (kind == "bwrap") != (bwrap is not None)
        ):
            raise ValueError(f"bad sandbox kind {kind!r} (bwrap: {bwrap!r})")
        if launch is None and bwrap is None and mounts:
            raise FailedPrecondition(
                "secrets with mount_path need a sandbox (bwrap or a container): sandbox none "
                "cannot show files at a path"
            )
        self.kind = kind
        self.scratch = Path(os.path.abspath(scratch))
        for sub in ("tmp", "pfs/out", SOCKET_DIR):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        if launch is None and bwrap is not None:
            as_user = os.geteuid() == 0
            layout = (view or HostView()).layout(unprivileged=as_user)
            launch = HostLaunch(bwrap, layout, UNPRIVILEGED if as_user else None, mounts)
        self.launch = launch
        """How the sandbox's launcher starts (None: no sandbox, ``none``)."""
        self.pfs = "/pfs" if launch is not None else str(self.scratch / "pfs")
        """What ``/pfs`` is for the user code."""
        if launch is not None:
            (self.scratch / EMPTY).mkdir(mode=0o555, exist_ok=True)
            if launch.owner is not None and os.geteuid() == 0:
                for sub in ("tmp", "pfs/out"):  # user code's own: it runs as launch.owner
                    os.chown(self.scratch / sub, *launch.owner)
                for host, _ in launch.mounts:  # its secrets: readable by it alone
                    for path in (host, *(e.path for e in os.scandir(host))):
                        os.chown(path, *launch.owner)
        self._session: Session | None = None
        self._relays: list[tuple[Address, Address]] = []  # set up in every session
        self._published: list[tuple[str, int]] = []  # (socket in S/tmp, port inside): too
        self._relayed: Session | None = None  # the session they are set up in
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

    def relay(self, connect: Path) -> int | None:
        """Make the Unix socket ``connect`` (in ``S/.sock``) reachable by user code at
        ``127.0.0.1:PORT`` on the sandbox's own loopback (it has no other network): the
        launcher relays each connection there to the socket. Returns PORT, the same for the
        whole datum set (a sandbox started again after a timeout relays it again); None
        without a sandbox (``none``), where user code shares the host's network and the
        caller listens on the host's loopback itself. OSError if the launcher cannot."""
        if self.launch is None:
            return None
        inside = os.fsencode(f"{SOCKET_MOUNT}/{connect.relative_to(self.scratch / SOCKET_DIR)}")
        session = self._session or self._start_session()
        if not session.connect():
            raise OSError(f"the {self.kind} sandbox did not start")
        self._set_up_relays(session)
        port = session.relay(("127.0.0.1", 0), inside)
        self._relays.append((("127.0.0.1", port), inside))
        return port

    def publish(self, port: int) -> Path | None:
        """Make TCP ``127.0.0.1:port`` on the sandbox's own loopback (where user code serves,
        a service's ``internal_port``) reachable from the host: the launcher listens on a Unix
        socket in the sandbox's ``/tmp`` and relays each connection made there to the port.
        Returns where that socket is on the host (``S/tmp/...``: user code may replace it, so
        connect to it with :func:`connect_published`); None without a sandbox (``none``),
        where user code listens on the host's loopback itself. OSError if the launcher
        cannot."""
        if self.launch is None:
            return None
        name = f".haathi-port-{port}.sock"
        session = self._session or self._start_session()
        if not session.connect():
            raise OSError(f"the {self.kind} sandbox did not start")
        self._set_up_relays(session)
        self._publish_in(session, name, port)
        self._published.append((name, port))
        return self.scratch / "tmp" / name

    def _publish_in(self, session: Session, name: str, port: int) -> None:
        with contextlib.suppress(FileNotFoundError):  # left by a session killed before
            os.unlink(self.scratch / "tmp" / name)
        session.relay(os.fsencode(f"/tmp/{name}"), ("127.0.0.1", port))

    def _set_up_relays(self, session: Session) -> None:
        """The relays asked for so far, in ``session`` (once)."""
        if self._relayed is not session:
            for listen, connect in self._relays:
                session.relay(listen, connect)
            for name, port in self._published:
                self._publish_in(session, name, port)
            self._relayed = session

    def new_datum(self, input_names: Sequence[str]) -> Path:
        """Remove the previous datum's inputs and outputs; returns ``S/pfs``, where this datum's
        inputs go (as ``S/pfs/<name>`` for each of ``input_names``).

        The directory of an input this datum has too is emptied rather than removed and made
        again: a datum of one small file then costs an unlink, not an rmdir and a mkdir (on
        ext4 an rmdir took ~1 ms, a fifth of a ``true`` datum's time)."""
        _check_input_names(input_names)
        pfs = self.scratch / "pfs"
        with os.scandir(pfs) as entries:
            for entry in entries:
                if entry.name == "out":
                    continue
                if entry.name in input_names and entry.is_dir(follow_symlinks=False):
                    _empty(entry.path)
                else:
                    _remove(entry)
        self.clear_out()
        return pfs

    def clear_out(self) -> None:
        """Empty ``S/pfs/out`` in place (a bwrap sandbox's mount holds that very directory)."""
        out = self.scratch / "pfs" / "out"
        try:
            _empty(out)
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
        sink: Sink | None = None,
    ) -> RunResult:
        """Run ``argv`` once for the current datum; never raises for the user code's faults.

        ``stdin`` is the text written to the command (``None``: ``/dev/null``); ``env`` is its
        whole environment; ``sink`` takes its output as it comes.
        """
        if not argv:
            raise InvalidArgument("the command (transform.cmd) is empty")
        if self.launch is not None:
            return self._run_inside(argv, stdin, env, working_dir, timeout, cancel, sink)
        return self._run_here(argv, stdin, env, working_dir, timeout, cancel, sink)

    def _run_here(
        self,
        argv: Sequence[str],
        stdin: str | None,
        env: Mapping[str, str],
        working_dir: str | None,
        timeout: float | None,
        cancel: threading.Event | None,
        sink: Sink | None,
    ) -> RunResult:
        """No sandbox: a process of our own, with ``/pfs`` paths mapped to ``S/pfs``."""
        pfs = self.pfs
        full_argv = [map_pfs(arg, pfs) for arg in argv]
        full_env = {key: map_pfs(value, pfs) for key, value in env.items()}
        full_env.setdefault("TMPDIR", str(self.scratch / "tmp"))
        cwd = map_pfs(working_dir, pfs) if working_dir else None
        stdin_bytes = None if stdin is None else map_pfs(stdin, pfs).encode()
        start = time.monotonic()
        with Pipes(stdin_bytes is not None) as pipes:
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
            out, timed_out, cancelled = supervise(
                Process(proc), pipes, stdin_bytes, start, timeout, cancel, sink
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
        sink: Sink | None,
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
            return _result(Output(), None, False, False, start, note)
        connected = session.connect()
        if connected and self._relayed is not session:
            try:
                self._set_up_relays(session)
            except OSError as exc:
                note = f"haathi: cannot relay the sandbox's sockets: {exc}\n"
                self.close()
                return _result(Output(), None, False, False, start, note)
        run = LauncherRun(session)
        with Pipes(stdin_bytes is not None) as pipes:
            if connected and session.send(argv, {**env, "PWD": cwd}, cwd, pipes.child_fds()):
                pipes.close_child_ends()
                out, timed_out, cancelled = supervise(
                    run, pipes, stdin_bytes, start, timeout, cancel, sink
                )
            else:  # the launcher is gone
                out, timed_out, cancelled = Output(), False, False
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

    def _start_session(self) -> Session:
        assert self.launch is not None
        self._session = Session(self.launch, self.scratch)
        return self._session


def _empty(directory: str | Path) -> None:
    """Delete everything in ``directory`` (as far as it can), keeping the directory."""
    with os.scandir(directory) as entries:
        for entry in entries:
            _remove(entry)


def _remove(entry: os.DirEntry[str]) -> None:
    """Delete a file, a symlink or a directory tree, as far as it can (as ``rm -rf``)."""
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _result(
    out: Output,
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


def connect_published(path: Path) -> socket.socket:
    """A connection to the socket :meth:`Sandbox.publish` returned, never following a link:
    user code owns the directory it is in, and could put a link to a host socket there."""
    where = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(path.name, os.O_PATH | os.O_NOFOLLOW, dir_fd=where)
    finally:
        os.close(where)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise ConnectionRefusedError(f"{path} is not a socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{fd}")  # the socket opened above, not a path again
        except OSError:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)
