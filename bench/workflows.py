"""Issue 18's figures: Pachyderm's workflows at their peers' speed.

- ``url_ingest``: ``haathi put file repo@master:/big.bin -f s3://bucket/big.bin`` (a 1 GiB
  object of the local SeaweedFS, streamed into an embedded store, never held whole) against
  ``aws s3 cp`` of the same object to a local file; both with the ``sync`` after.
- ``project_overhead``: the same operations on a repo of the ``default`` project and on one of
  another project (``--project``), by turns: through a ``Client`` per project (``inspect
  commit``, ``list file``, a one-off ``put_file`` commit) and as preloaded CLI processes
  (``inspect commit``, ``list repo``); the ratio of the two sides' medians per operation.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable

import blake3
from backends import AWS_BIN, SERVERS
from harness import Ctx, MiB, Row, Skipped, Target, Workload, alternate
from ingest import new_store, scale
from measure import HAATHI_BIN, Argv, fresh_dir, remove, run_proc, stream_bytes, timed_sync

import haathi
from haathi.client import Client


def url_ingest(ctx: Ctx) -> None:
    if not AWS_BIN.exists():
        raise Skipped(f"{AWS_BIN} is missing (pip install awscli)")
    srv = ctx.use(SERVERS)
    sc = scale(ctx)
    size = sc.w2_files * sc.w2_size  # 1 GiB (64 MiB with --quick)
    out = fresh_dir(ctx.work / "out-url-ingest")
    bucket, store = "bench-url-ingest", out / "store"
    srv.new_bucket(bucket)
    h = blake3.blake3()
    for i in range(0, size, 64 * MiB):  # uploaded in parts, never whole in memory
        h.update(stream_bytes(f"url-{i}", min(64 * MiB, size - i)))
    digest = h.digest()
    src = out / "big.bin"
    with open(src, "wb") as fh:
        for i in range(0, size, 64 * MiB):
            fh.write(stream_bytes(f"url-{i}", min(64 * MiB, size - i)))
    url = f"s3://{bucket}/big.bin"
    run_proc([AWS_BIN, "s3", "--endpoint-url", srv.endpoint, "cp", "--only-show-errors", src, url])
    src.unlink()
    # a whole process, as aws is (its start-up and its own peak RSS counted: no preloader)
    env = {"HAATHI_ADDRESS": str(store), "AWS_ENDPOINT_URL": srv.endpoint, "HAATHI_PRELOAD": "0"}

    def haathi_put(k: int) -> Row:
        new_store(store, "big")
        row = run_proc([HAATHI_BIN, "put", "file", "big@master:/big.bin", "-f", url], env=env)
        row["s_sync"] = row["s"] + timed_sync()
        with haathi.connect(str(store)) as c, c.open_file("big@master:/big.bin") as fh:
            got = blake3.blake3()
            while block := fh.read(8 * MiB):
                got.update(block)
        if got.digest() != digest:
            raise RuntimeError("the ingested file is not the object's bytes")
        return row

    def aws_cp(k: int) -> Row:
        dest = out / f"aws-{k}.bin"
        aws: Argv = [AWS_BIN, "s3", "--endpoint-url", srv.endpoint, "cp", "--only-show-errors"]
        row = run_proc([*aws, url, dest])
        row["s_sync"] = row["s"] + timed_sync()
        dest.unlink()
        return row

    try:
        trials = alternate(ctx, {"haathi": haathi_put, "aws": aws_cp})
        mib = size / MiB
        ctx.figure(
            f"put file -f s3:// of a {mib:.0f} MiB object: throughput, haathi / aws s3 cp",
            trials.ratio("aws", "haathi", "s_sync"),
            "x",
            Target(">=", 0.5),
            f"haathi {mib / trials.median('haathi', 's_sync'):.0f} MiB/s "
            f"({trials.per_run('haathi', 's_sync')} s), aws s3 cp "
            f"{mib / trials.median('aws', 's_sync'):.0f} MiB/s "
            f"({trials.per_run('aws', 's_sync')} s), each with the sync after; peak RSS haathi "
            f"{trials.median('haathi', 'rss') / MiB:.0f} MiB, aws "
            f"{trials.median('aws', 'rss') / MiB:.0f} MiB",
            judged=not ctx.quick,
        )
    finally:
        try:
            srv.client().delete_object(Bucket=bucket, Key="big.bin")
            srv.delete_bucket(bucket)
        except Exception as exc:
            ctx.note(f"url_ingest: deleting bucket {bucket} failed: {exc}")
        remove(ctx, out, settle=False)


PROJECT = "bench"
SIDES = ("default", PROJECT)


def project_overhead(ctx: Ctx) -> None:
    out = fresh_dir(ctx.work / "out-project-overhead")
    store = out / "store"
    env = {"HAATHI_ADDRESS": str(store)}
    with haathi.connect(str(store)) as c:
        c.create_project(PROJECT)
    clients = {side: haathi.connect(str(store), project=side) for side in SIDES}
    for pc in clients.values():
        pc.create_repo("data")
        for i in range(20):
            pc.put_file(f"data@master:/d/f{i:03d}", b"x" * 100)
    ops: dict[str, Callable[[Client, int], object]] = {
        "inspect_commit (API)": lambda pc, i: pc.inspect_commit("data@master"),
        "list_file of 20 files (API)": lambda pc, i: pc.list_file("data@master:/d"),
        "one-off put_file commit (API)": lambda pc, i: pc.put_file("data@master:/x", b"%d" % i),
    }
    cli = {
        "haathi inspect commit (CLI process, preloaded)": ["inspect", "commit", "data@master"],
        "haathi list repo (CLI process, preloaded)": ["list", "repo"],
    }
    calls = {**dict.fromkeys(ops, 60 if ctx.quick else 300), **dict.fromkeys(cli, 15)}
    try:
        run_proc([HAATHI_BIN, "list", "repo"], env=env)  # a preloader started and warm
        times: dict[str, dict[str, list[float]]] = {op: {s: [] for s in SIDES} for op in calls}
        for op, n in calls.items():
            for i in range(n):
                # the two sides by turns, each first every other time: a write just after
                # another client's runs slower, whichever project either is in
                for side in SIDES if i % 2 else SIDES[::-1]:
                    if op in ops:
                        t0 = time.perf_counter()
                        ops[op](clients[side], i)
                        times[op][side].append(time.perf_counter() - t0)
                    else:
                        flags = [] if side == "default" else ["--project", side]
                        row = run_proc([HAATHI_BIN, *cli[op], *flags], env=env)
                        times[op][side].append(row["s"])
        for op, by_side in times.items():
            ms = {side: statistics.median(v) * 1000 for side, v in by_side.items()}
            ctx.figure(
                f"{op}: --project {PROJECT} / the default project",
                ms[PROJECT] / ms["default"],
                "x",
                Target("<=", 1.1),
                f"{ms[PROJECT]:.2f} ms against {ms['default']:.2f} ms, medians of "
                f"{calls[op]} each, by turns; load {os.getloadavg()[0]:.1f}",
            )
    finally:
        for pc in clients.values():
            pc.close()
        shutil.rmtree(store, ignore_errors=True)
        remove(ctx, out, settle=False)


WORKLOADS = [
    Workload(
        "url_ingest",
        "workflows",
        "put file -f s3:// of 1 GiB vs aws s3 cp (SeaweedFS)",
        url_ingest,
    ),
    Workload(
        "project_overhead",
        "workflows",
        "operations with --project vs the default project",
        project_overhead,
    ),
]
