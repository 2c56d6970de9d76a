"""``haathi serve``: a server process on loopback (:func:`loopback.servers.haathi_serve`).

- ``server_io``: ``put_file`` of a 1 GiB file (streamed from its path) and ``open_file`` of it
  back to a file, through the embedded client and through the server on the same store (local
  directory + SQLite). Baselines in the same run: reading the file, ``cp`` (+ ``sync``).
- ``server_commits``: 32 clients (4 processes x 8 threads, a ``Client`` each) x 50 one-off
  ``put_file`` commits to one branch; no error, exactly 1,600 commits and files. On the local
  store and on SeaweedFS S3 + PostgreSQL; baseline: one client alone.
- ``server_inspect``: open-loop ``inspect commit`` at 200 requests/s (scheduled send times, 2
  processes x 8 threads) for 25 s, latency from the scheduled time; with auth off, then on (a
  ``repoReader``'s token). Baselines: one client alone, and embedded.
- ``server_workers``: closed-loop ``inspect commit`` throughput of ``haathi serve --workers 2``
  against ``--workers 1`` on the same store (16 keep-alive connections of raw HTTP/1.1 from
  one asyncio process, so that the load generator costs little of the 2 cores), with the
  servers' and the generator's CPU time per request.

The load generators are child processes: ``python bench/server.py '<json>'``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from backends import SERVERS
from harness import Ctx, GiB, KiB, MiB, Row, Target, Workload, alternate, loadavg, medians, pct
from measure import (
    call_child,
    child_main,
    child_result,
    fresh_dir,
    process_cpu_s,
    process_peak_rss,
    remove,
    spawn_child,
    stream_bytes,
    timed_sync,
    warm,
)

import haathi
from loopback.servers import haathi_serve

SCRIPT = Path(__file__).resolve()
BLOCK = 64 * MiB  # the random block the big file repeats
STAMP_EVERY = 16 * KiB  # a counter this often (< the chunker's 64 KiB minimum): no chunk dedupes


@dataclass
class Served:
    """A running ``haathi serve``: its URL, and its CPU seconds so far."""

    proc: subprocess.Popen[str]
    url: str

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def tree_cpu_s(self) -> float:
        """CPU seconds of the server and its worker processes (``--workers N``) so far."""
        return self.cpu_s() + sum(process_cpu_s(pid) for pid in _children(self.proc.pid))


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


@contextlib.contextmanager
def served(store: Path, *args: str) -> Iterator[Served]:
    with haathi_serve(store, *args) as (proc, url, _s3):
        yield Served(proc, url)


# --------------------------------------------------------------------------------------------
# server_io: 1 GiB put and get, embedded vs remote


def gen_file(path: Path, size: int, label: str) -> bytes:
    """``size`` bytes: a seeded random 64 MiB block repeated, an 8-byte counter stamped every
    16 KiB (no content-defined chunk repeats). Returns the file's BLAKE3."""
    block = bytearray(stream_bytes(f"server-io:{label}", BLOCK))
    digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
    counter = 0
    with open(path, "wb") as fh:
        for start in range(0, size, BLOCK):
            n = min(BLOCK, size - start)
            for off in range(0, n, STAMP_EVERY):
                block[off : off + 8] = counter.to_bytes(8, "big")
                counter += 1
            fh.write(memoryview(block)[:n])
            digest.update(memoryview(block)[:n])
    return digest.digest()


def file_digest(path: Path) -> bytes:
    digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
    digest.update_mmap(str(path))
    return digest.digest()


