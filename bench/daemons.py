"""Spouts: the issue's acceptance run, and the commit rate a spout sustains.

Both run a real ``haathi run worker`` (a subprocess, the store's default sandbox) over an
embedded store with a spout ``counter`` and, downstream of it, a pipeline ``double`` (glob
``/n``: it writes twice the number the spout's newest commit holds).

- ``spout_minute``: issue 18's acceptance as written. The spout (``haathi.connect()`` in its
  sandbox) writes one commit a second for 60 s (10 s with ``--quick``), the number ``i`` in
  ``/n``; then every one of them must have had its own job of ``double``, ended SUCCESS, whose
  output is ``2i``. Anything missing, failed or wrong fails the workload, naming it. Figures:
  the commits, the downstream jobs that saw one, and the lag from a spout commit to its
  downstream output commit (median, max).
- ``spout_rate``: the spout writes one-file commits as fast as it can for 20 s (5 s with
  ``--quick``) while the same worker runs ``double``'s jobs. Figures: the spout's commits per
  second, the downstream jobs per second over the same time, and how long the backlog took to
  drain after the spout stopped; the worker's CPU (with its sandboxes) per commit.

Wall-clock figures on a shared machine depend on its load (recorded with each figure).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import Ctx, Target, Workload, loadavg

import haathi
from haathi.client import Client
from haathi.models.info import JobState

DOUBLE = {
    "pipeline": {"name": "double"},
    "input": {"pfs": {"repo": "counter", "glob": "/n"}},
    "transform": {"cmd": ["sh", "-c", "echo $(( $(cat /pfs/counter/n) * 2 )) > /pfs/out/n"]},
}
PACED = """\
import os, time, haathi
c = haathi.connect()
me, count = os.environ["PPS_PIPELINE_NAME"], int(os.environ["COUNT"])
t0 = time.monotonic()
for i in range(1, count + 1):
    time.sleep(max(0.0, t0 + i - time.monotonic()))  # one a second, on the second
    c.put_file(f"{me}@master:/n", f"{i}\\n".encode())
c.put_file(f"{me}@master:/done", b"")
time.sleep(10**6)
"""
FLAT_OUT = """\
import os, time, haathi
c = haathi.connect()
me, seconds = os.environ["PPS_PIPELINE_NAME"], float(os.environ["SECONDS_"])
end, i = time.monotonic() + seconds, 0
while time.monotonic() < end:
    i += 1
    c.put_file(f"{me}@master:/n", f"{i}\\n".encode())
c.put_file(f"{me}@master:/done", f"{i}\\n".encode())
time.sleep(10**6)
"""


def _spout(code: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "pipeline": {"name": "counter"},
        "spout": {},
        "transform": {"cmd": [sys.executable, "-c", code], "env": env},
    }


class Worker:
    """``haathi run worker`` on ``store``; :meth:`stop` ends it and returns its CPU seconds
    (its own and its sandboxes')."""

    def __init__(self, store: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haathi", "run", "worker"],
            env=dict(os.environ, HAATHI_ADDRESS=str(store), HAATHI_PRELOAD="0"),
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> float:
        os.killpg(self.proc.pid, signal.SIGINT)
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        return float(usage.ru_utime + usage.ru_stime)


def _store(ctx: Ctx, name: str, spout: dict[str, Any]) -> Path:
    store = ctx.work / name
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store)) as c:
        c.create_pipeline(spout)
        c.create_pipeline(DOUBLE)
    return store


