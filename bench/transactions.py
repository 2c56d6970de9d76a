"""A transaction of 100 branch moves (issue 18: "finishes in under 1 s and starts exactly one
job per affected pipeline").

Ten input repos with 11 commits each; a pipeline ``cross10`` crosses all ten (``glob: /``),
and ``down`` reads its output. A run is one transaction of 100 ``create branch in_K@master
--head <commit>`` requests (10 per repo, each moving master to another commit of its history,
the last to a commit other than its head before), added one by one, then finished: the figure
is the finish alone (``Client.finish_transaction``, which also queues the jobs), median of 5,
on the embedded store (SQLite + local packs) and on PostgreSQL + SeaweedFS. Each run must
start exactly one job of ``cross10`` and one of ``down`` (the transaction's commit set); the
cost of adding the 100th request (a dry run of all 100) is recorded too. No job runs: the
client queues them (``run_jobs=False``).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from backends import SERVERS
from harness import Ctx, Target, Workload

import haathi
from haathi.client import Client

REPOS = 10
COMMITS = 11
MOVES = 100
RUNS = 5


def _setup(c: Client) -> dict[str, list[str]]:
    """The input repos and the two pipelines; each repo's commits, oldest first."""
    history: dict[str, list[str]] = {}
    for k in range(REPOS):
        repo = f"in_{k}"
        c.create_repo(repo)
        history[repo] = [
            c.put_file(f"{repo}@master:/f{i}", f"{i}\n".encode()) for i in range(COMMITS)
        ]
    c.create_pipeline({
        "pipeline": {"name": "cross10"},
        "input": {"cross": [{"pfs": {"repo": r, "glob": "/"}} for r in history]},
        "transform": {"cmd": ["sh", "-c", "ls -R /pfs > /pfs/out/listing"]},
    })  # fmt: skip
    c.create_pipeline({
        "pipeline": {"name": "down"},
        "input": {"pfs": {"repo": "cross10", "glob": "/"}},
        "transform": {"cmd": ["sh", "-c", "cp -r /pfs/cross10/. /pfs/out/"]},
    })  # fmt: skip
    return history


def _one_run(c: Client, history: dict[str, list[str]], run: int) -> dict[str, Any]:
    """One transaction of :data:`MOVES` moves: finish's seconds, the last append's, jobs."""
    txn = c.start_transaction()
    c.transaction_id = txn.id
    per_repo = MOVES // REPOS
    append_s = 0.0
    for k, (repo, commits) in enumerate(history.items()):
        for j in range(per_repo):
            # among the first 10 commits (the head before the first run is the 11th); a run
            # ends 3 commits away from where the one before ended
            head = commits[(3 * run + k + j) % (COMMITS - 1)]
            t0 = time.perf_counter()
            c.create_branch(f"{repo}@master", head)
            append_s = time.perf_counter() - t0
    c.transaction_id = None
    t0 = time.perf_counter()
    info = c.finish_transaction(txn.id)
    finish_s = time.perf_counter() - t0
    jobs = sorted(j.pipeline for j in c.list_job(job=txn.id))
    return {
        "finish_s": finish_s,
        "last_append_s": append_s,
        "requests": len(info.requests),
        "jobs": jobs,
    }


def _measure(ctx: Ctx, c: Client, label: str) -> None:
    history = _setup(c)
    runs = [_one_run(c, history, run) for run in range(RUNS)]
    ctx.data[label] = runs
    finish = statistics.median(r["finish_s"] for r in runs)
    append = statistics.median(r["last_append_s"] for r in runs)
    one_each = all(r["jobs"] == ["cross10", "down"] for r in runs)
    ctx.figure(
        f"txn_100 ({label}): finish a transaction of {MOVES} branch moves",
        finish,
        "s",
        Target("<", 1.0, "s"),
        f"median of {RUNS}; jobs per run: "
        + ("one of cross10, one of down" if one_each else str([r["jobs"] for r in runs])),
    )
    ctx.figure(
        f"txn_100 ({label}): jobs per affected pipeline per transaction",
        1.0 if one_each else 0.0,
        "",
        Target(">=", 1.0),
        "1: exactly one job of each of the 2 pipelines downstream of the moved branches",
    )
    ctx.figure(
        f"txn_100 ({label}): add the {MOVES}th request (a dry run of all {MOVES})",
        append * 1000,
        "ms",
        None,
        f"median of {RUNS}",
    )


def txn_100(ctx: Ctx) -> None:
    store = ctx.work / "txn_100"
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store), run_jobs=False) as c:
        _measure(ctx, c, "embedded")
    shutil.rmtree(store, ignore_errors=True)
    srv = ctx.use(SERVERS)
    pg_store = Path(f"{store}-pg")
    shutil.rmtree(pg_store, ignore_errors=True)
    bucket = "txn100"
    srv.new_bucket(bucket)
    with haathi.init(
        str(pg_store), db=srv.pg.create_database(), objects=f"s3://{bucket}/s",
        s3_endpoint=srv.endpoint,
    ) as c:  # fmt: skip
        c.auto_run = False
        _measure(ctx, c, "PostgreSQL + SeaweedFS")
    srv.delete_bucket(bucket)
    shutil.rmtree(pg_store, ignore_errors=True)


WORKLOADS = [
    Workload(
        "txn_100",
        "pipelines",
        "finish a transaction of 100 branch moves (one job per affected pipeline)",
        txn_100,
    ),
]