def server_io(ctx: Ctx) -> None:
    size = 128 * MiB if ctx.quick else GiB
    wd = fresh_dir(ctx.work / "server_io")
    need = size * 8 + 4 * GiB
    if shutil.disk_usage(wd).free < need:
        ctx.note(f"server_io: needs {need / GiB:.1f} GiB free under {wd}")
    store = wd / "store"
    haathi.init(str(store)).close()
    mib = size / MiB
    try:
        with served(store) as srv:
            clients = {"embedded": haathi.connect(str(store)), "remote": haathi.connect(srv.url)}

            def timed(row: Row, key: str, op: Callable[..., object], *args: Any) -> None:
                """``op(*args)`` as ``row[key]`` in MiB/s, with the server's and this
                process's CPU seconds, and the load."""
                load, cpu, t0 = loadavg(), srv.cpu_s(), time.perf_counter()
                mine = time.process_time()
                op(*args)
                row[key] = mib / (time.perf_counter() - t0)
                row[f"{key}_server_cpu_s"], row[f"{key}_load"] = srv.cpu_s() - cpu, load
                row[f"{key}_client_cpu_s"] = time.process_time() - mine

            def one_run(k: int) -> Row:
                """Both clients put a new file each (the store dedupes across repos); then
                the baselines; then each gets its file back to a file; then reads it."""
                order = ["embedded", "remote"][:: 1 if k % 2 == 0 else -1]
                row: Row = {"order": order}
                files = {m: (wd / f"in-{k}-{m}.bin") for m in order}
                digests = {m: gen_file(files[m], size, f"{k}:{m}") for m in order}
                targets = {m: f"r{k}{m[0]}@master:/big.bin" for m in order}
                for m in order:
                    clients[m].create_repo(f"r{k}{m[0]}")
                    warm(files[m])
                    timed_sync()
                    timed(row, f"{m}_put", clients[m].put_file, targets[m], str(files[m]))
                    timed_sync()
                # the baselines after the puts: a put right after cp and the deletion of its
                # copy ran up to 3x faster than one after a put
                first = files[order[0]]
                timed(row, "read", warm, first)
                t0 = time.perf_counter()
                subprocess.run(["cp", str(first), str(wd / "cp.bin")], check=True)
                t_cp = time.perf_counter() - t0
                row["cp"], row["cp_sync"] = mib / t_cp, mib / (t_cp + timed_sync())
                (wd / "cp.bin").unlink()
                timed_sync()
                for m in order:
                    out = wd / f"out-{k}-{m}.bin"
                    timed(row, f"{m}_get", _copy_out, clients[m], targets[m], out)
                    if file_digest(out) != digests[m]:
                        raise AssertionError(f"{m} get of run {k}: the bytes differ")
                    out.unlink()
                    files[m].unlink()
                    timed_sync()
                for m in order:  # informative: the transport alone, no output file to write
                    timed(row, f"{m}_read", _read_all, clients[m], targets[m])
                for op in ("put", "get", "read"):
                    row[f"{op}_ratio"] = row[f"remote_{op}"] / row[f"embedded_{op}"]
                return row

            trials = alternate(ctx, {"io": one_run})
            for c in clients.values():
                c.close()
            ctx.data["server_peak_rss_mib"] = process_peak_rss(srv.proc.pid) / MiB
    finally:
        remove(ctx, wd, settle=False)
    m = medians(trials.rows["io"])
    what = f"{size / GiB:g} GiB" if size >= GiB else f"{size / MiB:g} MiB"
    for op in ("put", "get"):
        ctx.figure(
            f"remote / embedded {op} file of {what} (median of per-run ratios)",
            m[f"{op}_ratio"],
            "x",
            Target(">=", 0.5),
            f"per run {trials.per_run('io', f'{op}_ratio')}; remote {m[f'remote_{op}']:.0f} "
            f"MiB/s, embedded {m[f'embedded_{op}']:.0f} MiB/s; cp+sync {m['cp_sync']:.0f}, "
            f"cp {m['cp']:.0f}, read {m['read']:.0f} MiB/s",
        )
    gib = size / GiB
    ctx.figure(
        f"remote / embedded open_file of {what}, bytes dropped",
        m["read_ratio"],
        "x",
        Target(">=", 0.7),
        f"per run {trials.per_run('io', 'read_ratio')}; remote {m['remote_read']:.0f} MiB/s, "
        f"embedded {m['embedded_read']:.0f} MiB/s (the transport without the output file); "
        f"CPU per GiB: remote {m['remote_read_server_cpu_s'] / gib:.2f} s server + "
        f"{m['remote_read_client_cpu_s'] / gib:.2f} s client, embedded "
        f"{m['embedded_read_client_cpu_s'] / gib:.2f} s; load {m['remote_read_load']:.1f}",
    )


def _copy_out(client: Any, target: str, out: Path) -> None:
    with client.open_file(target) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 8 * MiB)


def _read_all(client: Any, target: str) -> None:
    with client.open_file(target) as src:
        while src.read(8 * MiB):
            pass


