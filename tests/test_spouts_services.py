"""Spouts and services: long-lived programs that workers run (``haathi run worker`` here, as
real subprocesses), as Pachyderm's workers run them.

A spout writes commits to its own output repo through haathi's CLI or ``haathi.connect()``,
with an address and a token that reach that repo and nothing else; each of its commits starts
the jobs of the pipelines downstream. A service serves its input's single datum on its
``internal_port``, published on ``127.0.0.1``, and is started again on each new input commit.
Both stop with ``stop pipeline``, start again with ``start pipeline``, are started again by
another worker when theirs is killed, and show how they are doing in ``list pipeline``.

The one-minute acceptance run of the issue (one commit a second for 60 s, a downstream
pipeline sees every one) is ``bench/run.py --only spout_minute``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from haathi.models.info import JobState, PipelineInfo
from loopback.servers import haathi_serve
from loopback.waiting import wait_for
from tests.conftest import Cli

pytestmark = pytest.mark.slow  # (real worker processes, killed ones too)

LEASE_S = 2  # a killed worker's spouts and services start again elsewhere after this long
SPOUT101 = Path(__file__).parent / "data" / "pachyderm_examples" / "spouts" / "spout101"

COUNTER = {  # one commit a second, through the CLI, as Pachyderm's TestSpoutPachctl
    "pipeline": {"name": "counter"},
    "spout": {},
    "transform": {
        "cmd": ["sh"],
        "stdin": [
            "i=0",
            "while [ $i -lt 5 ]; do",
            "  i=$((i+1)); echo $i > n",
            '  haathi put file "$PPS_PIPELINE_NAME@master:/n" -f n',
            "  sleep 1",
            "done",
            # what its token may not do: write another repo, make one
            "haathi put file data@master:/x -f n 2> refused; haathi create repo mine 2>> refused",
            'haathi put file "$PPS_PIPELINE_NAME@master:/refused" -f refused',
            'echo "$PPS_PROJECT_NAME $PWD" > where',
            'haathi put file "$PPS_PIPELINE_NAME@master:/where" -f where',
            "exec sleep 3600",
        ],
    },
}
DOUBLE = {  # downstream of the spout: sees every one of its commits
    "pipeline": {"name": "double"},
    "input": {"pfs": {"repo": "counter", "glob": "/n"}},
    "transform": {"cmd": ["sh", "-c", "echo $(( $(cat /pfs/counter/n) * 2 )) > /pfs/out/n"]},
}
TICKER = {  # a commit every 0.3 s, through haathi.connect()
    "pipeline": {"name": "ticker"},
    "spout": {},
    "transform": {
        "cmd": ["python3", "-c", "\n".join([
            "import os, time, haathi",
            "c = haathi.connect()",
            "me = os.environ['PPS_PIPELINE_NAME']",
            "while True:",
            "    c.put_file(f'{me}@master:/tick', str(time.time()).encode())",
            "    time.sleep(0.3)",
        ])],
    },
}  # fmt: skip


def service(name: str, external_port: int | None = None) -> dict[str, Any]:
    """Pachyderm's TestService: a web server over /pfs (the script does not exec it: the
    server is stopped all the same)."""
    published = {"internal_port": 8000}
    if external_port is not None:
        published["external_port"] = external_port
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": "data", "glob": "/"}},
        "service": published,
        "transform": {"cmd": ["sh"], "stdin": ["cd /pfs", "python3 -m http.server 8000"]},
    }


# ---- helpers -----------------------------------------------------------------------------


@contextmanager
def worker(store: Path, cwd: Path, *, venv: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """``haathi run worker`` on the store (its output in ``cwd``/worker.log), stopped (its
    whole group) at the end. Its ``PATH`` lacks haathi's own ``bin`` directory (as a worker's
    started by its full path does: a spout's program finds ``haathi`` all the same), unless
    ``venv`` (as a worker's started in an activated venv, which has ``python`` too)."""
    own = sysconfig.get_path("scripts")
    path = [d for d in os.environ["PATH"].split(os.pathsep) if d != own]
    with open(cwd / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "haathi", "run", "worker"],
            env=dict(
                os.environ,
                HAATHI_ADDRESS=str(store),
                HAATHI_JOB_LEASE=str(LEASE_S),
                PATH=os.pathsep.join([own, *path] if venv else path),
                PYTHONFAULTHANDLER="1",
            ),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    except BaseException:  # in its log: the processes (its sandboxes too), its threads' stacks
        if proc.poll() is None:
            with open(cwd / "worker.log", "ab") as log:
                subprocess.run(["ps", "-e", "-H", "-o", "pid,ppid,stat,etime,args"],
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            os.kill(proc.pid, signal.SIGABRT)  # (faulthandler: every thread's stack)
            proc.wait()
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the worker (and whatever it started)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def pipeline(c: Client, name: str) -> PipelineInfo:
    return c.inspect_pipeline(name)


def commits(c: Client, repo: str) -> int:
    return len(c.list_commit(f"{repo}@master"))


def done(c: Client, pipeline: str) -> int:
    """How many of the pipeline's jobs have ended."""
    return sum(j.state.terminal for j in c.list_job(pipeline=pipeline))


def get(url: str) -> str | None:
    """The body of a GET, or None if nothing answers there (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as res:
            return str(res.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def spec_file(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / f"{doc['pipeline']['name']}.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def c(store: Path) -> Iterator[Client]:
    """The test's own view of the store (the worker runs the jobs)."""
    with haathi.connect(str(store), run_jobs=False) as client:
        yield client


# ---- spouts ------------------------------------------------------------------------------


@pytest.mark.every_backend
def test_a_spout_feeds_a_downstream_pipeline_every_commit(
    cli: Cli, c: Client, tmp_path: Path
) -> None:
    cli("create", "repo", "data")
    made = cli("create", "pipeline", "-f", spec_file(tmp_path, COUNTER))  # returns at once
    assert "its spout runs in a worker" in made.err
    cli("create", "pipeline", "-f", spec_file(tmp_path, DOUBLE))
    waiting = pipeline(c, "counter")
    assert (waiting.state, waiting.reason) == (
        "STARTING", "waiting for a worker: run `haathi run worker` or `haathi serve`",
    )  # fmt: skip
    assert commits(c, "counter") == 1  # Pachyderm's "close spout commit", made at once
    assert "starting (waiting for a worker" in cli("list", "pipeline").out

    with worker(cli.store, tmp_path):
        wait_for(lambda: "where" in {f.path.lstrip("/") for f in c.list_file("counter@master:/")})
        info = pipeline(c, "counter")
        assert info.state == "RUNNING" and info.daemon is not None and info.daemon["runner"]
        wait_for(lambda: done(c, "double") == commits(c, "counter"))

    jobs = c.list_job(pipeline="double")
    spouted = [ci.id for ci in c.list_commit("counter@master")]
    assert sorted(j.inputs[0] for j in jobs) == sorted(f"counter@{ci}" for ci in spouted)
    assert {j.state for j in jobs} == {JobState.SUCCESS}
    with pytest.raises(FailedPrecondition, match="neither a spout nor a service"):
        c.daemon_logs("double")  # (its jobs' output is `haathi logs -p double`)
    refused = cli.fails("logs", "-p", "double", "--tail", "5")
    assert "--tail is for the output of a spout or a service" in refused.err
    # each of its jobs saw its own spout commit's number
    seen = {
        int(c.get_file(f"counter@{j.id}:/n")): int(c.get_file(f"double@{j.id}:/n"))
        for j in jobs
        if j.data_total  # (not the first, over the empty commit the spout was made with)
    }
    assert seen == {n: 2 * n for n in range(1, 6)}
    assert c.get_file("counter@master:/where") == b"default /tmp\n"
    refused = c.get_file("counter@master:/refused").decode().splitlines()
    assert refused == [
        "error: spout counter's token may not write repo data: it reads and writes its output "
        "repo counter only",
        "error: spout counter's token may not create repos in project default: it reads and "
        "writes its output repo counter only",
    ]
    assert c.list_branch("data") == [] and "mine" not in {r.name for r in c.list_repo()}
    [last] = c.list_commit("counter@master", 1)
    assert last.author == "pipeline:counter"  # (its commits name it)


def test_a_spout_stops_starts_and_survives_its_worker(cli: Cli, c: Client, tmp_path: Path) -> None:
    cli("create", "pipeline", "-f", spec_file(tmp_path, TICKER))
    with worker(cli.store, tmp_path) as first:
        wait_for(lambda: commits(c, "ticker") >= 3)
        runner = pipeline(c, "ticker").daemon["runner"]  # type: ignore[index]

        cli("stop", "pipeline", "ticker")
        assert pipeline(c, "ticker").state == "PAUSED"
        wait_for(lambda: pipeline(c, "ticker").daemon["runner"] is None)  # type: ignore[index]
        stopped = commits(c, "ticker")  # (its worker has stopped it)
        time.sleep(1.0)  # (it ticked every 0.3 s: none comes now)
        assert commits(c, "ticker") == stopped
        assert "paused / -" in cli("list", "pipeline").out

        cli("start", "pipeline", "ticker")
        wait_for(lambda: commits(c, "ticker") >= stopped + 2)
        kill(first)  # its sandbox dies with it; its lease is left to expire
    dead_at = commits(c, "ticker")
    with worker(cli.store, tmp_path):
        wait_for(lambda: commits(c, "ticker") >= dead_at + 2, timeout=LEASE_S + 30)
        info = pipeline(c, "ticker")
        assert info.state == "RUNNING" and info.daemon["runner"] != runner  # type: ignore[index]
    assert float(c.get_file("ticker@master:/tick")) > 0


def test_a_spout_that_keeps_exiting_is_crashing_with_the_reason(
    cli: Cli, c: Client, tmp_path: Path
) -> None:
    boom = {
        "pipeline": {"name": "boom"},
        "spout": {},
        "transform": {"cmd": ["sh", "-c", "echo cannot reach the queue; exit 3"]},
    }
    cli("create", "pipeline", "-f", spec_file(tmp_path, boom))
    with worker(cli.store, tmp_path):
        info = wait_for(lambda: (p := pipeline(c, "boom")).state == "CRASHING" and p)
    assert info.reason.startswith("exited with code 3: cannot reach the queue; starting again in")
    assert info.daemon["restarts"] >= 3  # type: ignore[index]


KEY = "queue-key-7f3a9c41"
LOUD = {  # prints (a secret's value too) on both streams, ends a line without a newline, exits
    "pipeline": {"name": "loud"},
    "spout": {},
    "transform": {
        "cmd": ["sh", "-c", 'echo "connecting with $KEY"; echo "to stderr" >&2; printf "no end"; '
                'exit 3'],
        "secrets": [{"name": "queue", "key": "key", "env_var": "KEY"}],
    },
}  # fmt: skip
RUN_LINES = ["connecting with ***", "to stderr", "no end"]


def test_what_a_spout_prints_is_in_haathi_logs_with_its_secrets_masked(
    store: Path, tmp_path: Path
) -> None:
    """``haathi logs --pipeline`` of a spout (or a service): its program's output, line by
    line, each start of it numbered, and the worker's line on why it stopped; ``--follow``
    prints each new line. Through a server with auth on: who may not read the pipeline's
    output reads none of it."""
    with haathi.connect(str(store)) as admin:
        admin.create_secret({"metadata": {"name": "queue"}, "stringData": {"key": KEY}})
        admin.create_pipeline(LOUD)
        root = admin.auth_activate()
        alice = admin.get_auth_token("user:alice")
    env = dict(os.environ, HAATHI_JOB_LEASE=str(LEASE_S))
    with haathi_serve(store, "--s3-bind", "none", env=env) as (_, url, _s3):
        as_root = dict(os.environ, HAATHI_ADDRESS=url, HAATHI_TOKEN=root)
        follow = subprocess.Popen([sys.executable, "-m", "haathi", "logs", "-p", "loud", "-f"],
                                  env=as_root, stdout=subprocess.PIPE, text=True)  # fmt: skip
        followed: list[str] = []
        timer = threading.Timer(60, follow.kill)  # (a hung follower ends the read below)
        timer.start()
        try:
            assert follow.stdout is not None
            while sum(line.startswith("haathi: exited") for line in followed) < 2:
                line = follow.stdout.readline()
                assert line, f"haathi logs -f ended (or hung) after {followed}"
                followed.append(line.rstrip("\n"))
        finally:
            timer.cancel()
            follow.kill()
            follow.wait()
        with haathi.connect(url, token=root, run_jobs=False) as c:
            lines = c.daemon_logs("loud")
            newest_two = c.daemon_logs("loud", limit=2)
            after_first = c.daemon_logs("loud", since=lines[0].seq, limit=3)
            with pytest.raises(InvalidArgument, match="--tail must be between 0"):
                c.daemon_logs("loud", limit=-1)
        with haathi.connect(url, token=alice, run_jobs=False) as c, pytest.raises(PermissionDenied):
            c.daemon_logs("loud")
        tail = [sys.executable, "-m", "haathi", "logs", "-p", "loud", "--tail", "4"]
        printed = subprocess.run(tail, env=as_root, capture_output=True, text=True)

    exited = "haathi: exited with code 3: no end; starting again in"
    first_run = [*RUN_LINES, f"{exited} 1 s"]
    assert followed == [*first_run, *RUN_LINES, f"{exited} 2 s"]  # (each once: none again)
    assert [line.text for line in lines[:4]] == first_run
    assert [line.run for line in lines[:8]] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    assert KEY not in "".join(line.text for line in lines)
    assert newest_two == lines[-2:] or newest_two[0].seq > lines[-1].seq  # (it went on)
    assert after_first == lines[1:4]
    assert printed.returncode == 0 and len(printed.stdout.splitlines()) == 4
    assert printed.stdout.splitlines()[-1].startswith("haathi: exited with code 3: no end")


# Pachyderm's spout101 consumer (src/consumer/main.py) with haathi's client for
# python_pachyderm's, and without its random 10-30 s waits: two commits, then it idles
CONSUMER = """\
import hashlib, os, time, haathi
client = haathi.connect()
for _ in range(2):
    msgs = (os.urandom(1024), os.urandom(2048))
    with client.start_commit("spout@master") as c:
        for msg in msgs:
            c.put_file(hashlib.sha256(msg).hexdigest() + ".txt", msg)
time.sleep(10**6)
"""


def test_pachyderms_spout101_runs_with_its_processor(cli: Cli, c: Client, tmp_path: Path) -> None:
    """examples/spouts/spout101: its two specs as they are, but for the image (its programs
    are in the worker's directory, which the sandbox shows, instead of the image's /app)."""
    app = tmp_path / "app"
    (app / "consumer").mkdir(parents=True)
    (app / "consumer" / "main.py").write_text(CONSUMER)
    (app / "processor").mkdir()
    shutil.copy(SPOUT101 / "src" / "processor" / "main.py", app / "processor")
    app.chmod(0o755)  # (user code may run as nobody)
    for name in ("spout", "processor"):
        spec = json.loads((SPOUT101 / "pipelines" / f"{name}.pipeline.json").read_text())
        del spec["transform"]["image"]
        spec["transform"]["working_dir"] = str(app)
        cli("create", "pipeline", "-f", spec_file(tmp_path, spec))
    with worker(cli.store, app, venv=True):  # (its processor runs `python`)
        wait_for(lambda: commits(c, "spout") == 3 and done(c, "processor") == 3)
    spouted = {f.path.lstrip("/"): f.size_bytes for f in c.list_file("spout@master:/")}
    assert sorted(spouted.values()) == [1024, 1024, 2048, 2048]
    sorted_out = {f.path for f in c.walk_file("processor@master:/") if f.type.value == "file"}
    assert sorted_out == {f"/{spouted[n] // 1024}K.txt/{n}" for n in spouted}
    for path in sorted_out:
        assert c.get_file(f"processor@master:{path}").endswith(
            f" /pfs/spout/{path.rsplit('/', 1)[1]}\n".encode()
        )


# ---- services ----------------------------------------------------------------------------


@pytest.mark.every_backend
def test_a_service_serves_the_newest_input_on_its_port(cli: Cli, c: Client, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/file1", "-f", "-", input=b"foo")
    cli("create", "pipeline", "-f", spec_file(tmp_path, service("web")))
    taken = socket.create_server(("127.0.0.1", 0))  # another program's port
    clash = taken.getsockname()[1]
    cli("create", "pipeline", "-f", spec_file(tmp_path, service("clash", clash)))
    with worker(cli.store, tmp_path), taken:
        address = wait_for(lambda: pipeline(c, "web").daemon["address"])  # type: ignore[index]
        assert wait_for(lambda: get(f"http://{address}/data/file1")) == "foo"
        assert f"running ({address})" in cli("list", "pipeline").out
        served = wait_for(lambda: [x for x in c.daemon_logs("web") if "GET /data/file1" in x.text])
        assert '"GET /data/file1 HTTP/1.1" 200' in served[0].text  # (its server's request log)

        cli("put", "file", "data@master:/file1", "-f", "-", input=b"bar")
        wait_for(lambda: get(f"http://{address}/data/file1") == "bar")
        [job, _] = c.list_job(pipeline="web")
        assert (job.state, job.data_total, job.data_processed) == (JobState.SUCCESS, 1, 1)
        assert pipeline(c, "web").daemon["job"] == job.id  # type: ignore[index]

        crashing = wait_for(lambda: (p := pipeline(c, "clash")).state == "CRASHING" and p)
        assert crashing.reason.startswith(f"port {clash} is in use on 127.0.0.1; starting again")
        since, tries = time.monotonic(), crashing.daemon["restarts"]  # type: ignore[index]

        cli("stop", "pipeline", "web")
        wait_for(lambda: pipeline(c, "web").daemon["runner"] is None)  # type: ignore[index]
        assert get(f"http://{address}/data/file1") is None  # its worker stopped it: port closed
        cli("start", "pipeline", "web")
        address = wait_for(lambda: pipeline(c, "web").daemon["address"])  # type: ignore[index]
        assert wait_for(lambda: get(f"http://{address}/data/file1")) == "bar"
        # it backs off (1 s, 2 s, 4 s, ...): its waiting input commit does not cut that short
        tried = pipeline(c, "clash").daemon["restarts"] - tries  # type: ignore[index]
        assert tried <= 1 + math.log2(1 + time.monotonic() - since)


def test_a_service_of_several_datums_fails_its_job(cli: Cli, c: Client, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/a", "-f", "-", input=b"a")
    cli("put", "file", "data@master:/b", "-f", "-", input=b"b")
    spec = {**service("web"), "input": {"pfs": {"repo": "data", "glob": "/*"}}}
    cli("create", "pipeline", "-f", spec_file(tmp_path, spec))
    with worker(cli.store, tmp_path):
        [job] = wait_for(lambda: [j for j in c.list_job(pipeline="web") if j.state.terminal])
    assert (job.state, job.reason) == (
        JobState.FAILURE, "services must have a single datum (its input has 2)",
    )  # fmt: skip


# ---- bad specs ---------------------------------------------------------------------------


SPOUT = {"pipeline": {"name": "s"}, "spout": {}, "transform": {"cmd": ["true"]}}
SERVICE = service("svc")
BAD = [
    ({**SPOUT, "input": SERVICE["input"]}, "spout pipelines (without a service) must not have "
     "an input"),
    ({**SPOUT, "autoscaling": True}, "autoscaling can't be used with spouts (spouts aren't "
     "triggered externally)"),
    ({**SPOUT, "s3_out": True}, "s3 output is not supported in spouts or services"),
    ({**SERVICE, "s3Out": True}, "s3 output is not supported in spouts or services"),
    ({**SERVICE, "parallelism_spec": {"constant": 2}}, "services can only be run with a "
     "constant parallelism of 1"),
    ({**SERVICE, "service": {}}, "service.internal_port is required: the port the service "
     "listens on"),
    ({**SERVICE, "service": {"internal_port": 0}}, "service.internal_port must be between 1 "
     "and 65535, got 0"),
    ({**SERVICE, "service": {"internal_port": 80, "external_port": 70000}},
     "service.external_port must be between 0 and 65535, got 70000"),
    ({**SERVICE, "service": {"internal_port": 80, "type": "Headless"}}, "the following service "
     "type Headless is not allowed"),
    ({k: v for k, v in SERVICE.items() if k != "input"}, "input is required: a service serves "
     "its input's single datum"),
    ({**SPOUT, "service": SERVICE["service"]}, "a pipeline is a spout or a service, not both "
     "(a spout that serves a port has spout.service)"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "error"), BAD, ids=[e[:30] for _, e in BAD])
def test_a_bad_spout_or_service_spec_is_refused(
    cli: Cli, tmp_path: Path, spec: dict[str, Any], error: str
) -> None:
    cli("create", "repo", "data")
    res = cli.fails("create", "pipeline", "-f", spec_file(tmp_path, spec))
    assert (res.code, res.err) == (2, f"error: {error}\n")
    assert cli("list", "pipeline", "-o", "json").json() == []


def test_a_pipeline_cannot_become_a_spout(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    cli("create", "pipeline", "-f", spec_file(tmp_path, {**SERVICE, "pipeline": {"name": "s"}}))
    res = cli.fails("update", "pipeline", "-f", spec_file(tmp_path, SPOUT))
    assert res.err == (
        "error: update pipeline cannot make a service pipeline a spout: delete and re-create "
        "the pipeline\n"
    )
