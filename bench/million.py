"""A million files: ingest, reads, fsck and gc at the scale where Pachyderm's and DVC's users
hurt (1.2 M files estimated at 33 days; 600 k files taking hours).

- ``million``: 1,000,000 files of 512-1,536 B (1 KiB on average, random: no compression, no
  duplicates) in 1,000 directories (100,000 with ``--quick``). ``haathi put file -r`` as a
  process against ``restic backup`` of the same directory (a new repository each), with the
  peak RSS of each; then, on the first haathi store after a second commit changing 10 files,
  ``list file`` of one directory, ``diff file`` of the two commits and ``get file`` of one
  file through the API (one open client, medians over several calls, each list and get of
  another directory or file); then ``haathi fsck`` and ``haathi gc`` as processes, timed, with
  their peak RSS.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import SEED, Ctx, KiB, MiB, Row, Target, Workload, alternate
from ingest import new_store, put_argv, restic_backup, stored
from measure import (
    HAATHI_BIN,
    dir_bytes,
    fresh_dir,
    fresh_inputs,
    profile_call,
    profile_process,
    remove,
    run_proc,
    stream_bytes,
    warm,
)

import haathi
from haathi.client.sources import bytes_op

REPO = "million"
# the command runs in the process measured (not in a preloaded one: its RSS is the figure)
COLD = {"HAATHI_PRELOAD": "0"}
READS = 9  # calls per read figure (the median is reported)


@dataclass(frozen=True)
class Scale:
    files: int
    dirs: int


FULL = Scale(1_000_000, 1_000)
QUICK = Scale(100_000, 1_000)


def scale(ctx: Ctx) -> Scale:
    return QUICK if ctx.quick else FULL


def rel_path(sc: Scale, i: int) -> str:
    """File ``i``'s path below the data directory."""
    per = sc.files // sc.dirs
    return f"d{i // per:04d}/f{i % per:04d}.bin"


