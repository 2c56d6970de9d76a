"""The preloader: ``haathi`` commands run in a fork of a process that has imported everything
(haathi/cli/launcher.py, haathi/cli/preload.py), and behave as in a process of their own.

Each test runs the real console script (a copy of the one pip writes, calling
``haathi.cli.launcher:main``) against a private copy of the package (so that touching a module
file is this test's business) and a private socket directory (``XDG_RUNTIME_DIR``), and stops
its preloaders at the end. The rest of the suite runs with ``HAATHI_PRELOAD=0``
(tests/conftest.py). A command counts as preloaded when the preloader's own count of the
commands it served says so (``haathi list preloader -o json``), not by its speed.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.cli import launcher, preload
from loopback.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
NO_COMMIT = "f" * 32


@dataclass
class Ran:
    code: int
    out: bytes
    err: bytes


class Haathi:
    """The ``haathi`` console script of a private copy of the package, with a private
    preloader directory."""

    def __init__(self, base: Path) -> None:
        self.src = base / "src"
        shutil.copytree(ROOT / "haathi", self.src / "haathi",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        self.bin = base / "bin"
        self.bin.mkdir()
        self.script = self.bin / "haathi"  # what pip writes for [project.scripts]
        self.script.write_text(
            f"#!{sys.executable}\nimport sys\nfrom haathi.cli.launcher import main\n"
            "if __name__ == '__main__':\n    sys.exit(main())\n"
        )
        self.script.chmod(0o755)
        # short: a socket's path has at most 107 bytes
        self.runtime = Path(tempfile.mkdtemp(prefix="hp-", dir="/tmp"))
        self.dir = self.runtime / "haathi"
        self.store = base / "store"
        self.cwd = base / "work"
        self.cwd.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HAATHI_", "PYTHON"))}
        for k in ("FORCE_COLOR", "NO_COLOR", "COLUMNS", "LINES", "TERM"):
            env.pop(k, None)
        self.env = env | {
            "PYTHONPATH": str(self.src),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "HAATHI_ADDRESS": str(self.store),
            "HAATHI_PRELOAD": "1",
        }

    def __call__(self, *args: str, preload: bool = True, input: bytes | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 **popen: Any) -> Ran:  # fmt: skip
        """Run ``haathi ARGS`` (through the preloader, or cold with ``preload=False``)."""
        full = self.env | (env or {}) | {"HAATHI_PRELOAD": "1" if preload else "0"}
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.run([str(self.script), *args], input=input, env=full,
                              cwd=cwd or self.cwd, timeout=120, **popen)  # fmt: skip
        return Ran(proc.returncode, proc.stdout or b"", proc.stderr or b"")

    def sockets(self) -> list[str]:
        return launcher.preloader_sockets(str(self.dir))

    def ready(self) -> dict[str, Any]:
        """The preloader, once one is listening (started by an earlier command)."""
        ready: dict[str, Any] = wait_for(lambda: self.status_of_one())
        return ready

    def status_of_one(self) -> dict[str, Any] | None:
        if not self.dir.is_dir() or self.dir.stat().st_mode & 0o077:
            return None
        answers = [launcher.ask(path, {"op": "status"}) for path in self.sockets()]
        live = [a for a in answers if isinstance(a, dict) and not a["stopping"]]
        assert len(live) <= 1, live
        return live[0] if live else None

    def served(self) -> int:
        status = self.status_of_one()
        return int(status["served"]) if status else 0

    def warm(self) -> dict[str, Any]:
        """A preloader, ready (started by a command if none runs)."""
        if self.status_of_one() is None:
            assert self("version").code == 0
        return self.ready()

    def stop(self) -> None:
        """Stop every preloader of this directory; once they have ended, remove it."""
        if self.dir.is_dir() and not self.dir.stat().st_mode & 0o077:
            for path in self.sockets():
                answer = launcher.ask(path, {"op": "stop"})
                if isinstance(answer, dict):
                    wait_for(lambda pid=answer["stopping"]: not _alive(pid), timeout=30)
        shutil.rmtree(self.runtime, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.fixture
def hh(tmp_path: Path) -> Iterator[Haathi]:
    h = Haathi(tmp_path)
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def repo(hh: Haathi) -> str:
    """A repo ``data`` with one commit (made in this process: quicker); its ID."""
    with haathi.connect(str(hh.store)) as c:
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"alpha\n")
        return c.list_commit("data")[0].id


def _open_commit(hh: Haathi) -> None:
    with haathi.connect(str(hh.store)) as c:
        c.start_commit("data@master")


def _same(a: Ran, b: Ran) -> None:
    """Equal runs, up to the seconds of "N seconds ago" (the two ran at different times)."""

    def norm(data: bytes) -> bytes:  # (and the width of the column it is in)
        return re.sub(rb" +", b" ", re.sub(rb"\d+ (second|minute)s? ago", b"N ago", data))

    assert (a.code, norm(a.out), norm(a.err)) == (b.code, norm(b.out), norm(b.err))


# -- the same process, faster -------------------------------------------------------------------


def test_a_preloaded_command_prints_and_exits_as_a_cold_one(hh: Haathi, repo: str) -> None:
    commands = [
        ("version",),
        ("list", "repo"),
        ("inspect", "commit", f"data@{repo}"),
        ("list", "commit", "data", "-o", "json"),
        ("get", "file", "data@master:/a.txt"),
        ("inspect", "commit", f"data@{NO_COMMIT}"),  # a HaathiError: NotFound, exit 3
        ("list", "repo", "--bogus"),  # a usage error, exit 2
        ("list", "--help"),
    ]
    hh.warm()
    for args in commands:
        before = hh.served()
        preloaded, cold = hh(*args), hh(*args, preload=False)
        assert hh.served() == before + 1, f"haathi {' '.join(args)} did not go to the preloader"
        _same(preloaded, cold)
    assert hh("inspect", "commit", f"data@{NO_COMMIT}").code == 3
    assert hh("list", "repo", "--bogus").code == 2


def _on_a_terminal(hh: Haathi, *args: str, preload: bool, cols: int, env: dict[str, str]) -> bytes:
    """What ``haathi ARGS`` writes to a terminal of ``cols`` columns (stdout and stderr)."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    proc = subprocess.Popen(
        [str(hh.script), *args], stdin=side, stdout=side, stderr=side, cwd=hh.cwd,
        env=hh.env | env | {"HAATHI_PRELOAD": "1" if preload else "0"},
    )  # fmt: skip
    os.close(side)
    shown = bytearray()
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: every holder of the terminal's side has closed it
            break
        if not data:
            break
        shown += data
    os.close(main)
    proc.wait(timeout=120)
    return bytes(shown)


