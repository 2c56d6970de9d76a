"""The sandbox contract, one suite run against every way user code runs for a datum set: no
sandbox (``none``), the host under bubblewrap (``bwrap``), and a container of the busybox test
image under bubblewrap (``image-bwrap``: the daemonless runtime) or podman (``podman``). One
launcher protocol, several ways to start it.

What every :class:`haathi.pps.sandbox.Sandbox` promises (its module docstring says more): each
datum sees its own inputs under ``/pfs/<input>`` and an empty ``/pfs/out``; ``/tmp`` lasts for
the datum set; stdin is the given text or ``/dev/null``; stdout and stderr come back together
in arrival order, their last ``OUTPUT_CAP`` bytes; exit codes are a shell's (127 for a
missing command, 128 + N for signal N); a timeout or a cancel kills everything the command
started, as does the command's own exit, and the next datum runs. The isolated kinds also keep
inputs read-only and the host hidden, give the command exactly the environment asked for,
and survive their launcher dying.

Everything here runs real processes. bubblewrap and podman must work on the test machine: a
missing one fails these tests rather than skipping them. Host-sandbox details (what of the host
``bwrap`` shows, ``none``'s path mapping) are in ``tests/test_sandbox.py``; whole pipelines in
images in ``tests/test_images_runtime.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from haathi.errors import InvalidArgument
from haathi.pps import containers
from haathi.pps.containers import ContainerSpec, open_container
from haathi.pps.sandbox import RunResult, Sandbox, open_sandbox
from haathi.pps.supervisor import OUTPUT_CAP
from haathi.pps.worker import _attempt_header

HOST_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
IMAGE_ENV = {"PATH": "/bin", "LANG": "C.UTF-8"}  # in a container: the busybox image's PATH
CONTAINERS = {"image-bwrap": "bwrap", "podman": "podman"}
ISOLATED = ["bwrap", *(pytest.param(k, marks=pytest.mark.slow) for k in CONTAINERS)]
EVERY_KIND = pytest.mark.parametrize("impl", ["none", *ISOLATED], indirect=True)
ISOLATED_KINDS = pytest.mark.parametrize("impl", ISOLATED, indirect=True)


@dataclass
class Box:
    """A datum set's sandbox of one kind, and the environment its commands get."""

    kind: str
    sandbox: Sandbox
    env: dict[str, str]

    @property
    def scratch(self) -> Path:
        return self.sandbox.scratch

    def datum(self, inputs: dict[str, dict[str, str]]) -> None:
        """Start a datum whose inputs are ``{input: {file: text}}`` (as the worker does)."""
        root = self.sandbox.new_datum(list(inputs))
        for name, files in inputs.items():
            for file, text in files.items():
                (root / name).mkdir(exist_ok=True)
                (root / name / file).write_text(text)

    def run(self, argv: list[str], *, stdin: str | None = None, **kwargs: object) -> RunResult:
        env = kwargs.pop("env", self.env)
        return self.sandbox.run(argv, stdin=stdin, env=env, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def impl(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Box]:
    """A datum set's sandbox of the kind ``request.param``, on an empty scratch directory."""
    kind = request.param
    if kind in CONTAINERS:
        image = request.getfixturevalue("busybox_image")
        runtime = CONTAINERS[kind]
        spec = ContainerSpec(runtime, containers.resolve_image(runtime, image.name, "Never"))
        with open_container(spec, tmp_path / "set") as sandbox:
            yield Box(kind, sandbox, IMAGE_ENV)
        return
    with open_sandbox(kind, tmp_path / "set") as sandbox:
        yield Box(kind, sandbox, HOST_ENV)


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


def my_zombies() -> list[int]:
    """Children of this process that have exited but were never reaped."""
    zombies = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state == "Z" and int(ppid) == os.getpid():
                zombies.append(int(entry))
    return zombies


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def unique_sleep() -> str:
    """A sleep duration no other process uses, to find our sleepers in /proc."""
    return f"1000.{uuid.uuid4().int % 10**9:09d}"


def launcher_pid(box: Box) -> int:
    """The host PID of the sandbox's launcher (its PID 1)."""
    session = box.sandbox._session
    assert session is not None
    name = getattr(box.sandbox.launch, "name", None)
    if name is not None:  # a podman container: its PID 1, as podman knows it
        argv = [*containers._cli("podman"), "inspect", "--format", "{{.State.Pid}}", name]
        return int(subprocess.run(argv, capture_output=True, check=True, text=True).stdout)
    pid = session._launcher_pid()
    assert pid is not None
    return pid


# ---------------------------------------------------------------------------------------------
# Inputs and outputs, datum after datum


@EVERY_KIND
def test_a_command_reads_its_inputs_and_writes_pfs_out(impl: Box) -> None:
    impl.datum({"in": {"x": "hello\n"}})
    result = impl.run(["sh", "-c", "tr a-z A-Z < /pfs/in/x > /pfs/out/y; echo ok"])
    assert result == RunResult(0, False, False, result.duration, b"ok\n")
    assert (impl.scratch / "pfs" / "out" / "y").read_text() == "HELLO\n"


@EVERY_KIND
def test_each_datum_sees_only_its_own_inputs(impl: Box) -> None:
    script = "ls /pfs; cat /pfs/*/*"
    impl.datum({"a": {"f": "one\n"}, "b": {"g": "two\n"}})
    assert impl.run(["sh", "-c", script]).output == b"a\nb\nout\none\ntwo\n"
    impl.datum({"c": {"h": "three\n"}})
    assert impl.run(["sh", "-c", script]).output == b"c\nout\nthree\n"
    impl.datum({"a": {"other": "four\n"}})  # same input name, other files
    assert impl.run(["sh", "-c", script]).output == b"a\nout\nfour\n"


@EVERY_KIND
def test_pfs_out_is_empty_at_each_attempt_and_datum(impl: Box) -> None:
    out = impl.scratch / "pfs" / "out"
    impl.datum({"in": {"x": "hello\n"}})
    write = "ls -A /pfs/out; mkdir -p /pfs/out/d; cp /pfs/in/x /pfs/out/d/y; echo z > /pfs/out/z"
    assert impl.run(["sh", "-c", write]).output == b""
    assert sorted(p.name for p in out.rglob("*")) == ["d", "y", "z"]
    impl.sandbox.clear_out()  # the next attempt
    assert impl.run(["sh", "-c", write]).output == b""  # empty again, and still writable
    assert (out / "d" / "y").read_text() == "hello\n"
    impl.datum({"in": {"x": "bye\n"}})  # the next datum
    assert impl.run(["sh", "-c", write]).output == b""
    assert (out / "d" / "y").read_text() == "bye\n"


@EVERY_KIND
def test_tmp_persists_within_the_datum_set_and_a_timeout_does_not_end_it(impl: Box) -> None:
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    assert impl.run(["sh", "-c", 'echo kept > "${TMPDIR:-/tmp}/note"']).returncode == 0
    result = impl.run(["sh", "-c", f"sleep {nap}"], timeout=0.3)
    assert (result.returncode, result.timed_out) == (None, True)
    assert processes_with(nap) == []
    impl.datum({"in": {"x": "2"}})
    result = impl.run(["sh", "-c", 'cat "${TMPDIR:-/tmp}/note"; cat /pfs/in/x'])
    assert (result.returncode, result.output) == (0, b"kept\n2")


@ISOLATED_KINDS
def test_inputs_stay_read_only_and_the_host_stays_hidden(impl: Box) -> None:
    impl.datum({"in": {"x": "hello\n"}})
    for script in ["echo no > /pfs/in/x", "echo no > /pfs/new", "mkdir /pfs/dir", "rm -r /pfs/in"]:
        result = impl.run(["sh", "-c", script])
        assert result.returncode != 0, script
    assert b"Read-only file system" in impl.run(["sh", "-c", "echo no > /pfs/in/x"]).output
    assert (impl.scratch / "pfs" / "in" / "x").read_text() == "hello\n"
    assert sorted(os.listdir(impl.scratch / "pfs")) == ["in", "out"]


# ---------------------------------------------------------------------------------------------
# The command's process: stdin, output, exit codes, environment


@EVERY_KIND
def test_stdin_is_fed_and_absent_stdin_is_dev_null(impl: Box) -> None:
    big = "".join(f"line {i:07d}\n" for i in range(40_000))  # 520 KB: more than a pipe holds
    impl.datum({"in": {"x": "1"}})
    result = impl.run(["cat"], stdin=big)
    assert (result.returncode, result.output) == (0, big.encode())
    result = impl.run(["cat"])
    assert (result.returncode, result.output) == (0, b"")


@EVERY_KIND
def test_exit_codes_are_a_shells(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    assert impl.run(["sh", "-c", "exit 3"]).returncode == 3
    assert impl.run(["true"]).returncode == 0
    assert impl.run(["sh", "-c", "kill -KILL $$"]).returncode == 128 + signal.SIGKILL
    assert impl.run(["sh", "-c", "kill -TERM $$"]).returncode == 128 + signal.SIGTERM


@EVERY_KIND
def test_a_command_that_cannot_start_says_why(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    for name in ["haathi-no-such-command", "/nonexistent/haathi-cmd"]:
        result = impl.run([name, "arg"])
        assert result == RunResult(
            127, False, False, result.duration, f"haathi: command not found: {name}\n".encode()
        )
    result = impl.run(["true"], working_dir="/nonexistent")
    assert result == RunResult(
        1, False, False, result.duration,
        b"haathi: cannot enter working directory /nonexistent: No such file or directory\n",
    )  # fmt: skip
    with pytest.raises(InvalidArgument, match="the command"):
        impl.run([])


@EVERY_KIND
def test_output_is_interleaved_in_arrival_order(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    result = impl.run(["sh", "-c", "echo a; echo b >&2; echo c; echo d >&2"])
    assert result.output == b"a\nb\nc\nd\n"


@EVERY_KIND
def test_output_keeps_the_last_mebibyte(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    script = "head -c 3000000 /dev/zero | tr '\\000' x; echo 'THE END' >&2"
    result = impl.run(["sh", "-c", script])
    assert result.returncode == 0
    note = f"[haathi: output truncated: the first {3_000_008 - OUTPUT_CAP} bytes were dropped]\n"
    assert result.output == note.encode() + b"x" * (OUTPUT_CAP - 8) + b"THE END\n"


@ISOLATED_KINDS
def test_the_environment_is_exactly_the_one_given(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    env = {**impl.env, "A": "1", "B": "two words", "in": "/pfs/in/x"}
    result = impl.run(["env"], env=env, working_dir="/pfs/out")
    assert result.returncode == 0
    # PWD (the working directory) is added; nothing else comes from the host or the runtime.
    assert sorted(result.output.decode().splitlines()) == sorted(
        [f"{k}={v}" for k, v in env.items()] + ["PWD=/pfs/out"]
    )


# ---------------------------------------------------------------------------------------------
# Stopping: timeouts, cancels, leftovers


@EVERY_KIND
def test_a_timeout_kills_everything_the_command_started(impl: Box) -> None:
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    # Both sleeps ignore SIGTERM (inherited from the shell), so only SIGKILL stops them.
    script = f"trap '' TERM; sleep {nap} & sleep {nap}; echo not reached"
    result = impl.run(["sh", "-c", script], timeout=0.5)
    assert (result.returncode, result.timed_out, result.cancelled) == (None, True, False)
    assert 0.5 <= result.duration < 10
    assert b"not reached" not in result.output
    assert processes_with(nap) == []
    assert my_zombies() == []


@EVERY_KIND
def test_cancel_stops_the_run_and_the_next_datum_runs(impl: Box) -> None:
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    started = time.monotonic()
    timer.start()
    result = impl.run(["sh", "-c", f"sleep {nap}"], cancel=cancel)
    timer.join()
    assert (result.returncode, result.timed_out, result.cancelled) == (None, False, True)
    # stopped at the cancel, not at the sleep's end (the run's own duration starts after the
    # sandbox booted, which may take longer than the 0.3 s under load)
    assert 0.3 <= time.monotonic() - started < 5 and result.duration < 5
    assert processes_with(nap) == []
    impl.datum({"in": {"x": "2"}})
    assert impl.run(["cat", "/pfs/in/x"]).output == b"2"


@EVERY_KIND
def test_background_processes_die_when_the_command_exits(impl: Box) -> None:
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    result = impl.run(["sh", "-c", f"sleep {nap} & echo started"])
    assert (result.returncode, result.output) == (0, b"started\n")
    assert result.duration < 5  # did not wait for the sleeper holding stdout
    assert processes_with(nap) == []
    assert my_zombies() == []


@EVERY_KIND
def test_output_of_one_datum_does_not_leak_into_the_next(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    script = "(while :; do echo chatter; sleep 0.005; done) & sleep 0.2; echo done"
    first = impl.run(["sh", "-c", script])
    assert first.returncode == 0
    lines = first.output.decode().splitlines()
    # what the leftover loop prints before it is killed is this datum's (a loaded machine can
    # let it print after "done"); none of it may reach the next datum
    assert "done" in lines and set(lines) <= {"chatter", "done"}
    time.sleep(0.1)
    impl.datum({"in": {"x": "2"}})
    second = impl.run(["sh", "-c", "sleep 0.1; echo second"])
    assert (second.returncode, second.output) == (0, b"second\n")


@ISOLATED_KINDS
def test_orphans_are_gone_before_the_run_returns(impl: Box) -> None:
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    # The sleeper holds no output pipe, so only the launcher's kill ends it; a double fork
    # makes it an orphan of PID 1.
    script = f"(sleep {nap} </dev/null >/dev/null 2>&1 &) ; echo started"
    result = impl.run(["sh", "-c", script])
    assert (result.returncode, result.output) == (0, b"started\n")
    assert processes_with(nap) == []
    impl.datum({"in": {"x": "2"}})
    # Inside, only the launcher (PID 1) and this shell are left.
    result = impl.run(["sh", "-c", "cd /proc && echo [0-9]*"])
    assert (result.returncode, result.output) == (0, b"1 " + result.output.split()[1] + b"\n")


# ---------------------------------------------------------------------------------------------
# The launcher: failures and their recovery, closing


@ISOLATED_KINDS
def test_a_launcher_that_dies_mid_run_fails_the_run_clearly_then_a_new_one_starts(
    impl: Box,
) -> None:
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    assert impl.run(["true"]).returncode == 0
    pid = launcher_pid(impl)
    timer = threading.Timer(1.0, os.kill, (pid, signal.SIGKILL))
    timer.start()
    result = impl.run(["sh", "-c", f"echo before; sleep {nap}"], timeout=30)
    timer.join()
    assert (result.returncode, result.timed_out, result.cancelled) == (None, False, False)
    assert result.duration < 10
    stopped = f"before\nhaathi: the {impl.sandbox.kind} sandbox stopped unexpectedly".encode()
    assert result.output.startswith(stopped), result.output
    assert processes_with(nap) == []
    assert my_zombies() == []
    impl.datum({"in": {"x": "2"}})
    result = impl.run(["cat", "/pfs/in/x"])
    assert (result.returncode, result.output) == (0, b"2")
    assert launcher_pid(impl) != pid
    header = _attempt_header(1, 3, RunResult(None, False, False, 0.0, b""), None)
    assert header == "haathi: attempt 1 of 3 failed: the sandbox failed\n"


@ISOLATED_KINDS
def test_when_haathi_goes_away_mid_run_the_command_dies_at_once(impl: Box) -> None:
    """haathi's end of the session socket closing (haathi died) ends the sandbox and what runs
    in it, not only once the command finishes: nothing of a dead job runs on."""
    nap = unique_sleep()
    impl.datum({"in": {"x": "1"}})
    session = impl.sandbox._session
    assert session is not None and impl.run(["true"]).returncode == 0
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(impl.run(["sleep", nap])))
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


@ISOLATED_KINDS
def test_a_launcher_that_died_between_runs_is_replaced(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    assert impl.run(["true"]).returncode == 0
    session = impl.sandbox._session
    assert session is not None
    os.kill(launcher_pid(impl), signal.SIGKILL)
    session.proc.wait(10)
    result = impl.run(["cat", "/pfs/in/x"])
    assert (result.returncode, result.output) == (0, b"1")
    assert impl.sandbox._session is not session


@ISOLATED_KINDS
def test_failures_to_start_keep_the_session(impl: Box) -> None:
    impl.datum({"in": {"x": "1"}})
    assert impl.run(["true"]).returncode == 0
    session = impl.sandbox._session
    assert session is not None
    assert impl.run(["haathi-no-such-command"]).returncode == 127
    result = impl.run(["/pfs/in/x"])
    assert result.output == b"haathi: cannot execute /pfs/in/x: Permission denied\n"
    assert impl.run(["true"], working_dir="/nonexistent").returncode == 1
    assert impl.run(["sh", "-c", "exit 7"]).returncode == 7
    assert impl.run(["cat"], stdin="fed\n").output == b"fed\n"
    assert impl.sandbox._session is session


@ISOLATED_KINDS
def test_closing_a_sandbox_ends_its_processes(impl: Box) -> None:
    threads = threading.active_count()
    impl.datum({"in": {"x": "1"}})
    assert impl.run(["true"]).returncode == 0
    session = impl.sandbox._session
    assert session is not None
    pid = launcher_pid(impl)
    impl.sandbox.close()
    assert session.proc.returncode is not None
    assert gone(pid)
    assert my_zombies() == []
    assert threading.active_count() == threads  # no helper threads, ever