def gen_million(ctx: Ctx) -> tuple[Path, int]:
    """The files (made once per size and kept under ``--work`` until the end of the run) and
    their total size. File ``i`` is a window of 512-1,536 bytes at offset ``61 i`` of 64 MiB of
    seeded random bytes: no two alike. Written by 4 threads, a directory each at a time (file
    creation is kernel time, and the system calls release the GIL): ~1 minute per million on
    these machines when quiet."""
    sc = scale(ctx)
    root = ctx.work / "million"
    data = root / "data"
    marker = root / f".complete-{sc.files}-{sc.dirs}-{SEED}"
    if marker.exists():
        return data, int(marker.read_text())
    ctx.log(f"making {sc.files:,} files in {sc.dirs:,} directories under {data}")
    fresh_dir(data)
    pool = memoryview(stream_bytes("million", 64 * MiB))
    per = sc.files // sc.dirs

    def one_dir(d: int) -> int:
        directory = data / f"d{d:04d}"
        directory.mkdir()
        total = 0
        for f in range(per):
            i = d * per + f
            size = 512 + (i * 7919) % 1025
            fd = os.open(directory / f"f{f:04d}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, pool[61 * i : 61 * i + size])
            finally:
                os.close(fd)
            total += size
        return total

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as threads:
        total = sum(threads.map(one_dir, range(sc.dirs)))
    os.sync()
    ctx.data["generate_s"] = round(time.perf_counter() - t0, 1)
    ctx.log(f"made {total / MiB:,.0f} MiB in {ctx.data['generate_s']} s")
    marker.write_text(str(total))
    return data, total


def million(ctx: Ctx) -> None:
    sc = scale(ctx)
    src, nbytes = gen_million(ctx)
    out = fresh_dir(ctx.work / "out-million")
    ctx.data.update(files=sc.files, dirs=sc.dirs, bytes=nbytes)

    def haathi_put(k: int) -> Row:
        store = out / f"haathi-{k}"
        new_store(store, REPO)
        env = {"HAATHI_ADDRESS": str(store), **COLD}
        return stored(run_proc(put_argv(ctx, REPO, src), env=env), store)

    contenders: dict[str, Callable[[int], Row]] = {"haathi": haathi_put}
    restic = restic_backup(ctx, out, src, "million")
    if restic is not None:
        contenders["restic"] = restic
    trials = alternate(ctx, contenders, before=fresh_inputs(src))
    h = trials.median("haathi")
    rate = f"{sc.files / h:,.0f} files/s"
    detail = ", ".join(
        f"{who} {trials.median(who):.1f} s ({trials.median(who, 'cpu'):.1f} s CPU)"
        for who in contenders
    )
    label = f"{sc.files:,} files"
    if restic is not None:
        passed = ctx.figure(
            f"{label}: ingest haathi/restic time",
            trials.ratio("haathi", "restic"),
            "x",
            Target("<=", 1.0),
            f"{detail} (haathi {rate}); per run {trials.per_run('haathi')} vs "
            f"{trials.per_run('restic')} s",
        )
    else:
        passed = ctx.figure(f"{label}: ingest haathi time", h, "s", None, rate)
    rss = {who: trials.median(who, "rss") / MiB for who in contenders}
    ctx.figure(
        f"{label}: ingest peak RSS (haathi)",
        rss["haathi"],
        "MiB",
        Target("<", 1024, "MiB"),
        ", ".join(f"{who} {v:,.0f} MiB" for who, v in rss.items()),
    )
    if ctx.wants_profile(passed):
        new_store(out / "profile", REPO)
        warm(src)
        env = {"HAATHI_ADDRESS": str(out / "profile"), **COLD}
        profile_process(ctx, "million_ingest", put_argv(ctx, REPO, src), env)
        remove(ctx, out / "profile", settle=False)
    store = out / "haathi-0"
    reads(ctx, store, sc)
    maintenance(ctx, store, sc)
    remove(ctx, out)


def reads(ctx: Ctx, store: Path, sc: Scale) -> None:
    """After a second commit changing 10 files: ``list file`` of a directory, ``diff file`` of
    the two commits, ``get file`` of a file, through one open client (as a notebook or a
    service would), each the median of :data:`READS` calls; a list and a get name another
    directory or file each call."""
    rng = random.Random(SEED + 17)
    per = sc.files // sc.dirs
    changed = sorted(rng.sample(range(sc.files), 10))
    with haathi.connect(str(store)) as c:
        c.modify_file(
            f"{REPO}@master", [bytes_op(rng.randbytes(KiB), "/" + rel_path(sc, i)) for i in changed]
        )
        dirs = rng.sample(range(sc.dirs), READS)
        files = rng.sample(range(sc.files), READS)
        queries: dict[str, tuple[str, Callable[[int], int], Target]] = {
            "list_dir": (
                f"list file of one directory ({per:,} files)",
                lambda k: len(c.list_file(f"{REPO}@master:/d{dirs[k]:04d}")),
                Target("<", 50, "ms"),
            ),
            "diff_10": (
                "diff file of a commit changing 10 files",
                lambda k: len(c.diff_file(f"{REPO}@master", f"{REPO}@master^")),
                Target("<", 100, "ms"),
            ),
            "get_file": (
                "get file of one file",
                lambda k: len(c.get_file(f"{REPO}@master:/{rel_path(sc, files[k])}")),
                Target("<", 50, "ms"),
            ),
        }
        res: dict[str, Any] = ctx.data.setdefault("reads", {})
        for key, (label, query, target) in queries.items():
            times, results = [], []
            for k in range(READS):
                t0 = time.perf_counter()
                results.append(query(k))
                times.append(time.perf_counter() - t0)
            r = res[key] = {"times_ms": [round(t * 1000, 2) for t in times], "results": results}
            if key == "diff_10" and results[0] != 10:
                ctx.note(f"the diff of 10 changes returned {results[0]} entries")
            passed = ctx.figure(
                f"{sc.files:,} files: {label} (API)",
                statistics.median(times) * 1000,
                "ms",
                target,
                f"first call {r['times_ms'][0]:.1f} ms, slowest {max(times) * 1000:.1f} ms",
                area="reading",
            )
            if ctx.wants_profile(passed):

                def again(query: Callable[[int], int] = query) -> None:
                    for k in range(READS):
                        query(k)

                profile_call(ctx, f"million_{key}", again)


def maintenance(ctx: Ctx, store: Path, sc: Scale) -> None:
    """``haathi fsck`` (every pack read and every blob hashed) and ``haathi gc`` as processes:
    wall time and peak RSS, beside the RSS of a command that loads nothing (``list repo``)."""
    env = {"HAATHI_ADDRESS": str(store), **COLD}
    idle = run_proc([HAATHI_BIN, "list", "repo"], env=env)["rss"]
    res: dict[str, Any] = ctx.data.setdefault("maintenance", {"idle_rss": idle})
    for cmd in ("fsck", "gc"):
        row = res[cmd] = run_proc([HAATHI_BIN, cmd], env=env)
        ctx.figure(
            f"{sc.files:,} files: {cmd} peak RSS",
            row["rss"] / MiB,
            "MiB",
            Target("<", 1024, "MiB"),
            f"{row['s']:.1f} s ({row['cpu']:.1f} s CPU); an idle command {idle / MiB:.0f} MiB; "
            f"store {dir_bytes(store) / MiB:,.0f} MiB",
        )


WORKLOADS = [
    Workload(
        "million",
        "ingest",
        "1,000,000 files of ~1 KiB: put vs restic (time, RSS); list, diff, get; fsck, gc",
        million,
    ),
]