# --------------------------------------------------------------------------------------------
# server_commits: 32 clients x 50 one-off commits to one branch


def child_commits(
    url: str, repo: str, proc: int, threads: int, n: int, start_at: float
) -> dict[str, Any]:
    """``threads`` clients, each ``n`` one-off commits to ``repo@master`` from ``start_at``."""
    clients = [haathi.connect(url) for _ in range(threads)]
    for c in clients:
        c.inspect_repo(repo)  # connected before the start
    latency: list[float] = []
    errors: list[str] = []
    starts: list[float] = []
    ends: list[float] = []

    def work(t: int) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        starts.append(time.time())
        for i in range(n):
            t0 = time.perf_counter()
            try:
                clients[t].put_file(
                    f"{repo}@master:/p{proc}/t{t:02d}/f{i:03d}", f"{t} {i}\n".encode()
                )
            except Exception as exc:  # reported, and the round fails
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latency.append(time.perf_counter() - t0)
        ends.append(time.time())

    _threads(work, range(threads))
    return {"latency_s": latency, "errors": errors, "first": min(starts), "last": max(ends)}


def _threads(fn: Callable[[Any], None], args: Any) -> None:
    pool = [threading.Thread(target=fn, args=(a,)) for a in args]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


def _solo(url: str, repo: str, n: int) -> list[float]:
    """One client alone: ``n`` one-off commits (after 5 warm-up ones)."""
    out = []
    with haathi.connect(url) as c:
        c.create_repo(repo)
        for i in range(n + 5):
            t0 = time.perf_counter()
            c.put_file(f"{repo}@master:/f{i:04d}", f"solo {i}\n".encode())
            if i >= 5:
                out.append(time.perf_counter() - t0)
    return out


def server_commits(ctx: Ctx) -> None:
    procs, threads, n = 4, 8, 5 if ctx.quick else 50
    total = procs * threads * n
    ctx.data.update(clients=procs * threads, commits_per_client=n)
    wd = fresh_dir(ctx.work / "server_commits")
    haathi.init(str(wd / "local")).close()
    srv = ctx.use(SERVERS)
    srv.new_bucket("bench-serve")
    haathi.init(
        str(wd / "s3pg"),
        db=srv.pg.create_database(),
        objects="s3://bench-serve/store",
        s3_endpoint=srv.endpoint,
    ).close()
    try:
        with served(wd / "local") as local, served(wd / "s3pg") as s3pg:

            def commits(server: Served) -> Callable[[int], Row]:
                def run(k: int) -> Row:
                    load, cpu = loadavg(), server.cpu_s()
                    solo = _solo(server.url, f"solo{k}", 50 if ctx.quick else 100)
                    repo = f"c{k}"
                    with haathi.connect(server.url) as c:
                        c.create_repo(repo)
                    start_at = time.time() + 3.0 + 0.3 * procs  # after every child connected
                    spec = {
                        "url": server.url,
                        "repo": repo,
                        "threads": threads,
                        "n": n,
                        "start_at": start_at,
                    }
                    done = [
                        child_result(p)
                        for p in [
                            spawn_child(SCRIPT, "commits", proc=i, **spec) for i in range(procs)
                        ]
                    ]
                    errors = [e for r in done for e in r["errors"]]
                    if errors:
                        raise AssertionError(f"{len(errors)} commits failed: {errors[:3]}")
                    _verify(server.url, repo, procs, threads, n)
                    lat = [x for r in done for x in r["latency_s"]]
                    wall = max(r["last"] for r in done) - min(r["first"] for r in done)
                    return {
                        "commits_per_s": total / wall,
                        "p50_ms": 1000 * pct(lat, 0.5),
                        "p99_ms": 1000 * pct(lat, 0.99),
                        "max_ms": 1000 * max(lat),
                        "solo_p50_ms": 1000 * pct(solo, 0.5),
                        "solo_commits_per_s": len(solo) / sum(solo),
                        "server_cpu_s": server.cpu_s() - cpu,
                        "load": load,
                    }

                return run

            trials = alternate(ctx, {"local": commits(local), "s3pg": commits(s3pg)})
    finally:
        srv.delete_bucket("bench-serve")
        remove(ctx, wd, settle=False)
    for backend, label in (("local", "local dir + SQLite"), ("s3pg", "SeaweedFS S3 + PostgreSQL")):
        m = medians(trials.rows[backend])
        ctx.figure(
            f"{procs * threads} clients x {n} one-off commits to one branch ({label}): "
            "errors, missing commits or files",
            0,
            "",
            Target("<=", 0),
            f"{total:,} commits and files verified in each run",
        )
        ctx.figure(
            f"{procs * threads} clients x {n} one-off commits ({label}): throughput",
            m["commits_per_s"],
            "commits/s",
            None,
            f"per run {trials.per_run(backend, 'commits_per_s', spec='.0f')}; p50 "
            f"{m['p50_ms']:.0f} ms, p99 {m['p99_ms']:.0f} ms per commit; one client alone "
            f"{m['solo_commits_per_s']:.0f}/s (p50 {m['solo_p50_ms']:.1f} ms)",
        )


