"""The launcher session: a sandbox with :mod:`haathi.pps.launcher` in it as PID 1, and the
protocol haathi speaks with it.

A :class:`Launch` says how a session's sandbox starts (the host's bubblewrap,
:class:`haathi.pps.bwrap.HostLaunch`, or a container of an image, :mod:`haathi.pps.containers`);
a :class:`Session` starts it, sends it each run's command with the run's pipes, and reads
its reply (the message format is the launcher's docstring); :class:`LauncherRun` is one run,
as :func:`haathi.pps.supervisor.supervise` watches it. Killing the session kills everything
in the sandbox.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import re
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from haathi.pps import launcher
from haathi.pps.supervisor import KILL_GRACE, close_fd, signal_group

SOCKET_DIR = ".sock"  # in the scratch directory: where a container's launcher connects
START_TIMEOUT = 120.0
"""Seconds a container's launcher has to connect (the runtime starting the container)."""
RELAY_TIMEOUT = 30.0
"""Seconds the launcher has to answer a relay request."""
SOCKET_MOUNT = "/.haathi/sock"
"""Where a sandbox shows ``S/.sock`` (:data:`SOCKET_DIR`): the sockets haathi serves it."""

Address = bytes | tuple[str, int]
"""A socket address the launcher relays: a Unix socket's path, or TCP (host, port)."""
_CHILD_PID_RE = re.compile(rb'"child-pid":\s*(\d+)')
_LOG_TAIL = 4096  # bytes of bubblewrap's and the launcher's own messages quoted on a failure


class Launch:
    """How a sandbox session starts its launcher (:mod:`haathi.pps.launcher`) and stops it.

    The host sandbox (:class:`~haathi.pps.bwrap.HostLaunch`) and the containers of images
    (:mod:`haathi.pps.containers`) differ only here; a session (:class:`Session`) and the
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
    mounts: tuple[tuple[str, str], ...] = ()
    """Host directories shown read-only inside, as (host path, path inside): the files of the
    secrets the pipeline mounts."""

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


def launcher_argv(python: Sequence[str], sock: str, user: tuple[int, int] | None) -> list[str]:
    """``python`` (a command) running the launcher on ``sock`` (an inherited descriptor's
    number, or a socket's path), becoming ``user`` first if given."""
    argv = [*python, "-I", "-S", "-c", _launcher_source(), sock]
    return argv + [str(n) for n in user or ()]


_LAUNCHER_SOURCE: str | None = None


def _launcher_source() -> str:
    global _LAUNCHER_SOURCE
    if _LAUNCHER_SOURCE is None:
        _LAUNCHER_SOURCE = Path(launcher.__file__).read_text()
    return _LAUNCHER_SOURCE


class Session:
    """A sandbox on ``scratch``, started as ``launch`` says, with :mod:`haathi.pps.launcher`
    in it as PID 1."""

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
                self._listener = listen_unix(scratch / SOCKET_DIR / "launcher.sock")
                on_error.callback(self._listener.close)
                pass_fds = []
            self._info_fd, info_w = os.pipe()  # bwrap writes the launcher's PID there
            on_error.callback(close_fd, self._info_fd)
            child_ends.callback(close_fd, info_w)
            if not launch.info_fd:
                self._info_fd = close_fd(self._info_fd)
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

    def relay(self, listen: Address, connect: Address) -> int:
        """Have the launcher relay every connection made at ``listen`` inside the sandbox to
        ``connect`` (see :mod:`haathi.pps.launcher`); the TCP port it listens on (0 for a Unix
        socket). Called between runs; OSError if the launcher cannot, or is gone."""
        payload = marshal.dumps((b"relay", listen, connect))
        try:
            self.sock.sendall(len(payload).to_bytes(4, "big") + payload, socket.MSG_NOSIGNAL)
        except OSError as exc:
            raise OSError(f"the sandbox's launcher is gone ({exc})") from exc
        deadline = time.monotonic() + RELAY_TIMEOUT
        while True:
            done, reply = self.receive()
            if done:
                break
            left = deadline - time.monotonic()
            if left <= 0 or not _readable(self.sock, left):
                raise OSError("the sandbox's launcher did not answer a relay request")
        if reply is None or reply[0] not in ("relay", "relay-error"):
            raise OSError("the sandbox's launcher is gone")
        if reply[0] == "relay-error":
            raise OSError(reply[1], f"relay: {reply[2]}")
        port: int = reply[1]
        return port

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
            pid = self._launcher_pid()  # it may outlive bwrap (see LauncherRun.broken)
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
            signal_group(self.proc.pid, signal.SIGKILL)
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
            self._info_fd = close_fd(self._info_fd)
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
            self._info_fd = close_fd(self._info_fd)
            self._log.close()


class LauncherRun:
    """A run in a session, as :func:`~haathi.pps.supervisor.supervise` watches it."""

    def __init__(self, session: Session) -> None:
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


def listen_unix(path: Path, backlog: int = 1) -> socket.socket:
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
        sock.listen(backlog)
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
