"""Running user code for datums: the bubblewrap sandbox, the unsandboxed fallback, and (the
datum-set tests, ``box``) containers of an image under each runtime.

Everything here runs real processes. bubblewrap must work on the test machine: a missing or
broken ``bwrap`` fails these tests rather than skipping them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import haathi
from haathi.client.sources import bytes_op
from haathi.errors import InvalidArgument
from haathi.pps import containers
from haathi.pps.containers import ContainerSpec, _BwrapImage, open_container
from haathi.pps.hostview import HostView
from haathi.pps.sandbox import (
    RunResult,
    Sandbox,
    map_pfs,
    open_sandbox,
    pfs_path,
    resolve_sandbox,
    run_user_code,
)
from haathi.pps.supervisor import OUTPUT_CAP
from haathi.pps.worker import _attempt_header

BOTH = pytest.mark.parametrize("sandbox", ["bwrap", "none"])
ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A datum's scratch directory with one input, ``in``, holding ``x``."""
    s = tmp_path / "datum"
    (s / "pfs" / "in").mkdir(parents=True)
    (s / "pfs" / "out").mkdir()
    (s / "tmp").mkdir()
    (s / "pfs" / "in" / "x").write_text("hello\n")
    return s


def run(
    scratch: Path,
    sandbox: str,
    argv: list[str],
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    **kwargs: object,
) -> RunResult:
    return run_user_code(
        argv,
        stdin=stdin,
        env=ENV if env is None else env,
        scratch=scratch,
        input_names=["in"],
        sandbox=sandbox,
        **kwargs,  # type: ignore[arg-type]
    )


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def process_states() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            yield int(entry), state, int(ppid), int(pgrp)


def my_zombies() -> list[int]:
    """Children of this process that have exited but were never reaped."""
    return [pid for pid, state, ppid, _ in process_states() if state == "Z" and ppid == os.getpid()]


def live_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that have not exited (zombies left to init do not count)."""
    return [pid for pid, state, _, pgrp in process_states() if pgrp == pgid and state != "Z"]


def unique_sleep() -> str:
    """A sleep duration no other process uses, to find our sleepers in /proc."""
    return f"1000.{uuid.uuid4().int % 10**9:09d}"


# ---------------------------------------------------------------------------------------------
# Choosing a sandbox


def test_bubblewrap_works_here() -> None:
    assert resolve_sandbox("bwrap") == "bwrap"
    assert resolve_sandbox("auto") == "bwrap"
    assert resolve_sandbox("none") == "none"


def test_unknown_sandbox_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="unknown sandbox 'docker'"):
        resolve_sandbox("docker")


def test_without_bubblewrap_auto_means_none_and_bwrap_is_an_error(tmp_path: Path) -> None:
    code = (
        "from haathi.errors import InvalidArgument\n"
        "from haathi.pps.sandbox import resolve_sandbox\n"
        "print(resolve_sandbox('auto'))\n"
        "try:\n"
        "    resolve_sandbox('bwrap')\n"
        "except InvalidArgument as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(Path(__file__).parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "none"
    assert out[1].startswith(
        "bubblewrap (bwrap) is not installed or cannot create a sandbox here: bwrap is not on PATH"
    )


def test_pfs_path(scratch: Path) -> None:
    assert pfs_path(scratch, "bwrap") == "/pfs"
    assert pfs_path(scratch, "none") == str(scratch / "pfs")


@pytest.mark.parametrize("name", ["", "out", "..", "a/b"])
def test_bad_input_names_are_refused(scratch: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="bad input name"):
        run_user_code(
            ["true"], stdin=None, env=ENV, scratch=scratch, input_names=[name], sandbox="none"
        )


# ---------------------------------------------------------------------------------------------
# What user code sees


@BOTH
def test_reads_pfs_inputs_and_writes_pfs_out(scratch: Path, sandbox: str) -> None:
    result = run(scratch, sandbox, ["sh", "-c", "tr a-z A-Z < /pfs/in/x > /pfs/out/y; echo ok"])
    assert result == RunResult(0, False, False, result.duration, b"ok\n")
    assert (scratch / "pfs" / "out" / "y").read_text() == "HELLO\n"


def test_bwrap_inputs_are_read_only(scratch: Path) -> None:
    result = run(scratch, "bwrap", ["sh", "-c", "echo changed > /pfs/in/x"])
    assert result.returncode != 0
    assert b"Read-only file system" in result.output
    result = run(scratch, "bwrap", ["sh", "-c", "echo new > /pfs/in/new"])
    assert result.returncode != 0
    assert (scratch / "pfs" / "in" / "x").read_text() == "hello\n"
    assert not (scratch / "pfs" / "in" / "new").exists()


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the host outside /tmp (which the sandbox replaces)."""
    path = Path(tempfile.mkdtemp(prefix="haathi-sandbox-test-", dir="/var/tmp"))
    path.chmod(0o755)  # readable by anyone, as user code may run as nobody
    (path / "f").write_text("original\n")
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def test_bwrap_host_files_are_read_only(scratch: Path, host_dir: Path) -> None:
    script = f"cat {host_dir}/f; echo changed > {host_dir}/f"
    result = run(scratch, "bwrap", ["sh", "-c", script], view=HostView(show=(str(host_dir),)))
    assert result.returncode != 0
    assert result.output.startswith(b"original\n")  # visible, but not writable
    assert b"Read-only file system" in result.output
    assert (host_dir / "f").read_text() == "original\n"
    # Without the sandbox the same command does change the host (the test can tell).
    assert run(scratch, "none", ["sh", "-c", script]).returncode == 0
    assert (host_dir / "f").read_text() == "changed\n"


