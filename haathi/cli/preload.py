"""The preloader: a background process that has imported the CLI and the embedded stack once,
and forks a copy of itself for each ``haathi`` command (the client is
:mod:`haathi.cli.launcher`; the console script starts a preloader when none answers).

What it holds: the modules of :data:`PRELOAD` (the CLI and its command modules, the client,
the API, the runtime, SQLAlchemy and its SQLite dialect), imported, and typer's command tree,
built. What it never holds: a store, a database connection, a thread. It is one thread serving
a selector loop; nothing a client does can stall it (reads are bounded, and a client has
:data:`REQUEST_S` to say what it wants).

One command, as the client sees it: connect, send the request with the client's standard
streams and working directory (``SCM_RIGHTS``); the preloader answers ``ready`` (or ``stale``:
see below); the client says ``go``; the preloader forks and sends the command's pid (and a
pidfd, for signals without a pid race); at the end it sends the command's wait status. A
client that disconnects before its command ends has its command terminated (SIGTERM).

The forked child becomes the client's process (:mod:`haathi.cli.preload_child`): its
descriptors on 0, 1, 2, its directory, umask, environment (wholesale), locale and time zone,
resource limits, nice value and CPUs, signal dispositions and mask, fresh ``sys.std*`` streams
with the client's encodings, ``sys.argv``, the CLI's consoles re-made for those streams; then
it runs :func:`haathi.cli.main.run` and ends as the interpreter would (threads joined,
``atexit``, streams flushed).

A preloader answers ``stale`` and exits (the client runs the command itself and starts a new
one) when a module file of haathi, a directory on ``sys.path`` or haathi's installed metadata
changed since it loaded them, when the client's value of an environment variable that an
imported module read at import differs from its own, or when the client's resource limits or
nice value are out of its reach. It also exits after :data:`IDLE_S` idle seconds
(``HAATHI_PRELOAD_IDLE``), when its socket is removed or replaced, on ``haathi stop
preloader``, and on SIGTERM; commands it is running finish first.
"""

from __future__ import annotations

import gc
import importlib
import os
import pkgutil
import resource
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from haathi.cli import launcher
from haathi.cli.preload_child import Request, become, command, finish

ENV_IDLE = "HAATHI_PRELOAD_IDLE"
IDLE_S = 15 * 60.0
REQUEST_S = 5.0  # a client has this long to send its request, and then its go
CHECK_S = 5.0  # an idle preloader checks this often that its socket is still its own
# what a command would otherwise import before it does anything (besides the CLI's modules,
# which are all imported); by name, since the CLI itself writes no SQL
PRELOAD = (
    "haathi.cli.main",
    "haathi.allocator",
    "haathi.api",
    "haathi.runtime",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "rich.progress",
)
# and every module of these packages (the CLI's, the client's: embedded and remote), but these
PACKAGES = ("haathi.cli", "haathi.client")
NOT_PRELOADED = ("haathi.client.filesystem", "haathi.client.fsfile")  # fsspec's, not the CLI's
# and what the libraries import on first use, where they still have it (private names)
WARM = ("rich._emoji_codes", "typer._click.decorators", "click")
# signals held back from a new child until it has the client's dispositions
HELD = tuple(getattr(signal, n) for n in (*launcher.FORWARDED, "SIGTSTP"))


# -- the preloader process ----------------------------------------------------------------------