def _wait(what: Any, timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {why}")
        time.sleep(0.2)
    return got


def _has(c: Client, path: str) -> bool:
    return any(f.path == path for f in c.list_file("counter@master:/"))


def _ended(c: Client) -> list[Any]:
    return [j for j in c.list_job(pipeline="double") if j.state.terminal]


@contextmanager
def _worker_running(ctx: Ctx, store: Path) -> Iterator[None]:
    """A worker running the store's pipelines (the load then in ``ctx.data``), and once it
    has stopped its CPU seconds."""
    ctx.data["load_start"] = loadavg()
    worker = Worker(store, ctx.work)
    try:
        yield
    finally:
        ctx.data["worker_cpu_s"] = worker.stop()


def spout_minute(ctx: Ctx) -> None:
    count = 10 if ctx.quick else 60
    store = _store(ctx, "spout-minute", _spout(PACED, {"COUNT": str(count)}))
    res = ctx.data
    res.update(commits_planned=count)
    with haathi.connect(str(store), run_jobs=False) as c:
        with _worker_running(ctx, store):
            _wait(lambda: _has(c, "/done"), count + 120, "the spout's last commit")
            spouted = c.list_commit("counter@master")
            _wait(lambda: len(_ended(c)) >= len(spouted), 120, "the downstream jobs")
        lags, problems = [], []
        numbered = {}
        for ci in spouted:
            try:
                numbered[int(c.get_file(f"counter@{ci.id}:/n"))] = ci
            except Exception:  # the first commit (made with the spout) has no /n
                continue
        jobs = {j.id: j for j in c.list_job(pipeline="double")}
        for i in range(1, count + 1):
            made_i = numbered.get(i)  # (the oldest commit holding i: the one that wrote it)
            job = jobs.get(made_i.id) if made_i is not None else None
            if made_i is None or job is None:
                problems.append(f"commit {i}: {'no downstream job' if made_i else 'not made'}")
                continue
            if job.state != JobState.SUCCESS:
                problems.append(f"commit {i}: job {job.id} {job.state.value} {job.reason}")
                continue
            out = int(c.get_file(f"double@{job.id}:/n"))
            if out != 2 * i:
                problems.append(f"commit {i}: downstream wrote {out}, not {2 * i}")
            made = c.inspect_commit(f"double@{job.id}")
            assert made.finished is not None and made_i.finished is not None
            lags.append((made.finished - made_i.finished).total_seconds())
    seen = count - len(problems)
    res.update(problems=problems, lags_s=lags, load_end=loadavg())
    load = f"load {res['load_start']}-{res['load_end']}"
    ctx.figure("spout commits, one a second", len(numbered), "commits", Target(">=", count), load)
    ctx.figure("commits the downstream saw, each right", seen, "commits", Target(">=", count))
    if lags:
        ctx.figure("lag, spout commit to downstream output (median)", statistics.median(lags), "s")
        ctx.figure("lag, spout commit to downstream output (max)", max(lags), "s")
    ctx.figure("worker CPU per commit", res["worker_cpu_s"] / max(1, count), "s", detail=load)
    if problems:
        raise RuntimeError(f"{len(problems)} spout commits not seen: {'; '.join(problems[:5])}")


def spout_rate(ctx: Ctx) -> None:
    seconds = 5.0 if ctx.quick else 20.0
    store = _store(ctx, "spout-rate", _spout(FLAT_OUT, {"SECONDS_": str(seconds)}))
    res = ctx.data
    res.update(seconds=seconds)
    with haathi.connect(str(store), run_jobs=False) as c, _worker_running(ctx, store):
        _wait(lambda: _has(c, "/done"), seconds + 180, "the spout's last commit")
        done_at_stop = len(_ended(c))
        spouted = c.list_commit("counter@master")  # newest first: done, n..., the first
        _wait(lambda: len(_ended(c)) >= len(spouted), 600, "the downstream backlog")
        drained = time.time()
    numbered = spouted[1:-1]  # (not the empty one it was made with, nor /done's)
    first, last = numbered[-1].finished, numbered[0].finished
    assert first is not None and last is not None
    span = (last - first).total_seconds()
    commits = len(numbered)
    rate = commits / span if span > 0 else 0.0
    res.update(commits=commits, span_s=span, jobs_at_stop=done_at_stop, load_end=loadavg())
    load = f"load {res['load_start']}-{res['load_end']}"
    ctx.figure("spout commits per second (downstream running)", rate, "commits/s", detail=load)
    ctx.figure("downstream jobs per second, while the spout ran", done_at_stop / span, "jobs/s")
    ctx.figure("downstream backlog drained after the spout stopped",
               drained - last.timestamp(), "s")  # fmt: skip
    ctx.figure("worker CPU per commit", res["worker_cpu_s"] / max(1, commits), "s", detail=load)


WORKLOADS = [
    Workload(
        "spout_minute",
        "pipelines",
        "a spout commits once a second for a minute; a downstream pipeline sees each",
        spout_minute,
    ),
    Workload(
        "spout_rate",
        "pipelines",
        "the commit rate a spout sustains with a downstream pipeline",
        spout_rate,
    ),
]