@pytest.fixture
def tcp_server() -> Iterator[int]:
    """A loopback TCP server on the host that accepts connections; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(b"hi")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def test_bwrap_has_no_network(scratch: Path, tcp_server: int) -> None:
    code = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {tcp_server}), timeout=5)\n"
        "print(s.recv(2).decode())\n"
    )
    blocked = run(scratch, "bwrap", [sys.executable, "-c", code])
    assert blocked.returncode == 1
    assert b"ConnectionRefusedError" in blocked.output
    open_ = run(scratch, "none", [sys.executable, "-c", code])
    assert (open_.returncode, open_.output) == (0, b"hi\n")


def test_bwrap_tmp_is_private(scratch: Path) -> None:
    marker = f"haathi-marker-{uuid.uuid4().hex}"
    host_file = Path("/tmp") / f"{marker}-host"
    host_file.write_text("host\n")
    try:
        result = run(
            scratch,
            "bwrap",
            ["sh", "-c", f"echo inside > /tmp/{marker}; test -e {host_file} || echo hidden"],
        )
    finally:
        host_file.unlink()
    assert (result.returncode, result.output) == (0, b"hidden\n")
    assert not (Path("/tmp") / marker).exists()
    assert (scratch / "tmp" / marker).read_text() == "inside\n"


@BOTH
def test_host_python_and_its_packages_work(scratch: Path, sandbox: str) -> None:
    code = "import sys, msgpack, zstandard; print(sys.prefix); print(msgpack.packb([1]).hex())"
    result = run(scratch, sandbox, [sys.executable, "-c", code])
    assert (result.returncode, result.output) == (0, f"{sys.prefix}\n9101\n".encode())


def test_bwrap_environment_is_exactly_the_mapping(scratch: Path) -> None:
    env = {"A": "1", "B": "two words", "PATH": "/usr/bin:/bin", "in": "/pfs/in/x"}
    result = run(scratch, "bwrap", ["env"], env=env, working_dir="/pfs/out")
    assert result.returncode == 0
    # bubblewrap adds PWD (the working directory); nothing else comes from the host.
    assert sorted(result.output.decode().splitlines()) == sorted(
        [f"{k}={v}" for k, v in env.items()] + ["PWD=/pfs/out"]
    )


def test_bwrap_working_directory(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parent.parent
    assert run(scratch, "bwrap", ["pwd"], working_dir="/pfs/in").output == b"/pfs/in\n"
    monkeypatch.chdir(repo)
    shown = HostView(show=(str(repo),))
    assert run(scratch, "bwrap", ["pwd"], view=shown).output == f"{repo}\n".encode()
    assert run(scratch, "bwrap", ["pwd"]).output == b"/\n"  # not shown: "/"
    monkeypatch.chdir(scratch.parent)  # under /tmp, which the sandbox replaces: "/"
    assert run(scratch, "bwrap", ["pwd"]).output == b"/\n"


def test_none_rewrites_pfs_paths_in_argv_stdin_env_and_working_dir(scratch: Path) -> None:
    pfs = str(scratch / "pfs")
    env = {"PATH": "/usr/bin:/bin", "in": "/pfs/in/x", "LIST": "/a:/pfs/out", "KEEP": "/data/pfs/x"}
    result = run(
        scratch,
        "none",
        ["sh", "-c", 'printf "%s\\n" "$@" "$in" "$LIST" "$KEEP" "$TMPDIR" "$PWD"', "sh",
         "/pfs/in/x", "--out=/pfs/out", "/pfs", "/pfsx", "/x/pfs/y", "a/pfs"],
        env=env,
        working_dir="/pfs/out",
    )  # fmt: skip
    assert result.returncode == 0
    assert result.output.decode().splitlines() == [
        f"{pfs}/in/x",
        f"--out={pfs}/out",
        pfs,
        "/pfsx",
        "/x/pfs/y",
        "a/pfs",
        f"{pfs}/in/x",
        f"/a:{pfs}/out",
        "/data/pfs/x",
        str(scratch / "tmp"),
        f"{pfs}/out",
    ]
    script = "cat /pfs/in/x > /pfs/out/z\necho /pfs/out\n"
    result = run(scratch, "none", ["sh"], stdin=script)
    assert (result.returncode, result.output) == (0, f"{pfs}/out\n".encode())
    assert (scratch / "pfs" / "out" / "z").read_text() == "hello\n"


def test_map_pfs() -> None:
    assert map_pfs("cp /pfs/a/* /pfs/out", "/S/pfs") == "cp /S/pfs/a/* /S/pfs/out"
    assert map_pfs("open('/pfs/out/y','w')", "/S/pfs") == "open('/S/pfs/out/y','w')"
    assert map_pfs("x=/pfs;y=$HOME/pfs/z", "/S/pfs") == "x=/S/pfs;y=$HOME/pfs/z"
    assert map_pfs("/pfs.txt ~/pfs/a ./pfs/b /pfs-x", "/S/pfs") == "/pfs.txt ~/pfs/a ./pfs/b /pfs-x"


# ---------------------------------------------------------------------------------------------
# Process handling


@BOTH
def test_stdin_is_fed_and_absent_stdin_is_dev_null(scratch: Path, sandbox: str) -> None:
    big = "".join(f"line {i:07d}\n" for i in range(40_000))  # 520 KB: more than a pipe holds
    result = run(scratch, sandbox, ["cat"], stdin=big)
    assert (result.returncode, result.output) == (0, big.encode())
    result = run(scratch, sandbox, ["cat"])
    assert (result.returncode, result.output) == (0, b"")


@BOTH
def test_exit_codes(scratch: Path, sandbox: str) -> None:
    assert run(scratch, sandbox, ["sh", "-c", "exit 3"]).returncode == 3
    assert run(scratch, sandbox, ["true"]).returncode == 0
    assert run(scratch, sandbox, ["sh", "-c", "kill -KILL $$"]).returncode == 128 + 9


@BOTH
def test_missing_command_is_127(scratch: Path, sandbox: str) -> None:
    for name in ["haathi-no-such-command", "/nonexistent/haathi-cmd"]:
        result = run(scratch, sandbox, [name, "arg"])
        assert result == RunResult(
            127, False, False, result.duration, f"haathi: command not found: {name}\n".encode()
        )


@BOTH
def test_output_is_interleaved_in_arrival_order(scratch: Path, sandbox: str) -> None:
    result = run(scratch, sandbox, ["sh", "-c", "echo a; echo b >&2; echo c; echo d >&2"])
    assert result.output == b"a\nb\nc\nd\n"


@BOTH
def test_output_keeps_the_last_mebibyte(scratch: Path, sandbox: str) -> None:
    code = "import sys; sys.stdout.write('x' * 3_000_000); sys.stderr.write('THE END\\n')"
    result = run(scratch, sandbox, [sys.executable, "-c", code])
    assert result.returncode == 0
    note = f"[haathi: output truncated: the first {3_000_008 - OUTPUT_CAP} bytes were dropped]\n"
    assert result.output == note.encode() + b"x" * (OUTPUT_CAP - 8) + b"THE END\n"


@BOTH
def test_timeout_kills_the_whole_group(scratch: Path, sandbox: str) -> None:
    nap = unique_sleep()
    # Both sleeps ignore SIGTERM (inherited from the shell), so only SIGKILL stops them.
    script = f"trap '' TERM; echo $$; sleep {nap} & sleep {nap}; echo not reached"
    result = run(scratch, sandbox, ["sh", "-c", script], timeout=0.5)
    assert (result.returncode, result.timed_out, result.cancelled) == (None, True, False)
    assert 0.5 <= result.duration < 10
    assert b"not reached" not in result.output
    assert processes_with(nap) == []
    assert my_zombies() == []
    if sandbox == "none":  # nothing of the group the shell led is alive
        assert live_in_group(int(result.output.split()[0])) == []


@BOTH
def test_cancel_event_stops_the_run(scratch: Path, sandbox: str) -> None:
    nap = unique_sleep()
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    started = time.monotonic()
    timer.start()
    result = run(scratch, sandbox, ["sh", "-c", f"sleep {nap}"], cancel=cancel)
    timer.join()
    assert (result.returncode, result.timed_out, result.cancelled) == (None, False, True)
    # stopped at the cancel, not at the sleep's end (the run's own duration starts after the
    # sandbox booted, which may take longer than the 0.3 s under load)
    assert 0.3 <= time.monotonic() - started < 5 and result.duration < 5
    assert processes_with(nap) == []


@BOTH
def test_background_processes_die_when_the_command_exits(scratch: Path, sandbox: str) -> None:
    nap = unique_sleep()
    result = run(scratch, sandbox, ["sh", "-c", f"sleep {nap} & echo started"])
    assert (result.returncode, result.output) == (0, b"started\n")
    assert result.duration < 5  # did not wait for the sleeper holding stdout
    assert processes_with(nap) == []
    assert my_zombies() == []


def test_a_signal_that_ends_the_command_is_128_plus_n(scratch: Path) -> None:
    for sandbox in ("bwrap", "none"):
        result = run(scratch, sandbox, ["sh", "-c", "kill -TERM $$"])
        assert result.returncode == 128 + signal.SIGTERM


# ---------------------------------------------------------------------------------------------
# One sandbox for a datum set: datum after datum


@pytest.fixture
def box(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A datum set's sandbox on an empty scratch dir (``request.param``): the host sandbox
    (``bwrap`` or ``none``), or a container of the busybox test image (``image-bwrap``: the
    daemonless runtime, ``podman``). Every kind passes the same tests: one launcher protocol,
    several ways to start it."""
    kind = request.param
    if kind in CONTAINERS:
        image = request.getfixturevalue("busybox_image")
        runtime = CONTAINERS[kind]
        spec = ContainerSpec(runtime, containers.resolve_image(runtime, image.name, "Never"))
        with open_container(spec, tmp_path / "set") as sandbox:
            yield sandbox
        return
    with open_sandbox(kind, tmp_path / "set") as sandbox:
        yield sandbox