@pytest.mark.slow
def test_on_a_terminal_colors_and_width_are_a_cold_commands(hh: Haathi, repo: str) -> None:
    """rich decides colors and width when its console is made: the preloaded process makes
    them again for the client's terminal and environment."""
    long_name = "/" + "a-long-name-" * 8 + ".txt"
    assert hh("put", "file", f"data@master:{long_name}", "-f", "-", input=b"x").code == 0
    hh.warm()
    shown: dict[tuple[str, int], bytes] = {}
    for term in ("xterm-256color", "dumb"):
        for cols in (200, 50):
            before = hh.served()
            args = ("list", "file", "data@master:/")
            env = {"TERM": term}
            preloaded = _on_a_terminal(hh, *args, preload=True, cols=cols, env=env)
            assert hh.served() == before + 1
            cold = _on_a_terminal(hh, *args, preload=False, cols=cols, env=env)
            assert preloaded == cold
            shown[term, cols] = preloaded
    # each as its terminal: colors (not on a dumb one), width
    assert b"\x1b[1m" in shown["xterm-256color", 200]
    assert b"\x1b[" not in shown["dumb", 200]
    assert shown["xterm-256color", 200] != shown["xterm-256color", 50]
    # the usage error's help panel (typer's, imported by the command itself)
    shown_error = _on_a_terminal(hh, "list", "repo", "--bogus", preload=True, cols=60, env={})
    cold_error = _on_a_terminal(hh, "list", "repo", "--bogus", preload=False, cols=60, env={})
    assert shown_error == cold_error


