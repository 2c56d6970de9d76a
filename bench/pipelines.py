"""Pipelines (the measurements themselves run in child processes, bench/pipeline_child.py).

- ``w4``: an incremental pipeline against DVC. 2,000 small input files, glob ``/*``, a per-file
  command that spends ~20 ms of CPU (a calibrated ``sh`` loop, then ``cat`` of the file to the
  output), parallelism 1. After a first full run, one file is added: the time from the put to
  the finished output commit. haathi runs 1 datum (asserted); DVC's equivalent stage (one stage
  looping over ``data/``, deps ``data``, outs ``out``) re-runs the whole loop on ``dvc repro``.
- ``datum_overhead``: 10,000 datums of ``true``, sandbox ``none``, parallelism 1: job time per
  datum, against spawning ``true`` 10,000 times; and with the store's scratch dir on tmpfs.
- ``noop``: ``update_pipeline`` with the same spec on a pipeline of 10,000 processed datums
  (all skipped, asserted), in the job's process and in a fresh one.
- ``datums100k``: 100,000 datums of ``true`` (10,000 with --quick), sandbox ``none``,
  parallelism 1: the first run's overhead per datum (its job time less spawning ``true`` as
  often, per datum); with nothing changed, ``update_pipeline`` (in the job's process and in a
  fresh one) and a commit rewriting one input file with its own bytes (each skipping every
  datum), and for comparison a commit changing one file (one datum runs); ``list datum``
  pages of 100 (first, middle, last; in the job's process and a fresh one; and as a CLI
  process).
- ``sandbox``: 1,000 datums of ``true`` in the host sandbox ``bwrap`` against ``none``; plus
  starting each sandbox, and bare spawns of ``true`` and of a minimal bwrap.
- ``parallel``: 40 datums of a ~150 ms CPU-bound command, ``parallelism_spec`` 2 against 1,
  against the same 40 commands from a pool of 1 and of 2 threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import pstats
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    Ctx,
    Fixture,
    Row,
    Skipped,
    Target,
    Trials,
    Workload,
    alternate,
    rotated,
)
from measure import (
    HAATHI_BIN,
    Argv,
    call_child,
    cpu_of,
    dvc_bin,
    fresh_dir,
    output_of,
    remove,
    rm_paths,
    run_proc,
    shown,
    version,
    warm,
    write_profile,
)
from pipeline_child import LOOP, PER_FILE, content, name

CHILD = BENCH / "pipeline_child.py"
DVC_ENV = {"DVC_NO_ANALYTICS": "1", "SHELL": "/bin/sh"}


@dataclass(frozen=True)
class Scale:
    w4_files: int
    overhead_n: int
    sandbox_n: int
    parallel_n: int
    profile_n: int
    many_n: int  # datums100k


FULL = Scale(
    w4_files=2_000,
    overhead_n=10_000,
    sandbox_n=1_000,
    parallel_n=40,
    profile_n=2_000,
    many_n=100_000,
)
QUICK = Scale(
    w4_files=200, overhead_n=1_000, sandbox_n=200, parallel_n=12, profile_n=300, many_n=10_000
)
PAGE = 100  # datums per list datum page (datums100k)


def scale(ctx: Ctx) -> Scale:
    return QUICK if ctx.quick else FULL


def child(op: str, env: Mapping[str, str] | None = None, /, **kw: Any) -> dict[str, Any]:
    return call_child(CHILD, op, env, **kw)


@contextlib.contextmanager
def _calibrate(ctx: Ctx) -> Iterator[dict[str, Any]]:
    """Loop iterations per ms of CPU for the dash loop, on the fastest of nine probes (this
    VM's CPU cost per iteration varies up to 2x with what runs beside it, so the commands take
    *at least* their target CPU time); then the 20 ms and 150 ms commands, checked."""
    probe = 100_000
    cpus = [cpu_of(["sh", "-c", LOOP.format(n=probe)])[1] for _ in range(9)]
    per_ms = probe / (min(cpus) * 1000)
    n20, n150 = round(20 * per_ms), round(150 * per_ms)
    tmp = fresh_dir(ctx.work / "calib")
    (tmp / "in").write_bytes(content(0))

    def cpu_ms(iterations: int, times: int) -> float:
        argv = ["sh", "-c", PER_FILE.format(n=iterations), "sh", str(tmp / "in"), str(tmp / "out")]
        return round(statistics.median(cpu_of(argv)[1] for _ in range(times)) * 1000, 2)

    cal = {
        "iterations_per_cpu_ms": round(per_ms, 1),
        "probe_cpu_ms": [round(c * 1000, 2) for c in cpus],
        "w4_iterations": n20,
        "w4_cmd_cpu_ms": cpu_ms(n20, 15),
        "parallel_iterations": n150,
        "parallel_cmd_cpu_ms": cpu_ms(n150, 5),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    ctx.meta["calibration"] = cal
    ctx.log(f"calibration: {cal}")
    yield cal


CALIBRATION = Fixture("the CPU burner's calibration", _calibrate)


# --------------------------------------------------------------------------------------------
# W4: incremental pipeline vs DVC (also run in container images, images.py)


@dataclass(frozen=True)
class Variant:
    """Where W4's pipeline runs: a kind (see pipeline_child.py) and an image."""

    kind: str = "none"
    image: str | None = None
    digest: str | None = None


