"""Running user code for datums on the host: choosing the sandbox, what of the host bubblewrap
shows (and hides), and how the unsandboxed fallback (``none``) maps Pachyderm's paths. What
every kind of sandbox (these two and containers of images) promises alike is the sandbox
conformance suite, ``tests/conformance/test_sandboxes.py``.

Everything here runs real processes. bubblewrap must work on the test machine: a missing or
broken ``bwrap`` fails these tests rather than skipping them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import haathi
from haathi.client.sources import bytes_op
from haathi.errors import InvalidArgument
from haathi.pps.hostview import HostView
from haathi.pps.sandbox import (
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
# Pipelines under bwrap


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
