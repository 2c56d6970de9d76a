"""Who runs jobs: ``haathi run worker`` processes, leases, and cron ticks while a worker runs.

A runner that stops, however it stops short of being killed outright (an exception, Ctrl-C,
SIGTERM, a server shutting down), gives the job it was running back to the queue at once: no
job is left RUNNING under the lease of a runner that is gone, and the next runner starts it
without waiting for that lease to expire (the lease covers only a runner killed with SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import haathi
from haathi.client import Client
from haathi.meta.schema import jobs
from haathi.models.info import JobProgress, JobState
from haathi.server.serve import Server
from tests.conftest import Cli
from tests.internals import inner

SLOW = {
    "pipeline": {"name": "slow"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"cmd": ["sh"], "stdin": ["sleep 3", 'cp "$data" /pfs/out/']},
}
TICKS = {
    "pipeline": {"name": "ticks"},
    "input": {"cron": {"name": "tick", "spec": "@every 1s"}},
    "transform": {"cmd": ["sh"], "stdin": ['ls /pfs/tick > "/pfs/out/seen-$PACH_DATUM_ID"']},
}


def _worker(store: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HAATHI_ADDRESS=str(store), HAATHI_JOB_LEASE="2")
    return subprocess.Popen(
        [sys.executable, "-m", "haathi", "run", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _jobs(cli: Cli, pipeline: str) -> list[dict[str, object]]:
    return list(json.loads(cli("list", "job", "-p", pipeline, "-o", "json").out))


def _wait_for(cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_job_whose_worker_dies_is_taken_over_by_another(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/a", "-f", "-", input=b"payload")
    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps(SLOW))
    res = cli("create", "pipeline", "-f", str(spec), "--no-wait")
    assert "1 job(s) queued" in res.err
    assert [j["state"] for j in _jobs(cli, "slow")] == ["CREATED"]

    worker = _worker(cli.store)
    _wait_for(lambda: _jobs(cli, "slow")[0]["state"] == "RUNNING")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-datum
    worker.wait()
    assert _jobs(cli, "slow")[0]["state"] == "RUNNING"  # nobody knows yet

    time.sleep(2.5)  # the dead worker's lease expires
    env_lease = dict(os.environ, HAATHI_JOB_LEASE="2")
    done = subprocess.run(
        [sys.executable, "-m", "haathi", "run", "worker", "--once"],
        capture_output=True,
        env=dict(env_lease, HAATHI_ADDRESS=str(cli.store)),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    job = _jobs(cli, "slow")[0]
    assert (job["state"], job["data_processed"]) == ("SUCCESS", 1)
    assert cli("get", "file", "slow@master:/a").raw == b"payload"
    assert json.loads(cli("list", "commit", "slow@master", "-o", "json").out)[0]["error"] is None


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_cron_ticks_while_a_worker_runs(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "ticks.json"
    spec.write_text(json.dumps(TICKS))
    cli("create", "pipeline", "-f", str(spec))
    assert "ticks_tick" in cli("list", "repo").out  # the tick repo, <pipeline>_<name>
    worker = _worker(cli.store)
    try:
        _wait_for(
            lambda: len(cli("list", "file", "ticks_tick@master:/", ok=False).out.splitlines()) >= 4
        )  # header + 3 ticks
        _wait_for(lambda: all(j["state"] == "SUCCESS" for j in _jobs(cli, "ticks")))
    finally:
        os.killpg(worker.pid, signal.SIGINT)
        worker.wait(timeout=30)
    ticks = json.loads(cli("list", "file", "ticks_tick@master:/", "-o", "json").out)
    outputs = json.loads(cli("list", "file", "ticks@master:/", "-o", "json").out)
    assert len(ticks) >= 3
    # one datum per tick file; each job ran only the new tick (older ones were skipped)
    done = [j for j in _jobs(cli, "ticks") if j["state"] == "SUCCESS" and j["data_total"] >= 2]
    assert done and all(j["data_processed"] == 1 for j in done)
    assert done[0]["data_skipped"] == done[0]["data_total"] - 1
    assert len(outputs) >= len(ticks) - 1


COPY = {
    "pipeline": {"name": "copy"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", 'cp "$data" /pfs/out/']},
}
LONG_LEASE = 600.0  # a job that waited for its lease would wait ten minutes


def claims(client: Client) -> list[tuple[str, str | None, Any]]:
    """(state, runner, lease) of every job: who holds it, until when."""
    with inner(client).pfs.db.read() as conn:
        rows = conn.execute(select(jobs.c.state, jobs.c.runner, jobs.c.lease_until)).all()
    return [tuple(r) for r in rows]


def watches() -> list[str]:
    """The lease-renewal threads alive in this process."""
    return [t.name for t in threading.enumerate() if t.name.startswith("haathi-job-watch")]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_runner_stopped_by_an_exception_gives_its_job_back_at_once(
    store: Path, error: type[BaseException]
) -> None:
    def fails(p: JobProgress) -> None:  # the caller's progress callback, as the job starts
        if p.state == JobState.RUNNING:
            raise error("the progress display failed")

    with haathi.connect(str(store), progress=fails, job_lease_s=LONG_LEASE) as c:
        c.create_repo("data")
        c.put_file("data@master:/a", b"payload")
        with pytest.raises(error, match="progress display"):
            c.create_pipeline(COPY)
        [job] = c.list_job()
        assert job.state == JobState.CREATED and job.data_processed == 0
        assert claims(c) == [(JobState.CREATED.value, None, None)]
        assert watches() == []  # the lease watch ended with the run
    with haathi.connect(str(store), job_lease_s=LONG_LEASE) as c:  # the next runner
        assert c.run_jobs().ran == {f"copy@{job.id}": JobState.SUCCESS}
        assert c.get_file("copy@master:/a") == b"payload"


def _meta_claims(store: Path) -> list[tuple[str, str | None, Any]]:
    with haathi.connect(str(store), run_jobs=False) as c:
        return claims(c)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_sigterm_gives_the_running_job_back_and_the_next_command_runs_it(
    cli: Cli, tmp_path: Path
) -> None:
    """``put file`` runs the job it starts; SIGTERM while the datum runs: the command exits
    143 and the job is queued again at once; the next command runs it (here the datum is
    quick the second time: it leaves a mark on the host, which sandbox none lets it do)."""
    mark = tmp_path / "ran-once"
    spec = {**COPY, "transform": {
        "cmd": ["sh", "-c", '[ -e "$MARK" ] || { touch "$MARK"; sleep 60; }; cp "$data" /pfs/out/'],
        "env": {"MARK": str(mark)},
    }}  # fmt: skip
    cli("create", "repo", "data")
    cli("create", "pipeline", "-f", str(_write(tmp_path / "copy.json", spec)))
    env = dict(
        os.environ,
        HAATHI_ADDRESS=str(cli.store),
        HAATHI_JOB_LEASE=str(LONG_LEASE),
        HAATHI_SANDBOX="none",
    )
    put = subprocess.Popen(
        [sys.executable, "-m", "haathi", "put", "file", "data@master:/a", "-f", "-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    put.stdin.write(b"payload")  # type: ignore[union-attr]
    put.stdin.close()  # type: ignore[union-attr]
    _wait_for(mark.exists)
    assert [s for s, _, _ in _meta_claims(cli.store)] == ["SUCCESS", "RUNNING"]
    put.send_signal(signal.SIGTERM)
    assert put.wait(timeout=30) == 143
    assert put.stderr.read().decode().strip().splitlines()[-1] == "terminated"  # type: ignore[union-attr]
    assert _meta_claims(cli.store)[1] == (JobState.CREATED.value, None, None)

    cli("--sandbox", "none", "run", "worker", "--once")  # as the put ran: it sees the mark
    assert [j["state"] for j in _jobs(cli, "copy")] == ["SUCCESS", "SUCCESS"]
    assert cli("get", "file", "copy@master:/a").raw == b"payload"


def test_a_server_that_stops_gives_its_running_job_back(store: Path) -> None:
    """``haathi serve`` shutting down (SIGTERM, Ctrl-C) stops its job runner: the job it was
    running is queued again, not left RUNNING under the stopped server's lease."""
    with haathi.connect(str(store), job_lease_s=LONG_LEASE) as c:
        c.create_repo("data")
        c.put_file("data@master:/a", b"payload")
    server = Server.for_store(str(store), {"job_lease_s": LONG_LEASE}, "127.0.0.1:0").start()
    try:
        with haathi.connect(server.url, run_jobs=False) as remote:
            slow = {**COPY, "transform": {"cmd": ["sh", "-c", "sleep 300"]}}
            remote.create_pipeline(slow)
            _wait_for(lambda: remote.list_job()[0].state == JobState.RUNNING)
    finally:
        t0 = time.monotonic()
        server.stop()
    # the datum was stopped, not waited for: waiting would have lasted until its sleep of
    # 5 minutes ended
    assert time.monotonic() - t0 < 60
    assert _meta_claims(store) == [(JobState.CREATED.value, None, None)]


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path
