"""Benchmarks of lineage (issue 5). Run by ``bench/run.py --only lineage``.

A DAG with 10,000 files per stage: raw (one user commit of 10,000 small files) -> clean ->
features -> model, each pipeline globbing ``/*`` and writing one file per datum. Then, warm, in
one process, medians of many calls:

- one upstream hop: ``lineage clean@master:/<f>`` (clean file -> its datum -> the raw file);
- full upstream lineage through 3 stages: ``lineage model@master:/<f>``;
- downstream of one raw file: ``lineage raw@master:/<f> --downstream`` (3 derived files);
- baseline: ``inspect file model@master:/<f>`` (a point lookup of one file) in the same process.

Targets: one hop < 100 ms, 3 stages < 500 ms, downstream < 1 s.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from types import ModuleType
from typing import Any

N_FULL, N_QUICK = 10_000, 1_000
CALLS = 25


def _spec(name: str, source: str) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": source, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f"cp /pfs/{source}/* /pfs/out/"]},
        "parallelism_spec": {"constant": 2},
    }


def _median_ms(fn: Any, calls: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), times


def run(ctx: Any, h: ModuleType, only: set[str]) -> bool:
    import haathi

    n = N_QUICK if ctx.args.quick else N_FULL
    store = ctx.work / "lineage"
    shutil.rmtree(store, ignore_errors=True)
    res: dict[str, Any] = {"files_per_stage": n, "calls": CALLS}
    ctx.results["lineage"] = res
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_repo("raw")
        t = time.perf_counter()
        with c.start_commit("raw@master") as commit:
            for i in range(n):
                commit.put_file(f"/f{i:05d}", f"{i}\n".encode())
        res["setup_put_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        for name, source in (("clean", "raw"), ("features", "clean"), ("model", "features")):
            c.create_pipeline(_spec(name, source))
            job = c.list_job(name)[0]
            assert job.data_processed == n, (name, job)
        res["setup_pipelines_s"] = round(time.perf_counter() - t, 2)
        ctx.log(
            f"lineage: {n:,} files x 4 stages ready in "
            f"{res['setup_put_s'] + res['setup_pipelines_s']:.0f} s"
        )
        picks = [f"/f{random.Random(k).randrange(n):05d}" for k in range(CALLS)]
        it = iter(picks * 4)

        def one_hop() -> None:
            [node] = c.lineage(f"clean@master:{next(it)}")
            assert node.inputs[0].origin == "USER"

        def full() -> None:
            [node] = c.lineage(f"model@master:{next(it)}")
            assert len(node.walk()) == 4

        def down() -> None:
            [node] = c.lineage(f"raw@master:{next(it)}", downstream=True)
            assert len(node.walk()) == 4

        def lookup() -> None:
            c.inspect_file(f"model@master:{next(it)}")

        for fn in (one_hop, full, down, lookup):  # warm every path once
            it = iter(picks)
            fn()
        figures = {}
        for key, fn in (
            ("one_hop", one_hop),
            ("full_3_stages", full),
            ("downstream", down),
            ("inspect_file", lookup),
        ):
            it = iter(picks)
            figures[key], times = _median_ms(fn, CALLS)
            res[f"{key}_ms"] = round(figures[key], 2)
            res[f"{key}_ms_all"] = [round(x, 2) for x in times]
    base = figures["inspect_file"]
    for key, label, limit in (
        ("one_hop", "lineage: one upstream hop", 100.0),
        ("full_3_stages", "lineage: full upstream through 3 stages", 500.0),
        ("downstream", "lineage: --downstream of one raw file", 1000.0),
    ):
        v = figures[key]
        ctx.check(
            f"{label} ({n:,} files per stage)",
            round(v, 2),
            "ms",
            f"< {limit:.0f} ms",
            v < limit,
            f"{v / base:.1f}x an inspect file ({base:.2f} ms) in the same run",
        )
    shutil.rmtree(store, ignore_errors=True)
    return True