CONTAINERS = {"image-bwrap": "bwrap", "podman": "podman"}
ISOLATED = ["bwrap", *(pytest.param(k, marks=pytest.mark.slow) for k in CONTAINERS)]
BOX_BOTH = pytest.mark.parametrize("box", ["none", *ISOLATED], indirect=True)
BOX_BWRAP = pytest.mark.parametrize("box", ISOLATED, indirect=True)


def datum(box: Sandbox, inputs: dict[str, dict[str, str]]) -> None:
    """Start a datum whose inputs are ``{input: {file: text}}`` (as the worker does)."""
    root = box.new_datum(list(inputs))
    for name, files in inputs.items():
        for file, text in files.items():
            (root / name).mkdir(exist_ok=True)
            (root / name / file).write_text(text)


def go(box: Sandbox, argv: list[str], **kwargs: object) -> RunResult:
    env = ENV if box.kind != "podman" and not isinstance(box.launch, _BwrapImage) else IMAGE_ENV
    return box.run(argv, stdin=kwargs.pop("stdin", None), env=env, **kwargs)  # type: ignore[arg-type]


IMAGE_ENV = {"PATH": "/bin", "LANG": "C.UTF-8"}  # in a container: the busybox image's PATH


def launcher_pid(box: Sandbox) -> int:
    """The host PID of the sandbox's launcher (its PID 1)."""
    session = box._session
    assert session is not None
    name = getattr(box.launch, "name", None)
    if name is not None:  # a podman container: its PID 1, as podman knows it
        argv = [*containers._cli("podman"), "inspect", "--format", "{{.State.Pid}}", name]
        return int(subprocess.run(argv, capture_output=True, check=True, text=True).stdout)
    pid = session._launcher_pid()
    assert pid is not None
    return pid