def _verify(url: str, repo: str, procs: int, threads: int, n: int) -> None:
    with haathi.connect(url) as c:
        commits = len(c.list_commit(f"{repo}@master"))
        if commits != procs * threads * n:
            raise AssertionError(f"{repo}@master has {commits} commits, not {procs * threads * n}")
        files = {f.path for f in c.walk_file(f"{repo}@master:/") if f.type == "file"}
    want = {
        f"/p{p}/t{t:02d}/f{i:03d}" for p in range(procs) for t in range(threads) for i in range(n)
    }
    if files != want:
        raise AssertionError(f"{len(want - files)} files missing, {len(files - want)} unexpected")


# --------------------------------------------------------------------------------------------
# server_inspect: inspect commit at a fixed 200 requests/s


def child_inspect(
    url: str,
    target: str,
    rate: float,
    duration: float,
    proc: int,
    procs: int,
    threads: int,
    token: str | None,
    start_at: float,
) -> dict[str, Any]:
    """This process's share of the scheduled requests (every ``procs``-th), sent by
    ``threads`` clients: (due, start, end) of each."""
    slots = iter(range(proc, int(rate * duration), procs))
    lock = threading.Lock()
    records: list[tuple[float, float, float]] = []
    errors: list[str] = []
    clients = [haathi.connect(url, token=token) for _ in range(threads)]
    for c in clients:
        c.inspect_commit(target)  # connected and warm before the start

    def work(c: Any) -> None:
        while True:
            with lock:
                slot = next(slots, None)
            if slot is None:
                return
            due = start_at + slot / rate
            time.sleep(max(0.0, due - time.time()))
            start = time.time()
            try:
                c.inspect_commit(target)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            records.append((due, start, time.time()))

    _threads(work, clients)
    return {"records": records, "errors": errors}


