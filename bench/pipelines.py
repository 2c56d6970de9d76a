"""Benchmarks of pipelines (issue 4). Run by ``bench/run.py --only w4,datum_overhead,sandbox,
parallel,noop``; see bench/README.md ("Issue 4: pipelines").

- ``w4``: an incremental pipeline against DVC. 2,000 small input files, glob ``/*``, a per-file
  command that spends ~20 ms of CPU (a calibrated ``sh`` loop, then ``cat`` of the file into
  the output), parallelism 1. A first full run (recorded), then one file is added and the
  time from the put to the finished output commit is measured. haathi processes 1 datum
  (asserted); DVC's equivalent stage (one stage looping over ``data/``, deps ``data``, outs
  ``out``) re-runs the whole loop on ``dvc repro``.
- ``datum_overhead``: 10,000 datums of ``true``, sandbox ``none``, parallelism 1: job time per
  datum, against spawning ``true`` 10,000 times with ``subprocess.run`` in the same run; plus
  the same job with the store's scratch directory on tmpfs (informative: the disk's share).
- ``sandbox``: 1,000 datums of ``true`` under ``bwrap`` against ``none``: extra ms per datum;
  plus bare spawns of ``true``, of ``bwrap <haathi's argv> true`` and of a minimal bwrap.
- ``parallel``: 40 datums of a ~150 ms CPU-bound command, ``parallelism_spec`` 2 against 1,
  against the same 40 commands spawned serially and from a 2-thread pool (what the machine
  gives at the moment).
- ``noop``: ``update_pipeline`` with the same spec on a pipeline of 10,000 processed datums
  (every datum skipped, asserted), in the process that ran the job and in a fresh process.

Every haathi measurement runs in a child process (``pipelines.py child '<json>'``) so the
runner's own heap does not weigh on it; the runner module is passed in as ``h``.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
PIPELINE_WORKLOADS = ("w4", "datum_overhead", "sandbox", "parallel", "noop")
VENV_DVC = PROJECT / ".venv" / "bin" / "dvc"

# The CPU burner: a dash loop (no process start beyond the shell itself), calibrated per run.
LOOP = 'i=0; while [ "$i" -lt {n} ]; do i=$((i+1)); done'
# The per-file command of W4 and of the parallel workload: burn, then copy the file out.
PER_FILE = LOOP + '; cat "$1" > "$2"'


@dataclass(frozen=True)
class PScale:
    w4_files: int
    overhead_n: int
    sandbox_n: int
    parallel_n: int
    profile_n: int


FULL = PScale(w4_files=2_000, overhead_n=10_000, sandbox_n=1_000, parallel_n=40, profile_n=2_000)
QUICK = PScale(w4_files=200, overhead_n=1_000, sandbox_n=200, parallel_n=12, profile_n=300)


def content(i: int) -> bytes:
    """The small input file number ``i`` (deterministic, ~60 bytes)."""
    import blake3

    return f"file {i:05d} {blake3.blake3(str(i).encode()).hexdigest()}\n".encode()


def name(i: int) -> str:
    return f"f{i:05d}"


def per_file_spec(pipeline: str, iterations: int, parallelism: int) -> dict[str, Any]:
    """The pipeline that runs PER_FILE on each input file: ``sh`` reading one line from stdin,
    which runs the same ``sh -c PER_FILE sh IN OUT`` as the DVC stage does per file."""
    line = f'sh -c \'{PER_FILE.format(n=iterations)}\' sh "$in" "/pfs/out/${{in##*/}}"'
    return {
        "pipeline": {"name": pipeline},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"cmd": ["sh"], "stdin": [line]},
        "parallelism_spec": {"constant": parallelism},
    }


def true_spec(pipeline: str) -> dict[str, Any]:
    return {
        "pipeline": {"name": pipeline},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"cmd": ["true"]},
        "parallelism_spec": {"constant": 1},
    }


# ============================================================================================
# child side: one haathi measurement in a fresh process


def _connect(store: str, sandbox: str) -> Any:
    import haathi

    return haathi.connect(store, sandbox=sandbox)


def _fill(c: Any, n: int) -> float:
    """Repo ``in`` with files 0..n-1, put with one ``modify_file`` of n PutOps."""
    from haathi.client.sources import bytes_op

    c.create_repo("in")
    t0 = time.perf_counter()
    c.modify_file("in@master", [bytes_op(content(i), "/" + name(i)) for i in range(n)])
    return time.perf_counter() - t0


def _job(c: Any, pipeline: str) -> dict[str, Any]:
    j = c.list_job(pipeline)[0]  # newest first
    return {
        "id": j.id,
        "state": j.state.value,
        "total": j.data_total,
        "processed": j.data_processed,
        "skipped": j.data_skipped,
        "failed": j.data_failed,
        "job_s": (j.finished - j.started).total_seconds() if j.finished and j.started else None,
    }


def _expect(job: dict[str, Any], *, processed: int, skipped: int) -> None:
    if job["state"] != "SUCCESS" or job["processed"] != processed or job["skipped"] != skipped:
        raise AssertionError(
            f"job {job['id']}: state {job['state']}, {job['processed']} processed, "
            f"{job['skipped']} skipped, {job['failed']} failed; expected SUCCESS, {processed} "
            f"processed, {skipped} skipped"
        )


def _scratch_on_tmpfs(store: str) -> str:
    """Make the store's scratch directory a symlink into /dev/shm (returns the target)."""
    target = tempfile.mkdtemp(prefix="haathi-bench-scratch-", dir="/dev/shm")
    Path(store).mkdir(parents=True, exist_ok=True)
    os.symlink(target, Path(store) / "scratch")
    return target


def child_w4_full(store: str, n: int, iterations: int) -> dict[str, Any]:
    with _connect(store, "none") as c:
        put_s = _fill(c, n)
        t0 = time.perf_counter()
        c.create_pipeline(per_file_spec("p", iterations, 1))
        create_s = time.perf_counter() - t0
        job = _job(c, "p")
        _expect(job, processed=n, skipped=0)
        outs = len(c.list_file("p@master:/"))
        if outs != n:
            raise AssertionError(f"the output commit has {outs} files, not {n}")
    return {"put_s": put_s, "create_s": create_s, "job": job}