def serve(args: dict[str, Any]) -> None:
    """A preloader's life (started by :func:`haathi.cli.launcher.spawn`): import, listen,
    serve until idle or stale. Returns in the preloader when it is done; in each forked child
    it runs that child's command and never returns."""
    directory, key, lock = str(args["dir"]), str(args["key"]), int(args["lock"])
    os.set_inheritable(lock, False)
    if launcher.identity() != args["identity"]:
        return  # started with other flags than its client's: it could not serve it
    launcher.check_private(directory)
    with env_reads() as reads:
        preload()
    gc.collect()
    gc.freeze()  # what a child inherits is not traversed by its collections
    if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
        return  # an import started a thread: forking would copy it without its thread
    preloader = Preloader(
        directory=directory,
        key=key,
        lock=lock,
        identity=args["identity"],
        watched_env={name: os.environ.get(name) for name in reads.names},
        whole_env=dict(os.environ) if reads.everything else None,
        files=Files.of_loaded(),
        idle_s=idle_seconds(),
    )
    request = preloader.run()
    if request is not None:  # the child of a fork
        try:
            become(request)
        except Exception as exc:  # a bug: said in one line, as haathi.cli.main.run says them
            message = f"internal error: preloaded process: {type(exc).__name__}: {exc}\n"
            with suppress(OSError):
                os.write(2, message.encode(errors="replace"))
            os._exit(1)
        finish(command(request))


def idle_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV_IDLE, IDLE_S)))
    except ValueError:
        return IDLE_S


def preload() -> None:
    """Make the CLI's command tree, every command of it (what each ``haathi`` process
    otherwise makes first; the commands register in the order the CLI gives them), then
    import what commands import when they run (:data:`PRELOAD`, :data:`WARM`, the modules
    of :data:`PACKAGES`)."""
    from haathi.cli.main import click_command

    _make_every_command(click_command())
    for name in PRELOAD:
        importlib.import_module(name)
    for name in WARM:
        with suppress(ImportError):
            importlib.import_module(name)
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        for info in pkgutil.iter_modules(path, f"{package}."):
            if info.name not in NOT_PRELOADED:
                importlib.import_module(info.name)


def _make_every_command(group: Any) -> None:
    """Make each command of a click group and of its subgroups (a tree made lazily, command
    by command on first look-up, then has them all)."""
    commands = getattr(group, "commands", None)
    if commands is not None:
        for name in list(commands):
            _make_every_command(commands[name])


class EnvReads:
    """The environment variables that modules read while they were imported (their values
    may be baked into them), found by watching ``os.environ`` meanwhile."""

    # the modules that ``os.environ.get``, ``os.getenv``, ``os.path.expanduser`` go through
    PLUMBING = frozenset({"os", "_collections_abc", "collections.abc", "posixpath", "genericpath"})
    # readers whose reads need no watching: the standard library's (sysconfig's user base),
    # and rich's Console, which the child builds again (haathi.cli.render.reopen)
    REBUILT = frozenset({"rich.console"})

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.everything = False

    def reader(self) -> str | None:
        """The module reading, or None for one whose reads do not matter."""
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") in self.PLUMBING | {__name__}:
            frame = frame.f_back  # type: ignore[assignment]
        name = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
        if name.split(".")[0] in sys.stdlib_module_names or name in self.REBUILT:
            return None
        return name

    def read(self, key: str) -> None:
        if self.reader() is not None:
            self.names.add(key)

    def listed(self) -> None:
        if self.reader() is not None:
            self.everything = True


@contextmanager
def env_reads() -> Iterator[EnvReads]:
    """Record in an :class:`EnvReads` what is read of ``os.environ`` inside the block."""
    reads = EnvReads()
    cls = type(os.environ)
    getitem, iterate = cls.__getitem__, cls.__iter__

    def watched_getitem(env: Any, key: str) -> Any:
        reads.read(key)
        return getitem(env, key)

    def watched_iter(env: Any) -> Any:
        reads.listed()
        return iterate(env)

    setattr(cls, "__getitem__", watched_getitem)  # noqa: B010
    setattr(cls, "__iter__", watched_iter)  # noqa: B010
    try:
        yield reads
    finally:
        setattr(cls, "__getitem__", getitem)  # noqa: B010
        setattr(cls, "__iter__", iterate)  # noqa: B010


Stamp = tuple[int, int, int, int] | None


def stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


