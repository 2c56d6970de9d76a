"""The ``haathi`` console script: hand the command to a preloader, else run it here.

A cold ``haathi`` process spends most of its time importing (the CLI, the API, SQLAlchemy)
before it does anything. A preloader (:mod:`haathi.cli.preload`) is a background process of the
same user that has imported all that once and forks a copy of itself per command. This module
is what ``haathi`` runs first, and it imports only the standard library: it connects to the
preloader's socket and sends the command line, the environment, the umask, the signal
dispositions and resource limits, and passes its standard input, output and error and its
working directory as file descriptors, so that the command reads, writes and resolves paths as
a process of its own would. Then it forwards the signals it gets to the command and exits as
the command did.

When no preloader answers, the command runs here, as it always did, and a preloader is started
in the background for the next one. ``HAATHI_PRELOAD=0`` turns all of that off (no connection,
no background process); ``haathi stop preloader`` stops the running ones.

Where: one socket per interpreter set-up (Python executable, ``sys.path``, interpreter flags,
``PYTHON*`` variables, groups: :func:`identity`) in a directory only the user can enter
(:func:`socket_dir`). This module also holds what both ends share: the framing of messages
and the identity.
"""

from __future__ import annotations

import _socket
import itertools
import json
import os
import signal
import stat
import sys
import zlib

TYPE_CHECKING = False  # (typing is not imported: see haathi/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import Any

ENV_SWITCH = "HAATHI_PRELOAD"
REPLY_S = 5.0  # how long a client waits for a preloader to take its request (then runs it here)
MAX_MESSAGE = 4 << 20  # bytes; a request carries the environment
# the signals a client passes on to its command; those a terminal sends to its foreground
# process group go to the command's process group, as a terminal would send them
FORWARDED = ("SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")
TO_GROUP = ("SIGINT", "SIGQUIT", "SIGWINCH", "SIGTSTP", "SIGCONT")
# commands that run here, without a preloader and without starting one
LOCAL = (
    ("list", "preloader"),
    ("list", "preloaders"),
    ("stop", "preloader"),
    ("stop", "preloaders"),
)


class UnsafeDirectory(Exception):
    """The socket directory exists but others could reach into it."""


# -- what both ends share ----------------------------------------------------------------------


def socket_dir() -> str:
    """The directory of this user's preloader sockets, created private (0700) if missing:
    ``$XDG_RUNTIME_DIR/haathi``, else ``/tmp/haathi-<uid>``. Raises :class:`UnsafeDirectory`
    when it is not a directory of this user's that only they can enter (a symlink, another
    owner, a wider mode), :class:`OSError` when it cannot be made."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    path = os.path.join(base, "haathi") if os.path.isabs(base) else f"/tmp/haathi-{os.getuid()}"
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # whatever the umask
    except FileExistsError:
        pass
    check_private(path)
    return path


def check_private(path: str) -> None:
    """Raise :class:`UnsafeDirectory` unless ``path`` is a directory (not a symlink) owned by
    this user with no permission for group or others."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a directory"
        raise UnsafeDirectory(
            f"{path} is {kind} of uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}, "
            f"not a private directory of uid {os.getuid()}"
        )


def identity() -> dict[str, Any]:
    """What a preloaded process must share with this one to run a command as this process
    would: the interpreter and its flags, the import path, haathi's location, the ``PYTHON*``
    variables read at start-up, the file system encoding, and the user's groups."""
    import haathi

    return {
        "python": sys.executable,
        "path": list(sys.path),
        "haathi": os.path.dirname(os.path.abspath(haathi.__file__)),
        "flags": list(sys.flags),
        "xoptions": sorted(f"{k}={v}" for k, v in sys._xoptions.items()),
        "warnoptions": list(sys.warnoptions),
        "fsencoding": [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()],
        "env": sorted([k, v] for k, v in os.environ.items() if k.startswith("PYTHON")),
        "ids": [os.getuid(), os.getgid(), sorted(os.getgroups())],
    }


def key_of(ident: dict[str, Any]) -> str:
    """The socket's name for an identity (the request carries the whole identity, which the
    preloader compares: a collision costs a cold start, never a wrong process)."""
    data = json.dumps(ident, sort_keys=True).encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def frame(message: Any) -> bytes:
    """One message on the wire: its length (4 bytes, big-endian), then its JSON."""
    data = json.dumps(message).encode()
    return len(data).to_bytes(4, "big") + data


def unframe(buffer: bytearray) -> Any:
    """Take the first whole message out of ``buffer``; None if there is none yet. Raises
    ValueError for a message too long or not JSON."""
    if len(buffer) < 4:
        return None
    size = int.from_bytes(buffer[:4], "big")
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes")
    if len(buffer) < 4 + size:
        return None
    data = bytes(buffer[4 : 4 + size])
    del buffer[: 4 + size]
    return json.loads(data)


