"""haathi's benchmarks: see bench/README.md.

.venv/bin/python bench/run.py --quick              # every workload, small (a smoke test)
.venv/bin/python bench/run.py --only w1,latency    # some workloads, full size
.venv/bin/python bench/run.py --list               # the workloads
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import backends
import cli
import console
import console_jobs
import daemons
import images
import ingest
import lineage
import million
import pipelines
import preload
import restore
import server
import transactions
import workflows
from harness import BENCH, PROJECT, Ctx, Options, Workload, run_workloads, table
from measure import DVC_BINS, TIME_BIN, version

WORKLOADS: list[Workload] = [
    *ingest.WORKLOADS,
    *million.WORKLOADS,
    *restore.WORKLOADS,
    *backends.WORKLOADS,
    *pipelines.WORKLOADS,
    *daemons.WORKLOADS,
    *lineage.WORKLOADS,
    *server.WORKLOADS,
    *workflows.WORKLOADS,
    *cli.WORKLOADS,
    *console.WORKLOADS,
    *console_jobs.WORKLOADS,
    *images.WORKLOADS,
    *preload.WORKLOADS,
    *transactions.WORKLOADS,
]
BY_NAME = {w.name: w for w in WORKLOADS}
# --only also takes an area (ingest, restore, backends, pipelines, server, cli, images, ...)
AREAS = {
    area: [w.name for w in WORKLOADS if w.area == area] for area in {w.area for w in WORKLOADS}
}


def parse(argv: list[str] | None) -> tuple[Options, list[Workload], argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="workloads or areas, comma-separated (default: all)")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--quick", action="store_true", help="every workload at its small size")
    ap.add_argument("--runs", type=int, default=3, help="runs per timed figure (median); 3")
    ap.add_argument(
        "--settle", type=float, help="seconds to wait after mass deletions (30; 5 with --quick)"
    )
    ap.add_argument("--work", type=Path, default=BENCH / "work", help="where data is made")
    ap.add_argument(
        "--out",
        type=Path,
        default=BENCH / "work" / "results.json",
        help="the results (JSON); profiles go next to it",
    )
    ap.add_argument("-p", "--parallelism", type=int, default=4, help="haathi put -p (4)")
    ap.add_argument("--no-dvc", action="store_true", help="leave DVC out")
    ap.add_argument(
        "--install-peers",
        action="store_true",
        help="apt-get install restic and borgbackup, pip install dvc into /tmp/dvcenv",
    )
    ap.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    ap.add_argument(
        "--profile-all",
        action="store_true",
        help="profiles of every workload, not only of missed targets",
    )
    args = ap.parse_args(argv)
    names: list[str] = []
    for item in (args.only or ",".join(BY_NAME)).split(","):
        item = item.strip()
        if item in AREAS:
            names += AREAS[item]
        elif item in BY_NAME:
            names.append(item)
        elif item:
            ap.error(f"unknown workload {item!r}: see --list")
    chosen = [w for w in WORKLOADS if w.name in names]  # in the suite's order
    opts = Options(
        quick=args.quick,
        runs=args.runs,
        settle=args.settle if args.settle is not None else (5.0 if args.quick else 30.0),
        work=args.work.resolve(),
        out=args.out.resolve(),
        parallelism=args.parallelism,
        profile_all=args.profile_all,
        use_dvc=not args.no_dvc,
    )
    return opts, chosen, args


def machine(ctx: Ctx) -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    git = ["git", "-C", str(PROJECT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "haathi"], capture_output=True, text=True
    ).stdout.strip()
    dvc = next((p for p in DVC_BINS if p.exists()), None)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "haathi_commit": commit + ("+dirty" if dirty else ""),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "restic": version(["restic", "version"]),
        "borg": version(["borg", "--version"]),
        "dvc": version([dvc, "version"]) if dvc else "not installed",
        "options": {k: str(v) for k, v in vars(ctx.opts).items()},
    }


def install_peers(ctx: Ctx) -> None:
    for tool, package in (("restic", "restic"), ("borg", "borgbackup")):
        if shutil.which(tool) is None:
            ctx.log(f"installing {package} (apt-get)")
            subprocess.run(["apt-get", "install", "-y", package], capture_output=True)
    if not any(p.exists() for p in DVC_BINS):
        ctx.log("installing dvc into /tmp/dvcenv (pip)")
        done = subprocess.run([sys.executable, "-m", "venv", "/tmp/dvcenv"], capture_output=True)
        if done.returncode == 0:
            done = subprocess.run(
                ["/tmp/dvcenv/bin/pip", "install", "-q", "dvc"], capture_output=True
            )
        if done.returncode != 0:
            ctx.note(f"installing dvc failed: {done.stderr.decode()[-300:]}")


def main(argv: list[str] | None = None) -> int:
    opts, chosen, args = parse(argv)
    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:16} {w.area:10} {w.what}")
        return 0
    opts.work.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(opts)
    if args.install_peers:
        install_peers(ctx)
    if TIME_BIN is None:
        ctx.note("/usr/bin/time is missing (apt-get install time): peak RSS figures over-report")
    ctx.meta.update(machine(ctx))
    ctx.log(f"{', '.join(w.name for w in chosen)}: runs={opts.runs}, settle={opts.settle:.0f} s")
    t0 = time.perf_counter()
    try:
        ok = run_workloads(ctx, chosen)
    finally:  # the generated inputs (made once per run, shared by workloads)
        for data in ("w1", "w2", "mem", "million"):
            shutil.rmtree(opts.work / data, ignore_errors=True)
    ctx.meta["total_s"] = round(time.perf_counter() - t0, 1)
    ctx.save()
    print(table(ctx.figures))
    if args.markdown:
        print(table(ctx.figures, markdown=True))
    for note in ctx.notes:
        print(" - note:", note)
    print(f"\nresults in {opts.out} ({ctx.meta['total_s']:.0f} s)")
    return 0 if ok and all(f.passed is not False for f in ctx.figures) else 1


if __name__ == "__main__":
    sys.exit(main())