def dvc_setup(dvc: Path, root: Path, n: int, iterations: int) -> None:
    """A DVC project (no git) with data/ holding files 0..n-1 and the one-stage dvc.yaml."""
    fresh_dir(root / "data")
    for i in range(n):
        (root / "data" / name(i)).write_bytes(content(i))
    output_of([dvc, "init", "--no-scm", "-q"], env=DVC_ENV, cwd=root)
    output_of([dvc, "config", "core.analytics", "false"], env=DVC_ENV, cwd=root)
    per_file = PER_FILE.format(n=iterations)  # (no "${" in it: DVC reads that as a template)
    cmd = (
        f'mkdir -p out && cd data && for f in *; do sh -c \'{per_file}\' sh "$f" "../out/$f"; done'
    )
    stage = {"stages": {"process": {"cmd": cmd, "deps": ["data"], "outs": ["out"]}}}
    (root / "dvc.yaml").write_text(json.dumps(stage, indent=2) + "\n")  # JSON is YAML


def dvc_repro(dvc: Path, root: Path, n: int) -> float:
    """``dvc repro`` as a process: seconds; AssertionError unless out/ holds the n outputs."""
    s = float(run_proc([dvc, "repro", "-q"], env=DVC_ENV, cwd=root)["s"])
    outs = sorted(p.name for p in (root / "out").iterdir())
    if len(outs) != n or (root / "out" / name(n - 1)).read_bytes() != content(n - 1):
        raise AssertionError(f"dvc: out/ has {len(outs)} files, not {n} copies")
    return s