def server_inspect(ctx: Ctx) -> None:
    rate, duration, procs, threads = 200.0, 5.0 if ctx.quick else 25.0, 2, 8
    wd = fresh_dir(ctx.work / "server_inspect")
    store, target = wd / "store", "data@master"
    with haathi.init(str(store)) as c:
        c.create_repo("data")
        for i in range(200):
            c.put_file(f"data@master:/f{i:04d}", f"{i}\n".encode())
    ctx.data.update(rate=rate, duration_s=duration, procs=procs, threads=threads)
    spec = {
        "target": target,
        "rate": rate,
        "duration": duration,
        "procs": procs,
        "threads": threads,
    }
    try:
        with served(store) as srv, haathi.connect(str(store)) as embedded:

            def open_loop(token: str | None) -> Callable[[int], Row]:
                def run(k: int) -> Row:
                    with haathi.connect(srv.url, token=token) as alone:
                        row = {
                            f"{name}_p50_ms": _p50_ms(c, target)
                            for name, c in (("embedded", embedded), ("alone", alone))
                        }
                    load, cpu = loadavg(), srv.cpu_s()
                    start_at = time.time() + 3.0
                    done = [
                        child_result(p)
                        for p in [
                            spawn_child(
                                SCRIPT,
                                "inspect",
                                url=srv.url,
                                token=token,
                                proc=i,
                                start_at=start_at,
                                **spec,
                            )
                            for i in range(procs)
                        ]
                    ]
                    errors = [e for r in done for e in r["errors"]]
                    if errors:
                        raise AssertionError(f"{len(errors)} requests failed: {errors[:3]}")
                    recs = [x for r in done for x in r["records"]]
                    lat = [end - due for due, _, end in recs]
                    span = max(end for _, _, end in recs) - start_at
                    return row | {
                        "requests": len(recs),
                        "achieved_rate": len(recs) / span,
                        "p50_ms": 1000 * pct(lat, 0.5),
                        "p90_ms": 1000 * pct(lat, 0.9),
                        "p99_ms": 1000 * pct(lat, 0.99),
                        "send_lag_p99_ms": 1000 * pct([s - d for d, s, _ in recs], 0.99),
                        "server_cpu_ms_per_request": 1000 * (srv.cpu_s() - cpu) / len(recs),
                        "load": load,
                    }

                return run

            off = alternate(ctx, {"auth_off": open_loop(None)}, key="auth_off")
            with haathi.connect(srv.url) as anon:
                root = anon.auth_activate()
            with haathi.connect(srv.url, token=root) as admin:
                reader = admin.get_auth_token("user:reader")
                admin.set_repo_roles("data", "repoReader", "user:reader")
            on = alternate(ctx, {"auth_on": open_loop(reader)}, key="auth_on")
    finally:
        remove(ctx, wd, settle=False)
    for trials, phase in ((off, "auth_off"), (on, "auth_on")):
        m = medians(trials.rows[phase])
        name = "auth off" if phase == "auth_off" else "auth on, a repoReader's token"
        ctx.figure(
            f"inspect commit at {rate:.0f} requests/s for {duration:.0f} s, {name}: p50 from "
            "the scheduled time",
            m["p50_ms"],
            "ms",
            Target("<", 10, "ms"),
            f"per run {trials.per_run(phase, 'p50_ms', spec='.1f')}; p90 {m['p90_ms']:.1f}, p99 "
            f"{m['p99_ms']:.1f} ms at {m['achieved_rate']:.0f}/s; server CPU "
            f"{m['server_cpu_ms_per_request']:.2f} ms per request; one client alone "
            f"{m['alone_p50_ms']:.2f} ms, embedded {m['embedded_p50_ms']:.2f} ms",
        )


def _p50_ms(c: Any, target: str) -> float:
    """The median of 200 ``inspect commit`` calls (after 10)."""
    times = []
    for i in range(210):
        t0 = time.perf_counter()
        c.inspect_commit(target)
        if i >= 10:
            times.append(time.perf_counter() - t0)
    return 1000 * pct(times, 0.5)


# --------------------------------------------------------------------------------------------
# server_workers: inspect commit throughput, --workers 2 vs 1


def child_throughput(url: str, path: str, connections: int, warmup: float, duration: float
                     ) -> dict[str, Any]:  # fmt: skip
    """``connections`` keep-alive connections, each sending ``GET path`` as soon as its last
    answer came: the requests answered (200) within ``duration`` after ``warmup``, this
    process's CPU seconds then, and which worker answered each connection."""
    import asyncio
    import os
    import re
    from urllib.parse import urlsplit

    u = urlsplit(url)
    request = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode()
    length = re.compile(rb"content-length: *(\d+)", re.I)
    worker = re.compile(rb"x-haathi-worker: *(\d+)", re.I)
    done: list[int] = []
    answered: list[int] = []  # warm-up included
    workers: list[str] = []

    async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """One request; the worker that answered."""
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        found = length.search(head)
        body = await reader.readexactly(int(found[1]) if found else 0)
        if not head.startswith(b"HTTP/1.1 200") or b'"id"' not in body:
            raise RuntimeError(f"unexpected answer: {head[:200]!r} {body[:200]!r}")
        w = worker.search(head)
        return "-" if w is None else w[1].decode()

    async def connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, start: float, stop: float
    ) -> None:
        n = total = 0
        while (now := time.perf_counter()) < stop:
            await ask(reader, writer)
            n += now >= start
            total += 1
        done.append(n)
        answered.append(total)
        writer.close()

    async def main() -> float:
        # one connection after the other, each answered once: a worker accepts the next
        # while the other may be busy (opened at once, they would all go to the first awake)
        opened = []
        for _ in range(connections):
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
            workers.append(await ask(reader, writer))
            opened.append((reader, writer))
        t0 = time.perf_counter()
        start, stop = t0 + warmup, t0 + warmup + duration
        cpu = [0.0]

        async def mark() -> None:
            await asyncio.sleep(warmup)
            cpu[0] = time.process_time()

        await asyncio.gather(mark(), *(connection(r, w, start, stop) for r, w in opened))
        return time.process_time() - cpu[0]

    cpu_s = asyncio.run(main())
    return {"requests": sum(done), "rate": sum(done) / duration, "client_cpu_s": cpu_s,
            "answered": sum(answered),
            "per_worker": {w: workers.count(w) for w in sorted(set(workers))},
            "pid": os.getpid()}  # fmt: skip


