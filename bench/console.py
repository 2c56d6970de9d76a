"""The console in a real browser: the overview (``console``), the DAG (``console_dag``), a
lineage graph (``console_lineage``), the repo and commit pages (``console_pages``) and a huge
directory's first page (``console_directory``).

A store with one repo of 10,000 files made in 1,000 commits (10 files each) and a pipeline
over it, served by ``haathi serve`` on loopback; Debian's Chromium (headless, through its
chromedriver: :func:`loopback.browser.chromium`) opens the overview ``--runs`` times after a
first load that fills its cache. Figures: the first contentful paint (the Paint Timing API;
the overview is rendered by the server, so its first paint shows the tables) and the
response's end (Navigation Timing), medians; and the requests the page makes, on this store
and on one of 100 files in 10 commits (they must not grow with the files).

The graphs: a DAG of 5 repos and 50 pipelines, and the lineage of a file with 499 files
upstream and 1 downstream (500 nodes), then of one with 2,000 (the page lays out the nearest
500 and says so); each made by real pipelines (sandbox ``none``). The figure is the time from
navigation start to the frame that shows the drawn graph (``graph.js`` leaves its timings on
the page: dagre's layout, the SVG built, painted), the median of ``--runs`` loads after one
that warms the browser's cache.

The repo and commit pages: those of the overview's store (the repo's page, its newest
commit's), their first contentful paint as the overview's; the directory: a repo of one
directory of 100,000 files (10,000 quick), the first contentful paint of its files page.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from harness import Ctx, Target, Workload
from server import served

import haathi
from haathi.client import sources
from loopback.browser import chromium

# a page's figures, once its paint entry is recorded (just after the load event: 3 s at most);
# arguments[0] is the CSS selector of the rows it must show
PAGE_TIMINGS = """
const done = arguments[arguments.length - 1];
const selector = arguments[0];
const started = performance.now();
function look() {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  if (!paint && performance.now() - started < 3000) { setTimeout(look, 10); return; }
  const nav = performance.getEntriesByType('navigation')[0];
  done({
    fcp: paint ? paint.startTime : null,
    response_end: nav.responseEnd,
    bytes: nav.transferSize,
    requests: 1 + performance.getEntriesByType('resource').length,
    rows: document.querySelectorAll(selector).length,
  });
}
look();
"""


def measure_pages(store: Path, pages: dict[str, str], runs: int) -> dict[str, list[dict[str, Any]]]:
    """Each page's figures (``pages``: path -> the selector of its rows), ``runs`` loads
    after one that warms the browser's cache and the server's, the pages taken in turn."""
    found: dict[str, list[dict[str, Any]]] = {path: [] for path in pages}
    with served(store, "--s3-bind", "none", "--no-worker") as server, chromium() as browser:
        browser.set_script_timeout(10)
        for _ in range(runs + 1):
            for path, rows in pages.items():
                browser.get(server.url + path)
                found[path].append(browser.execute_async_script(PAGE_TIMINGS, rows))
    return {path: loads[1:] for path, loads in found.items()}


OVERVIEW_ROWS = "tr[data-repo], tr[data-pipeline]"

COUNT = {
    "pipeline": {"name": "count"},
    "input": {"pfs": {"repo": "data", "glob": "/"}},
    "transform": {"cmd": ["sh", "-c", "find /pfs/data -type f | wc -l > /pfs/out/count"]},
}


def make_store(store: Path, files: int, commits: int) -> None:
    shutil.rmtree(store, ignore_errors=True)
    per = files // commits
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_repo("data", "files for the console benchmark")
        for k in range(commits):
            names = [f"/d{k:04d}/f{i:02d}" for i in range(per)]
            ops = [sources.bytes_op(name.encode() + b"\n", name) for name in names]
            c.modify_file("data@master", ops, description=f"commit {k}")
        c.create_pipeline(COUNT)


def console(ctx: Ctx) -> None:
    files, commits = (1_000, 100) if ctx.quick else (10_000, 1_000)
    store, small = ctx.work / "console", ctx.work / "console-small"
    make_store(store, files, commits)
    make_store(small, 100, 10)
    loads = measure_pages(store, {"/": OVERVIEW_ROWS}, ctx.runs)["/"]
    few = measure_pages(small, {"/": OVERVIEW_ROWS}, 1)["/"][0]
    ctx.data.update(files=files, commits=commits, loads=loads, small_store=few)
    # the repo, the pipeline's output repo, the pipeline; every load painted
    assert all(load["rows"] == 3 and load["fcp"] is not None for load in loads), loads
    fcp = statistics.median(load["fcp"] for load in loads)
    response = statistics.median(load["response_end"] for load in loads)
    requests = max(load["requests"] for load in loads)
    ctx.figure(
        f"console: overview first contentful paint ({files:,} files, {commits:,} commits)",
        fcp,
        "ms",
        Target("<", 300, "ms"),
        f"its HTML complete at {response:.0f} ms; {requests} requests",
    )
    ctx.figure(
        f"console: overview requests ({files:,} files)",
        requests,
        "requests",
        Target("<=", few["requests"], "requests"),
        f"{few['requests']} on a store of 100 files in 10 commits",
    )
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(small, ignore_errors=True)


# ---- the DAG and lineage graphs (haathi/console/static/graph.js) ---------------------------

# graph.js leaves its timings on the #graph element once the frame showing the graph has been
# painted: wait for them (10 s at most), then take them with the page's requests
GRAPH = """
const done = arguments[arguments.length - 1];
const started = performance.now();
function look() {
  const box = document.getElementById('graph');
  if (!(box && box.dataset.paintedAt) && performance.now() - started < 10000) {
    setTimeout(look, 10); return;
  }
  done({
    painted_at: box ? Number(box.dataset.paintedAt) : null,
    painted: box ? Number(box.dataset.paintedMs) : null,
    layout: box ? Number(box.dataset.layoutMs) : null,
    drawn: box ? Number(box.dataset.drawnMs) : null,
    nodes: box ? Number(box.dataset.nodes) : 0,
    svg_nodes: document.querySelectorAll('#graph svg .nodes > g').length,
    response_end: performance.getEntriesByType('navigation')[0].responseEnd,
    requests: 1 + performance.getEntriesByType('resource').length,
    capped: (document.getElementById('capped') || {}).textContent || null,
  });
}
look();
"""


def copy_spec(name: str, inputs: list[str], glob: str = "/") -> dict[str, Any]:
    """A pipeline over ``inputs`` (a cross of them when there are two) that writes a file."""
    pfs = [{"pfs": {"repo": r, "glob": glob}} for r in inputs]
    return {
        "pipeline": {"name": name},
        "input": pfs[0] if len(pfs) == 1 else {"cross": pfs},
        "transform": {"cmd": ["sh", "-c", f"echo {name} > /pfs/out/{name}"]},
    }


def make_dag_store(store: Path, pipelines: int) -> None:
    """5 input repos and ``pipelines`` pipelines in layers of 5: each reads the one before it
    in its column, every other one also the next column's (a cross), as a wide real DAG."""
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store), sandbox="none") as c:
        heads = []
        for i in range(5):
            c.create_repo(f"in{i}")
            c.put_file(f"in{i}@master:/x", b"x\n")
            heads.append(f"in{i}")
        for k in range(pipelines):
            col = k % 5
            inputs = [heads[col]]
            if k % 2 and heads[(col + 1) % 5] != inputs[0]:
                inputs.append(heads[(col + 1) % 5])
            name = f"p{k:02d}"
            c.create_pipeline(copy_spec(name, inputs))
            heads[col] = name


