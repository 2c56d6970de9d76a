"""The launcher: PID 1 of a bwrap sandbox session, running each datum's command in turn.

haathi starts one bubblewrap sandbox per datum set (see :mod:`haathi.pps.sandbox`) with this
file's source as its command: ``python -I -S -c <source> FD [UID GID]`` (the host's interpreter,
without site-packages) and ``--as-pid-1``; in a container of an image
(:mod:`haathi.pps.containers`), the host's interpreter is mounted in and ``FD`` may be the path
of a Unix socket haathi listens on. Given ``UID GID`` (haathi runs as root), it becomes
that unprivileged user before it runs anything, dropping every capability: user code never
runs as root. It must import nothing but the standard library, and as
little of it as it can: its start-up time is paid once per datum set.

``FD`` is one end of a Unix stream socket to haathi. Every message, either way, is a 4-byte
big-endian length and a :mod:`marshal` payload (both ends run the same interpreter).

- haathi sends ``(argv, env, cwd)``, all bytes (the launcher's locale does not matter), with
  the run's output pipe (write end) and, when the run has stdin, its stdin pipe (read end)
  attached as ``SCM_RIGHTS``.
- The launcher enters ``cwd``, starts ``argv`` in a new session with stdin (else
  ``/dev/null``), stdout and stderr on those pipes and ``env`` as its whole environment
  (``PATH`` searched as ``execvp`` does), and waits for it. Once it has exited, every other
  process in the sandbox is killed and reaped (as PID 1, ``kill(-1, SIGKILL)`` reaches them all
  and orphans are its children), then it replies ``("exit", code)`` (``128 + N`` for signal N).
- If the command cannot start, it replies ``("cwd", errno, strerror)`` or
  ``("exec", errno, strerror)``.
- haathi may also send ``(b"relay", listen, connect)``, with no descriptors, between runs:
  the launcher listens at ``listen`` and relays every connection made there to ``connect``
  (an address is a Unix socket's path, bytes, or ``(host, port)`` for TCP: port 0 listens on
  any free port). It replies ``("relay", port)`` (the TCP port it listens on, else 0) or
  ``("relay-error", errno, strerror)``. This is how user code without a network reaches a
  socket haathi serves (the job's S3 gateway: TCP on the sandbox's loopback to a Unix socket
  mounted in, :mod:`haathi.pps.sidecars`), and how a server user code runs is reached from
  the host (a Unix socket in its ``/tmp`` to its TCP port); a connection made while nothing
  listens at ``connect`` yet waits for it a few seconds. The relays run in threads of PID 1:
  the kill after each run does not reach them, and the kernel ends them with the sandbox.

At end of file on the socket it exits, and the kernel kills whatever is left in the sandbox.
Nothing inside can stop it: PID 1 ignores every signal it has no handler for (SIGINT's handler
is removed), and haathi kills the session from outside on a timeout.
"""

from __future__ import annotations

import _signal
import _socket
import _thread
import marshal
import os
import select
import sys

TYPE_CHECKING = False  # not typing's: importing typing would slow every sandbox's start
if TYPE_CHECKING:
    from typing import Any

_MAX_FDS = 2
_CHUNK = 1 << 16
_CONNECT_TRIES, _CONNECT_WAIT = 50, 0.1  # a relay waits 5 s at most for its server to listen


def main() -> None:
    where = sys.argv[1]
    if where.startswith("/"):  # a container: haathi listens on a socket mounted there
        os.closerange(3, 1 << 20)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.connect(where)
    else:
        fd = int(where)
        os.set_inheritable(fd, False)
        os.closerange(3, fd)  # nothing inherited from bwrap reaches user code
        os.closerange(fd + 1, 1 << 20)
        sock = _socket.socket(fileno=fd)
    if len(sys.argv) > 3:
        _become(int(sys.argv[2]), int(sys.argv[3]))
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # PID 1: ignored from inside
    devnull = os.open(os.devnull, os.O_RDONLY)
    while True:
        request = _receive(sock)
        if request is None:
            return
        message, fds = request
        if message[0] == b"relay":
            for f in fds:
                os.close(f)
            reply = _relay(message[1], message[2])
        else:
            if not fds:
                raise RuntimeError("launcher: a run needs its output pipe")
            argv, env, cwd = message
            out = fds[0]
            stdin = fds[1] if len(fds) > 1 else devnull
            try:
                reply = _run(argv, env, cwd, out, stdin, sock)
            finally:
                for f in fds:
                    os.close(f)
        data = marshal.dumps(reply)
        sock.sendall(len(data).to_bytes(4, "big") + data)