def server_workers(ctx: Ctx) -> None:
    connections, warmup, duration = 16, 2.0, 3.0 if ctx.quick else 10.0
    wd = fresh_dir(ctx.work / "server_workers")
    store, repo = wd / "store", "data"
    with haathi.init(str(store)) as c:
        c.create_repo(repo)
        for i in range(200):
            c.put_file(f"{repo}@master:/f{i:04d}", f"{i}\n".encode())
    path = f"/v1/repos/{repo}/commits/master"
    ctx.data.update(connections=connections, duration_s=duration, commits=200)
    try:
        with served(store, "--s3-bind", "none") as one, \
                served(store, "--s3-bind", "none", "--workers", "2") as two:  # fmt: skip

            def closed_loop(srv: Served) -> Callable[[int], Row]:
                def run(k: int) -> Row:
                    load, cpu = loadavg(), srv.tree_cpu_s()
                    r = call_child(
                        SCRIPT, "throughput", url=srv.url, path=path, connections=connections,
                        warmup=warmup, duration=duration,
                    )  # fmt: skip
                    return {
                        "rate": r["rate"],
                        "server_cpu_ms": 1000 * (srv.tree_cpu_s() - cpu) / r["answered"],
                        "client_cpu_ms": 1000 * r["client_cpu_s"] / r["requests"],
                        "split": "/".join(str(n) for n in r["per_worker"].values()),
                        "load": load,
                    }

                return run

            trials = alternate(ctx, {"workers_1": closed_loop(one), "workers_2": closed_loop(two)})
    finally:
        remove(ctx, wd, settle=False)
    one_m, two_m = medians(trials.rows["workers_1"]), medians(trials.rows["workers_2"])
    splits = ", ".join(str(r["split"]) for r in trials.rows["workers_2"])
    ctx.figure(
        "inspect commit throughput, haathi serve --workers 2 / --workers 1 (median of per-run "
        "ratios)",
        trials.ratio("workers_2", "workers_1", "rate"),
        "x",
        Target(">=", 1.7),
        f"per run {trials.per_run('workers_2', 'rate', spec='.0f')} vs "
        f"{trials.per_run('workers_1', 'rate', spec='.0f')} requests/s; server CPU "
        f"{two_m['server_cpu_ms']:.2f} vs {one_m['server_cpu_ms']:.2f} ms per request; load "
        f"generator {two_m['client_cpu_ms']:.2f} ms per request; connections per worker "
        f"{splits}; load {two_m['load']:.1f}",
    )


def _with_allocator(run: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    """``run`` with the malloc settings the CLI (so the server) runs with, for this process's
    clients."""

    def tuned(ctx: Ctx) -> None:
        from haathi import allocator

        ctx.meta["malloc_tuned"] = allocator.tune()
        try:
            run(ctx)
        finally:
            ctx.settle(f"{ctx.name} done")

    return tuned


WORKLOADS = [
    Workload(
        "server_io", "server", "1 GiB put and get, remote vs embedded", _with_allocator(server_io)
    ),
    Workload(
        "server_commits",
        "server",
        "32 clients x 50 one-off commits to one branch",
        _with_allocator(server_commits),
    ),
    Workload(
        "server_inspect",
        "server",
        "inspect commit at 200 requests/s, auth off and on",
        _with_allocator(server_inspect),
    ),
    Workload(
        "server_workers",
        "server",
        "inspect commit throughput, serve --workers 2 vs 1",
        _with_allocator(server_workers),
    ),
]

if __name__ == "__main__":
    sys.exit(
        child_main(
            {"commits": child_commits, "inspect": child_inspect, "throughput": child_throughput}
        )
    )