def w4_trials(
    ctx: Ctx,
    variants: dict[str, Variant],
    env: Mapping[str, str] | None = None,
    *,
    cli_add: bool = False,
) -> Trials:
    """Per run, for haathi in each variant and for DVC (order rotated): the first full run,
    then, after a settle and reading its store back into the page cache, the add of one
    file: ``put_file`` in a new process until it returns after the job (1 datum processed, the
    rest skipped, the output correct) and a second add in that process; ``dvc repro``.
    ``cli_add``: then a third add through the CLI, as users type it: ``haathi put file`` (its
    job runs) and ``haathi wait commit`` of the output, whole processes (preloaded)."""
    cal = ctx.use(CALIBRATION)
    iters, n = cal["w4_iterations"], scale(ctx).w4_files
    out = fresh_dir(ctx.work / f"out-{ctx.name}")
    ctx.data.update(files=n, loop_iterations=iters, cmd_cpu_ms=cal["w4_cmd_cpu_ms"])

    def haathi_add(label: str, v: Variant) -> Callable[[int], Row]:
        def run(k: int) -> Row:
            store = out / f"{label}-{k}"
            kw = {"store": str(store), "n": n, "kind": v.kind, "digest": v.digest}
            full = child("w4_full", env, iterations=iters, image=v.image, **kw)
            ctx.settle(f"{ctx.name} run {k}: before {label}'s one-file add")
            warm(store)
            add = child("w4_add", env, i=n, **kw)
            row = {
                "full_s": full["create_s"],
                "s": add["add_s"],
                "job_s": add["add_job"]["job_s"],
                "warm_s": add["add_warm_s"],
                "timers_ms": add["add_timers_ms"],
            }
            if cli_add:
                (out / "cli").write_bytes(content(n + 2))
                put: Argv = [
                    HAATHI_BIN,
                    "put",
                    "file",
                    f"in@master:/{name(n + 2)}",
                    "-f",
                    out / "cli",
                ]
                wait: Argv = [HAATHI_BIN, "wait", "commit", "p@master"]
                env_cli = {"HAATHI_ADDRESS": str(store), "HAATHI_SANDBOX": "none"}
                run_proc([HAATHI_BIN, "version"], env=env_cli)  # the preloader is up
                row["cli_s"] = sum(run_proc(argv, env=env_cli)["s"] for argv in (put, wait))
                child("check", store=str(store), n=n + 2, i=n + 2)
            remove(ctx, store)
            return row

        return run

    contenders = {label: haathi_add(label, v) for label, v in variants.items()}
    dvc = dvc_bin(ctx)
    if dvc is not None:
        ctx.data["dvc"] = version([dvc, "version"])

        def dvc_add(k: int) -> Row:
            root = out / f"dvc-{k}"
            dvc_setup(dvc, root, n, iters)
            os.sync()
            full = dvc_repro(dvc, root, n)
            ctx.settle(f"{ctx.name} run {k}: before dvc's one-file add")
            (root / "data" / name(n)).write_bytes(content(n))
            warm(root / "data")
            row = {"full_s": full, "s": dvc_repro(dvc, root, n + 1)}
            remove(ctx, root)
            return row

        contenders["dvc"] = dvc_add
    try:
        return alternate(ctx, contenders)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def w4_figure(ctx: Ctx, trials: Trials, who: str, title: str, extra: str = "") -> bool | None:
    """The W4 figure of ``who``: DVC's re-run time / haathi's, the median of the per-run
    ratios (or haathi's time alone without DVC)."""
    n = ctx.data["files"]
    ms = trials.median(who) * 1000
    detail = (
        f"haathi {ms:.0f} ms (per run {trials.per_run(who, scale=1000, spec='.0f')}), 1 datum "
        f"run, {n:,} skipped; a second add in the same process "
        f"{trials.median(who, 'warm_s') * 1000:.0f} ms; first full run "
        f"{trials.median(who, 'full_s'):.1f} s{extra}"
    )
    if "dvc" not in trials.rows:
        return ctx.figure(f"{title}: add 1 of {n:,} files, put to output", ms, "ms", None, detail)
    return ctx.figure(
        f"{title}: add 1 of {n:,} files, dvc repro / haathi time",
        trials.ratio("dvc", who),
        "x",
        Target(">=", 50),
        f"{detail}; dvc repro {trials.median('dvc'):.1f} s (first full run "
        f"{trials.median('dvc', 'full_s'):.1f} s); per run "
        + "/".join(f"{x:.0f}" for x in trials.ratios("dvc", who)),
        judged=not ctx.quick,  # 200 files: DVC's re-run is 10x shorter
    )


def w4(ctx: Ctx) -> None:
    trials = w4_trials(ctx, {"haathi": Variant()}, cli_add=True)
    passed = w4_figure(ctx, trials, "haathi", "W4")
    if "dvc" in trials.rows:
        passed = (
            ctx.figure(
                "W4 through the CLI: add 1 file, dvc repro / (put file + wait commit)",
                statistics.median(
                    d / h
                    for d, h in zip(
                        trials.values("dvc"), trials.values("haathi", "cli_s"), strict=True
                    )
                ),
                "x",
                Target(">=", 50),
                f"put file + wait commit {trials.median('haathi', 'cli_s') * 1000:.0f} ms (per run"
                f" {trials.per_run('haathi', 'cli_s', scale=1000, spec='.0f')}), whole processes,"
                f" preloaded; dvc repro {trials.median('dvc'):.1f} s",
                judged=not ctx.quick,
            )
            and passed
        )
    if ctx.wants_profile(passed):
        profile_skip_path(ctx, scale(ctx).w4_files, "add")