def child_w4_add(store: str, n: int, i: int) -> dict[str, Any]:
    """Add file ``i`` to the ``n`` already processed and time put_file (it returns after the
    job); then file ``i + 1`` the same way in the same (now warm) process."""
    out: dict[str, Any] = {}
    with _connect(store, "none") as c:
        c.list_job("p")  # open the store's connections outside the timed call
        for key, j in (("add", i), ("add_warm", i + 1)):
            t0 = time.perf_counter()
            c.put_file(f"in@master:/{name(j)}", content(j))
            out[f"{key}_s"] = time.perf_counter() - t0
            out[f"{key}_job"] = job = _job(c, "p")
            _expect(job, processed=1, skipped=n + j - i)
            got = c.get_file(f"p@master:/{name(j)}")
            if got != content(j):
                raise AssertionError(f"output {name(j)} is {got!r}, not a copy of the input")
    return out


def child_check(store: str, n: int, i: int) -> dict[str, Any]:
    """After the CLI's put of file ``i``: its job processed 1 datum and skipped ``n``."""
    with _connect(store, "none") as c:
        job = _job(c, "p")
        _expect(job, processed=1, skipped=n)
        if c.get_file(f"p@master:/{name(i)}") != content(i):
            raise AssertionError(f"output {name(i)} is not a copy of the input")
    return {"job": job}


def child_overhead(store: str, n: int, sandbox: str, tmpfs: bool, noop: bool) -> dict[str, Any]:
    shm = _scratch_on_tmpfs(store) if tmpfs else None
    try:
        with _connect(store, sandbox) as c:
            put_s = _fill(c, n)
            os.sync()
            t0 = time.perf_counter()
            c.create_pipeline(true_spec("p"))
            create_s = time.perf_counter() - t0
            job = _job(c, "p")
            _expect(job, processed=n, skipped=0)
            out: dict[str, Any] = {"put_s": put_s, "create_s": create_s, "job": job}
            if noop:
                t0 = time.perf_counter()
                c.update_pipeline(true_spec("p"))
                out["noop_s"] = time.perf_counter() - t0
                out["noop_job"] = _job(c, "p")
                _expect(out["noop_job"], processed=0, skipped=n)
    finally:
        if shm:
            shutil.rmtree(shm, ignore_errors=True)
    return out


def child_noop(store: str, n: int) -> dict[str, Any]:
    """``update_pipeline`` with the same spec in a fresh process (connect not timed)."""
    import haathi

    t0 = time.perf_counter()
    c = haathi.connect(store, sandbox="none")
    c.list_job("p")
    open_s = time.perf_counter() - t0
    with c:
        t0 = time.perf_counter()
        c.update_pipeline(true_spec("p"))
        noop_s = time.perf_counter() - t0
        job = _job(c, "p")
        _expect(job, processed=0, skipped=n)
    return {"noop_s": noop_s, "open_s": open_s, "job": job}


def child_parallel(store: str, n: int, iterations: int, parallelism: int) -> dict[str, Any]:
    with _connect(store, "none") as c:
        _fill(c, n)
        os.sync()
        t0 = time.perf_counter()
        c.create_pipeline(per_file_spec("p", iterations, parallelism))
        create_s = time.perf_counter() - t0
        job = _job(c, "p")
        _expect(job, processed=n, skipped=0)
        durations = [d.duration_s for d in c.list_datum(f"p@{job['id']}")]
    busy = sum(durations)
    # concurrency: datum time per second of job (2.0 = both slots busy throughout)
    return {
        "create_s": create_s,
        "job": job,
        "datum_mean_ms": busy / len(durations) * 1000,
        "concurrency": busy / job["job_s"],
    }


def child_spawn(argvs: dict[str, list[str]], n: int, order: list[str]) -> dict[str, Any]:
    """Each argv spawned ``n`` times with subprocess.run (stdout captured, as haathi does)."""
    out: dict[str, Any] = {}
    for key in order:
        argv = argvs[key]
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=True,
            )
        out[key] = (time.perf_counter() - t0) / n
    return out


def child_bwrap_argvs() -> dict[str, Any]:
    """The bwrap command line haathi builds for a one-input datum (read from haathi)."""
    from haathi.pps import bwrap as bwrap_mod
    from haathi.pps.hostview import HostView

    scratch = Path(tempfile.mkdtemp(prefix="haathi-bench-bwrap-"))
    for sub in ("pfs/in", "pfs/out", "tmp", bwrap_mod.EMPTY):
        (scratch / sub).mkdir(parents=True)
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    argv = bwrap_mod.bwrap_argv(bwrap, scratch, HostView().layout())
    return {"scratch": str(scratch), "argv": [*argv, "--", "true"]}


def child_pool(argv: list[str], n: int, workers: int) -> dict[str, Any]:
    """``argv`` run ``n`` times from a pool of ``workers`` threads: wall seconds."""

    def one(_: int) -> None:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(n)))
    return {"s": time.perf_counter() - t0}


def child_profile(store: str, n: int, sandbox: str, out: str) -> dict[str, Any]:
    """The ``true`` job of ``n`` datums under cProfile, datum threads included."""
    import haathi.pps.jobs as jobs_mod

    profiles: list[cProfile.Profile] = []
    names = vars(jobs_mod)  # the job runner calls run_datum_set through its module globals
    original = names["run_datum_set"]

    def profiled(task: Any) -> Any:
        prof = cProfile.Profile()
        profiles.append(prof)
        return prof.runcall(original, task)

    names["run_datum_set"] = profiled
    with _connect(store, sandbox) as c:
        _fill(c, n)
        main = cProfile.Profile()
        t0 = time.perf_counter()
        main.runcall(c.create_pipeline, true_spec("p"))
        create_s = time.perf_counter() - t0
        job = _job(c, "p")
        _expect(job, processed=n, skipped=0)
    stats = pstats.Stats(main)
    for p in profiles:
        stats.add(p)
    stats.dump_stats(out)
    return {"create_s": create_s, "job": job}