def make_lineage_store(store: Path, files: int) -> None:
    """``raw`` with ``files`` files, ``clean`` (a datum per file), ``merged`` (one over all)
    and ``report`` over that: the lineage of ``merged@master:/all`` has 2 x ``files`` + 2
    nodes (upstream: every clean and raw file; downstream: the report)."""
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_repo("raw")
        ops = [sources.bytes_op(f"{i}\n".encode(), f"/f{i:04d}") for i in range(files)]
        c.modify_file("raw@master", ops)
        c.create_pipeline(
            {
                "pipeline": {"name": "clean"},
                "input": {"pfs": {"repo": "raw", "glob": "/*"}},
                "transform": {"cmd": ["sh", "-c", "cp /pfs/raw/* /pfs/out/"]},
            }
        )
        c.create_pipeline(
            {
                "pipeline": {"name": "merged"},
                "input": {"pfs": {"repo": "clean", "glob": "/"}},
                "transform": {"cmd": ["sh", "-c", "cat /pfs/clean/* > /pfs/out/all"]},
            }
        )
        c.create_pipeline(copy_spec("report", ["merged"]))


def measure_graph(store: Path, path: str, runs: int) -> list[dict[str, Any]]:
    """The graph page at ``path``'s timings, ``runs`` times after one load that warms the
    browser's cache."""
    with served(store, "--s3-bind", "none", "--no-worker") as server, chromium() as browser:
        browser.set_script_timeout(20)
        found = []
        for _ in range(runs + 1):
            browser.get(server.url + path)
            found.append(browser.execute_async_script(GRAPH))
        return found[1:]


def graph_figure(ctx: Ctx, name: str, loads: list[dict[str, Any]], nodes: int) -> None:
    assert all(load["nodes"] == load["svg_nodes"] == nodes for load in loads), loads
    painted = statistics.median(load["painted_at"] for load in loads)
    layout = statistics.median(load["layout"] for load in loads)
    drawn = statistics.median(load["drawn"] for load in loads)
    response = statistics.median(load["response_end"] for load in loads)
    requests = max(load["requests"] for load in loads)
    ctx.figure(
        name,
        painted,
        "ms",
        Target("<", 1000, "ms"),
        f"from navigation start to the frame showing it; the HTML at {response:.0f} ms, "
        f"dagre's layout {layout:.0f} ms, SVG built {drawn - layout:.0f} ms; {requests} requests",
    )


