"""Lineage queries on a DAG of 10,000 files per stage.

raw (one user commit of 10,000 small files) -> clean -> features -> model, each pipeline
globbing ``/*`` and writing one file per datum. Then, warm and in one process, the median of 25
calls on random files of: one upstream hop (``lineage clean@master:/f``), the full upstream
lineage through 3 stages (``lineage model@master:/f``) and ``--downstream`` of one raw file,
against ``inspect file`` of one output file (a point lookup) in the same process.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

from harness import Ctx, Target, Workload

import haathi

CALLS = 25


def _spec(name: str, source: str) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": source, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f"cp /pfs/{source}/* /pfs/out/"]},
        "parallelism_spec": {"constant": 2},
    }


def lineage(ctx: Ctx) -> None:
    n = 1_000 if ctx.quick else 10_000
    store = ctx.work / "lineage"
    shutil.rmtree(store, ignore_errors=True)
    res = ctx.data
    res.update(files_per_stage=n, calls=CALLS)
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_repo("raw")
        t0 = time.perf_counter()
        with c.start_commit("raw@master") as commit:
            for i in range(n):
                commit.put_file(f"/f{i:05d}", f"{i}\n".encode())
        for name, source in (("clean", "raw"), ("features", "clean"), ("model", "features")):
            c.create_pipeline(_spec(name, source))
            job = c.list_job(name)[0]
            assert job.data_processed == n, (name, job)
        res["setup_s"] = round(time.perf_counter() - t0, 1)
        picks = [f"/f{random.Random(k).randrange(n):05d}" for k in range(CALLS)]

        def one_hop(f: str) -> None:
            [node] = c.lineage(f"clean@master:{f}")
            assert node.inputs[0].origin == "USER"

        def full(f: str) -> None:
            [node] = c.lineage(f"model@master:{f}")
            assert len(node.walk()) == 4

        def down(f: str) -> None:
            [node] = c.lineage(f"raw@master:{f}", downstream=True)
            assert len(node.walk()) == 4

        def lookup(f: str) -> None:
            c.inspect_file(f"model@master:{f}")

        queries: dict[str, Callable[[str], None]] = {
            "one_hop": one_hop,
            "full_3_stages": full,
            "downstream": down,
            "inspect_file": lookup,
        }
        ms: dict[str, float] = {}
        for key, query in queries.items():
            query(picks[0])  # warm the path once
            times = []
            for f in picks:
                t0 = time.perf_counter()
                query(f)
                times.append((time.perf_counter() - t0) * 1000)
            ms[key] = statistics.median(times)
            res[f"{key}_ms"] = [round(x, 2) for x in times]
    base = ms["inspect_file"]
    for key, label, limit in (
        ("one_hop", "one upstream hop", 100),
        ("full_3_stages", "full upstream lineage through 3 stages", 500),
        ("downstream", "--downstream of one raw file", 1000),
    ):
        ctx.figure(
            f"lineage: {label} ({n:,} files per stage)",
            ms[key],
            "ms",
            Target("<", limit, "ms"),
            f"{ms[key] / base:.1f}x an inspect file ({base:.2f} ms) in the same run",
        )
    shutil.rmtree(store, ignore_errors=True)


WORKLOADS = [
    Workload("lineage", "lineage", "lineage queries on a 4-stage DAG of 10,000 files", lineage),
]