# --------------------------------------------------------------------------------------------
# per-datum overhead, the no-change update, the sandbox, parallelism


def true_job(
    ctx: Ctx, out: Path, n: int, kind: str, env: Mapping[str, str] | None = None, **kw: Any
) -> Callable[[int], Row]:
    """A contender: a job of ``n`` datums of ``true`` on a new store, deleted after it."""

    def run(k: int) -> Row:
        store = out / f"{kind}-{k}"
        r = child("true_job", env, store=str(store), n=n, kind=kind, **kw)
        remove(ctx, store)
        return {
            "ms_per_datum": r["job"]["job_s"] / n * 1000,
            "create_s": r["create_s"],
            "put_s": r["put_s"],
        }

    return run


def spawns(n: int, argvs: dict[str, list[str]]) -> Callable[[int], Row]:
    """A contender: each argv spawned ``n`` times (ms per spawn)."""

    def run(k: int) -> Row:
        order = rotated(list(argvs), k)
        r = child("spawn", argvs=argvs, n=n, order=order)
        return {f"{key}_ms": v * 1000 for key, v in r.items()}

    return run


def datum_overhead(ctx: Ctx) -> None:
    n = scale(ctx).overhead_n
    out = fresh_dir(ctx.work / "out-datums")
    ctx.data["datums"] = n
    trials = alternate(
        ctx,
        {
            "haathi": true_job(ctx, out, n, "none"),
            "haathi_tmpfs": true_job(ctx, out / "tmpfs", n, "none", tmpfs=True),
            "spawn": spawns(n, {"true": ["true"]}),
        },
    )
    v, base = trials.median("haathi", "ms_per_datum"), trials.median("spawn", "true_ms")
    passed = ctx.figure(
        f"per-datum overhead, {n:,} x true, sandbox none, parallelism 1",
        v,
        "ms/datum",
        Target("<", 20, "ms"),
        f"per run {trials.per_run('haathi', 'ms_per_datum')}; spawning true alone {base:.2f} "
        f"ms; scratch on tmpfs {trials.median('haathi_tmpfs', 'ms_per_datum'):.2f} ms/datum",
    )
    if ctx.wants_profile(passed):
        profile_datums(ctx, "none")
    shutil.rmtree(out, ignore_errors=True)


def noop(ctx: Ctx) -> None:
    n = scale(ctx).overhead_n
    out = fresh_dir(ctx.work / "out-noop")

    def run(k: int) -> Row:
        store = out / f"store-{k}"
        r = child("true_job", store=str(store), n=n, noop=True)
        ctx.settle("noop: before the fresh-process update")
        warm(store)
        fresh = child("noop", store=str(store), n=n)
        remove(ctx, store)
        return {"same_process_s": r["noop_s"], "fresh_process_s": fresh["noop_s"]}

    trials = alternate(ctx, {"update": run})
    same, fresh = (
        trials.median("update", "same_process_s"),
        trials.median("update", "fresh_process_s"),
    )
    passed = ctx.figure(
        f"no-change update_pipeline, {n:,} datums all skipped (the slower of the two)",
        max(same, fresh),
        "s",
        Target("<", 3, "s"),
        f"in a fresh process {fresh * 1000:.0f} ms (per run "
        f"{trials.per_run('update', 'fresh_process_s', 1000, '.0f')}), in the job's process "
        f"{same * 1000:.0f} ms",
    )
    if ctx.wants_profile(passed):
        profile_skip_path(ctx, n, "noop")
    shutil.rmtree(out, ignore_errors=True)