@dataclass
class Files:
    """The files whose change makes a preloader stale, and how they were."""

    stamps: dict[str, Stamp]

    @classmethod
    def of_loaded(cls) -> Files:
        """haathi's loaded modules and their directories, the directories on ``sys.path``
        (an install or uninstall changes them) and haathi's installed metadata."""
        paths: set[str] = set()
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and (name == "haathi" or name.startswith("haathi.")):
                paths.update((file, os.path.dirname(file)))
        for entry in sys.path:
            if not os.path.isdir(entry):
                continue
            paths.add(entry)
            for name in os.listdir(entry):
                if name.startswith(("haathi-", "__editable__.haathi-", "__editable___haathi_")):
                    path = os.path.join(entry, name)
                    paths.add(path)
                    if os.path.isdir(path):
                        paths.update(os.path.join(path, n) for n in os.listdir(path))
        return cls({p: stamp(p) for p in sorted(paths)})

    def changed(self) -> str | None:
        """The first file that changed, or None."""
        for path, was in self.stamps.items():
            if stamp(path) != was:
                return path
        return None


@dataclass
class Conn:
    sock: socket.socket
    deadline: float  # for the request, and then the go
    buffer: bytearray = field(default_factory=bytearray)
    fds: list[int] = field(default_factory=list)
    request: dict[str, Any] | None = None  # once answered ready
    pid: int = 0  # once its command runs