def child_timers(store: str, n: int, sandbox: str) -> dict[str, Any]:
    """The ``true`` job of ``n`` datums with wall-clock timers around the per-datum steps
    (no profiler, so the figures are not inflated); seconds per step, summed."""
    import threading

    import haathi.pps.jobs as jobs_mod
    import haathi.pps.sandbox as sandbox_mod
    import haathi.pps.worker as worker_mod

    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def wrap(owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    totals[label] = totals.get(label, 0.0) + time.perf_counter() - t0
                    counts[label] = counts.get(label, 0) + 1

        setattr(owner, attr, timed)

    with _connect(store, sandbox) as c:
        _fill(c, n)
        wrap(jobs_mod, "run_datum_set", "datum sets (run_datum_set)")
        wrap(jobs_mod, "plan_job", "plan_job")
        wrap(jobs_mod, "_assemble", "_assemble (output tree)")
        wrap(jobs_mod, "end_job", "end_job")
        wrap(tempfile, "mkdtemp", "tempfile.mkdtemp (scratch dir, per datum set)")
        wrap(shutil, "rmtree", "shutil.rmtree (last datum's input dirs; scratch, per set)")
        wrap(worker_mod, "_materialize", "_materialize (inputs into scratch)")
        wrap(type(c._api.runtime.pfs.blobs), "locate", "  blob-index lookups (SQL)")
        wrap(sandbox_mod.Sandbox, "new_datum", "Sandbox.new_datum (clear the last datum)")
        wrap(sandbox_mod.Sandbox, "run", "Sandbox.run")
        wrap(sandbox_mod.Sandbox, "_start_session", "  _start_session (bwrap, per datum set)")
        wrap(sandbox_mod, "supervise", "  supervise (wait for exit, read output, reap)")
        wrap(worker_mod, "_ingest_outputs", "_ingest_outputs")
        os.sync()
        t0 = time.perf_counter()
        c.create_pipeline(true_spec("p"))
        create_s = time.perf_counter() - t0
        job = _job(c, "p")
        _expect(job, processed=n, skipped=0)
    return {"create_s": create_s, "job": job, "totals_s": totals, "counts": counts}


def child_profile_skip(store: str, n: int, which: str, out: str) -> dict[str, Any]:
    """``n`` processed datums, then cProfile of the skip path: one file added (``add``) or
    ``update_pipeline`` with the same spec (``noop``)."""
    with _connect(store, "none") as c:
        _fill(c, n)
        c.create_pipeline(true_spec("p"))
        c.put_file(f"in@master:/{name(n)}", content(n))  # warm the add path once
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        if which == "add":
            prof.runcall(c.put_file, f"in@master:/{name(n + 1)}", content(n + 1))
        else:
            prof.runcall(c.update_pipeline, true_spec("p"))
        dt = time.perf_counter() - t0
        job = _job(c, "p")
        _expect(job, processed=1 if which == "add" else 0, skipped=n + 1)
    prof.dump_stats(out)
    return {"s": dt, "job": job}


CHILD_OPS: dict[str, Callable[..., dict[str, Any]]] = {
    "w4_full": child_w4_full,
    "w4_add": child_w4_add,
    "check": child_check,
    "overhead": child_overhead,
    "noop": child_noop,
    "parallel": child_parallel,
    "spawn": child_spawn,
    "bwrap_argvs": child_bwrap_argvs,
    "pool": child_pool,
    "profile": child_profile,
    "timers": child_timers,
    "profile_skip": child_profile_skip,
}


def child_main(arg: str, ops: dict[str, Callable[..., dict[str, Any]]] | None = None) -> int:
    """Run the child operation ``arg`` names (JSON: ``op`` and its arguments) from ``ops``
    (default: this module's) and print its result for the runner."""
    req = json.loads(arg)
    op = req.pop("op")
    res = (ops or CHILD_OPS)[op](**req)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ============================================================================================
# runner side


def child(op: str, **kw: Any) -> dict[str, Any]:
    """Run one child measurement; its result dict (raises with its stderr on failure)."""
    arg = json.dumps({"op": op, **kw})
    p = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", arg],
        capture_output=True,
        text=True,
        cwd=str(PROJECT),
    )
    if p.returncode != 0:
        raise RuntimeError(f"child {op} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"child {op} printed no result:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")


def shown(path: Path) -> str:
    """``path`` relative to the project when it lies inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def rotated(items: list[str], k: int) -> list[str]:
    return items[k % len(items) :] + items[: k % len(items)]


def settle(ctx: Any, why: str) -> None:
    os.sync()
    ctx.log(f"{why}; settling {ctx.settle:.0f} s")
    time.sleep(ctx.settle)


def cpu_of(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv`` (the CPU of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def calibrate(ctx: Any, work: Path) -> dict[str, Any]:
    """Loop iterations per ms of CPU for the dash loop; then the 20 ms and 150 ms commands."""
    if "calibration" in ctx.results.get("pipelines_meta", {}):
        return dict(ctx.results["pipelines_meta"]["calibration"])
    probe = 100_000
    cpus = [cpu_of(["sh", "-c", LOOP.format(n=probe)])[1] for _ in range(9)]
    # the fastest probe: this shared VM's per-iteration CPU cost varies up to 2x with what
    # runs beside it, so the commands take *at least* their target CPU time
    per_ms = probe / (min(cpus) * 1000)
    n20, n150 = round(20 * per_ms), round(150 * per_ms)
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / "calib-in", work / "calib-out"
    src.write_bytes(content(0))
    check20 = [
        cpu_of(["sh", "-c", PER_FILE.format(n=n20), "sh", str(src), str(dst)]) for _ in range(15)
    ]
    check150 = [
        cpu_of(["sh", "-c", PER_FILE.format(n=n150), "sh", str(src), str(dst)]) for _ in range(5)
    ]
    cal = {
        "probe_iterations": probe,
        "probe_cpu_ms": [round(c * 1000, 2) for c in cpus],
        "iterations_per_cpu_ms": round(per_ms, 1),
        "w4_iterations": n20,
        "w4_cmd_cpu_ms": round(med([c for _, c in check20]) * 1000, 2),
        "w4_cmd_wall_ms": round(med([w for w, _ in check20]) * 1000, 2),
        "parallel_iterations": n150,
        "parallel_cmd_cpu_ms": round(med([c for _, c in check150]) * 1000, 1),
        "parallel_cmd_wall_ms": round(med([w for w, _ in check150]) * 1000, 1),
    }
    ctx.results.setdefault("pipelines_meta", {})["calibration"] = cal
    ctx.log(
        f"calibration: {per_ms:.0f} loop iterations per CPU ms; the W4 command ({n20} "
        f"iterations + cat) takes {cal['w4_cmd_cpu_ms']} ms CPU, {cal['w4_cmd_wall_ms']} ms "
        f"wall; the parallel one ({n150}) {cal['parallel_cmd_cpu_ms']} ms CPU"
    )
    return cal


def dvc_bin(ctx: Any, h: ModuleType) -> Path | None:
    if getattr(ctx.args, "no_dvc", False):
        return None
    for p in (Path(h.DVC_BIN), VENV_DVC):
        if p.exists():
            return p
    return None


def dvc_env() -> dict[str, str]:
    return {"DVC_NO_ANALYTICS": "1", "SHELL": "/bin/sh"}


def dvc_setup(dvc: Path, root: Path, n: int, iterations: int) -> None:
    """A DVC project (no git) with data/ holding files 0..n-1 and the one-stage dvc.yaml."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    for i in range(n):
        (root / "data" / name(i)).write_bytes(content(i))
    env = dict(os.environ) | dvc_env()
    subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=root, env=env, check=True)
    subprocess.run([str(dvc), "config", "core.analytics", "false"], cwd=root, env=env, check=True)
    per_file = PER_FILE.format(n=iterations)
    # (no "${" in it: DVC would read it as a template variable)
    cmd = (
        f'mkdir -p out && cd data && for f in *; do sh -c \'{per_file}\' sh "$f" "../out/$f"; done'
    )
    stage = {"stages": {"process": {"cmd": cmd, "deps": ["data"], "outs": ["out"]}}}
    (root / "dvc.yaml").write_text(json.dumps(stage, indent=2) + "\n")  # JSON is YAML


