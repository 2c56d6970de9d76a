"""The production backends: objects in S3 (SeaweedFS), metadata in PostgreSQL, both real
servers on loopback (:mod:`loopback.servers`), started once for the workloads that use them.

- ``s3w1``: W1 (20,000 small files) by the same ``haathi put file -r`` into a SeaweedFS +
  PostgreSQL store, against the embedded local store (and PostgreSQL + a local directory, which
  splits the cost); the objects written to the bucket.
- ``s3w2``: W2 (8 x 128 MiB) into SeaweedFS against ``aws s3 cp --recursive`` and boto3's
  ``upload_file`` to the same server.
- ``pglatency``: one-off ``put_file`` commits with metadata on PostgreSQL (objects in
  SeaweedFS, or in the store directory), against the embedded store.
- ``s3_restore``: reads from SeaweedFS. W1 from a SeaweedFS + PostgreSQL store by ``haathi
  get file -r`` against ``aws s3 sync`` of the same 20,000 files uploaded as objects to another
  bucket of the same server; one 1 GiB file by ``haathi get file -o`` against ``aws s3 cp``.
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

import blake3
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
    Trials,
    Workload,
    alternate,
    pct,
)
from ingest import gen_w1, gen_w2, new_store, profile_put, put, scale
from measure import (
    HAATHI_BIN,
    PY,
    Argv,
    fresh_dir,
    fresh_inputs,
    profile_call,
    profile_process,
    remove,
    run_proc,
    stream_bytes,
    timed_sync,
    version,
    warm,
)
from restore import check_same, load_range, tree_digests

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
    s3 = SeaweedS3()
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


# --------------------------------------------------------------------------------------------
# s3_restore: reading back from SeaweedFS


def gen_big(ctx: Ctx) -> tuple[Path, bytes]:
    """One file as large as W2 (1 GiB; 64 MiB with --quick) of seeded random bytes, made once
    per size; its BLAKE3."""
    sc = scale(ctx)
    size = sc.w2_files * sc.w2_size
    path = ctx.work / "big1" / "big.bin"
    marker = path.parent / f".complete-{size}-{SEED}"
    if not marker.exists():
        fresh_dir(path.parent)
        with open(path, "wb") as fh:
            for i in range(0, size, 64 * MiB):
                fh.write(stream_bytes(f"big1-{i}", min(64 * MiB, size - i)))
        marker.touch()
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return path, h.digest()


# haathi as users run it (its preloader on: started by the set-up's commands, a fork each
# command), and as a whole process (HAATHI_PRELOAD=0: start-up included, as aws's; its peak RSS
# is the reading process's, where the preloaded command's is only its thin client's)
WHO = ("haathi", "haathi_cold", "awscli")


def s3_restore(ctx: Ctx) -> None:
    if not AWS_BIN.exists():
        raise Skipped(f"{AWS_BIN} is missing (pip install awscli)")
    srv = ctx.use(SERVERS)
    src, nbytes = gen_w1(ctx)
    big, big_digest = gen_big(ctx)
    size = big.stat().st_size
    out = fresh_dir(ctx.work / "out-s3-restore")
    store, ours, theirs = out / "store", "bench-s3restore", "bench-s3restore-aws"
    for b in (ours, theirs):
        srv.new_bucket(b)
    ctx.data.update(files=scale(ctx).w1_files, bytes=nbytes, big_bytes=size)
    expected = tree_digests(src)
    aws: list[str | Path] = [AWS_BIN, "s3", "--endpoint-url", srv.endpoint]
    env = {"HAATHI_ADDRESS": str(store)}
    cold = env | {"HAATHI_PRELOAD": "0"}  # (and for profiles: the work in the profiled process)

    def argv(who: str, what: str, dest: Path) -> Argv:
        """W1 into the new directory ``dest`` (``w1``), or the large file to ``dest/big.bin``
        (``big``) or to stdout (``pipe``, dropped); haathi's read cache emptied first (every
        byte comes from S3, as for aws)."""
        if what != "w1":
            dest.mkdir()
        to = dest / "big.bin" if what == "big" else "-"
        if who == "awscli":
            if what == "w1":
                return [*aws, "sync", "--only-show-errors", f"s3://{theirs}/w1/", dest]
            return [*aws, "cp", "--only-show-errors", f"s3://{theirs}/big.bin", to]
        shutil.rmtree(store / "cache", ignore_errors=True)
        if what == "w1":
            return [HAATHI_BIN, "get", "file", "w1@master:/", "-r", "-o", dest]
        return [HAATHI_BIN, "get", "file", "big@master:/big.bin", *(["-o", to] * (to != "-"))]

    def fetch(who: str, what: str) -> Callable[[int], Row]:
        def run(k: int) -> Row:
            dest = out / f"{what}-{who}-{k}"
            row = run_proc(argv(who, what, dest), env=cold if who == "haathi_cold" else env)
            row["s_sync"] = row["s"] + timed_sync()
            if what == "w1":  # kept until the end: deleting 20,000 files slows the disk down
                check_same(who, dest, expected)
                return row
            if what == "big":  # (``pipe``: dropped unchecked; the same bytes as ``big``)
                h = blake3.blake3(max_threads=blake3.blake3.AUTO)
                h.update_mmap(dest / "big.bin")
                if h.digest() != big_digest:
                    raise RuntimeError(f"{who}'s copy of the large file is not the original")
            shutil.rmtree(dest)
            return row

        return run

    def warm_server() -> None:
        """The server's volumes read back (both buckets' objects come from the page cache)."""
        os.sync()
        time.sleep(1.0)
        warm(srv.s3.workdir / "data")

    def trials(what: str) -> tuple[Trials, str]:
        """Each contender's runs of ``what`` (see ``argv``), and what they say."""
        got = alternate(
            ctx, {who: fetch(who, what) for who in WHO}, before=warm_server, key=f"runs_{what}"
        )
        rss = {who: got.median(who, "rss") / MiB for who in ("haathi_cold", "awscli")}
        return got, (
            f"haathi {got.median('haathi'):.2f} s ({got.per_run('haathi')}), as a whole process"
            f" {got.median('haathi_cold'):.2f} s ({got.per_run('haathi_cold')}); aws "
            f"{got.median('awscli'):.2f} s ({got.per_run('awscli')}); peak RSS haathi "
            f"{rss['haathi_cold']:.0f} MiB, aws {rss['awscli']:.0f} MiB; {load_range(got)}"
        )

    try:
        srv.make_store(store, "w1", objects=f"s3://{ours}/store")
        with haathi.connect(str(store)) as c:
            c.create_repo("big")
        put(ctx, store, "w1", src)
        put(ctx, store, "big", big)
        run_proc([*aws, "sync", "--only-show-errors", src, f"s3://{theirs}/w1/"])
        run_proc([*aws, "cp", "--only-show-errors", big, f"s3://{theirs}/big.bin"])
        ctx.settle("stores made")

        w1, detail = trials("w1")
        passed = ctx.figure(
            "W1 from S3: aws s3 sync / haathi get file -r time",
            w1.ratio("awscli", "haathi"),
            "x",
            Target(">=", 3.0),
            detail,
        )
        ctx.figure(
            "the same, haathi as a whole process (no preloader)",
            w1.ratio("awscli", "haathi_cold"),
            "x",
            None,
        )
        if ctx.wants_profile(passed):
            profile_process(ctx, "s3_restore_w1", argv("haathi", "w1", out / "profile"), cold)

        to_file, detail = trials("big")
        mb_s = {who: size / to_file.median(who, "s_sync") / 1e6 for who in WHO}
        passed = ctx.figure(
            f"{size // MiB} MiB file from S3 to a file: haathi get file / aws s3 cp throughput",
            to_file.ratio("awscli", "haathi"),
            "x",
            Target(">=", 1.0),
            f"{detail}; MB/s with the sync after: haathi {mb_s['haathi']:.0f} (whole process "
            f"{mb_s['haathi_cold']:.0f}), aws {mb_s['awscli']:.0f}",
            judged=not ctx.quick,  # 64 MiB: process start-up dominates
        )
        ctx.figure(
            "the same, haathi as a whole process (no preloader)",
            to_file.ratio("awscli", "haathi_cold"),
            "x",
            None,
        )
        if ctx.wants_profile(passed):
            profile_process(ctx, "s3_restore_big", argv("haathi", "big", out / "prof-big"), cold)
        to_stdout, detail = trials("pipe")
        ctx.figure(
            "the same to stdout (dropped): haathi get file / aws s3 cp -",
            to_stdout.ratio("awscli", "haathi"),
            "x",
            None,
            detail,
        )
    finally:
        for b in (ours, theirs):
            try:
                srv.delete_bucket(b)
            except Exception as exc:
                ctx.note(f"s3_restore: deleting bucket {b} failed: {exc}")
        remove(ctx, out)


WORKLOADS = [
    Workload("s3w1", "backends", "W1 into SeaweedFS + PostgreSQL vs the local store", s3w1),
    Workload("s3w2", "backends", "W2 into SeaweedFS vs aws s3 cp and boto3", s3w2),
    Workload("pglatency", "backends", "one-off commits with metadata on PostgreSQL", pglatency),
    Workload(
        "s3_restore",
        "backends",
        "W1 and a 1 GiB file from SeaweedFS: get file vs aws s3 sync / cp",
        s3_restore,
    ),
]