def peer_ids(sock: socket.socket) -> tuple[int, int, int]:
    """The (pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return pid, uid, gid


def trusted(uid: int) -> bool:
    """Whether a peer of this uid may use this preloader: this user only."""
    return uid == os.getuid()


class Preloader:
    """The selector loop: accept, read requests, fork, reap, answer."""

    def __init__(
        self,
        *,
        directory: str,
        key: str,
        lock: int,
        identity: dict[str, Any],
        watched_env: dict[str, str | None],
        whole_env: dict[str, str] | None,
        files: Files,
        idle_s: float,
    ) -> None:
        self.path = os.path.join(directory, f"{key}.sock")
        self.lock: int | None = lock
        self.identity = identity
        self.watched_env = watched_env
        self.whole_env = whole_env
        self.files = files
        self.idle_s = idle_s
        self.pid = os.getpid()
        self.started = time.time()
        self.served = 0
        self.conns: dict[int, Conn] = {}
        self.children: dict[int, Conn | None] = {}  # pid -> its client (None once gone)
        self.listener: socket.socket | None = None
        self.inode = 0
        self.stopping = False
        self.signalled = False
        self.last = time.monotonic()  # the last command's request or end
        self.next_check = self.last + CHECK_S
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> Request | None:
        """Serve until done (None), or, in a forked child, return its request."""
        for s in (self.wake_r, self.wake_w):
            s.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _ignore)
        for num in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(num, self._on_stop_signal)
        self.sel.register(self.wake_r, selectors.EVENT_READ, self._drain)
        self._listen()
        try:
            while not (self.stopping and not self.children):
                for key, _ in self.sel.select(self._timeout()):
                    handler: Callable[[Any], Request | None] = key.data
                    request = handler(key.fileobj)
                    if request is not None:
                        return request
                self._reap()
                self._expire()
            return None
        finally:
            if os.getpid() == self.pid:
                self._retire()
                for conn in list(self.conns.values()):
                    self._drop(conn)

    def _listen(self) -> None:
        """Bind a new name, then rename it over the socket's path: a client finds either the
        old socket or a new one that is ready."""
        tmp = f"{self.path}.{os.getpid()}"
        with suppress(OSError):
            os.unlink(tmp)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(tmp)
        os.chmod(tmp, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        os.rename(tmp, self.path)
        self.inode = os.stat(self.path).st_ino
        self.listener = listener
        self.sel.register(listener, selectors.EVENT_READ, self._accept)

    def _timeout(self) -> float:
        now = time.monotonic()
        ends = [self.next_check]
        ends += [c.deadline for c in self.conns.values() if not c.pid]
        if not self.conns and not self.children:
            ends.append(self.last + self.idle_s)
        return max(0.0, min(ends) - now)

    def _expire(self) -> None:
        now = time.monotonic()
        if self.signalled:
            self._retire()
        for conn in [c for c in self.conns.values() if not c.pid and c.deadline <= now]:
            self._drop(conn)  # it said nothing, or not all, in time
        if not self.children and not self.conns and now - self.last >= self.idle_s:
            self._retire()
        if now >= self.next_check:
            self.next_check = now + CHECK_S
            if self.listener is not None and _inode(self.path) != self.inode:
                self._retire()  # removed or replaced: nobody will find this one any more

    def _retire(self) -> None:
        """Stop taking commands: the socket goes (if still ours), the lock is released (a new
        preloader may start); running commands finish."""
        self.stopping = True
        if self.listener is not None:
            self.sel.unregister(self.listener)
            if _inode(self.path) == self.inode:
                with suppress(OSError):
                    os.unlink(self.path)
            self.listener.close()
            self.listener = None
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    def _on_stop_signal(self, _num: int, _frame: object) -> None:
        self.signalled = True  # the loop retires at its next turn

    # -- connections -------------------------------------------------------------------------

    def _drain(self, sock: socket.socket) -> None:
        with suppress(OSError):
            while sock.recv(4096):
                pass

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                _pid, uid, _gid = peer_ids(sock)
            except OSError:
                uid = -1
            if not trusted(uid):
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(sock, time.monotonic() + REQUEST_S)
            self.conns[sock.fileno()] = conn
            self.sel.register(sock, selectors.EVENT_READ, self._readable)

    def _readable(self, sock: socket.socket) -> Request | None:
        conn = self.conns.get(sock.fileno())
        if conn is None or conn.sock is not sock:
            return None  # dropped earlier in this turn (its descriptor may be another's now)
        if conn.pid:  # its command runs: the client may only go away
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError:
                data = b""
            if not data:
                self._gone(conn)
            return None
        try:
            data, ancillary, flags, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 8))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self._drop(conn)
            return None
        conn.fds += launcher.fds_of(ancillary)
        if not data or flags & socket.MSG_CTRUNC:
            self._drop(conn)
            return None
        conn.buffer += data
        while conn.sock.fileno() != -1 and not conn.pid:
            try:
                message = launcher.unframe(conn.buffer)
            except ValueError:
                self._drop(conn)
                return None
            if message is None:
                return None
            try:
                child = self._message(conn, message)
            except (ValueError, TypeError, KeyError, AttributeError):
                if os.getpid() != self.pid:
                    os._exit(1)  # never a second preloader
                self._drop(conn)  # a malformed request (JSON, but not what a client sends)
                return None
            if child is not None:
                return child
        return None

    def _message(self, conn: Conn, message: Any) -> Request | None:
        if not isinstance(message, dict):
            self._drop(conn)
        elif conn.request is not None:  # the go
            if message.get("go") is True:
                return self._fork(conn)
            self._drop(conn)
        elif message.get("op") == "run":
            self._answer_run(conn, message)
        elif message.get("op") == "status":
            self._reply(conn, self.status())
            self._drop(conn)
        elif message.get("op") == "stop":
            self._retire()
            self._reply(conn, {"stopping": self.pid, "running": len(self.children)})
            self._drop(conn)
        else:
            self._drop(conn)
        return None

    def _answer_run(self, conn: Conn, message: dict[str, Any]) -> None:
        if self.stopping or len(conn.fds) != 4 or message.get("identity") != self.identity:
            self._reply(conn, {"refused": "not this preloader's client"})
            self._drop(conn)
            return
        reason = self.stale(message)
        if reason is not None:
            self._retire()
            self._reply(conn, {"stale": reason})
            self._drop(conn)
            return
        conn.request = message
        self.last = time.monotonic()
        conn.deadline = self.last + REQUEST_S
        if not self._reply(conn, {"ready": True}):
            self._drop(conn)

    def stale(self, message: dict[str, Any]) -> str | None:
        """Why this preloader cannot run the request as a new process would, or None."""
        changed = self.files.changed()
        if changed is not None:
            return f"{changed} changed"
        env = message.get("env")
        if not isinstance(env, dict):
            return "no environment"
        if self.whole_env is not None and env != self.whole_env:
            return "the environment changed (a module read all of it at import)"
        for name, value in self.watched_env.items():
            if env.get(name) != value:
                return f"${name} changed (a module read it at import)"
        for name, (soft, hard) in dict(message.get("limits") or {}).items():
            if hasattr(resource, name):
                _, have = resource.getrlimit(getattr(resource, name))
                if _above(int(hard), have) or _above(int(soft), have):
                    return f"{name} is above this preloader's"
        if int(message.get("nice", 0)) < os.getpriority(os.PRIO_PROCESS, 0):
            return "a lower nice value than this preloader's"
        return None

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "pid": self.pid,
            "socket": self.path,
            "started": self.started,
            "served": self.served,
            "running": len(self.children),
            "idle_s": self.idle_s,
            "idle_for": 0.0 if self.children else max(0.0, now - self.last),
            "python": self.identity.get("python"),
            "haathi": self.identity.get("haathi"),
            "stopping": self.stopping,
            "commands_cpu_s": _children_cpu(),
            "watches": sorted(self.watched_env),
        }

    def _fork(self, conn: Conn) -> Request | None:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
        pid = os.fork()
        if pid == 0:
            assert conn.request is not None
            request = Request(conn.request, conn.fds)
            conn.fds = []
            self._close_in_child()
            return request  # with HELD blocked, until become() has set the client's mask
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        with suppress(OSError):
            os.setpgid(pid, pid)  # as the child does: whichever runs first
        _close(conn.fds)
        conn.fds = []
        conn.pid = pid
        self.children[pid] = conn
        self.served += 1
        pidfd: int | None = None
        with suppress(OSError):
            pidfd = os.pidfd_open(pid)
        sent = self._reply(conn, {"pid": pid}, [pidfd] if pidfd is not None else [])
        if pidfd is not None:
            os.close(pidfd)
        if not sent:
            self._gone(conn)
        return None

    def _close_in_child(self) -> None:
        signal.set_wakeup_fd(-1)
        for conn in self.conns.values():
            _close(conn.fds)
            conn.sock.close()
        self.sel.close()
        self.wake_r.close()
        self.wake_w.close()
        if self.listener is not None:
            self.listener.close()
        if self.lock is not None:
            os.close(self.lock)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.last = time.monotonic()
            conn = self.children.pop(pid, None)
            if conn is not None:
                self._reply(conn, {"exit": status})
                self._drop(conn)

    def _gone(self, conn: Conn) -> None:
        """Its client went away: so does its command."""
        if conn.pid and conn.pid in self.children:
            with suppress(OSError):
                os.kill(conn.pid, signal.SIGTERM)
            self.children[conn.pid] = None
        self._drop(conn)

    def _reply(self, conn: Conn, message: Any, fds: list[int] | None = None) -> bool:
        fds = fds or []
        data = launcher.frame(message)
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        try:
            sent = conn.sock.sendmsg([data], rights if fds else [])
        except OSError:
            return False
        return sent == len(data)

    def _drop(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd == -1:
            return
        self.sel.unregister(conn.sock)
        self.conns.pop(fd, None)
        conn.sock.close()
        _close(conn.fds)
        conn.fds = []


def _above(want: int, have: int) -> bool:
    """Whether limit ``want`` is above ``have`` (RLIM_INFINITY above all)."""
    inf = resource.RLIM_INFINITY
    return have != inf and (want == inf or want > have)


def _children_cpu() -> float:
    """CPU seconds of the commands that have ended (for bench/cli.py)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _close(fds: list[int]) -> None:
    for fd in fds:
        with suppress(OSError):
            os.close(fd)


def _ignore(_num: int, _frame: object) -> None:
    """SIGCHLD: its byte on the wakeup socket is what wakes the loop."""