def datums100k(ctx: Ctx) -> None:
    n = scale(ctx).many_n
    out = fresh_dir(ctx.work / "out-datums100k")
    ctx.data.update(datums=n, page=PAGE)

    def job(k: int) -> Row:
        store = out / f"store-{k}"
        r = child("datums", store=str(store), n=n, page=PAGE)
        ctx.settle("datums100k: before the fresh-process steps")
        warm(store)
        fresh = child("noop", store=str(store), n=n)
        pages = child("pages", store=str(store), page=PAGE)
        argv = [str(HAATHI_BIN), "list", "datum", pages["job"], "-n", str(PAGE)]
        cli_s = run_proc(argv, env={"HAATHI_ADDRESS": str(store)})["s"]
        remove(ctx, store)
        page_ms = {f"{w}_{key}": v for w, p in (("same", r["pages"]), ("fresh", pages))
                   for key, v in p.items() if key.endswith("_ms")}  # fmt: skip
        return {
            "job_s": r["job"]["job_s"],
            "ms_per_datum": r["job"]["job_s"] / n * 1000,
            "noop_s": r["noop_s"],
            "fresh_noop_s": fresh["noop_s"],
            "recommit_s": r["recommit_s"],
            "noop_cpu_s": r["noop_cpu_s"],
            "fresh_noop_cpu_s": fresh["noop_cpu_s"],
            "recommit_cpu_s": r["recommit_cpu_s"],
            "change1_s": r["change1_s"],
            "change1_cpu_s": r["change1_cpu_s"],
            "page_ms": max(page_ms.values()),
            **page_ms,
            "all_s": pages["all_s"],
            "cli_page_s": cli_s,
        }

    trials = alternate(ctx, {"haathi": job, "spawn": spawns(n, {"true": ["true"]})})
    over = [
        h["ms_per_datum"] - s["true_ms"]
        for h, s in zip(trials.rows["haathi"], trials.rows["spawn"], strict=True)
    ]
    spawn = trials.median("spawn", "true_ms")
    passed = ctx.figure(
        f"first run of {n:,} x true: job time less spawning true as often, per datum",
        statistics.median(over),
        "ms/datum",
        Target("<", 5, "ms"),
        f"per run {'/'.join(f'{x:.2f}' for x in over)}; job "
        f"{trials.median('haathi', 'job_s'):.0f} s ({trials.median('haathi', 'ms_per_datum'):.2f}"
        f" ms/datum), spawning true alone {spawn:.2f} ms",
        judged=not ctx.quick,
    )
    if ctx.wants_profile(passed):
        profile_datums(ctx, "none")
    worst = [max(r["noop_s"], r["fresh_noop_s"], r["recommit_s"]) for r in trials.rows["haathi"]]
    passed = ctx.figure(
        f"no-change re-run of {n:,} datums, all skipped (the slowest of three)",
        statistics.median(worst),
        "s",
        Target("<", 5, "s"),
        "update_pipeline with the same spec "
        f"{trials.median('haathi', 'noop_s'):.2f} s (per run "
        f"{trials.per_run('haathi', 'noop_s')}), in a fresh process "
        f"{trials.median('haathi', 'fresh_noop_s'):.2f} s; a commit rewriting one input file "
        f"with its own bytes {trials.median('haathi', 'recommit_s'):.2f} s; CPU time of the "
        "three "
        + "/".join(
            f"{trials.median('haathi', k):.2f}"
            for k in ("noop_cpu_s", "fresh_noop_cpu_s", "recommit_cpu_s")
        )
        + " s; for comparison, a commit changing one input file (1 datum run, all formed and "
        f"compared) {trials.median('haathi', 'change1_s'):.2f} s, CPU "
        f"{trials.median('haathi', 'change1_cpu_s'):.2f} s",
        judged=not ctx.quick,
    )
    if ctx.wants_profile(passed):
        profile_skip_path(ctx, n, "noop")
    med = {k: trials.median("haathi", k) for k in trials.rows["haathi"][0] if k.endswith("_ms")}
    ctx.figure(
        f"list datum, a page of {PAGE} of {n:,} datums (the slowest page)",
        trials.median("haathi", "page_ms"),
        "ms",
        Target("<", 200, "ms"),
        "first/middle/last page "
        + "/".join(f"{med[f'same_{w}_ms']:.1f}" for w in ("first", "middle", "last"))
        + " ms in the job's process, "
        + "/".join(f"{med[f'fresh_{w}_ms']:.1f}" for w in ("first", "middle", "last"))
        + f" ms in a fresh one (its first call {med['fresh_cold_ms']:.1f} ms); all {n:,} at "
        f"once {trials.median('haathi', 'all_s'):.2f} s; `haathi list datum -n {PAGE}` as a "
        f"process {trials.median('haathi', 'cli_page_s'):.2f} s",
        judged=not ctx.quick,
    )
    shutil.rmtree(out, ignore_errors=True)


