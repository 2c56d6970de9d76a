"""The console's job and logs pages in a real browser, on a job of 10,000 datums.

A store with one repo of 10,000 files in one commit and a pipeline with one datum per file,
each printing a line (run in the ``none`` sandbox: the datums are not what is measured),
served by ``haathi serve`` on loopback; Debian's Chromium (headless: :func:`loopback.browser.
chromium`) opens the job's page and its logs page ``--runs`` times after a first load that
fills its cache. Figures: the first contentful paint (Paint Timing API) and the requests each
page makes, against the same pages of a job of 10 datums (they must not grow with the
datums); the logs page's size (it shows every datum's output up to its cap).
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from console import measure_pages
from harness import Ctx, Target, Workload

import haathi
from haathi.client import sources

ROWS = "tr[data-datum], .log-entry"  # a datum of the job page, an output of the logs page

ECHO = {
    "pipeline": {"name": "echo"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", 'echo "read $in"']},
    "parallelism_spec": {"constant": 4},
}


def make_store(store: Path, datums: int) -> str:
    """The store, its job's path in the console."""
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_repo("data")
        names = [f"/f{i:05d}" for i in range(datums)]
        c.modify_file("data@master", [sources.bytes_op(n.encode(), n) for n in names])
        c.create_pipeline(ECHO)
        job = c.list_job("echo")[0]
        assert job.data_processed == datums, job
    return f"/projects/default/pipelines/echo/jobs/{job.id}"


def measure(store: Path, page: str, runs: int) -> dict[str, list[dict[str, Any]]]:
    """The job page's and the logs page's figures (:func:`console.measure_pages`)."""
    got = measure_pages(store, {page: ROWS, page + "/logs": ROWS}, runs)
    return {"job": got[page], "logs": got[page + "/logs"]}


def console_jobs(ctx: Ctx) -> None:
    datums = 1_000 if ctx.quick else 10_000
    store, small = ctx.work / "console-jobs", ctx.work / "console-jobs-small"
    ctx.log(f"running a job of {datums:,} datums")
    page, small_page = make_store(store, datums), make_store(small, 10)
    loads = measure(store, page, ctx.runs)
    few = {kind: runs[0] for kind, runs in measure(small, small_page, 1).items()}
    ctx.data.update(datums=datums, loads=loads, small_job=few)
    for kind, what in (("job", "job page"), ("logs", "logs page")):
        assert all(load["fcp"] is not None for load in loads[kind]), loads[kind]
        fcp = statistics.median(load["fcp"] for load in loads[kind])
        response = statistics.median(load["response_end"] for load in loads[kind])
        requests = max(load["requests"] for load in loads[kind])
        shown = loads[kind][0]["rows"]
        size = loads[kind][0]["bytes"] / 1024
        ctx.figure(
            f"console: {what} first contentful paint ({datums:,} datums)",
            fcp,
            "ms",
            Target("<", 300 if kind == "job" else 500, "ms"),
            f"its HTML ({size:.0f} KiB, {shown:,} datums shown) complete at {response:.0f} ms",
            judged=not ctx.quick,
        )
        ctx.figure(
            f"console: {what} requests ({datums:,} datums)",
            requests,
            "requests",
            Target("<=", few[kind]["requests"], "requests"),
            f"{few[kind]['requests']} for a job of 10 datums",
        )
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(small, ignore_errors=True)


WORKLOADS = [
    Workload(
        "console_jobs",
        "console",
        "the console's job and logs pages in Chromium on a job of 10,000 datums",
        console_jobs,
    ),
]