@BOX_BOTH
def test_each_datum_sees_only_its_own_inputs(box: Sandbox) -> None:
    script = "ls /pfs; cat /pfs/*/*"
    datum(box, {"a": {"f": "one\n"}, "b": {"g": "two\n"}})
    assert go(box, ["sh", "-c", script]).output == b"a\nb\nout\none\ntwo\n"
    datum(box, {"c": {"h": "three\n"}})
    assert go(box, ["sh", "-c", script]).output == b"c\nout\nthree\n"
    datum(box, {"a": {"other": "four\n"}})  # same input name, other files
    assert go(box, ["sh", "-c", script]).output == b"a\nout\nfour\n"


@BOX_BOTH
def test_pfs_out_is_empty_at_each_attempt_and_datum(box: Sandbox) -> None:
    out = box.scratch / "pfs" / "out"
    datum(box, {"in": {"x": "hello\n"}})
    write = "ls -A /pfs/out; mkdir -p /pfs/out/d; cp /pfs/in/x /pfs/out/d/y; echo z > /pfs/out/z"
    assert go(box, ["sh", "-c", write]).output == b""
    assert sorted(p.name for p in out.rglob("*")) == ["d", "y", "z"]
    box.clear_out()  # the next attempt
    assert go(box, ["sh", "-c", write]).output == b""  # empty again, and still writable
    assert (out / "d" / "y").read_text() == "hello\n"
    datum(box, {"in": {"x": "bye\n"}})  # the next datum
    assert go(box, ["sh", "-c", write]).output == b""
    assert (out / "d" / "y").read_text() == "bye\n"


