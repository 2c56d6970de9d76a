"""User code cannot escape: a pipeline is an attacker's program.

A user with no roles on a server with auth on may create a repo and a pipeline. Its command
runs on the server's host, so it tries what an attacker would: read the store's database and
objects, the saved tokens and cloud credentials, ``/etc/shadow``; make itself cluster admin
with haathi's own CLI; write outside ``/pfs/out``; signal the server; reach it over the
network. Every attempt must fail, even when the operator lists the whole home directory (where
the store and the tokens live) and haathi's own code in ``sandbox_paths``: what is hidden stays
hidden inside a shown path. The same probes, run without a sandbox, do get through, so the
test can tell.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import haathi
from haathi.errors import PermissionDenied
from haathi.models.info import JobState
from haathi.pps.hostview import HostView
from haathi.pps.sandbox import run_user_code
from haathi.server.serve import Server
from loopback.servers import haathi_serve

CODE_ROOT = str(Path(haathi.__file__).resolve().parent.parent)

# Each probe prints "NAME LEAKED" when the attempt worked, "NAME blocked" when it failed.
PROBES = r"""
probe() {
    name=$1; shift
    if "$@" >/dev/null 2>&1; then echo "$name LEAKED"; else echo "$name blocked"; fi
}
probe read-store-db cat "$STORE/meta.db"
probe list-store ls "$STORE/objects"
probe read-store-config cat "$STORE/haathi.toml"
probe read-tokens cat "$HOMEDIR/.config/haathi/tokens.json"
probe read-aws-credentials cat "$HOMEDIR/.aws/credentials"
probe read-ssh-key cat "$HOMEDIR/.ssh/id_ed25519"
probe read-shadow cat /etc/shadow
probe write-home sh -c 'echo x > "$HOMEDIR/pwned"'
probe write-root sh -c 'echo x > /pwned'
probe write-pfs sh -c 'echo x > /pfs/pwned'
probe become-admin "$PY" -m haathi --address "$STORE" auth set cluster clusterAdmin user:alice
probe signal-server kill -0 "$SERVER_PID"
probe reach-server "$PY" -c "import socket, sys
socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3)" "$PORT"
probe run-as-root sh -c 'test "$(id -u)" = 0'
"""
PROBE_NAMES = re.findall(r"^probe (\S+)", PROBES, re.M)


def report(text: str) -> dict[str, str]:
    found = dict(line.split(" ", 1) for line in text.splitlines() if line.strip())
    assert sorted(found) == sorted(PROBE_NAMES), text  # every probe ran
    return found


@pytest.fixture
def home() -> Iterator[Path]:
    """A home directory outside /tmp (which the sandbox replaces anyway), readable by anyone,
    holding a store, saved haathi tokens and cloud and SSH credentials."""
    path = Path(tempfile.mkdtemp(prefix="haathi-escape-", dir="/var/tmp"))
    path.chmod(0o755)
    for rel, text in {
        ".config/haathi/tokens.json": '{"http://127.0.0.1": "secret-token"}',
        ".aws/credentials": "[default]\naws_secret_access_key = secret\n",
        ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    }.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
        (path / rel).chmod(0o644)  # only the sandbox stands between user code and these
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_pipeline_of_a_user_without_roles_cannot_escape_on_a_server_with_auth_on(
    home: Path,
) -> None:
    store = home / ".haathi"
    store.mkdir()
    # The operator shows the whole home and haathi's code: the masks must still hold.
    (store / "haathi.toml").write_text(
        f'[pipelines]\nsandbox = "bwrap"\nsandbox_paths = ["{home}", "{CODE_ROOT}"]\n'
    )
    env = dict(os.environ, HOME=str(home))  # the server's own tokens and credentials are there
    env.pop("HAATHI_CONFIG_DIR", None)
    env.pop("XDG_CONFIG_HOME", None)
    with haathi_serve(store, "--s3-bind", "none", env=env) as (proc, url, _):
        port = int(url.rsplit(":", 1)[1])
        with haathi.connect(url) as anon:
            root = haathi.connect(url, token=anon.auth_activate())
        root.create_repo("secret")
        root.put_file("secret@master:/plans.txt", b"top secret\n")
        alice = haathi.connect(url, token=root.get_auth_token("user:alice"))
        alice.create_repo("mine")
        alice.put_file("mine@master:/a.txt", b"alice's data\n")
        probe_env = {"STORE": str(store), "HOMEDIR": str(home), "PY": sys.executable,
                     "SERVER_PID": str(proc.pid), "PORT": str(port)}  # fmt: skip
        alice.create_pipeline(
            {
                "pipeline": {"name": "escape"},
                "input": {"pfs": {"repo": "mine", "glob": "/"}},
                "transform": {
                    "cmd": ["sh", "-c", PROBES + "\ncp /pfs/mine/a.txt /pfs/out/a.txt"],
                    "env": probe_env,
                },
            }
        )
        job = alice.list_job("escape")[0]
        log = "".join(text for _datum, text in alice.logs("escape")[1])
        assert job.state == JobState.SUCCESS, log
        assert job.context["sandbox"] == "bwrap"
        assert alice.get_file("escape@master:/a.txt") == b"alice's data\n"  # it did run
        assert report(log) == dict.fromkeys(PROBE_NAMES, "blocked")
        # and nothing changed: alice is no admin, the server is up, the store is whole
        assert "user:alice" not in str(root.get_cluster_roles())
        with pytest.raises(PermissionDenied):
            alice.get_file("secret@master:/plans.txt")
        assert root.get_file("secret@master:/plans.txt") == b"top secret\n"
        assert not (home / "pwned").exists()
        assert proc.poll() is None
        alice.close()
        root.close()
    assert (store / "meta.db").stat().st_size > 0


def test_the_probes_get_through_without_a_sandbox(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(home))
    store = home / ".haathi"
    (store / "objects").mkdir(parents=True)
    (store / "meta.db").write_text("SQLite format 3")
    (store / "haathi.toml").write_text("")
    scratch = tmp_path / "datum"
    (scratch / "pfs" / "out").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "STORE": str(store), "HOMEDIR": str(home),
           "PY": sys.executable, "SERVER_PID": str(os.getpid()), "PORT": "9"}  # fmt: skip
    res = run_user_code(
        ["sh", "-c", PROBES],
        stdin=None,
        env=env,
        scratch=scratch,
        input_names=[],
        sandbox="none",
    )
    found = report(res.output.decode())
    for name in (
        "read-store-db",
        "list-store",
        "read-store-config",
        "read-tokens",
        "read-aws-credentials",
        "read-ssh-key",
        "write-home",
        "signal-server",
    ):
        assert found[name] == "LEAKED", name
    # the same probes in the sandbox, with the view a server with auth on builds
    view = HostView(show=(str(home), CODE_ROOT), hide=(str(store),))
    (home / "pwned").unlink()
    res = run_user_code(
        ["sh", "-c", PROBES],
        stdin=None,
        env=env,
        scratch=scratch,
        input_names=[],
        sandbox="bwrap",
        view=view,
    )
    assert report(res.output.decode()) == dict.fromkeys(PROBE_NAMES, "blocked")


# where user code may run ---------------------------------------------------------------------

COPY = {
    "pipeline": {"name": "copy"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", "cp /pfs/data/* /pfs/out/"]},
}


def test_with_auth_on_sandbox_none_is_refused_and_the_job_says_why(store: Path) -> None:
    server = Server.for_store(str(store), {"sandbox": "none"}, "127.0.0.1:0").start()
    try:
        with haathi.connect(server.url) as anon:
            root = haathi.connect(server.url, token=anon.auth_activate())
        root.create_repo("data")
        root.put_file("data@master:/x", b"x")
        root.create_pipeline(COPY)
        job = root.list_job("copy")[0]
        assert job.state == JobState.FAILURE, job.reason
        reason = job.reason or ""
        assert "auth is on" in reason and "sandbox none is refused" in reason
        assert root.list_file("copy@master:/") == []  # nothing ran
        root.close()
    finally:
        server.stop()


@pytest.mark.parametrize("image", ["oci-archive:/etc/shadow", "oci:/root", "docker-archive:/x"])
def test_with_auth_on_an_image_is_never_read_from_a_path_on_the_server(
    store: Path, image: str
) -> None:
    """Any user could otherwise run (or probe) any image file the server's user can read."""
    server = Server.for_store(str(store), {}, "127.0.0.1:0").start()
    try:
        with haathi.connect(server.url) as anon:
            root = haathi.connect(server.url, token=anon.auth_activate())
        root.create_repo("data")
        root.put_file("data@master:/x", b"x")
        root.create_pipeline({**COPY, "transform": {**COPY["transform"], "image": image}})
        job = root.list_job("copy")[0]
        assert job.state == JobState.FAILURE, job.reason
        assert f"image {image!r}: auth is on, so an image is named" in (job.reason or "")
        assert root.list_file("copy@master:/") == []  # nothing ran
        root.close()
    finally:
        server.stop()