def dvc_check(root: Path, n: int) -> None:
    outs = sorted(p.name for p in (root / "out").iterdir())
    if len(outs) != n:
        raise AssertionError(f"dvc: out/ has {len(outs)} files, not {n}")
    last = name(n - 1)
    if (root / "out" / last).read_bytes() != content(n - 1):
        raise AssertionError(f"dvc: out/{last} is not a copy of the input")


# --------------------------------------------------------------------------------------------
# W4: incremental pipeline vs DVC


def w4(ctx: Any, h: ModuleType, sc: PScale) -> None:
    out = ctx.work / "out-w4"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cal = calibrate(ctx, out)
    iters, n = cal["w4_iterations"], sc.w4_files
    dvc = dvc_bin(ctx, h)
    if dvc is None:
        ctx.note(
            "W4: dvc is not installed (bench/run.py --install-peers, or pip install dvc "
            "into .venv): only haathi's side is measured"
        )
    res: dict[str, Any] = {
        "files": n,
        "loop_iterations": iters,
        "cmd_cpu_ms": cal["w4_cmd_cpu_ms"],
        "dvc": str(dvc) if dvc else None,
        "runs": [],
    }
    if dvc is not None:
        res["dvc_version"] = subprocess.run(
            [str(dvc), "version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
    ctx.results["w4"] = res
    tools = ["haathi", "dvc"] if dvc else ["haathi"]
    try:
        w4_runs(ctx, h, res, out, n, iters, dvc, tools)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    w4_check(ctx, res, n, dvc)


def w4_runs(
    ctx: Any,
    h: ModuleType,
    res: dict[str, Any],
    out: Path,
    n: int,
    iters: int,
    dvc: Path | None,
    tools: list[str],
) -> None:
    for k in range(ctx.runs):
        order = rotated(tools, k)
        store, droot = out / f"haathi-{k}", out / f"dvc-{k}"
        row: dict[str, Any] = {"order": order}
        for tool in order:  # first full runs
            if tool == "haathi":
                r = child("w4_full", store=str(store), n=n, iterations=iters)
                row.update(
                    haathi_full_s=r["create_s"],
                    haathi_full_job_s=r["job"]["job_s"],
                    haathi_fill_s=r["put_s"],
                )
                ctx.log(
                    f"W4 run {k} haathi first full run: {r['create_s']:.1f} s for {n} "
                    f"datums ({r['create_s'] / n * 1000:.1f} ms/datum)"
                )
            else:
                assert dvc is not None
                dvc_setup(dvc, droot, n, iters)
                os.sync()
                dt, _ = h.run_proc([dvc, "repro", "-q"], env=dvc_env(), cwd=droot)
                dvc_check(droot, n)
                row["dvc_full_s"] = dt
                ctx.log(f"W4 run {k} dvc first full repro: {dt:.1f} s")
        for tool in order:  # then add one file, time to the finished output
            settle(ctx, f"W4 run {k}: before the {tool} one-file add")
            if tool == "haathi":
                h.warm(store)
                r = child("w4_add", store=str(store), n=n, i=n)
                job = r["add_job"]
                row.update(
                    haathi_add_s=r["add_s"],
                    haathi_add_job_s=job["job_s"],
                    haathi_add_processed=job["processed"],
                    haathi_add_skipped=job["skipped"],
                    haathi_add_warm_s=r["add_warm_s"],
                    haathi_add_warm_job_s=r["add_warm_job"]["job_s"],
                )
                ctx.log(
                    f"W4 run {k} haathi add 1 file: {r['add_s'] * 1000:.0f} ms "
                    f"(job {job['job_s'] * 1000:.0f} ms, {job['processed']} processed, "
                    f"{job['skipped']} skipped); a second add in the same process "
                    f"{r['add_warm_s'] * 1000:.0f} ms"
                )
                if not Path(h.HAATHI_BIN).exists():
                    continue
                # informative: the same through the CLI, interpreter start-up included
                src = out / f"cli-{k}"
                src.write_bytes(content(n + 2))
                dt, _ = h.run_proc(
                    [h.HAATHI_BIN, "put", "file", f"in@master:/{name(n + 2)}", "-f", src],
                    env={"HAATHI_ADDRESS": str(store), "HAATHI_SANDBOX": "none"},
                )
                child("check", store=str(store), n=n + 2, i=n + 2)
                row["haathi_cli_add_s"] = dt
            else:
                assert dvc is not None
                (droot / "data" / name(n)).write_bytes(content(n))
                h.warm(droot / "data")
                dt, _ = h.run_proc([dvc, "repro", "-q"], env=dvc_env(), cwd=droot)
                dvc_check(droot, n + 1)
                row["dvc_add_s"] = dt
                ctx.log(f"W4 run {k} dvc add 1 file + repro: {dt:.1f} s")
        res["runs"].append(row)
        ctx.save()
        h.rm_paths(store, droot)
        settle(ctx, f"W4 run {k}: stores deleted")


def w4_check(ctx: Any, res: dict[str, Any], n: int, dvc: Path | None) -> None:
    runs = res["runs"]

    def m(key: str) -> float | None:
        xs = [r[key] for r in runs if key in r]
        return med(xs) if xs else None

    for key in (
        "haathi_full_s",
        "haathi_add_s",
        "haathi_add_job_s",
        "haathi_add_warm_s",
        "haathi_cli_add_s",
        "dvc_full_s",
        "dvc_add_s",
    ):
        res[key] = m(key)
    ha = res["haathi_add_s"]
    cli = res["haathi_cli_add_s"]
    detail = (
        f"haathi {ha * 1000:.0f} ms (1 datum run, {n} skipped; a second add in the same "
        f"process {res['haathi_add_warm_s'] * 1000:.0f} ms"
        + (f"; CLI process {cli:.2f} s" if cli is not None else "")
        + f"); first full run haathi {res['haathi_full_s']:.1f} s"
    )
    if ctx.args.profile_all or (dvc is not None and res["dvc_add_s"] / ha < 50):
        profile_skip_path(ctx, n, "add")
    if dvc is None:
        ctx.check(
            "W4 add 1 file: haathi put to finished output",
            ha * 1000,
            "ms",
            "-",
            None,
            detail + "; dvc not installed",
        )
        return
    # the figure: the median of the per-run ratios, as for the other pipeline workloads
    res["ratio_per_run"] = [r["dvc_add_s"] / r["haathi_add_s"] for r in runs]
    ratio = med(res["ratio_per_run"])
    res["ratio_dvc_haathi"] = ratio
    res["ratio_of_medians"] = res["dvc_add_s"] / ha
    res["ratio_full_dvc_haathi"] = res["dvc_full_s"] / res["haathi_full_s"]
    # --quick (200 files): DVC's re-run is 10x shorter, so the ratio is not judged
    ctx.check(
        f"W4 add 1 of {n:,} files: dvc repro / haathi time",
        ratio,
        "x",
        ">= 50" if not ctx.args.quick else ">= 50 (not judged with --quick)",
        ratio >= 50 if not ctx.args.quick else None,
        detail + f", dvc {res['dvc_full_s']:.1f} s; dvc repro after the add "
        f"{res['dvc_add_s']:.1f} s (ratio of medians {res['ratio_of_medians']:.0f}x; per "
        "run " + "/".join(f"{x:.0f}" for x in res["ratio_per_run"]) + ")",
    )


# --------------------------------------------------------------------------------------------
# per-datum overhead (and the no-change re-run on the same store)


def ten_k(ctx: Any, h: ModuleType, sc: PScale, overhead: bool, noop: bool) -> None:
    out = ctx.work / "out-datums"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    n = sc.overhead_n
    res: dict[str, Any] = {"datums": n, "cmd": ["true"], "sandbox": "none", "runs": []}
    noop_res: dict[str, Any] = {"datums": n, "runs": []}
    if overhead:
        ctx.results["datum_overhead"] = res
    if noop:
        ctx.results["noop"] = noop_res
    kinds = ["haathi", "haathi_tmpfs", "spawn"] if overhead else ["haathi"]
    for k in range(ctx.runs):
        row: dict[str, Any] = {"order": rotated(kinds, k)}
        for kind in row["order"]:
            if kind == "spawn":
                r = child("spawn", argvs={"true": ["true"]}, n=n, order=["true"])
                row["spawn_ms"] = r["true"] * 1000
                ctx.log(
                    f"datums run {k}: subprocess.run(['true']) x {n}: {row['spawn_ms']:.2f} ms each"
                )
                continue
            store = out / f"{kind}-{k}"
            r = child(
                "overhead",
                store=str(store),
                n=n,
                sandbox="none",
                tmpfs=kind == "haathi_tmpfs",
                noop=noop and kind == "haathi",
            )
            row[f"{kind}_create_s"] = r["create_s"]
            row[f"{kind}_job_s"] = r["job"]["job_s"]
            row[f"{kind}_ms_per_datum"] = r["job"]["job_s"] / n * 1000
            row["fill_s"] = r["put_s"]
            ctx.log(
                f"datums run {k} {kind}: job {r['job']['job_s']:.1f} s for {n} datums = "
                f"{row[f'{kind}_ms_per_datum']:.2f} ms/datum (create_pipeline call "
                f"{r['create_s']:.1f} s; {n} files put in {r['put_s']:.2f} s)"
            )
            if "noop_s" in r:
                nrow = {
                    "noop_same_process_s": r["noop_s"],
                    "noop_job_s": r["noop_job"]["job_s"],
                    "skipped": r["noop_job"]["skipped"],
                }
                settle(ctx, "noop: before the fresh-process update")
                h.warm(store)
                r2 = child("noop", store=str(store), n=n)
                nrow.update(noop_fresh_process_s=r2["noop_s"], open_s=r2["open_s"])
                noop_res["runs"].append(nrow)
                ctx.log(
                    f"noop run {k}: update_pipeline (same spec, {n} datums skipped) "
                    f"{r['noop_s'] * 1000:.0f} ms in the job's process, "
                    f"{r2['noop_s'] * 1000:.0f} ms in a fresh process"
                )
            h.rm_paths(store)
            settle(ctx, f"datums run {k}: {kind} store deleted")
        if overhead:
            res["runs"].append(row)
        ctx.save()
    if overhead:
        runs = res["runs"]
        for key in (
            "haathi_ms_per_datum",
            "haathi_tmpfs_ms_per_datum",
            "spawn_ms",
            "haathi_create_s",
            "haathi_job_s",
        ):
            res[key] = med([r[key] for r in runs])
        v, base = res["haathi_ms_per_datum"], res["spawn_ms"]
        res["beyond_spawn_ms"] = v - base
        ctx.check(
            f"per-datum overhead, {n:,} x true, sandbox none, parallelism 1",
            v,
            "ms/datum",
            "< 20 ms",
            v < 20,
            f"spawn baseline {base:.2f} ms (haathi {v / base:.1f}x, +{v - base:.2f} ms); "
            f"scratch on tmpfs {res['haathi_tmpfs_ms_per_datum']:.2f} ms/datum",
        )
        if v >= 20 or ctx.args.profile_all:
            profile_datums(ctx, sc, "none")
    if noop:
        nr = noop_res["runs"]
        for key in ("noop_same_process_s", "noop_fresh_process_s"):
            noop_res[key] = med([r[key] for r in nr])
        v = max(noop_res["noop_same_process_s"], noop_res["noop_fresh_process_s"])
        ctx.check(
            f"no-change update_pipeline, {n:,} datums all skipped",
            v,
            "s",
            "< 3 s",
            v < 3,
            f"fresh process {noop_res['noop_fresh_process_s'] * 1000:.0f} ms, "
            f"in the job's process {noop_res['noop_same_process_s'] * 1000:.0f} ms",
        )
        if v >= 3 or ctx.args.profile_all:
            profile_skip_path(ctx, n, "noop")
    shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# sandbox overhead


def drop_binds(argv: list[str], keep: set[str]) -> list[str]:
    """``argv`` without the ``--ro-bind-try SRC DST`` of host entries not in ``keep``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if (
            argv[i] == "--ro-bind-try"
            and argv[i + 1] not in keep
            and not argv[i + 2].startswith("/pfs")
        ):
            i += 3
            continue
        out.append(argv[i])
        i += 1
    return out


def sandbox_bench(ctx: Any, h: ModuleType, sc: PScale) -> None:
    if shutil.which("bwrap") is None:
        ctx.note("sandbox: bwrap is not installed (apt-get install bubblewrap): skipped")
        return
    out = ctx.work / "out-sandbox"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    n = sc.sandbox_n
    res: dict[str, Any] = {"datums": n, "cmd": ["true"], "runs": []}
    ctx.results["sandbox"] = res
    bw = child("bwrap_argvs")
    res["bwrap_argv"] = bw["argv"]
    bwrap = bw["argv"][0]
    argvs = {
        "true": ["true"],
        "bwrap_haathi": bw["argv"],
        # the same minus --unshare-net (the network namespace)
        "bwrap_haathi_no_netns": [a for a in bw["argv"] if a != "--unshare-net"],
        # the same with only /usr of the host's top-level entries bound (the mount list's cost)
        "bwrap_haathi_usr_only": drop_binds(bw["argv"], keep={"/usr"}),
        "bwrap_minimal": [
            bwrap,
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-pid",
            "--",
            "true",
        ],
    }
    kinds = ["none", "bwrap", "spawn"]
    for k in range(ctx.runs):
        row: dict[str, Any] = {"order": rotated(kinds, k)}
        for kind in row["order"]:
            if kind == "spawn":
                r = child("spawn", argvs=argvs, n=n, order=rotated(list(argvs), k))
                row.update({f"spawn_{key}_ms": v * 1000 for key, v in r.items()})
                ctx.log(
                    f"sandbox run {k}: bare spawns (ms): "
                    + ", ".join(f"{key} {v * 1000:.2f}" for key, v in r.items())
                )
                continue
            store = out / f"{kind}-{k}"
            r = child("overhead", store=str(store), n=n, sandbox=kind, tmpfs=False, noop=False)
            row[f"{kind}_ms_per_datum"] = r["job"]["job_s"] / n * 1000
            ctx.log(f"sandbox run {k} {kind}: {row[f'{kind}_ms_per_datum']:.2f} ms/datum")
            h.rm_paths(store)
            settle(ctx, f"sandbox run {k}: {kind} store deleted")
        row["extra_ms"] = row["bwrap_ms_per_datum"] - row["none_ms_per_datum"]
        res["runs"].append(row)
        ctx.save()
    shutil.rmtree(bw["scratch"], ignore_errors=True)
    runs = res["runs"]
    for key in (
        "none_ms_per_datum",
        "bwrap_ms_per_datum",
        "extra_ms",
        *(f"spawn_{a}_ms" for a in argvs),
    ):
        res[key] = med([r[key] for r in runs])
    # the figure: the median of the per-run differences (each run's pair is adjacent in time)
    extra = res["extra_ms"]
    res["extra_ms_of_medians"] = res["bwrap_ms_per_datum"] - res["none_ms_per_datum"]
    bare = res["spawn_bwrap_haathi_ms"] - res["spawn_true_ms"]
    ctx.check(
        f"sandbox overhead, bwrap vs none ({n:,} x true)",
        extra,
        "ms/datum",
        "< 10 ms",
        extra < 10,
        "median of per-run differences "
        + "/".join(f"{r['extra_ms']:.2f}" for r in runs)
        + f"; medians: bwrap {res['bwrap_ms_per_datum']:.2f}, none "
        f"{res['none_ms_per_datum']:.2f} ms/datum; bare spawn: "
        f"bwrap with haathi's argv (once per datum set) +{bare:.2f} ms over true, "
        f"minimal bwrap "
        f"+{res['spawn_bwrap_minimal_ms'] - res['spawn_true_ms']:.2f} ms",
    )
    if extra >= 10 or ctx.args.profile_all:
        profile_datums(ctx, sc, "bwrap")
    shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# parallelism


def parallel(ctx: Any, h: ModuleType, sc: PScale) -> None:
    out = ctx.work / "out-parallel"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cal = calibrate(ctx, out)
    iters, n = cal["parallel_iterations"], sc.parallel_n
    res: dict[str, Any] = {
        "datums": n,
        "loop_iterations": iters,
        "cmd_cpu_ms": cal["parallel_cmd_cpu_ms"],
        "runs": [],
    }
    ctx.results["parallel"] = res
    src, dst = out / "in-file", out / "out-file"
    src.write_bytes(content(0))
    argv = ["sh", "-c", PER_FILE.format(n=iters), "sh", str(src), str(dst)]
    kinds = ["p1", "p2", "pool1", "pool2"]
    runs = max(ctx.runs, 5)  # cheap, and the noisiest figure on a shared machine
    res["n_runs"] = runs
    for k in range(runs):
        row: dict[str, Any] = {
            "order": rotated(kinds, k),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        for kind in row["order"]:
            os.sync()
            time.sleep(1)
            if kind.startswith("pool"):
                row[f"{kind}_s"] = child("pool", argv=argv, n=n, workers=int(kind[-1]))["s"]
            else:
                store = out / f"{kind}-{k}"
                r = child(
                    "parallel", store=str(store), n=n, iterations=iters, parallelism=int(kind[-1])
                )
                row[f"{kind}_s"] = r["job"]["job_s"]
                row[f"{kind}_create_s"] = r["create_s"]
                row[f"{kind}_datum_mean_ms"] = r["datum_mean_ms"]
                row[f"{kind}_concurrency"] = r["concurrency"]
                h.rm_paths(store)
        row["speedup"] = row["p1_s"] / row["p2_s"]
        row["baseline_speedup"] = row["pool1_s"] / row["pool2_s"]
        ctx.log(
            f"parallel run {k}: haathi p1 {row['p1_s']:.2f} s, p2 {row['p2_s']:.2f} s "
            f"({row['speedup']:.2f}x); bare spawns 1 thread {row['pool1_s']:.2f} s, "
            f"2 threads {row['pool2_s']:.2f} s ({row['baseline_speedup']:.2f}x); mean datum "
            f"p1 {row['p1_datum_mean_ms']:.0f} ms, p2 {row['p2_datum_mean_ms']:.0f} ms; "
            f"p2 concurrency {row['p2_concurrency']:.2f}; load {row['loadavg_1m']}"
        )
        res["runs"].append(row)
        ctx.save()
    runs = res["runs"]
    for key in (
        "p1_s",
        "p2_s",
        "pool1_s",
        "pool2_s",
        "p1_datum_mean_ms",
        "p2_datum_mean_ms",
        "p2_concurrency",
    ):
        res[key] = med([r[key] for r in res["runs"]])
    # the figure: the median of the per-run ratios (each run's p1 and p2 are adjacent in time)
    res["speedup_per_run"] = [r["speedup"] for r in res["runs"]]
    res["baseline_speedup_per_run"] = [r["baseline_speedup"] for r in res["runs"]]
    sp = med(res["speedup_per_run"])
    base = med(res["baseline_speedup_per_run"])
    res["speedup"], res["baseline_speedup"] = sp, base
    res["speedup_of_medians"] = res["p1_s"] / res["p2_s"]
    shutil.rmtree(out, ignore_errors=True)
    ctx.check(
        f"parallelism 2 vs 1 speedup ({n} x ~{cal['parallel_cmd_cpu_ms']:.0f} ms CPU)",
        sp,
        "x",
        ">= 1.7",
        sp >= 1.7,
        f"median of per-run ratios; medians: p1 {res['p1_s']:.2f} s, p2 {res['p2_s']:.2f} s "
        f"= {res['speedup_of_medians']:.2f}x (p2 datum concurrency "
        f"{res['p2_concurrency']:.2f}, mean datum {res['p1_datum_mean_ms']:.0f} -> "
        f"{res['p2_datum_mean_ms']:.0f} ms); the same commands spawned from 1 vs 2 "
        f"threads: {base:.2f}x (median per run); per run "
        + "/".join(f"{x:.2f}" for x in res["speedup_per_run"]),
    )


# --------------------------------------------------------------------------------------------
# profile of the per-datum path


BREAKDOWN = {
    # label: (file name ending, function name); cumulative time, from the datum threads
    "datum threads, total (run_datum_set)": ("worker.py", "run_datum_set"),
    "scratch dirs: rmtree": ("shutil.py", "rmtree"),
    "scratch dirs: mkdtemp": ("tempfile.py", "mkdtemp"),
    "inputs: _materialize (blob lookup + write)": ("worker.py", "_materialize"),
    "  of which blob-index lookup (SQL)": ("blob_index.py", "locate"),
    "user code: Sandbox.run": ("sandbox.py", "run"),
    "  of which starting a bwrap sandbox (per datum set)": ("sandbox.py", "_start_session"),
    "  of which Popen (fork_exec)": ("~", "<built-in method _posixsubprocess.fork_exec>"),
    "  of which waiting for exit + output (supervise)": ("supervisor.py", "supervise"),
    "outputs: _ingest_outputs": ("worker.py", "_ingest_outputs"),
    "job: plan_job (datums, hashes, skip check)": ("jobs.py", "plan_job"),
    "job: _assemble (output tree)": ("jobs.py", "_assemble"),
    "job: end_job": ("jobs.py", "end_job"),
}


def profile_datums(ctx: Any, sc: PScale, sandbox: str) -> None:
    """Where a ``true`` datum's time goes: wall-clock timers around its steps (no profiler),
    then a cProfile report (datum threads included) with a breakdown; both kept."""
    n = sc.profile_n if sandbox == "none" else min(sc.profile_n, sc.sandbox_n)
    store = ctx.work / f"out-profile-{sandbox}"
    shutil.rmtree(store, ignore_errors=True)
    pdir = Path(ctx.args.out).resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    meta = ctx.results.setdefault("pipelines_meta", {})
    settle(ctx, f"profile ({sandbox}): before the timed steps")
    try:
        t = child("timers", store=str(store), n=n, sandbox=sandbox)
    except RuntimeError as exc:
        ctx.note(f"timing the {sandbox} datum path failed: {str(exc)[:300]}")
        return
    steps = {label: round(v / n * 1000, 3) for label, v in t["totals_s"].items()}
    job_ms = t["job"]["job_s"] / n * 1000
    steps["job, per datum (started -> finished)"] = round(job_ms, 3)
    meta[f"timers_{sandbox}"] = {"datums": n, "ms_per_datum": steps, "calls": t["counts"]}
    ctx.log(
        f"timed steps of the {sandbox} datum path ({n} datums, ms/datum): "
        + "; ".join(f"{k.strip()} {v:.2f}" for k, v in steps.items())
    )
    shutil.rmtree(store, ignore_errors=True)
    settle(ctx, f"profile ({sandbox}): before cProfile")
    raw = ctx.work / f"pipelines-{sandbox}.pstats"
    try:
        r = child("profile", store=str(store), n=n, sandbox=sandbox, out=str(raw))
    except RuntimeError as exc:
        ctx.note(f"profiling the {sandbox} datum path failed: {str(exc)[:300]}")
        return
    st = pstats.Stats(str(raw))
    breakdown: dict[str, float] = {}
    for label, (fname, func) in BREAKDOWN.items():
        total = sum(
            v[3]
            for key, v in st.stats.items()  # type: ignore[attr-defined]
            if key[0].endswith(fname) and key[2] == func
        )
        breakdown[label] = round(total / n * 1000, 3)
    s = io.StringIO()
    s.write(
        f"true x {n} datums, sandbox {sandbox}, parallelism 1.\n\nWall-clock timers (no "
        f"profiler), ms per datum:\n"
    )
    for label, v in steps.items():
        s.write(f"  {v:8.3f}  {label}\n")
    s.write(
        f"\nUnder cProfile (main thread and datum threads merged): create_pipeline "
        f"{r['create_s']:.2f} s, job {r['job']['job_s']:.2f} s\n\nms per datum "
        f"(cumulative, under the profiler):\n"
    )
    for label, v in breakdown.items():
        s.write(f"  {v:8.3f}  {label}\n")
    s.write("\n")
    st.stream = s  # type: ignore[attr-defined]
    st.strip_dirs().sort_stats("cumulative").print_stats(40)
    s.write("\n---- by own time ----\n")
    st.sort_stats("tottime").print_stats(25)
    name_ = f"pipelines_datum_path_{sandbox}"
    (pdir / f"{name_}.txt").write_text(s.getvalue())
    ctx.profiles[name_] = shown(pdir / f"{name_}.txt")
    ctx.results.setdefault("pipelines_meta", {})[f"profile_{sandbox}"] = {
        "datums": n,
        "create_s": r["create_s"],
        "job_s": r["job"]["job_s"],
        "ms_per_datum_under_profiler": breakdown,
    }
    ctx.log(f"profile of the {sandbox} datum path written to {pdir / (name_ + '.txt')}")
    raw.unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)


SKIP_BREAKDOWN = {
    "job (run_job)": ("jobs.py", "run_job"),
    "plan_job": ("jobs.py", "plan_job"),
    "  form_datums (glob, datum objects)": ("datums.py", "form_datums"),
    "  datum IDs (hashing)": ("datums.py", "datum_id"),
    "rows of skipped datums: _datum_row (asdict + JSON)": ("jobs.py", "_datum_row"),
    "SQLite executemany": ("~", "<method 'executemany' of 'sqlite3.Cursor' objects>"),
    "_assemble (output tree)": ("jobs.py", "_assemble"),
    "end_job": ("jobs.py", "end_job"),
}


def profile_skip_path(ctx: Any, n: int, which: str) -> None:
    """cProfile of a job that skips ``n`` datums: one added file (``add``) or a no-change
    ``update_pipeline`` (``noop``); the command is ``true`` (the skip path does not run it)."""
    store = ctx.work / f"out-profile-skip-{which}"
    shutil.rmtree(store, ignore_errors=True)
    raw = ctx.work / f"pipelines-skip-{which}.pstats"
    try:
        r = child("profile_skip", store=str(store), n=n, which=which, out=str(raw))
    except RuntimeError as exc:
        ctx.note(f"profiling the skip path ({which}) failed: {str(exc)[:300]}")
        return
    st = pstats.Stats(str(raw))
    breakdown = {}
    for label, (fname, func) in SKIP_BREAKDOWN.items():
        total = sum(
            v[3]
            for key, v in st.stats.items()  # type: ignore[attr-defined]
            if key[0].endswith(fname) and key[2] == func
        )
        breakdown[label] = round(total * 1000, 1)
    what = "put_file of 1 new file" if which == "add" else "update_pipeline, same spec"
    s = io.StringIO()
    s.write(
        f"{what} with {n} datums already processed (`true`), under cProfile: "
        f"{r['s'] * 1000:.0f} ms, job {r['job']['job_s'] * 1000:.0f} ms\n\nms (cumulative):\n"
    )
    for label, v in breakdown.items():
        s.write(f"  {v:8.1f}  {label}\n")
    s.write("\n")
    st.stream = s  # type: ignore[attr-defined]
    st.strip_dirs().sort_stats("cumulative").print_stats(40)
    s.write("\n---- by own time ----\n")
    st.sort_stats("tottime").print_stats(25)
    pdir = Path(ctx.args.out).resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    name_ = f"pipelines_skip_path_{which}"
    (pdir / f"{name_}.txt").write_text(s.getvalue())
    ctx.profiles[name_] = shown(pdir / f"{name_}.txt")
    ctx.results.setdefault("pipelines_meta", {})[f"profile_skip_{which}"] = {
        "datums": n,
        "s_under_profiler": r["s"],
        "ms_under_profiler": breakdown,
    }
    ctx.log(f"profile of the skip path ({which}) written to {pdir / (name_ + '.txt')}")
    raw.unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)


# --------------------------------------------------------------------------------------------


def run(ctx: Any, h: ModuleType, only: set[str]) -> bool:
    """Run the selected pipeline workloads, each on its own. Returns False when one failed."""
    sc = QUICK if ctx.args.quick else FULL
    meta = ctx.results.setdefault("pipelines_meta", {})
    meta["scale"] = sc.__dict__
    meta["bwrap"] = (
        subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("bwrap")
        else "not installed"
    )
    meta["sh"] = os.path.realpath("/bin/sh")
    steps: list[tuple[str, Callable[[], None]]] = []
    if "w4" in only:
        steps.append(("w4", lambda: w4(ctx, h, sc)))
    if "datum_overhead" in only or "noop" in only:
        steps.append(
            (
                "datum_overhead/noop",
                lambda: ten_k(ctx, h, sc, "datum_overhead" in only, "noop" in only),
            )
        )
    if "sandbox" in only:
        steps.append(("sandbox", lambda: sandbox_bench(ctx, h, sc)))
    if "parallel" in only:
        steps.append(("parallel", lambda: parallel(ctx, h, sc)))
    return run_steps(ctx, steps)


def run_steps(
    ctx: Any, steps: list[tuple[str, Callable[[], None]]], walls: dict[str, Any] | None = None
) -> bool:
    """Run each workload, noting the load average before and after it (and, given ``walls``,
    its wall time there); a failed one is reported and the others still run. False if one
    failed."""
    ok = True
    for name_, fn in steps:
        load = ctx.results["meta"].setdefault("loadavg_1m", {})
        load[f"{name_}_start"] = round(os.getloadavg()[0], 2)
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # report and go on with the other workloads
            import traceback

            traceback.print_exc()
            ctx.note(f"workload {name_} failed: {type(exc).__name__}: {str(exc)[:500]}")
            ok = False
        load[f"{name_}_end"] = round(os.getloadavg()[0], 2)
        if walls is not None:
            walls[f"{name_}_wall_s"] = round(time.perf_counter() - t0, 1)
        ctx.save()
    return ok


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2]))
    sys.exit("usage: run through bench/run.py --only " + ",".join(PIPELINE_WORKLOADS))