@BOX_BWRAP
def test_inputs_stay_read_only_and_the_host_stays_hidden(box: Sandbox) -> None:
    datum(box, {"in": {"x": "hello\n"}})
    for script in ["echo no > /pfs/in/x", "echo no > /pfs/new", "mkdir /pfs/dir", "rm -r /pfs/in"]:
        result = go(box, ["sh", "-c", script])
        assert result.returncode != 0, script
    assert (box.scratch / "pfs" / "in" / "x").read_text() == "hello\n"
    assert sorted(os.listdir(box.scratch / "pfs")) == ["in", "out"]


@BOX_BWRAP
def test_leftover_processes_are_gone_before_the_run_returns(box: Sandbox) -> None:
    nap = unique_sleep()
    datum(box, {"in": {"x": "1"}})
    # The sleeper holds no output pipe, so only the launcher's kill ends it; a double fork
    # makes it an orphan of PID 1.
    script = f"(sleep {nap} </dev/null >/dev/null 2>&1 &) ; echo started"
    result = go(box, ["sh", "-c", script])
    assert (result.returncode, result.output) == (0, b"started\n")
    assert processes_with(nap) == []
    datum(box, {"in": {"x": "2"}})
    # Inside, only the launcher (PID 1) and this shell are left.
    result = go(box, ["sh", "-c", "cd /proc && echo [0-9]*"])
    assert (result.returncode, result.output) == (0, b"1 " + result.output.split()[1] + b"\n")