def test_auto_says_when_it_falls_back_to_no_sandbox_and_auth_on_refuses_that(
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "bin"  # a PATH without bubblewrap
    bin_dir.mkdir()
    for tool in ("sh", "cp"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    env = dict(os.environ, PATH=str(bin_dir), HAATHI_ADDRESS=str(tmp_path / "store"),
               COLUMNS="300")  # fmt: skip

    def haathi_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "haathi", *args], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    spec = tmp_path / "copy.json"
    spec.write_text(json.dumps(COPY))
    assert haathi_cli("create", "repo", "data").returncode == 0
    assert haathi_cli("put", "file", "data@master:/a", "-f", str(spec)).returncode == 0
    res = haathi_cli("create", "pipeline", "-f", str(spec))
    assert res.returncode == 0, res.stderr
    # the command's own output says where the user code ran, and why not in a sandbox
    assert "sandbox none (no isolation: bubblewrap cannot run here" in res.stderr, res.stderr
    job = json.loads(haathi_cli("list", "job", "-o", "json").stdout)[0]
    assert job["state"] == "SUCCESS" and job["context"]["sandbox"] == "none"
    assert "bwrap is not on PATH" in job["context"]["sandbox_note"]
    inspect = haathi_cli("inspect", "job", f"copy@{job['id']}").stdout
    assert "sandbox none: no isolation" in inspect

    assert haathi_cli("auth", "activate").returncode == 0
    res = haathi_cli("put", "file", "data@master:/b", "-f", str(spec))
    job = json.loads(haathi_cli("list", "job", "-o", "json").stdout)[0]
    assert job["state"] == "FAILURE", job
    assert "bubblewrap (bwrap) is not installed" in job["reason"]
    assert "auth is on, so user code does not run without a sandbox" in job["reason"]


def test_interpreters_and_programs_installed_under_tmp_run_in_the_sandbox(
    tmp_path: Path,
) -> None:
    """A checkout and its virtualenv under /tmp (which the sandbox replaces) still work: the
    launcher's interpreter and the command's program are shown, the rest of /tmp is not."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # haathi and its dependencies, as an install into this venv would make them importable
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "haathi-test.pth").write_text("\n".join([CODE_ROOT, *deps]) + "\n")
    (tmp_path / "secret.txt").write_text("not for user code\n")
    script = (
        "import os, sys\n"
        "print(sys.prefix)\n"
        f"print(os.path.exists({str(tmp_path / 'secret.txt')!r}))\n"
    )
    code = (
        "import haathi, sys\n"
        "from haathi.client.sources import bytes_op\n"
        "with haathi.connect(sys.argv[1], sandbox='bwrap') as c:\n"
        "    c.create_repo('in')\n"
        "    c.put_file('in@master:/x', b'x')\n"
        f"    c.create_pipeline({{'pipeline': {{'name': 'p'}}, 'input': {{'pfs': {{'repo': 'in',"
        f" 'glob': '/'}}}}, 'transform': {{'cmd': [{python!r}, '-c', {script!r}]}}}})\n"
        "    job = c.list_job('p')[0]\n"
        "    print(job.state.value, job.context['sandbox'])\n"
        "    print(''.join(t for _, t in c.logs('p')[1]), end='')\n"
    )
    res = subprocess.run(
        [python, "-c", code, str(tmp_path / "store")], capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["SUCCESS bwrap", str(venv), "False"], res.stdout


# What user code leaves in /pfs/out is read on the host, with the worker's rights: a symlink
# there must not make the worker read a host file for it.
LINK_LAYOUTS = {
    "absolute": 'ln -s "$SECRET" /pfs/out/leak',
    "relative": 'ln -s "../../../../../../../../../..$SECRET" /pfs/out/leak',
    "directory": 'ln -s "$(dirname "$SECRET")" /pfs/out/leak',
    # a_leak sorts first: it reaches the host through a link the walk has not checked yet
    "chain": 'ln -s /pfs/out/hop /pfs/out/a_leak && ln -s "$SECRET" /pfs/out/hop',
    "chain in a directory": "mkdir /pfs/out/d && ln -s /pfs/out/d/hop /pfs/out/a_leak && "
    'ln -s "$SECRET" /pfs/out/d/hop',
}


@pytest.mark.parametrize("layout", sorted(LINK_LAYOUTS))
def test_a_symlink_in_pfs_out_to_a_host_file_fails_the_datum_and_reads_nothing(
    client: haathi.Client, store: Path, layout: str
) -> None:
    secret_dir = Path(tempfile.mkdtemp(prefix="haathi-secret-", dir="/var/tmp"))
    try:
        secret = secret_dir / "key"
        data = os.urandom(4096)  # (stored as is, were it stored: random bytes do not compress)
        secret.write_bytes(data)
        secret.chmod(0o644)
        client.create_repo("in")
        client.put_file("in@master:/a", b"a")
        client.create_pipeline(
            {
                "pipeline": {"name": "links"},
                "input": {"pfs": {"repo": "in", "glob": "/"}},
                "transform": {
                    "cmd": ["sh", "-c", LINK_LAYOUTS[layout]],
                    "env": {"SECRET": str(secret)},
                },
            }
        )
        [job] = client.list_job("links")
        assert job.state == JobState.FAILURE
        [datum] = client.list_datum(f"links@{job.id}")
        assert datum.reason is not None and "write a copy of it instead" in datum.reason
        assert client.walk_file("links@master:/") == []
        for path in store.rglob("*"):  # (not even as a blob no commit holds)
            if path.is_file():
                assert data[1000:1064] not in path.read_bytes(), path
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)


def test_symlinks_within_pfs_out_are_followed_and_a_loop_fails_the_datum(
    client: haathi.Client,
) -> None:
    client.create_repo("in")
    client.put_file("in@master:/a", b"a")
    client.create_pipeline(
        {
            "pipeline": {"name": "within"},
            "input": {"pfs": {"repo": "in", "glob": "/"}},
            "transform": {
                "cmd": ["sh", "-c", "mkdir -p /pfs/out/d/e && echo hi > /pfs/out/d/e/f && "
                        "ln -s /pfs/out/d /pfs/out/abs && ln -s d/e/../e /pfs/out/rel && "
                        "ln -s ../abs/e/f /pfs/out/d/back"],
            },
        }
    )  # fmt: skip
    assert {f.path: client.get_file(f"within@master:{f.path}")
            for f in client.walk_file("within@master:/")} == {
        "/abs/back": b"hi\n", "/abs/e/f": b"hi\n", "/d/back": b"hi\n", "/d/e/f": b"hi\n",
        "/rel/f": b"hi\n",
    }  # fmt: skip
    client.create_pipeline(
        {
            "pipeline": {"name": "loop"},
            "input": {"pfs": {"repo": "in", "glob": "/"}},
            "transform": {"cmd": ["sh", "-c", "mkdir /pfs/out/d && ln -s .. /pfs/out/d/up"]},
        }
    )
    [job] = client.list_job("loop")
    [datum] = client.list_datum(f"loop@{job.id}")
    assert (job.state, datum.reason) == (
        JobState.FAILURE,
        "output /d/up is a symlink to a directory above it",
    )