def sandbox(ctx: Ctx) -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise Skipped("bwrap is not installed (apt-get install bubblewrap)")
    n = scale(ctx).sandbox_n
    out = fresh_dir(ctx.work / "out-sandbox")

    def starts(k: int) -> Row:
        """Starting a datum set's sandbox: open it, run ``true`` in it (10 times each)."""
        r = child(
            "start", kinds=["none", "host_bwrap"], reps=10, refs={}, digests={}, root=str(out)
        )
        return {f"{kind}_start_ms": statistics.median(v["first_exit_ms"]) for kind, v in r.items()}

    minimal = [
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
    ]
    trials = alternate(
        ctx,
        {
            "none": true_job(ctx, out, n, "none"),
            "host_bwrap": true_job(ctx, out, n, "host_bwrap"),
            "spawn": spawns(n, {"true": ["true"], "bwrap_minimal": minimal}),
            "start": starts,
        },
    )
    extra = trials.difference("host_bwrap", "none", "ms_per_datum")
    passed = ctx.figure(
        f"sandbox overhead, bwrap vs none ({n:,} x true): ms per datum more",
        extra,
        "ms",
        Target("<", 10, "ms"),
        "median of the per-run differences "
        + "/".join(f"{x:.2f}" for x in trials.differences("host_bwrap", "none", "ms_per_datum"))
        + f"; bwrap {trials.median('host_bwrap', 'ms_per_datum'):.2f}, none "
        f"{trials.median('none', 'ms_per_datum'):.2f} ms/datum; starting a set's sandbox "
        f"(open to the first exit of true) {trials.median('start', 'host_bwrap_start_ms'):.1f} "
        f"ms (none {trials.median('start', 'none_start_ms'):.1f}); bare spawns: true "
        f"{trials.median('spawn', 'true_ms'):.2f} ms, a minimal bwrap "
        f"{trials.median('spawn', 'bwrap_minimal_ms'):.2f} ms",
    )
    if ctx.wants_profile(passed):
        profile_datums(ctx, "host_bwrap")
    shutil.rmtree(out, ignore_errors=True)


def parallel(ctx: Ctx) -> None:
    cal = ctx.use(CALIBRATION)
    iters, n = cal["parallel_iterations"], scale(ctx).parallel_n
    out = fresh_dir(ctx.work / "out-parallel")
    (out / "in").write_bytes(content(0))
    argv = ["sh", "-c", PER_FILE.format(n=iters), "sh", str(out / "in"), str(out / "out")]

    def job(parallelism: int) -> Callable[[int], Row]:
        def run(k: int) -> Row:
            store = out / f"p{parallelism}-{k}"
            r = child("parallel", store=str(store), n=n, iterations=iters, parallelism=parallelism)
            rm_paths(store)
            return {
                "s": r["job"]["job_s"],
                "datum_mean_ms": r["datum_mean_ms"],
                "concurrency": r["concurrency"],
            }

        return run

    def pool(workers: int) -> Callable[[int], Row]:
        return lambda k: {"s": child("pool", argv=argv, n=n, workers=workers)["s"]}

    def pause() -> None:
        os.sync()
        time.sleep(1)

    # cheap, and the noisiest figure on a shared machine: at least 5 runs
    trials = alternate(
        ctx,
        {"p1": job(1), "p2": job(2), "pool1": pool(1), "pool2": pool(2)},
        runs=max(ctx.runs, 5),
        before=pause,
    )
    ctx.figure(
        f"parallelism 2 vs 1 speedup ({n} x ~{cal['parallel_cmd_cpu_ms']:.0f} ms CPU)",
        trials.ratio("p1", "p2"),
        "x",
        Target(">=", 1.7),
        "median of per-run ratios, per run "
        + "/".join(f"{x:.2f}" for x in trials.ratios("p1", "p2"))
        + f"; p2 datum concurrency {trials.median('p2', 'concurrency'):.2f}, mean datum "
        f"{trials.median('p1', 'datum_mean_ms'):.0f} -> {trials.median('p2', 'datum_mean_ms'):.0f}"
        f" ms; the same commands from 1 vs 2 threads {trials.ratio('pool1', 'pool2'):.2f}x",
    )
    shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# where the time goes (run when a target is missed, or with --profile-all)


