"""Benchmarks of the production backends (issue 3): objects in S3 (SeaweedFS), metadata in
PostgreSQL. Run by ``bench/run.py --only s3w1,s3w2,pglatency``; see bench/README.md.

- ``s3w1``: W1 (20,000 small files) ingested by the same ``haathi put file -r`` into a
  SeaweedFS + PostgreSQL store, against the embedded local store in the same run (and a
  PostgreSQL + local-directory store, to split the cost); objects written to the bucket.
- ``s3w2``: W2 (8 x 128 MiB) into SeaweedFS (+ PostgreSQL) against ``aws s3 cp --recursive``
  and boto3's ``upload_file`` to the same server, in the same run.
- ``pglatency``: one-off ``put_file`` commit latency with metadata on PostgreSQL (objects in
  SeaweedFS, or in the store directory), the embedded store as the baseline.

SeaweedFS and PostgreSQL come from ``tests/servers.py`` (throw-away servers on loopback ports,
their data in temp directories); they are started once for these workloads and always stopped.
The runner module is passed in as ``h`` (its helpers: ``run_put``, ``warm``, ``median``, ...).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
AWS_BIN = Path(sys.executable).parent / "aws"
BACKEND_WORKLOADS = ("s3w1", "s3w2", "pglatency")
KiB = 1024
MiB = 1024 * KiB
SEAWEED_MAX_VOLUMES = 400  # tests/servers.py allows 50 x 256 MiB: too few for W2's buckets


class Servers:
    """SeaweedFS (S3) and PostgreSQL for the backend workloads; ``stop()`` removes their data."""

    def __init__(self) -> None:
        self.s3: Any = None
        self.pg: Any = None
        self._client: Any = None

    def start(self) -> Servers:
        if str(PROJECT) not in sys.path:
            sys.path.insert(0, str(PROJECT))
        from loopback.servers import Postgres, SeaweedS3

        class BenchSeaweed(SeaweedS3):
            def restart(self) -> None:
                self._args = [a for a in self._args if not a.startswith("-volume.max=")]
                self._args.append(f"-volume.max={SEAWEED_MAX_VOLUMES}")
                super().restart()

        self.s3 = BenchSeaweed().start()
        self.pg = Postgres().start()
        os.environ.update(self.s3.env())  # haathi (in process and in the CLI) and the peers
        return self

    def stop(self) -> None:
        for server in (self.s3, self.pg):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # stop the other one anyway
                    print(f"stopping {type(server).__name__} failed: {exc}", flush=True)

    @property
    def endpoint(self) -> str:
        return str(self.s3.endpoint)

    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint)
        return self._client

    def new_bucket(self, name: str) -> None:
        """A bucket with its first volumes already grown (a tiny object outside any prefix)."""
        self.s3.create_bucket(name)
        self.client().put_object(Bucket=name, Key="warm", Body=b"x")

    def delete_bucket(self, name: str) -> None:
        """SeaweedFS drops a bucket with its contents (its collection and volume files)."""
        self.client().delete_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str) -> tuple[int, int]:
        """(count, bytes) of the objects below ``prefix/``, listed with list_objects_v2."""
        count = total = 0
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            for obj in page.get("Contents", []):
                count += 1
                total += int(obj["Size"])
        return count, total

    def versions(self) -> dict[str, str]:
        def out(cmd: list[str]) -> str:
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                return (r.stdout or r.stderr).strip().splitlines()[0]
            except (OSError, subprocess.TimeoutExpired, IndexError):
                return "unknown"

        import boto3
        import obstore

        from loopback.servers import pg_bin, weed_binary

        return {
            "seaweedfs": out([weed_binary(), "version"]),
            "postgresql": out([pg_bin("postgres"), "--version"]),
            "awscli": out([str(AWS_BIN), "--version"]),
            "boto3": boto3.__version__,
            "obstore": obstore.__version__,
        }


def make_store(srv: Servers, store: Path, repo: str, *, objects: str | None = None) -> None:
    """A new store at ``store``: metadata in a new PostgreSQL database, objects in ``objects``
    (``s3://bucket/prefix``; default: the store directory), holding an empty ``repo``."""
    import haathi

    shutil.rmtree(store, ignore_errors=True)
    settings: dict[str, Any] = {"db": srv.pg.create_database()}
    if objects:
        settings.update(objects=objects, s3_endpoint=srv.endpoint)
    with haathi.init(str(store), **settings) as c:
        c.create_repo(repo)


# --------------------------------------------------------------------------------------------
# S3W1: many small files into SeaweedFS + PostgreSQL


def s3w1(ctx: Any, h: ModuleType, srv: Servers) -> None:
    sc = ctx.scale
    ctx.log(f"S3W1: generating {sc.w1_files} files in {sc.w1_dirs} dirs")
    src = h.gen_w1(ctx)
    nbytes = int(next((ctx.work / "w1").glob(".complete-*")).read_text())
    out = ctx.work / "out-s3w1"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bucket = "bench-s3w1"
    srv.new_bucket(bucket)
    res: dict[str, Any] = {"files": sc.w1_files, "bytes": nbytes, "bucket": bucket, "runs": {}}
    ctx.results["s3w1"] = res
    # local: the embedded store (SQLite + packs in the store dir), as in W1; pg: PostgreSQL +
    # packs in the store dir; s3pg: PostgreSQL + packs in SeaweedFS
    tools = ["local", "s3pg", "pg"]
    rows: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    for k in range(ctx.runs):
        order = tools[k % len(tools) :] + tools[: k % len(tools)]
        for tool in order:
            store = out / f"{tool}-{k}"
            prefix = f"w1-{k}"
            if tool == "local":
                if ctx.cli:
                    h.new_store(ctx, store, "w1")
            elif tool == "pg":
                make_store(srv, store, "w1")
            else:
                make_store(srv, store, "w1", objects=f"s3://{bucket}/{prefix}")
            os.sync()
            time.sleep(1)
            h.warm(src)
            dt, rss = h.run_put(ctx, store, "w1", src, create=True)
            row: dict[str, float] = {"s": dt, "rss": rss}
            extra = ""
            if tool == "s3pg":
                n, size = srv.objects(bucket, prefix)
                row.update(objects=n, object_bytes=size, objects_per_4mib=n / (nbytes / (4 * MiB)))
                extra = f", {n} objects ({size / MiB:.1f} MiB) under s3://{bucket}/{prefix}/"
            rows[tool].append(row)
            ctx.log(f"S3W1 run {k} {tool}: {dt:.2f} s, rss {rss / MiB:.0f} MiB{extra}")
    for tool, rs in rows.items():
        res["runs"][tool] = rs
        res[tool] = {
            "median_s": h.median([r["s"] for r in rs]),
            "peak_rss_mib": max(r["rss"] for r in rs) / MiB,
        }
    s3 = res["s3pg"]
    s3["objects"] = max(r["objects"] for r in rows["s3pg"])
    s3["object_bytes"] = rows["s3pg"][-1]["object_bytes"]
    s3["objects_per_4mib"] = max(r["objects_per_4mib"] for r in rows["s3pg"])
    local, pg = res["local"]["median_s"], res["pg"]["median_s"]
    ratio = s3["median_s"] / local
    res["ratio_s3pg_local"] = ratio
    res["ratio_pg_local"] = pg / local
    ctx.check(
        "S3W1 ingest time, SeaweedFS+PostgreSQL / local",
        ratio,
        "x",
        "<= 3.0",
        ratio <= 3.0,
        f"S3+PG {s3['median_s']:.2f} s, local {local:.2f} s, PG+local dir {pg:.2f} s",
    )
    ctx.check(
        "S3W1 PostgreSQL+local dir / local (informative)",
        pg / local,
        "x",
        "-",
        None,
        "splits the S3+PG cost: metadata on PostgreSQL alone",
    )
    per = s3["objects_per_4mib"]
    ctx.check(
        "S3W1 objects written per 4 MiB of data",
        per,
        "",
        "<= 1",
        per <= 1.0,
        f"{s3['objects']} objects ({s3['object_bytes'] / MiB:.1f} MiB) for "
        f"{sc.w1_files:,} files, {nbytes / MiB:.1f} MiB",
    )
    if ratio > 3.0 or ctx.args.profile_all:
        store = out / "profile-api"
        make_store(srv, store, "w1", objects=f"s3://{bucket}/profile-api")
        h.warm(src)
        h.profile_call(
            ctx,
            "s3w1_ingest_api",
            lambda: h.api_put(ctx, store, "w1", src, 1),
            note="S3W1 ingest through the Python API in-process, parallelism=1, "
            "SeaweedFS + PostgreSQL (cProfile sees only the main thread)",
        )
        store = out / "profile-process"
        make_store(srv, store, "w1", objects=f"s3://{bucket}/profile-process")
        h.profile_put_process(ctx, "s3w1_ingest_process", store, "w1", src)
    srv.delete_bucket(bucket)
    h.remove(ctx, out, settle=False)


# --------------------------------------------------------------------------------------------
# S3W2: large files into SeaweedFS vs aws s3 cp and boto3


def s3w2(ctx: Any, h: ModuleType, srv: Servers) -> None:
    sc = ctx.scale
    ctx.log(f"S3W2: generating {sc.w2_files} x {sc.w2_size // MiB} MiB random")
    src = h.gen_w2(ctx)
    total = sc.w2_files * sc.w2_size
    out = ctx.work / "out-s3w2"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tools = ["haathi", "awscli", "boto3"]
    buckets = {t: f"bench-s3w2-{t}" for t in tools}
    for b in buckets.values():
        srv.new_bucket(b)
    res: dict[str, Any] = {
        "files": sc.w2_files,
        "file_mib": sc.w2_size // MiB,
        "bytes": total,
        "runs": {},
    }
    ctx.results["s3w2"] = res
    rows: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    try:
        for k in range(ctx.runs):
            order = tools[k % len(tools) :] + tools[: k % len(tools)]
            for tool in order:
                bucket, prefix = buckets[tool], f"run-{k}"
                if tool == "haathi":
                    store = out / f"haathi-{k}"
                    make_store(srv, store, "w2", objects=f"s3://{bucket}/{prefix}")
                os.sync()
                time.sleep(2)
                h.warm(src)
                if tool == "haathi":
                    dt, rss = h.run_put(ctx, store, "w2", src, create=True)
                elif tool == "awscli":
                    dt, rss = h.run_proc([
                        str(AWS_BIN), "s3", "cp", "--recursive", "--only-show-errors",
                        "--endpoint-url", srv.endpoint, str(src), f"s3://{bucket}/{prefix}/",
                    ])  # fmt: skip
                else:
                    dt, rss = h.run_proc(
                        [
                            h.PY,
                            str(BENCH / "boto3_upload.py"),
                            srv.endpoint,
                            bucket,
                            prefix,
                            str(src),
                        ]
                    )
                ts = h.timed_sync()
                n, size = srv.objects(bucket, prefix)
                rows[tool].append(
                    {"s": dt, "s_sync": dt + ts, "rss": rss, "objects": n, "object_bytes": size}
                )
                ctx.log(
                    f"S3W2 run {k} {tool}: {dt:.2f} s ({total / dt / 1e6:.0f} MB/s), "
                    f"+sync {ts:.2f} s, rss {rss / MiB:.0f} MiB, {n} objects "
                    f"({size / MiB:.0f} MiB)"
                )
                if tool != "haathi" and size != total:
                    ctx.note(f"S3W2 {tool} run {k} stored {size} bytes, expected {total}")
        for tool, rs in rows.items():
            res["runs"][tool] = rs
            s = h.median([r["s"] for r in rs])
            res[tool] = {
                "median_s": s,
                "mb_s": total / s / 1e6,
                "peak_rss_mib": max(r["rss"] for r in rs) / MiB,
                "objects": rs[-1]["objects"],
                "object_mib": rs[-1]["object_bytes"] / MiB,
            }
        hs = res["haathi"]["mb_s"]
        best = max(("awscli", "boto3"), key=lambda t: res[t]["mb_s"])
        ratio = hs / res[best]["mb_s"]
        res["ratio_vs_best_peer"] = ratio
        res["best_peer"] = best
        ok: bool | None = ratio >= 0.5
        if ctx.args.quick:  # 16 MiB files: process start-up dominates
            ok = None
        ctx.check(
            f"S3W2 throughput haathi / {best} (the faster peer)",
            ratio,
            "x",
            ">= 0.5",
            ok,
            f"haathi {hs:.0f} MB/s, aws s3 cp {res['awscli']['mb_s']:.0f} MB/s, "
            f"boto3 upload_file {res['boto3']['mb_s']:.0f} MB/s",
        )
        if ok is False or ctx.args.profile_all:
            store = out / "profile-api"
            make_store(srv, store, "w2", objects=f"s3://{buckets['haathi']}/profile-api")
            h.warm(src)
            h.profile_call(
                ctx,
                "s3w2_ingest_api",
                lambda: h.api_put(ctx, store, "w2", src, 1),
                note="S3W2 ingest through the Python API in-process, parallelism=1 "
                "(cProfile sees only the main thread; packs are uploaded by a "
                "background thread)",
            )
            store = out / "profile-process"
            make_store(srv, store, "w2", objects=f"s3://{buckets['haathi']}/profile-process")
            h.profile_put_process(ctx, "s3w2_ingest_process", store, "w2", src)
    finally:
        for b in buckets.values():
            try:
                srv.delete_bucket(b)
            except Exception as exc:
                ctx.note(f"S3W2: deleting bucket {b} failed: {exc}")
        shutil.rmtree(out, ignore_errors=True)
        h.remove(ctx, ctx.work / "w2")


# --------------------------------------------------------------------------------------------
# one-off commit latency with metadata on PostgreSQL


def pglatency(ctx: Any, h: ModuleType, srv: Servers) -> None:
    import haathi

    n = ctx.scale.lat_n
    out = ctx.work / "out-pglatency"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bucket = "bench-pglatency"
    srv.new_bucket(bucket)
    rng = random.Random(int(h.SEED) + 4)
    configs = {
        "local": "embedded (SQLite + local packs)",
        "pg_s3": "PostgreSQL + SeaweedFS",
        "pg_dir": "PostgreSQL + local packs",
    }
    clients: dict[str, Any] = {}
    times: dict[str, list[float]] = {k: [] for k in configs}
    round_medians: dict[str, list[float]] = {k: [] for k in configs}
    res: dict[str, Any] = {"n_per_round": n, "rounds": ctx.runs}
    ctx.results["pglatency"] = res
    try:
        for name in configs:
            store = out / name
            if name == "local":
                clients[name] = haathi.connect(str(store))
                clients[name].create_repo("lat")
            else:
                objects = f"s3://{bucket}/lat" if name == "pg_s3" else None
                make_store(srv, store, "lat", objects=objects)
                clients[name] = haathi.connect(str(store))
            for i in range(5):  # warm-up
                clients[name].put_file(f"lat@master:/warm{i}.bin", rng.randbytes(KiB))
        names = list(configs)
        for k in range(ctx.runs):
            for name in names[k % len(names) :] + names[: k % len(names)]:
                c = clients[name]
                ts: list[float] = []
                for i in range(n):
                    data = rng.randbytes(KiB)
                    t0 = time.perf_counter()
                    c.put_file(f"lat@master:/r{k}/f{i:04d}.bin", data)
                    ts.append(time.perf_counter() - t0)
                times[name] += ts
                round_medians[name].append(h.median(ts) * 1000)
                ctx.log(
                    f"pglatency round {k} {name}: median {h.median(ts) * 1000:.1f} ms, "
                    f"p95 {h.pct(ts, 0.95) * 1000:.1f} ms"
                )
        for name, ts in times.items():
            res[name] = {
                "what": configs[name],
                "n": len(ts),
                "median_ms": h.median(ts) * 1000,
                "p95_ms": h.pct(ts, 0.95) * 1000,
                "max_ms": max(ts) * 1000,
                "mean_ms": statistics.fmean(ts) * 1000,
                "round_medians_ms": round_medians[name],
            }
        base = res["local"]["median_ms"]
        for name in ("pg_s3", "pg_dir"):
            r = res[name]
            ctx.check(
                f"one-off put_file 1 KiB commit latency, {configs[name]}, median",
                r["median_ms"],
                "ms",
                "< 50 ms",
                r["median_ms"] < 50,
                f"p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.0f} ms; "
                f"{r['median_ms'] / base:.1f}x the embedded store's median "
                f"({base:.1f} ms); {r['n']} commits",
            )
        for name in ("pg_s3", "pg_dir"):
            if res[name]["median_ms"] >= 50 or ctx.args.profile_all:
                c = clients[name]

                def more(c: Any = c) -> None:
                    for i in range(50):
                        c.put_file(f"lat@master:/p/f{i:04d}.bin", rng.randbytes(KiB))

                h.profile_call(
                    ctx,
                    f"pglatency_{name}",
                    more,
                    note=f"50 one-off put_file commits, {configs[name]}",
                )
    finally:
        for c in clients.values():
            c.close()
        srv.delete_bucket(bucket)
        h.remove(ctx, out, settle=False)


# --------------------------------------------------------------------------------------------


def run(ctx: Any, h: ModuleType, only: set[str]) -> bool:
    """Start the servers, run the selected backend workloads (each on its own), stop them.
    Returns False when a workload failed (it is reported in the notes)."""
    steps: list[tuple[str, Callable[[Any, ModuleType, Servers], None]]] = [
        (name, fn)
        for name, fn in (("s3w1", s3w1), ("s3w2", s3w2), ("pglatency", pglatency))
        if name in only
    ]
    if not steps:
        return True
    if not AWS_BIN.exists() and "s3w2" in only:
        ctx.note(f"{AWS_BIN} is missing (pip install awscli): S3W2 cannot run")
    srv = Servers()
    ok = True
    try:
        ctx.log("starting SeaweedFS (S3) and PostgreSQL")
        srv.start()
        ctx.results["meta"]["backends"] = srv.versions()
        for name, fn in steps:
            # the machine is shared: the load around each workload says how much to trust it
            load = ctx.results["meta"].setdefault("loadavg_1m", {})
            load[f"{name}_start"] = round(os.getloadavg()[0], 2)
            try:
                fn(ctx, h, srv)
            except Exception as exc:  # report and go on with the other workloads
                import traceback

                traceback.print_exc()
                ctx.note(f"workload {name} failed: {type(exc).__name__}: {str(exc)[:500]}")
                ok = False
            load[f"{name}_end"] = round(os.getloadavg()[0], 2)
            ctx.save()
    finally:
        srv.stop()
    return ok
