"""Who runs jobs: ``haathi run worker`` processes, leases, and cron ticks while a worker runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Cli

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
        [sys.executable, "-m", "haathi", "run", "worker", *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
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
        [sys.executable, "-m", "haathi", "run", "worker", "--once"], capture_output=True,
        env=dict(env_lease, HAATHI_ADDRESS=str(cli.store)), timeout=60,
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
        _wait_for(lambda: len(cli("list", "file", "ticks_tick@master:/", ok=False).out
                              .splitlines()) >= 4)  # header + 3 ticks
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