@BOX_BOTH
def test_output_of_one_datum_does_not_leak_into_the_next(box: Sandbox) -> None:
    datum(box, {"in": {"x": "1"}})
    script = "(while :; do echo chatter; sleep 0.005; done) & sleep 0.2; echo done"
    first = go(box, ["sh", "-c", script])
    assert first.returncode == 0
    lines = first.output.decode().splitlines()
    # what the leftover loop prints before it is killed is this datum's (a loaded machine can
    # let it print after "done"); none of it may reach the next datum
    assert "done" in lines and set(lines) <= {"chatter", "done"}
    time.sleep(0.1)
    datum(box, {"in": {"x": "2"}})
    second = go(box, ["sh", "-c", "sleep 0.1; echo second"])
    assert (second.returncode, second.output) == (0, b"second\n")


@BOX_BOTH
def test_tmp_persists_within_the_datum_set_and_a_timeout_does_not_end_it(box: Sandbox) -> None:
    nap = unique_sleep()
    datum(box, {"in": {"x": "1"}})
    assert go(box, ["sh", "-c", 'echo kept > "${TMPDIR:-/tmp}/note"']).returncode == 0
    result = go(box, ["sh", "-c", f"sleep {nap}"], timeout=0.3)
    assert (result.returncode, result.timed_out) == (None, True)
    assert processes_with(nap) == []
    datum(box, {"in": {"x": "2"}})
    result = go(box, ["sh", "-c", 'cat "${TMPDIR:-/tmp}/note"; cat /pfs/in/x'])
    assert (result.returncode, result.output) == (0, b"kept\n2")


@BOX_BWRAP
def test_cancel_then_the_next_datum_runs(box: Sandbox) -> None:
    nap = unique_sleep()
    datum(box, {"in": {"x": "1"}})
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    result = go(box, ["sh", "-c", f"sleep {nap}"], cancel=cancel)
    timer.join()
    assert (result.returncode, result.cancelled) == (None, True)
    assert processes_with(nap) == []
    assert go(box, ["cat", "/pfs/in/x"]).output == b"1"


@BOX_BWRAP
def test_a_launcher_that_dies_mid_run_fails_the_run_clearly_then_a_new_one_starts(
    box: Sandbox,
) -> None:
    nap = unique_sleep()
    datum(box, {"in": {"x": "1"}})
    assert go(box, ["true"]).returncode == 0
    pid = launcher_pid(box)
    timer = threading.Timer(1.0, os.kill, (pid, signal.SIGKILL))
    timer.start()
    result = go(box, ["sh", "-c", f"echo before; sleep {nap}"], timeout=30)
    timer.join()
    assert (result.returncode, result.timed_out, result.cancelled) == (None, False, False)
    assert result.duration < 10
    stopped = f"before\nhaathi: the {box.kind} sandbox stopped unexpectedly".encode()
    assert result.output.startswith(stopped), result.output
    assert processes_with(nap) == []
    assert my_zombies() == []
    datum(box, {"in": {"x": "2"}})
    result = go(box, ["cat", "/pfs/in/x"])
    assert (result.returncode, result.output) == (0, b"2")
    assert launcher_pid(box) != pid
    header = _attempt_header(1, 3, RunResult(None, False, False, 0.0, b""), None)
    assert header == "haathi: attempt 1 of 3 failed: the sandbox failed\n"


@BOX_BWRAP
def test_when_haathi_goes_away_mid_run_the_command_dies_at_once(box: Sandbox) -> None:
    """haathi's end of the session socket closing (haathi died) ends the sandbox and what runs
    in it, not only once the command finishes: nothing of a dead job runs on."""
    nap = unique_sleep()
    datum(box, {"in": {"x": "1"}})
    session = box._session
    assert session is not None and go(box, ["true"]).returncode == 0
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(go(box, ["sleep", nap])))
    runner.start()
    deadline = time.monotonic() + 10
    while not processes_with(nap) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(nap), "the command did not start"
    session.sock.shutdown(socket.SHUT_WR)  # as if haathi died: the launcher reads end of file
    while processes_with(nap) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(nap) == []
    runner.join(10)
    assert results and results[0].returncode is None  # the run failed: its sandbox is gone