def test_stdin_cwd_and_environment_are_the_clients(hh: Haathi, repo: str, tmp_path: Path) -> None:
    hh.warm()
    pid = hh.ready()["pid"]
    # stdin, piped: put file -f -
    assert hh("put", "file", "data@master:/piped.bin", "-f", "-", input=b"\x00piped\xff").code == 0
    assert hh("get", "file", "data@master:/piped.bin").out == b"\x00piped\xff"
    # paths relative to the client's working directory, both ways
    (hh.cwd / "sub").mkdir()
    (hh.cwd / "sub" / "rel.txt").write_text("relative\n")
    assert hh("put", "file", "data@master:/rel.txt", "-f", "rel.txt", cwd=hh.cwd / "sub").code == 0
    assert hh("get", "file", "data@master:/rel.txt", "-o", "back.txt", cwd=hh.cwd / "sub").code == 0
    assert (hh.cwd / "sub" / "back.txt").read_text() == "relative\n"
    # HAATHI_* differ between two commands of the same preloader: each sees its own store
    other = tmp_path / "other-store"
    assert hh("create", "repo", "elsewhere", env={"HAATHI_ADDRESS": str(other)}).code == 0
    mine = json.loads(hh("list", "repo", "-o", "json").out)
    theirs = json.loads(hh("list", "repo", "-o", "json", env={"HAATHI_ADDRESS": str(other)}).out)
    assert [r["name"] for r in mine] == ["data"]
    assert [r["name"] for r in theirs] == ["elsewhere"]
    # and a variable only the command reads: the umask, as the client's
    umask_file = "masked.txt"
    ran = hh(
        "get", "file", "data@master:/a.txt", "-o", umask_file, preexec_fn=lambda: os.umask(0o077)
    )
    assert ran.code == 0
    assert (hh.cwd / umask_file).stat().st_mode & 0o777 == 0o600
    # what only the command reads may differ: the same preloader serves it
    assert hh("version", env={"HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "33"}).code == 0
    status = hh.ready()
    assert status["pid"] == pid and status["served"] == 9


@pytest.mark.slow
def test_a_module_changed_on_disk_makes_the_preloader_stale(hh: Haathi, repo: str) -> None:
    first = hh.warm()
    module = hh.src / "haathi" / "cli" / "render.py"
    later = module.stat().st_mtime + 5
    os.utime(module, (later, later))
    ran = hh("list", "repo", "-o", "json")  # runs in its own process, and starts a new preloader
    assert ran.code == 0 and [r["name"] for r in json.loads(ran.out)] == ["data"]
    wait_for(lambda: not _alive(first["pid"]))
    second = hh.ready()
    assert second["pid"] != first["pid"] and second["served"] == 0
    assert hh("list", "repo").code == 0
    assert hh.served() == 1


@pytest.mark.slow
def test_a_changed_variable_a_module_read_at_import_makes_it_stale(hh: Haathi) -> None:
    """typer reads $TYPER_USE_RICH when imported: a preloader imported it with another value."""
    first = hh.warm()
    # what the consoles read (made again per command) and sysconfig's $HOME are not watched
    assert "TYPER_USE_RICH" in first["watches"]
    assert not {"HOME", "COLUMNS", "NO_COLOR", "FORCE_COLOR"} & set(first["watches"])
    assert hh("version", env={"TYPER_USE_RICH": "0"}).out == b"0.1.0\n"
    wait_for(lambda: not _alive(first["pid"]))
    assert hh.ready()["pid"] != first["pid"]


def test_another_users_connection_is_refused(hh: Haathi) -> None:
    a, b = socket.socketpair()
    with a, b:
        assert preload.peer_ids(a) == (os.getpid(), os.getuid(), os.getgid())
    assert preload.trusted(os.getuid()) and not preload.trusted(os.getuid() + 1)
    if os.getuid() != 0:
        pytest.skip("connecting as another uid needs root: checked the function only")
    hh.warm()
    # the socket's directory keeps others out; a hard link in an open one lets nobody in
    # (uid 65534) as far as the preloader's own check
    lobby = Path(tempfile.mkdtemp(prefix="hp-lobby-", dir="/tmp"))
    try:
        lobby.chmod(0o777)
        os.link(hh.sockets()[0], lobby / "s")
        os.chmod(lobby / "s", 0o666)  # (the same inode as the socket: only in this test)
        r, w = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            try:
                os.setgid(65534)
                os.setuid(65534)
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(10)
                s.connect(str(lobby / "s"))
                try:
                    launcher.send(s, {"op": "status"})
                    os.write(
                        w, b"answered: " + s.recv(100) if s.recv(1, socket.MSG_PEEK) else b"closed"
                    )
                except (ConnectionResetError, BrokenPipeError):
                    os.write(w, b"closed")
            except BaseException as exc:
                os.write(w, repr(exc).encode())
            finally:
                os._exit(0)
        os.close(w)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.read(r, 100) == b"closed"
    finally:
        shutil.rmtree(lobby)


@pytest.mark.slow
def test_a_client_that_says_nothing_blocks_nobody(hh: Haathi) -> None:
    hh.warm()
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(hh.sockets()[0])
    before = hh.served()
    t0 = time.monotonic()
    assert hh("version").out == b"0.1.0\n"
    assert hh.served() == before + 1
    silent.settimeout(preload.REQUEST_S + 30)
    assert silent.recv(100) == b""  # dropped once its time to speak has passed
    assert time.monotonic() - t0 >= preload.REQUEST_S - 1
    silent.close()


def test_a_malformed_request_is_dropped_and_the_preloader_goes_on(hh: Haathi) -> None:
    hh.warm()
    path = hh.sockets()[0]
    for message in (b"\x00\x00\x00\x03{{{", b"\xff\xff\xff\xff", launcher.frame([1, 2])):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.sendall(message)
            s.settimeout(30)
            assert s.recv(100) == b""
    with socket.socket(socket.AF_UNIX) as s:  # a run request of another client, no streams
        s.connect(path)
        launcher.send(s, {"op": "run", "identity": {}, "limits": 7})
        s.settimeout(30)
        assert s.recv(100) == launcher.frame({"refused": "not this preloader's client"})
    before = hh.served()
    assert hh("version").out == b"0.1.0\n"
    assert hh.served() == before + 1


def _blocked_wait(hh: Haathi, preload_it: bool) -> tuple[subprocess.Popen[bytes], int]:
    """``haathi wait commit`` of an open commit, once it is waiting: the client and the pid of
    the process that runs the command (the client itself when cold)."""
    proc = subprocess.Popen(
        [str(hh.script), "wait", "commit", "data@master"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=hh.cwd,
        env=hh.env | {"HAATHI_PRELOAD": "1" if preload_it else "0"},
    )  # fmt: skip
    if preload_it:
        server = hh.ready()["pid"]
        runner = wait_for(lambda: _children(server))[0]
    else:
        runner = proc.pid
    db = os.path.realpath(hh.store / "meta.db")

    def waiting() -> bool:  # the store is open: the command is past its start-up, waiting
        fds = f"/proc/{runner}/fd"
        return any(os.path.realpath(os.path.join(fds, fd)) == db for fd in os.listdir(fds))

    wait_for(waiting)
    time.sleep(0.3)
    return proc, runner


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_client_ends_the_command_as_it_would_end_a_cold_one(
    hh: Haathi, repo: str, sig: int
) -> None:
    _open_commit(hh)
    hh.warm()
    results = []
    for preload_it in (True, False):
        proc, runner = _blocked_wait(hh, preload_it)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
        assert not _alive(runner)
    assert results[0] == results[1]
    assert results[0][0] == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]


@pytest.mark.slow
def test_a_client_that_goes_away_takes_its_command_along(hh: Haathi, repo: str) -> None:
    _open_commit(hh)
    hh.warm()
    proc, runner = _blocked_wait(hh, True)
    proc.kill()  # SIGKILL: nothing forwarded; the preloader sees the connection close
    proc.wait()
    wait_for(lambda: not _alive(runner), timeout=30)
    assert hh.ready()["running"] == 0


@pytest.mark.slow
def test_a_command_killed_by_a_signal_kills_its_client_alike(hh: Haathi, repo: str) -> None:
    _open_commit(hh)
    hh.warm()
    proc, runner = _blocked_wait(hh, True)
    os.kill(runner, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_list_and_stop_preloader(hh: Haathi) -> None:
    pid = hh.warm()["pid"]
    listed = hh("list", "preloader")
    assert listed.code == 0 and listed.out.split(b"\n")[1].split()[0] == str(pid).encode()
    assert hh("stop", "preloader").out == b"stopped 1 preloader(s)\n"
    wait_for(lambda: not _alive(pid))
    assert hh.sockets() == []
    # these two run in their own process (never in a preloader) and start none
    assert hh("list", "preloader").out.count(b"\n") == 1  # the header
    time.sleep(1)
    assert hh.sockets() == []


@pytest.mark.slow
def test_an_idle_preloader_ends(hh: Haathi) -> None:
    assert hh("version", env={"HAATHI_PRELOAD_IDLE": "1"}).code == 0  # starts one: 1 s idle
    pid = hh.ready()["pid"]
    wait_for(lambda: not _alive(pid), timeout=30)
    assert hh.sockets() == []


def test_preloading_off_connects_to_nothing_and_starts_nothing(hh: Haathi) -> None:
    assert hh("version", preload=False).out == b"0.1.0\n"
    time.sleep(1)
    assert not hh.dir.exists() or os.listdir(hh.dir) == []


def test_a_socket_directory_others_can_enter_is_not_used(hh: Haathi) -> None:
    hh.dir.mkdir(mode=0o755)
    hh.dir.chmod(0o755)
    ran = hh("version")
    assert ran.out == b"0.1.0\n"
    assert b"not preloading" in ran.err and b"mode 0755" in ran.err
    time.sleep(1)
    assert os.listdir(hh.dir) == []


def test_the_preloader_holds_no_store_no_thread_no_file(hh: Haathi, repo: str) -> None:
    assert hh("list", "repo").code == 0
    pid = hh.ready()["pid"]
    assert hh("list", "repo").code == 0
    assert os.listdir(f"/proc/{pid}/task") == [str(pid)]
    held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    files = {h for h in held if h.startswith("/") and h != "/dev/null"}
    (lock,) = [n for n in os.listdir(hh.dir) if n.endswith(".lock")]
    assert files == {str(hh.dir / lock)}  # sockets, its epoll, /dev/null: and its lock
    assert os.readlink(f"/proc/{pid}/cwd") == "/"


PRELOADED_COMMANDS = """
import json, os, sys, tempfile
from haathi.cli import preload
preload.preload()
import haathi
from haathi.cli.main import run
scratch = tempfile.TemporaryDirectory()
store, data = os.path.join(scratch.name, "store"), scratch.name
os.environ["HAATHI_ADDRESS"] = store
open(os.path.join(data, "f"), "w").write("f")
haathi.init(store).close()


def command(*args):
    try:
        run(list(args))
    except SystemExit as exc:
        assert not exc.code, args


before = set(sys.modules)
command("create", "repo", "r")
command("put", "file", "r@master:/f", "-f", os.path.join(data, "f"))
with haathi.connect(store) as c:
    commit = c.list_commit("r")[0].id
command("inspect", "commit", "r@" + commit)
command("list", "repo")
command("wait", "commit", "r@master")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_preloaded_modules_are_all_a_command_imports() -> None:
    """What ``list repo``, ``inspect commit``, ``put file`` and ``wait commit`` import after
    the preloader's imports: nothing of haathi, SQLAlchemy, rich or typer (else each preloaded
    command pays for it)."""
    proc = subprocess.run([sys.executable, "-c", PRELOADED_COMMANDS], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          cwd="/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    new = json.loads(proc.stdout.splitlines()[-1])
    assert [m for m in new if m.split(".")[0] in ("haathi", "sqlalchemy", "rich", "typer")] == []


@pytest.mark.parametrize("module", ["haathi", "haathi.cli.launcher"])
def test_the_launcher_imports_only_the_standard_library(module: str) -> None:
    code = (
        "import json, sys; before = set(sys.modules); import " + module + "; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)  # fmt: skip
    new = json.loads(proc.stdout)
    top = {m.split(".")[0] for m in new} - {"haathi"}
    assert top <= sys.stdlib_module_names, top - sys.stdlib_module_names
    assert set(new) - {"haathi", "haathi.cli", "haathi.cli.launcher"} <= {
        m for m in new if m.split(".")[0] in sys.stdlib_module_names
    }


def _helpers_below(pid: int) -> list[int]:
    """The helper processes (``multiprocessing`` spawns) among the descendants of ``pid``."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue  # (ended meanwhile)
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    todo.extend(int(p) for p in f.read().split())
            except OSError:
                continue
        if parent != pid:
            try:
                with open(f"/proc/{parent}/cmdline", "rb") as f:
                    if b"spawn_main" in f.read():
                        found.append(parent)
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("preload_it", [True, False])
def test_helper_processes_of_a_large_put_run_nothing_else_and_end_with_it(
    hh: Haathi, tmp_path: Path, preload_it: bool
) -> None:
    """`put file -r` of thousands of small files hands them to helper processes (new
    interpreters, started from the command cold or preloaded) to read and encode. They run
    nothing of the command themselves: a whole put makes one commit of the right files. And
    Ctrl-C ends a put as it ends any command (130, nothing committed), the helpers with it,
    none of them printing anything."""
    src = tmp_path / "src"
    for d in range(10):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(800):
            (src / f"d{d}" / f"f{i:03}").write_bytes(b"%d/%d\n" % (d, i))
    assert hh("create", "repo", "data").code == 0
    if preload_it:
        hh.warm()
    put = [str(hh.script), "put", "file", "-r", "data@master:/in", "-f", str(src)]
    env = hh.env | {"HAATHI_PRELOAD": "1" if preload_it else "0"}
    proc = subprocess.Popen(put, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=hh.cwd,
                            env=env, process_group=0)  # fmt: skip
    top = hh.ready()["pid"] if preload_it else proc.pid
    helpers = wait_for(lambda: _helpers_below(top), every=0.005)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: to the foreground group
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (130, b"")  # (as Ctrl-C ends any command)
    assert hh("list", "commit", "data").out.count(b"\n") == 1  # the header: no commit
    wait_for(lambda: not any(_alive(p) for p in helpers), timeout=30)

    whole = hh("put", "file", "-r", "data@master:/in", "-f", str(src / "d3"), preload=preload_it)
    assert (whole.code, whole.err) == (0, b"")
    with haathi.connect(str(hh.store)) as c:
        assert len(c.list_commit("data")) == 1
        got = {f.path: c.get_file(f"data@master:{f.path}") for f in c.walk_file("data@master:/")}
    assert got == {f"/in/f{i:03}": b"3/%d\n" % i for i in range(800)}
