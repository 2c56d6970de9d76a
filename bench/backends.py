"""The production backends: objects in S3 (SeaweedFS), metadata in PostgreSQL, both real
servers on loopback (:mod:`loopback.servers`), started once for the workloads that use them.

- ``s3w1``: W1 (20,000 small files) by the same ``haathi put file -r`` into a SeaweedFS +
  PostgreSQL store, against the embedded local store (and PostgreSQL + a local directory, which
  splits the cost); the objects written to the bucket.
- ``s3w2``: W2 (8 x 128 MiB) into SeaweedFS against ``aws s3 cp --recursive`` and boto3's
  ``upload_file`` to the same server.
- ``pglatency``: one-off ``put_file`` commits with metadata on PostgreSQL (objects in
  SeaweedFS, or in the store directory), against the embedded store.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    SEED,
    Ctx,
    Fixture,
    KiB,
    MiB,
    Row,
    Skipped,
    Target,
    Workload,
    alternate,
    pct,
)
from ingest import gen_w1, gen_w2, new_store, profile_put, put, scale
from measure import (
    PY,
    fresh_dir,
    fresh_inputs,
    profile_call,
    remove,
    run_proc,
    timed_sync,
    version,
)

import haathi
from loopback.servers import Postgres, SeaweedS3, pg_bin, weed_binary

AWS_BIN = Path(sys.executable).parent / "aws"


@dataclass
class Servers:
    """SeaweedFS (S3) and PostgreSQL on loopback, for the workloads of a run."""

    s3: SeaweedS3
    pg: Postgres
    _client: Any = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return self.s3.endpoint

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
        """(count, bytes) of the objects below ``prefix/``."""
        count = total = 0
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            for obj in page.get("Contents", []):
                count += 1
                total += int(obj["Size"])
        return count, total

    def make_store(self, store: Path, repo: str, *, objects: str | None = None) -> None:
        """A new store at ``store``: metadata in a new PostgreSQL database, objects in
        ``objects`` (``s3://bucket/prefix``; default: the store directory), an empty ``repo``."""
        shutil.rmtree(store, ignore_errors=True)
        settings: dict[str, Any] = {"db": self.pg.create_database()}
        if objects:
            settings.update(objects=objects, s3_endpoint=self.endpoint)
        with haathi.init(str(store), **settings) as c:
            c.create_repo(repo)


@contextlib.contextmanager
def _servers(ctx: Ctx) -> Iterator[Servers]:
    s3 = SeaweedS3(volume_max=400)  # three 1 GiB buckets x 3 runs need more than the tests'
    pg = Postgres()
    try:
        s3.start()
        pg.start()
        os.environ.update(s3.env())  # haathi (in process and its CLI) and the peers
        ctx.meta["backends"] = {
            "seaweedfs": version([weed_binary(), "version"]),
            "postgresql": version([pg_bin("postgres"), "--version"]),
            "awscli": version([AWS_BIN, "--version"]),
        }
        yield Servers(s3, pg)
    finally:
        for server in (s3, pg):
            try:
                server.stop()
            except Exception as exc:  # stop the other one anyway
                ctx.note(f"stopping {type(server).__name__} failed: {exc}")


SERVERS = Fixture("SeaweedFS (S3) and PostgreSQL", _servers)


# --------------------------------------------------------------------------------------------


def s3w1(ctx: Ctx) -> None:
    srv = ctx.use(SERVERS)
    src, nbytes = gen_w1(ctx)
    out = fresh_dir(ctx.work / "out-s3w1")
    bucket = "bench-s3w1"
    srv.new_bucket(bucket)
    ctx.data.update(files=scale(ctx).w1_files, bytes=nbytes, bucket=bucket)

    def ingest(kind: str) -> Callable[[int], Row]:
        """local: the embedded store, as W1; s3pg: PostgreSQL + SeaweedFS; pg: PostgreSQL +
        packs in the store directory."""

        def run(k: int) -> Row:
            store, prefix = out / f"{kind}-{k}", f"w1-{k}"
            if kind == "local":
                new_store(store, "w1")
            else:
                objects = f"s3://{bucket}/{prefix}" if kind == "s3pg" else None
                srv.make_store(store, "w1", objects=objects)
            fresh_inputs(src)()
            row = put(ctx, store, "w1", src)
            if kind == "s3pg":
                row["objects"], row["object_bytes"] = srv.objects(bucket, prefix)
            return row

        return run

    try:
        trials = alternate(ctx, {k: ingest(k) for k in ("local", "s3pg", "pg")})
        local, s3, pg = (trials.median(k) for k in ("local", "s3pg", "pg"))
        passed = ctx.figure(
            "W1 ingest time, SeaweedFS + PostgreSQL / local",
            s3 / local,
            "x",
            Target("<=", 3.0),
            f"S3+PG {s3:.2f} s, local {local:.2f} s; PostgreSQL + local dir {pg:.2f} s "
            f"({pg / local:.2f}x)",
        )
        objects = max(trials.values("s3pg", "objects"))
        stored_mib = trials.rows["s3pg"][-1]["object_bytes"] / MiB
        ctx.figure(
            "W1 objects written per 4 MiB of data",
            objects / (nbytes / (4 * MiB)),
            "",
            Target("<=", 1),
            f"{objects:.0f} objects ({stored_mib:.1f} MiB) for {ctx.data['files']:,} files, "
            f"{nbytes / MiB:.1f} MiB",
        )
        if ctx.wants_profile(passed):
            srv.make_store(out / "profile", "w1", objects=f"s3://{bucket}/profile")
            profile_put(ctx, "s3w1_ingest", out / "profile", "w1", src)
    finally:
        srv.delete_bucket(bucket)
        remove(ctx, out, settle=False)


def s3w2(ctx: Ctx) -> None:
    if not AWS_BIN.exists():
        raise Skipped(f"{AWS_BIN} is missing (pip install awscli)")
    srv = ctx.use(SERVERS)
    sc = scale(ctx)
    src = gen_w2(ctx)
    total = sc.w2_files * sc.w2_size
    out = fresh_dir(ctx.work / "out-s3w2")
    buckets = {t: f"bench-s3w2-{t}" for t in ("haathi", "awscli", "boto3")}
    for b in buckets.values():
        srv.new_bucket(b)
    ctx.data.update(files=sc.w2_files, file_mib=sc.w2_size // MiB)

    def upload(tool: str) -> Callable[[int], Row]:
        def run(k: int) -> Row:
            bucket, prefix = buckets[tool], f"run-{k}"
            if tool == "haathi":
                store = out / f"haathi-{k}"
                srv.make_store(store, "w2", objects=f"s3://{bucket}/{prefix}")
                fresh_inputs(src, 2.0)()
                row = put(ctx, store, "w2", src)
            else:
                argv: list[str | Path] = (
                    [
                        AWS_BIN,
                        "s3",
                        "cp",
                        "--recursive",
                        "--only-show-errors",
                        "--endpoint-url",
                        srv.endpoint,
                        src,
                        f"s3://{bucket}/{prefix}/",
                    ]
                    if tool == "awscli"
                    else [PY, BENCH / "boto3_upload.py", srv.endpoint, bucket, prefix, src]
                )
                fresh_inputs(src, 2.0)()
                row = run_proc(argv)
            row["s_sync"] = row["s"] + timed_sync()
            row["objects"], row["object_bytes"] = srv.objects(bucket, prefix)
            if tool != "haathi" and row["object_bytes"] != total:
                ctx.note(f"s3w2: {tool} stored {row['object_bytes']} bytes, not {total}")
            return row

        return run

    try:
        trials = alternate(ctx, {t: upload(t) for t in buckets})
        mb_s = {t: total / trials.median(t) / 1e6 for t in buckets}
        best = max(("awscli", "boto3"), key=lambda t: mb_s[t])
        passed = ctx.figure(
            f"W2 throughput into S3, haathi / {best} (the faster peer)",
            mb_s["haathi"] / mb_s[best],
            "x",
            Target(">=", 0.5),
            f"haathi {mb_s['haathi']:.0f} MB/s, aws s3 cp {mb_s['awscli']:.0f} MB/s, boto3 "
            f"upload_file {mb_s['boto3']:.0f} MB/s",
            judged=not ctx.quick,  # 16 MiB files: process start-up dominates
        )
        if ctx.wants_profile(passed):
            bucket = buckets["haathi"]
            srv.make_store(out / "profile", "w2", objects=f"s3://{bucket}/profile")
            profile_put(ctx, "s3w2_ingest", out / "profile", "w2", src)
    finally:
        for b in buckets.values():
            try:
                srv.delete_bucket(b)
            except Exception as exc:
                ctx.note(f"s3w2: deleting bucket {b} failed: {exc}")
        remove(ctx, out)


def pglatency(ctx: Ctx) -> None:
    srv = ctx.use(SERVERS)
    n = scale(ctx).lat_n
    out = fresh_dir(ctx.work / "out-pglatency")
    bucket = "bench-pglatency"
    srv.new_bucket(bucket)
    rng = random.Random(SEED + 4)
    stores = {
        "local": "embedded (SQLite + local packs)",
        "pg_s3": "PostgreSQL + SeaweedFS",
        "pg_dir": "PostgreSQL + local packs",
    }
    clients: dict[str, Any] = {}
    times: dict[str, list[float]] = {k: [] for k in stores}

    def commits(name: str) -> Callable[[int], Row]:
        def run(k: int) -> Row:
            ts = []
            for i in range(n):
                data = rng.randbytes(KiB)
                t0 = time.perf_counter()
                clients[name].put_file(f"lat@master:/r{k}/f{i:04d}.bin", data)
                ts.append(time.perf_counter() - t0)
            times[name] += ts
            return {"median_ms": statistics.median(ts) * 1000, "p95_ms": pct(ts, 0.95) * 1000}

        return run

    try:
        for name in stores:
            if name == "local":
                new_store(out / name, "lat")
            else:
                objects = f"s3://{bucket}/lat" if name == "pg_s3" else None
                srv.make_store(out / name, "lat", objects=objects)
            clients[name] = c = haathi.connect(str(out / name))
            for i in range(5):  # warm-up
                c.put_file(f"lat@master:/warm{i}.bin", rng.randbytes(KiB))
        alternate(ctx, {name: commits(name) for name in stores})
        base = statistics.median(times["local"]) * 1000
        for name in ("pg_s3", "pg_dir"):
            ts = times[name]
            median = statistics.median(ts) * 1000
            passed = ctx.figure(
                f"one-off put_file 1 KiB commit latency, {stores[name]}, median",
                median,
                "ms",
                Target("<", 50, "ms"),
                f"p95 {pct(ts, 0.95) * 1000:.1f} ms, max {max(ts) * 1000:.0f} ms; {len(ts)} "
                f"commits; the embedded store's median {base:.1f} ms",
            )
            if ctx.wants_profile(passed):

                def more(c: Any = clients[name]) -> None:
                    for i in range(50):
                        c.put_file(f"lat@master:/p/f{i:04d}.bin", rng.randbytes(KiB))

                profile_call(ctx, f"pglatency_{name}", more, f"50 commits, {stores[name]}")
    finally:
        for c in clients.values():
            c.close()
        srv.delete_bucket(bucket)
        remove(ctx, out, settle=False)


WORKLOADS = [
    Workload("s3w1", "backends", "W1 into SeaweedFS + PostgreSQL vs the local store", s3w1),
    Workload("s3w2", "backends", "W2 into SeaweedFS vs aws s3 cp and boto3", s3w2),
    Workload("pglatency", "backends", "one-off commits with metadata on PostgreSQL", pglatency),
]