def report_timers(ctx: Ctx, name_: str, n: int, t: dict[str, Any], head: str) -> None:
    """A child's timers of a job of ``n`` datums (``totals_s``, ``counts``): ms per datum, ms
    per call and calls of each step, in profiles/ and the results."""
    per_datum = {label: v / n * 1000 for label, v in t["totals_s"].items()}
    per_datum["job, per datum (started -> finished)"] = t["job"]["job_s"] / n * 1000
    lines = [head, "Wall-clock timers (no profiler): ms per datum, ms per call, calls", ""]
    for label, v in per_datum.items():
        calls = t["counts"].get(label, 0)
        each = f"{t['totals_s'][label] / calls * 1000:10.3f} {calls:7d}" if calls else " " * 18
        lines.append(f"  {v:8.3f} {each}  {label}")
    ctx.data.setdefault("timers", {})[name_] = {"ms_per_datum": per_datum, "calls": t["counts"]}
    pdir = ctx.opts.out.resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    (pdir / f"{name_}.txt").write_text("\n".join(lines) + "\n")
    ctx.profiles[name_] = shown(pdir / f"{name_}.txt")
    ctx.log(f"timers of {name_} written to {pdir / name_}.txt")


def profile_datums(ctx: Ctx, kind: str) -> None:
    """Where a ``true`` datum's time goes: timers around a job's steps, then cProfile of the
    job with its datum threads."""
    n = scale(ctx).profile_n
    store = ctx.work / f"out-profile-{kind}"
    for what in ("timers", "profile"):
        shutil.rmtree(store, ignore_errors=True)
        ctx.settle(f"datum path ({kind}): before the {what}")
        raw = ctx.work / f"datums-{kind}.pstats"
        try:
            out = {"out": str(raw)} if what == "profile" else {}
            r = child(what, store=str(store), n=n, kind=kind, **out)
        except RuntimeError as exc:
            ctx.note(f"the {what} of the {kind} datum path failed: {str(exc)[-600:]}")
            continue
        head = f"true x {n} datums, {kind}, parallelism 1"
        if what == "timers":
            report_timers(ctx, f"pipelines_datum_path_{kind}_timers", n, r, head)
        else:
            head += f" under cProfile (datum threads merged): job {r['job']['job_s']:.2f} s"
            write_profile(ctx, f"pipelines_datum_path_{kind}", pstats.Stats(str(raw)), head)
            raw.unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)


def profile_skip_path(ctx: Ctx, n: int, which: str) -> None:
    """cProfile of a job that skips ``n`` datums: one added file (``add``) or a no-change
    ``update_pipeline`` (``noop``)."""
    store = ctx.work / f"out-profile-skip-{which}"
    raw = ctx.work / f"skip-{which}.pstats"
    shutil.rmtree(store, ignore_errors=True)
    try:
        r = child("profile_skip", store=str(store), n=n, which=which, out=str(raw))
    except RuntimeError as exc:
        ctx.note(f"profiling the skip path ({which}) failed: {str(exc)[-600:]}")
        return
    finally:
        shutil.rmtree(store, ignore_errors=True)
    what = "put_file of 1 new file" if which == "add" else "update_pipeline, same spec"
    head = f"{what} with {n} datums processed, under cProfile: {r['s'] * 1000:.0f} ms"
    write_profile(ctx, f"pipelines_skip_path_{which}", pstats.Stats(str(raw)), head)
    raw.unlink(missing_ok=True)


WORKLOADS = [
    Workload("w4", "pipelines", "add 1 file to 2,000: time to the output vs dvc repro", w4),
    Workload(
        "datum_overhead", "pipelines", "10,000 datums of true vs spawning true", datum_overhead
    ),
    Workload("noop", "pipelines", "no-change update_pipeline over 10,000 datums", noop),
    Workload(
        "datums100k",
        "pipelines",
        "100,000 datums: first-run overhead, no-change re-runs, list datum pages",
        datums100k,
    ),
    Workload("sandbox", "pipelines", "1,000 datums of true under bwrap vs none", sandbox),
    Workload("parallel", "pipelines", "parallelism 2 vs 1 on a CPU-bound command", parallel),
]
