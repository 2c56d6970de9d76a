"""Running user code for one datum: the bubblewrap sandbox and the unsandboxed fallback.

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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from haathi.errors import InvalidArgument
from haathi.pps.sandbox import (
    OUTPUT_CAP,
    RunResult,
    map_pfs,
    pfs_path,
    resolve_sandbox,
    run_user_code,
)

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
    (path / "f").write_text("original\n")
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def test_bwrap_host_files_are_read_only(scratch: Path, host_dir: Path) -> None:
    script = f"cat {host_dir}/f; echo changed > {host_dir}/f"
    result = run(scratch, "bwrap", ["sh", "-c", script])
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
    monkeypatch.chdir(repo)  # visible inside: kept
    assert run(scratch, "bwrap", ["pwd"]).output == f"{repo}\n".encode()
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
    timer.start()
    result = run(scratch, sandbox, ["sh", "-c", f"sleep {nap}"], cancel=cancel)
    timer.join()
    assert (result.returncode, result.timed_out, result.cancelled) == (None, False, True)
    assert 0.3 <= result.duration < 5
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