def _become(uid: int, gid: int) -> None:
    """Switch to ``uid``/``gid`` with no supplementary groups (and so no capabilities)."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:  # pragma: no cover - setuid lied
        raise SystemExit("launcher: could not drop root")


def _receive(sock: _socket.socket) -> tuple[tuple[Any, ...], list[int]] | None:
    """The next request and the descriptors sent with it; None at end of file."""
    data, ancdata, _flags, _addr = sock.recvmsg(
        _CHUNK, _socket.CMSG_SPACE(_MAX_FDS * 4), _socket.MSG_CMSG_CLOEXEC
    )
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, whole, 4)]
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        more = sock.recv(_CHUNK)
        if not more:
            for f in fds:
                os.close(f)
            return None
        data += more
    if len(fds) > _MAX_FDS:
        raise RuntimeError(f"launcher: expected at most {_MAX_FDS} descriptors, got {len(fds)}")
    return marshal.loads(data[4:]), fds


def _relay(listen: Any, connect: Any) -> tuple[str | int | None, ...]:
    """Listen at ``listen`` and relay each connection to ``connect`` (see the docstring)."""
    try:
        listener = _socket.socket(_family(listen), _socket.SOCK_STREAM)
        if not isinstance(listen, bytes):
            listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        listener.bind(listen)
        listener.listen(64)
    except OSError as exc:
        return ("relay-error", exc.errno, exc.strerror)
    port = 0 if isinstance(listen, bytes) else listener.getsockname()[1]
    _thread.start_new_thread(_accept, (listener, connect))
    return ("relay", port)


def _family(address: Any) -> int:
    return _socket.AF_UNIX if isinstance(address, bytes) else _socket.AF_INET


def _accept(listener: _socket.socket, connect: Any) -> None:
    while True:
        try:
            fd = listener._accept()[0]  # type: ignore[attr-defined]  # (close-on-exec)
            conn = _socket.socket(fileno=fd)
        except OSError:  # one that went away before it was taken, or no descriptor left
            select.select([], [], [], 0.05)
            continue
        _thread.start_new_thread(_pump, (conn, connect))


def _pump(conn: _socket.socket, connect: Any) -> None:
    """Copy bytes both ways between ``conn`` and a new connection to ``connect`` until both
    sides have closed (a side's end of file is passed on as a shutdown). While nothing
    listens at ``connect`` yet (a server starting up), it tries again for a few seconds."""
    other = _socket.socket(_family(connect), _socket.SOCK_STREAM)
    try:
        for _ in range(_CONNECT_TRIES):
            try:
                other.connect(connect)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                other.close()
                other = _socket.socket(_family(connect), _socket.SOCK_STREAM)
                select.select([], [], [], _CONNECT_WAIT)
        else:
            return
        peer = {conn.fileno(): other, other.fileno(): conn}
        reading = [conn, other]
        while reading:
            for side in select.select(reading, [], [])[0]:
                data = side.recv(_CHUNK)
                if data:
                    peer[side.fileno()].sendall(data)
                else:
                    reading.remove(side)
                    peer[side.fileno()].shutdown(_socket.SHUT_WR)
    except OSError:
        pass  # either side reset: both are closed
    finally:
        conn.close()
        other.close()


def _run(
    argv: list[bytes],
    env: dict[bytes, bytes],
    cwd: bytes,
    out: int,
    stdin: int,
    sock: _socket.socket,
) -> tuple[str | int | None, ...]:
    try:
        os.chdir(cwd)  # the command inherits it
    except OSError as exc:
        return ("cwd", exc.errno, exc.strerror)
    actions = [
        (os.POSIX_SPAWN_DUP2, stdin, 0),
        (os.POSIX_SPAWN_DUP2, out, 1),
        (os.POSIX_SPAWN_DUP2, out, 2),
    ]
    try:
        pid = _spawnp(argv, env, actions)
    except OSError as exc:
        return ("exec", exc.errno, exc.strerror)
    except ValueError as exc:  # e.g. a NUL byte in an argument
        return ("exec", 0, str(exc))
    _wait(pid, sock)
    status = os.waitpid(pid, 0)[1]
    _kill_the_rest()
    code = os.waitstatus_to_exitcode(status)
    return ("exit", 128 - code if code < 0 else code)


def _spawnp(argv: list[bytes], env: dict[bytes, bytes], actions: list[tuple[int, int, int]]) -> int:
    """posix_spawn ``argv``, searching ``env``'s PATH as execvp does."""
    name = argv[0]
    if b"/" in name:
        candidates = [name]
    else:
        search = env.get(b"PATH", os.defpath.encode())
        candidates = [os.path.join(d, name) for d in search.split(b":")] if name else []
    denied: OSError | None = None
    last: OSError | None = None
    for path in candidates:
        try:
            os.stat(path)
        except PermissionError as exc:
            denied = exc
            continue
        except OSError as exc:  # not there: the next directory, without a spawn
            last = exc
            continue
        try:
            return os.posix_spawn(
                path, argv, env, file_actions=actions, setsid=True,
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),  # Python ignores them
            )  # fmt: skip
        except PermissionError as exc:
            denied = exc
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = exc
    raise denied or last or FileNotFoundError(2, "No such file or directory")


def _wait(pid: int, sock: _socket.socket) -> None:
    """Wait until the command exits; if haathi goes away meanwhile (end of file on the socket:
    it died, so nothing will ever read this run's result), kill everything and exit now rather
    than when the command ends (a launcher that changed user has lost bwrap's
    ``--die-with-parent``)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3: wait as before
        return
    try:
        watched = [pidfd, sock.fileno()]
        while True:
            ready = select.select(watched, [], [])[0]
            if pidfd in ready:
                return
            if sock.recv(1, _socket.MSG_PEEK):  # a request (never sent mid run): stop watching
                watched = [pidfd]
            else:
                _kill_the_rest()
                raise SystemExit(0)
    finally:
        os.close(pidfd)


def _kill_the_rest() -> None:
    """Kill every process left in the sandbox and reap them (orphans come to PID 1)."""
    while True:
        try:  # noqa: SIM105 (importing contextlib would slow the start)
            os.kill(-1, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


if __name__ == "__main__":
    main()