def fds_of(ancillary: Sequence[tuple[int, int, bytes]]) -> list[int]:
    """The file descriptors passed with a message (SCM_RIGHTS)."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(data) - len(data) % 4
            fds += [int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, whole, 4)]
    return fds


def send(sock: _socket.socket, message: Any, fds: Sequence[int] = ()) -> None:
    """Send one message (blocking), passing ``fds`` with its first byte."""
    data = frame(message)
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)] if fds else []
    sent = sock.sendmsg([data], ancillary)
    while sent < len(data):
        sent += sock.send(data[sent:])


class Channel:
    """The client's end of a connection: whole messages in, and the descriptors that came
    with them."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.fds: list[int] = []

    def receive(self) -> Any:
        """The next message; None when the other end has closed the connection."""
        while True:
            message = unframe(self.buffer)
            if message is not None:
                return message
            data, ancillary, _flags, _addr = self.sock.recvmsg(1 << 16, _socket.CMSG_SPACE(4 * 4))
            self.fds += fds_of(ancillary)
            if not data:
                return None
            self.buffer += data


def preloader_sockets(directory: str) -> list[str]:
    """The sockets in ``directory`` (one per preloader, live or left behind by one that died)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.endswith(".sock"))


def ask(path: str, message: dict[str, Any], timeout: float = REPLY_S) -> Any:
    """Send one control message (``status``, ``stop``) to the preloader at ``path``; its
    answer, or None when nothing answers there."""
    try:
        sock = _connect(path, timeout)
    except OSError:
        return None
    try:
        send(sock, message)
        return Channel(sock).receive()
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def remove_dead(path: str) -> None:
    """Remove the socket at ``path`` if no preloader holds its lock (it died)."""
    import fcntl

    try:
        lock = os.open(path.removesuffix(".sock") + ".lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        lock = -1
    except OSError:
        return
    try:
        if lock >= 0:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except OSError:
        pass
    finally:
        if lock >= 0:
            os.close(lock)


# -- the client ---------------------------------------------------------------------------------


def main() -> None:
    """The ``haathi`` console script."""
    argv = sys.argv[1:]
    if _wanted(argv):
        status = _through_preloader()
        if status is not None:
            _exit_as(status)
    from haathi.cli.main import run

    run(argv)


def enabled() -> bool:
    """Whether ``HAATHI_PRELOAD`` lets commands use a preloader (anything but 0/false/no/off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _wanted(argv: list[str]) -> bool:
    if not enabled() or not sys.platform.startswith("linux"):
        return False
    if any(pair in LOCAL for pair in itertools.pairwise(argv)):  # `stop preloader`, ...
        return False
    try:  # a closed standard stream: run here, where Python knows what to make of it
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return all(s is not None for s in (sys.stdin, sys.stdout, sys.stderr))


def _through_preloader() -> int | None:
    """Run the command in a preloaded process: its wait status, or None if it must run here
    (no preloader answered: one is started for the next command)."""
    try:
        directory = socket_dir()
    except UnsafeDirectory as exc:
        print(f"haathi: not preloading: {exc} (HAATHI_PRELOAD=0 turns preloading off)",
              file=sys.stderr)  # fmt: skip
        return None
    except OSError:
        return None
    ident = identity()
    key = key_of(ident)
    path = os.path.join(directory, f"{key}.sock")
    if len(os.fsencode(path)) >= 108:  # sun_path
        return None
    try:
        sock = _connect(path, REPLY_S)
    except OSError:
        spawn(directory, key, ident)
        return None
    try:
        return _run(Channel(sock), ident, directory, key)
    finally:
        sock.close()


def _connect(path: str, timeout: float) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def request(ident: dict[str, Any]) -> dict[str, Any]:
    """What a preloaded process needs to become this one (besides its descriptors)."""
    import resource

    umask = os.umask(0o022)
    os.umask(umask)
    limits = {
        name: list(resource.getrlimit(getattr(resource, name)))
        for name in dir(resource)
        if name.startswith("RLIMIT_")
    }
    ignored = [
        int(s) for s in signal.valid_signals()
        if s not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(s) == signal.SIG_IGN
    ]  # fmt: skip
    streams = (sys.stdin, sys.stdout, sys.stderr)
    return {
        "op": "run",
        "identity": ident,
        "argv": list(sys.argv),
        "env": dict(os.environ),
        "umask": umask,
        # and whether the interpreter buffers them (python -u, PYTHONUNBUFFERED: it does not)
        "stdio": [[s.encoding, s.errors, not getattr(s, "write_through", False)] for s in streams],
        "ignored": ignored,
        "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "limits": limits,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": sorted(os.sched_getaffinity(0)),
    }


def _run(channel: Channel, ident: dict[str, Any], directory: str, key: str) -> int | None:
    """Hand the command over: request, ``ready``, ``go``; then the command's pid, and at last
    its wait status. Until ``go`` the command can still run here; after it, never twice."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_PATH", 0)
    try:
        cwd = os.open(".", flags)
    except OSError:
        return None
    try:
        send(channel.sock, request(ident), (0, 1, 2, cwd))
        reply = channel.receive()
    except (OSError, ValueError):
        return None
    finally:
        os.close(cwd)
    if not isinstance(reply, dict) or not reply.get("ready"):
        if isinstance(reply, dict) and "stale" in reply:  # it has gone: start a fresh one
            spawn(directory, key, ident)
        return None
    forwarder = Forwarder()
    try:
        send(channel.sock, {"go": True})
    except OSError:
        forwarder.restore()
        return None
    channel.sock.settimeout(None)  # committed: the command runs there, as long as it runs
    while True:
        try:
            message = channel.receive()
        except (OSError, ValueError):
            message = None
        if isinstance(message, dict) and "pid" in message:
            forwarder.attach(int(message["pid"]), channel.fds[-1] if channel.fds else None)
        elif isinstance(message, dict) and "exit" in message:
            return int(message["exit"])
        elif message is None:
            return forwarder.lost()


class Forwarder:
    """Passes the signals this process gets on to the command, queued until its pid is known.

    SIGTSTP (Ctrl-Z) stops the command's process group, then this process; SIGCONT resumes
    both, so job control works as with a process of its own."""

    def __init__(self) -> None:
        self.pid = 0
        self.pidfd: int | None = None
        self.queued: list[int] = []
        self.saved: dict[int, Any] = {}
        for name in (*FORWARDED, "SIGTSTP"):
            num = getattr(signal, name)
            old = signal.getsignal(num)
            if old == signal.SIG_IGN:  # ignored here, as the command will ignore it
                continue
            self.saved[num] = old
            handler: Callable[[int, FrameType | None], None]
            handler = self._stop if name == "SIGTSTP" else self._forward
            signal.signal(num, handler)

    def restore(self) -> None:
        for num, old in self.saved.items():
            signal.signal(num, old)

    def attach(self, pid: int, pidfd: int | None) -> None:
        self.pid, self.pidfd = pid, pidfd
        for num in self.queued:
            self.send(num)
        self.queued.clear()

    def _forward(self, num: int, _frame: FrameType | None) -> None:
        if self.pid:
            self.send(num)
        else:
            self.queued.append(num)

    def _stop(self, num: int, _frame: FrameType | None) -> None:
        self._forward(num, _frame)
        signal.signal(num, signal.SIG_DFL)
        os.kill(os.getpid(), num)  # stops here until SIGCONT (forwarded to the command)
        signal.signal(num, self._stop)

    def send(self, num: int) -> None:
        """Signal the command: its process group for what a terminal sends to a group."""
        if signal.Signals(num).name in TO_GROUP:
            try:
                os.killpg(self.pid, num)
                return
            except OSError:
                pass  # not yet a group leader, or gone
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, num)
            else:
                os.kill(self.pid, num)
        except OSError:
            pass  # it has ended

    def lost(self) -> int:
        """The preloader went away before it said how the command ended: wait until the
        command ends, then say so and fail."""
        if self.pidfd is not None:
            import select
            from contextlib import suppress

            with suppress(OSError):
                select.select([self.pidfd], [], [])
        print("haathi: the preloader ended before the command did; its exit status is lost",
              file=sys.stderr)  # fmt: skip
        return 1 << 8


def _exit_as(status: int) -> None:
    """End this process as the command's wait status says: its exit code, or its signal."""
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        sys.stdout.flush()
        if num not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(num, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [num])
        os.kill(os.getpid(), num)
        os._exit(128 + num)  # a signal that does not end a process (SIGCHLD, ...)
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def interpreter_args() -> list[str]:
    """The command-line options that give a new interpreter this one's flags."""
    import subprocess

    return list(getattr(subprocess, "_args_from_interpreter_flags")())  # noqa: B009


BOOT = (
    "import json, sys; a = json.loads(sys.argv[1]); sys.path[:] = a['identity']['path']; "
    "from haathi.cli.preload import serve; serve(a)"
)


def spawn(directory: str, key: str, ident: dict[str, Any]) -> None:
    """Start a preloader for ``key`` in the background (a new session, standard streams on
    /dev/null, in /), unless one holds the key's lock (it is starting or serving). The
    preloader inherits the locked descriptor and holds the lock for as long as it lives."""
    import fcntl

    lock = os.open(os.path.join(directory, f"{key}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)  # fmt: skip
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another client is starting it, or it is running
        args = json.dumps({"dir": directory, "key": key, "lock": lock, "identity": ident})
        argv = [sys.executable, *interpreter_args(), "-c", BOOT, args]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child execs or exits
            _daemon(argv, lock)
        os.waitpid(pid, 0)
    finally:
        os.close(lock)


def _daemon(argv: list[str], lock: int) -> None:
    """In a forked child: fork again (so the preloader is nobody's child to wait for) and exec
    the preloader, detached from this session, its streams and its other descriptors."""
    try:
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, lock)
            os.closerange(lock + 1, 1 << 16)
            os.set_inheritable(lock, True)
            os.chdir("/")
            os.execv(argv[0], argv)
    finally:
        os._exit(0)