@BOX_BWRAP
def test_a_launcher_that_died_between_runs_is_replaced(box: Sandbox) -> None:
    datum(box, {"in": {"x": "1"}})
    assert go(box, ["true"]).returncode == 0
    session = box._session
    assert session is not None
    os.kill(launcher_pid(box), signal.SIGKILL)
    session.proc.wait(10)
    result = go(box, ["cat", "/pfs/in/x"])
    assert (result.returncode, result.output) == (0, b"1")
    assert box._session is not session


@BOX_BWRAP
def test_failures_to_start_keep_the_session(box: Sandbox) -> None:
    datum(box, {"in": {"x": "1"}})
    assert go(box, ["true"]).returncode == 0
    session = box._session
    assert session is not None
    assert go(box, ["haathi-no-such-command"]).returncode == 127
    assert go(box, ["/pfs/in/x"]).output == b"haathi: cannot execute /pfs/in/x: Permission denied\n"
    result = go(box, ["true"], working_dir="/nonexistent")
    assert result == RunResult(
        1, False, False, result.duration,
        b"haathi: cannot enter working directory /nonexistent: No such file or directory\n",
    )  # fmt: skip
    assert go(box, ["sh", "-c", "exit 7"]).returncode == 7
    assert go(box, ["cat"], stdin="fed\n").output == b"fed\n"
    assert box._session is session


def test_closing_a_sandbox_ends_its_processes(tmp_path: Path) -> None:
    threads = threading.active_count()
    box = open_sandbox("bwrap", tmp_path / "set")
    assert go(box, ["true"]).returncode == 0
    session = box._session
    assert session is not None
    box.close()
    assert session.proc.returncode is not None
    assert my_zombies() == []
    assert threading.active_count() == threads  # no helper threads, ever


def test_a_pipeline_under_bwrap_runs_each_datum_with_its_own_input(tmp_path: Path) -> None:
    n = 12  # several datums per datum set
    spec = {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", 'ls /pfs/in > "/pfs/out/${in##*/}"; ls -A /pfs/out']},
    }
    with haathi.connect(str(tmp_path / "store"), sandbox="bwrap") as c:
        c.create_repo("in")
        c.modify_file("in@master", [bytes_op(b"x", f"/f{i:02d}") for i in range(n)])
        c.create_pipeline(spec)
        for i in range(n):
            assert c.get_file(f"p@master:/f{i:02d}") == f"f{i:02d}\n".encode()


def test_a_script_in_the_hosts_tmp_fails_naming_it_not_as_cant_open_file(tmp_path: Path) -> None:
    """The host's /tmp is hidden (the sandbox has its own): a pipeline whose command runs a
    script left there fails with the path and what to do, not with python's "can't open file"
    or an empty SUCCESS."""
    with tempfile.TemporaryDirectory(dir="/tmp") as host_tmp:
        script = Path(host_tmp) / "edges.py"
        script.write_text("open('/pfs/out/x', 'w').write('x')\n")
        spec = {
            "pipeline": {"name": "edges"},
            "input": {"pfs": {"repo": "images", "glob": "/*"}},
            "transform": {"cmd": ["python3", str(script)]},
            "datum_tries": 1,
        }
        with haathi.connect(str(tmp_path / "store"), sandbox="bwrap") as c:
            c.create_repo("images")
            c.put_file("images@master:/a.png", b"png")
            c.create_pipeline(spec)
            job = c.list_job("edges")[0]
            assert job.state.value == "FAILURE"
            (d,) = c.list_datum(f"edges@{job.id}")
            log = "".join(text for _, text in c.logs("edges", datum=d.id)[1])
            assert f"haathi: {script} is on the host, but the sandbox does not show it" in log
            assert "can't open file" not in log
            assert c.list_file("edges@master:/") == []