def console_dag(ctx: Ctx) -> None:
    store = ctx.work / "console-dag"
    make_dag_store(store, 50)
    loads = measure_graph(store, "/projects/default/dag", ctx.runs)
    ctx.data.update(pipelines=50, loads=loads)
    graph_figure(ctx, "console: the DAG of 50 pipelines laid out and drawn", loads, 55)
    shutil.rmtree(store, ignore_errors=True)


LINEAGE = "/projects/default/repos/merged/commits/master/lineage/all"


def console_lineage(ctx: Ctx) -> None:
    store = ctx.work / "console-lineage"
    make_lineage_store(store, 249)
    loads = measure_graph(store, LINEAGE, ctx.runs)
    ctx.data.update(files=249, loads=loads)
    graph_figure(ctx, "console: a lineage graph of 500 nodes laid out and drawn", loads, 500)
    if not ctx.quick:  # 1,999 nodes: the 500 nearest are shown, and the page says so
        make_lineage_store(store, 999)
        capped = measure_graph(store, LINEAGE, ctx.runs)
        ctx.data.update(capped=capped)
        assert all("of 2000" in (load["capped"] or "") for load in capped), capped
        graph_figure(
            ctx, "console: a lineage graph of 2,000 nodes (the nearest 500 shown)", capped, 500
        )
    shutil.rmtree(store, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# console_pages, console_directory: the repo, commit and files pages


def _paint(ctx: Ctx, what: str, loads: list[dict[str, Any]], rows: int, limit: float) -> None:
    assert all(load["rows"] == rows and load["fcp"] is not None for load in loads), loads
    fcp = statistics.median(load["fcp"] for load in loads)
    response = statistics.median(load["response_end"] for load in loads)
    runs = ", ".join(f"{load['fcp']:.0f}" for load in loads)
    ctx.figure(
        f"console: {what} first contentful paint",
        fcp,
        "ms",
        Target("<", limit, "ms"),
        f"runs {runs} ms; its HTML complete at "
        f"{response:.0f} ms; {max(x['requests'] for x in loads)} requests",
    )


def console_pages(ctx: Ctx) -> None:
    files, commits = (1_000, 100) if ctx.quick else (10_000, 1_000)
    store = ctx.work / "console-pages"
    make_store(store, files, commits)
    repo, commit = "/projects/default/repos/data", "/projects/default/repos/data/commits/master"
    loads = measure_pages(store, {repo: "tr[data-commit]", commit: "tr[data-change]"}, ctx.runs)
    ctx.data.update(files=files, commits=commits, loads=loads)
    size = f"({files:,} files, {commits:,} commits)"
    _paint(ctx, f"repo page {size}", loads[repo], 50, 300)  # a page of the history
    _paint(ctx, f"commit page {size}", loads[commit], 10, 300)  # its 10 changes
    shutil.rmtree(store, ignore_errors=True)


def make_directory(store: Path, files: int) -> None:
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store)) as c:
        c.create_repo("big", "one huge directory")
        step = 10_000
        for start in range(0, files, step):
            names = (f"/dir/f{i:06d}.csv" for i in range(start, min(start + step, files)))
            c.modify_file("big@master", [sources.bytes_op(b"a,b\n1,2\n", n) for n in names])


def console_directory(ctx: Ctx) -> None:
    files = 10_000 if ctx.quick else 100_000
    store, small = ctx.work / "console-dir", ctx.work / "console-dir-small"
    make_directory(store, files)
    make_directory(small, 100)
    page = "/projects/default/repos/big/commits/master/files/dir"
    loads = measure_pages(store, {page: "tr[data-path]"}, ctx.runs)[page]
    few = measure_pages(small, {page: "tr[data-path]"}, 1)[page][0]
    ctx.data.update(files=files, loads=loads, small_directory=few)
    _paint(ctx, f"first page of a directory of {files:,} files", loads, 100, 500)
    ctx.figure(
        f"console: requests of that page ({files:,} files)",
        max(load["requests"] for load in loads),
        "requests",
        Target("<=", few["requests"], "requests"),
        f"{few['requests']} for a directory of 100 files (first paint {few['fcp']:.0f} ms)",
    )
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(small, ignore_errors=True)


WORKLOADS = [
    Workload(
        "console",
        "console",
        "the console's overview in Chromium: first paint on 10,000 files in 1,000 commits",
        console,
    ),
    Workload(
        "console_dag",
        "console",
        "the console's DAG of 50 pipelines in Chromium: laid out (dagre) and drawn (SVG)",
        console_dag,
    ),
    Workload(
        "console_lineage",
        "console",
        "the console's lineage graph of 500 nodes in Chromium (and of 2,000, capped to 500)",
        console_lineage,
    ),
    Workload(
        "console_pages",
        "console",
        "the console's repo and commit pages in Chromium: first paint on 10,000 files in 1,000 "
        "commits",
        console_pages,
    ),
    Workload(
        "console_directory",
        "console",
        "the console's files page in Chromium: the first page of a directory of 100,000 files",
        console_directory,
    ),
]
