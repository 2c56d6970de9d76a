"""Benchmarks of ``haathi serve`` (issue 6). Run by ``bench/run.py --only server`` (all three)
or ``--only server_io,server_commits,server_inspect``; see bench/README.md.

- ``server_io``: ``put_file`` of a 1 GiB file (from its path, streamed) and ``open_file`` of it
  back to a file, through the embedded client and through a ``haathi serve`` process on the
  same store (local directory + SQLite) over loopback. Baselines in the same run: ``cp`` of
  the file (+ ``sync``) and reading it (page cache). Target: remote >= 50% of embedded.
- ``server_commits``: 32 clients (4 processes x 8 threads, each thread its own ``Client``) x 50
  one-off ``put_file`` commits of a small distinct file to one branch, against a server
  process; asserts no error, exactly 1,600 new commits and all 1,600 files. Throughput and
  p50/p99 commit latency; baseline: one client alone. On the local store and, with
  ``tests/servers.py``, on SeaweedFS (S3) + PostgreSQL.
- ``server_inspect``: open-loop ``inspect commit repo@master`` at 200 requests/s (scheduled
  send times, 2 processes x 8 threads) for 25 s; latency counted from the scheduled time.
  Target p50 < 10 ms; baselines: the same call embedded and from one client alone.

Child processes: ``python bench/server.py commits|inspect '<json>'`` (the load generators).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
HAATHI_BIN = Path(sys.executable).parent / "haathi"
SERVER_WORKLOADS = ("server_io", "server_commits", "server_inspect")
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
BLOCK = 64 * MiB  # the random block the big file repeats
STAMP_EVERY = 16 * KiB  # a counter this often (< the chunker's 64 KiB minimum): no chunk dedupes


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return s[k]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def _has_s3_gateway() -> bool:
    help_text = subprocess.run(
        [str(HAATHI_BIN), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return "--s3-bind" in help_text


class ServeProcess:
    """``haathi serve --store DIR --bind 127.0.0.1:PORT`` as a child process."""

    def __init__(self, store: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        argv = [str(HAATHI_BIN), "serve", "--store", str(store), "--bind",
                f"127.0.0.1:{self.port}"]  # fmt: skip
        if _has_s3_gateway():  # on a free port of its own (by default it takes port + 1)
            argv += ["--s3-bind", f"127.0.0.1:{_free_port()}"]
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haathi serve exited ({self.proc.returncode}); see {log}")
            try:
                if httpx.get(f"{self.url}/v1/store", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haathi serve did not come up in 60 s; see {log}")
            time.sleep(0.1)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KiB
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------------------------
# server_io: 1 GiB put and get, embedded vs remote


def gen_file(h: ModuleType, path: Path, size: int, label: str) -> bytes:
    """``size`` bytes: one seeded random 64 MiB block repeated, an 8-byte counter stamped
    every 16 KiB (so no content-defined chunk repeats). Returns the BLAKE3 of the file."""
    import blake3

    block = bytearray(h.stream_bytes(f"server-io:{label}", BLOCK))
    digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
    counter = 0
    with open(path, "wb") as fh:
        for start in range(0, size, BLOCK):
            n = min(BLOCK, size - start)
            for off in range(0, n, STAMP_EVERY):
                block[off : off + 8] = counter.to_bytes(8, "big")
                counter += 1
            view = memoryview(block)[:n]
            fh.write(view)
            digest.update(view)
    return digest.digest()


def file_digest(path: Path) -> bytes:
    import blake3

    digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
    digest.update_mmap(str(path))
    return digest.digest()


def read_all(path: Path) -> float:
    buf = bytearray(8 * MiB)
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass
    return time.perf_counter() - t


def _copy_out(client: Any, target: str, out: Path) -> None:
    with client.open_file(target) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 8 * MiB)


def server_io(ctx: Any, h: ModuleType) -> None:
    import haathi

    size = 128 * MiB if ctx.args.quick else GiB
    wd = ctx.work / "server_io"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    need = size * (6 + 2 * ctx.runs) + 4 * GiB
    free = shutil.disk_usage(wd).free
    if free < need:
        ctx.note(f"server_io skipped: {free / GiB:.1f} GiB free under {wd}, needs {need / GiB:.1f}")
        return
    store = wd / "store"
    haathi.init(str(store)).close()
    srv = ServeProcess(store, wd / "serve.log")
    res: dict[str, Any] = {"bytes": size, "server_url": srv.url, "runs": []}
    ctx.results["server_io"] = res
    mib = size / MiB

    def timed(run: dict[str, Any], k: int, mode: str, what: str, op: Any, *args: Any) -> None:
        """``op(*args)`` timed into ``run`` as ``{mode}_{what}_*``: MiB/s, the server's CPU
        seconds, the load at its start."""
        load, cpu = _load(), srv.cpu_s()
        t = time.perf_counter()
        op(*args)
        dt = time.perf_counter() - t
        run[f"{mode}_{what}_mib_s"] = mib / dt
        run[f"{mode}_{what}_server_cpu_s"] = srv.cpu_s() - cpu
        run[f"{mode}_{what}_load"] = load
        ctx.log(f"server_io run {k} {mode} {what}: {mib / dt:.0f} MiB/s ({dt:.2f} s, load {load})")

    try:
        clients = {"embedded": haathi.connect(str(store)), "remote": haathi.connect(srv.url)}
        for k in range(ctx.runs):
            order = ["embedded", "remote"] if k % 2 == 0 else ["remote", "embedded"]
            run: dict[str, Any] = {"order": order}
            files = {}
            for mode in order:  # a new file each (the store dedupes across repos)
                path = wd / f"in-{k}-{mode}.bin"
                files[mode] = (path, gen_file(h, path, size, f"{k}:{mode}"))
            os.sync()
            for mode in order:
                path, _ = files[mode]
                c = clients[mode]
                repo = f"r{k}{mode[0]}"
                c.create_repo(repo)
                h.warm(path)
                os.sync()
                timed(run, k, mode, "put", c.put_file, f"{repo}@master:/big.bin", str(path))
                os.sync()
            # baselines, after the puts (a put right after cp and the deletion of its copy ran
            # up to 3x faster than one that followed a put): reading the cached file, cp + sync
            run["read_mib_s"] = mib / read_all(files[order[0]][0])
            h.warm(files[order[0]][0])
            t = time.perf_counter()
            subprocess.run(["cp", str(files[order[0]][0]), str(wd / "cp.bin")], check=True)
            t_cp = time.perf_counter() - t
            t_sync = h.timed_sync()
            run["cp_mib_s"] = mib / t_cp
            run["cp_sync_mib_s"] = mib / (t_cp + t_sync)
            (wd / "cp.bin").unlink()
            os.sync()
            for mode in order:
                path, want = files[mode]
                c = clients[mode]
                out = wd / f"out-{k}-{mode}.bin"
                timed(run, k, mode, "get", _copy_out, c, f"r{k}{mode[0]}@master:/big.bin", out)
                if file_digest(out) != want:
                    raise AssertionError(f"{mode} get of run {k}: the bytes differ")
                out.unlink()
                path.unlink()
                os.sync()
            for mode in order:  # informative: the transport alone (no output file to write)
                c = clients[mode]
                t = time.perf_counter()
                with c.open_file(f"r{k}{mode[0]}@master:/big.bin") as src:
                    while src.read(8 * MiB):
                        pass
                run[f"{mode}_read_mib_s"] = mib / (time.perf_counter() - t)
            run["put_ratio"] = run["remote_put_mib_s"] / run["embedded_put_mib_s"]
            run["get_ratio"] = run["remote_get_mib_s"] / run["embedded_get_mib_s"]
            run["read_ratio"] = run["remote_read_mib_s"] / run["embedded_read_mib_s"]
            res["runs"].append(
                {key: round(v, 3) if isinstance(v, float) else v for key, v in run.items()}
            )
            ctx.save()
        for c in clients.values():
            c.close()
        res["server_peak_rss_mib"] = round(srv.peak_rss() / MiB, 1)
    finally:
        srv.stop()
    runs = res["runs"]

    def med(key: str) -> float:
        return float(h.median([r[key] for r in runs]))

    for key in (
        "read_mib_s",
        "cp_mib_s",
        "cp_sync_mib_s",
        "embedded_put_mib_s",
        "remote_put_mib_s",
        "embedded_get_mib_s",
        "remote_get_mib_s",
        "put_ratio",
        "get_ratio",
        "embedded_read_mib_s",
        "remote_read_mib_s",
        "read_ratio",
    ):
        res[key] = round(med(key), 3)
    loads = [
        r[f"{m}_{op}_load"] for r in runs for m in ("embedded", "remote") for op in ("put", "get")
    ]
    res["load_range"] = [min(loads), max(loads)]
    what = f"{size / GiB:g} GiB" if size >= GiB else f"{size / MiB:g} MiB"
    for op in ("put", "get"):
        ratio = res[f"{op}_ratio"]
        ctx.check(
            f"remote / embedded {op} file of {what} (median of per-run ratios)",
            round(ratio, 2),
            "x",
            ">= 0.5",
            ratio >= 0.5,
            f"remote {res[f'remote_{op}_mib_s']:.0f} MiB/s, embedded "
            f"{res[f'embedded_{op}_mib_s']:.0f} MiB/s; cp+sync {res['cp_sync_mib_s']:.0f}, "
            f"cp {res['cp_mib_s']:.0f}, read {res['read_mib_s']:.0f} MiB/s; "
            f"load {min(loads)}-{max(loads)}",
        )
    ctx.check(
        f"remote / embedded open_file of {what}, bytes dropped (informative)",
        round(res["read_ratio"], 2), "x", "-", None,
        f"remote {res['remote_read_mib_s']:.0f} MiB/s, embedded "
        f"{res['embedded_read_mib_s']:.0f} MiB/s: the transport without the output file",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# server_commits: 32 clients x 50 one-off commits to one branch


def _spawn(kind: str, spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), kind, json.dumps(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _collect(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"load generator failed ({p.returncode}): {stderr[-2000:]}")
        out.append(json.loads(stdout))
    return out


def commit_round(url: str, repo: str, procs: int, threads: int, per_client: int) -> dict[str, Any]:
    """``procs`` x ``threads`` clients, each ``per_client`` one-off commits to repo@master."""
    start_at = time.time() + 3.0 + 0.3 * procs  # after every child has connected
    children = [
        _spawn("commits", {"url": url, "repo": repo, "proc": p, "threads": threads,
                           "n": per_client, "start_at": start_at})
        for p in range(procs)
    ]  # fmt: skip
    results = _collect(children)
    lat = [x for r in results for x in r["latency_s"]]
    errors = [e for r in results for e in r["errors"]]
    first = min(r["first_start"] for r in results)
    last = max(r["last_end"] for r in results)
    return {
        "latency_s": lat,
        "errors": errors,
        "wall_s": last - first,
        "late_start_s": max(0.0, first - start_at),
    }


def commits_child(spec: dict[str, Any]) -> None:
    import haathi

    url, repo, proc, n = spec["url"], spec["repo"], spec["proc"], spec["n"]
    clients = [haathi.connect(url) for _ in range(spec["threads"])]
    for c in clients:
        c.inspect_repo(repo)  # connected before the start
    latency: list[list[float]] = [[] for _ in clients]
    errors: list[str] = []
    starts: list[float] = []
    ends: list[float] = []

    def work(t: int) -> None:
        c = clients[t]
        delay = spec["start_at"] - time.time()
        if delay > 0:
            time.sleep(delay)
        starts.append(time.time())
        for i in range(n):
            data = f"client {proc}.{t} commit {i}\n".encode()
            t0 = time.perf_counter()
            try:
                c.put_file(f"{repo}@master:/p{proc}/t{t:02d}/f{i:03d}", data)
            except Exception as exc:  # reported, and the round fails
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latency[t].append(time.perf_counter() - t0)
        ends.append(time.time())

    pool = [threading.Thread(target=work, args=(t,)) for t in range(len(clients))]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    print(
        json.dumps(
            {
                "latency_s": [x for ls in latency for x in ls],
                "errors": errors,
                "first_start": min(starts),
                "last_end": max(ends),
            }
        )
    )


def _verify_commits(url: str, repo: str, procs: int, threads: int, n: int) -> None:
    import haathi

    with haathi.connect(url) as c:
        commits = c.list_commit(f"{repo}@master")
        if len(commits) != procs * threads * n:
            raise AssertionError(
                f"{repo}@master has {len(commits)} commits, want {procs * threads * n}"
            )
        files = {f.path for f in c.walk_file(f"{repo}@master:/") if f.type == "file"}
        want = {
            f"/p{p}/t{t:02d}/f{i:03d}"
            for p in range(procs)
            for t in range(threads)
            for i in range(n)
        }
        if files != want:
            raise AssertionError(
                f"{repo}@master: {len(want - files)} files missing, {len(files - want)} unexpected"
            )


def _solo(url: str, repo: str, n: int) -> list[float]:
    """One client alone: ``n`` one-off commits (after 5 warm-up ones)."""
    import haathi

    out = []
    with haathi.connect(url) as c:
        c.create_repo(repo)
        for i in range(n + 5):
            t = time.perf_counter()
            c.put_file(f"{repo}@master:/f{i:04d}", f"solo {i}\n".encode())
            if i >= 5:
                out.append(time.perf_counter() - t)
    return out


def server_commits(ctx: Any, h: ModuleType, kinds: list[str]) -> None:
    import haathi

    procs, threads = 4, 8
    per_client = 5 if ctx.args.quick else 50
    total = procs * threads * per_client
    res: dict[str, Any] = {
        "clients": procs * threads,
        "commits_per_client": per_client,
        "layout": f"{procs} processes x {threads} threads",
    }
    ctx.results["server_commits"] = res
    wd = ctx.work / "server_commits"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    servers: Any = None
    serves: dict[str, ServeProcess] = {}
    try:
        for backend in kinds:
            store = wd / backend
            if backend == "local":
                haathi.init(str(store)).close()
            else:
                import backends as bk  # bench/backends.py

                if servers is None:
                    ctx.log("starting SeaweedFS (S3) and PostgreSQL")
                    servers = bk.Servers().start()
                    res["backend_versions"] = servers.versions()
                servers.new_bucket("bench-serve")
                haathi.init(
                    str(store),
                    db=servers.pg.create_database(),
                    objects="s3://bench-serve/store",
                    s3_endpoint=servers.endpoint,
                ).close()
            serves[backend] = ServeProcess(store, wd / f"serve-{backend}.log")
        rows: dict[str, list[dict[str, Any]]] = {b: [] for b in kinds}
        for k in range(ctx.runs):
            order = kinds if k % 2 == 0 else kinds[::-1]
            for backend in order:
                srv = serves[backend]
                load, cpu = _load(), srv.cpu_s()
                solo = _solo(srv.url, f"solo{k}", 50 if ctx.args.quick else 100)
                with haathi.connect(srv.url) as c:
                    c.create_repo(f"c{k}")
                r = commit_round(srv.url, f"c{k}", procs, threads, per_client)
                if r["errors"]:
                    raise AssertionError(f"{len(r['errors'])} commits failed: {r['errors'][:3]}")
                _verify_commits(srv.url, f"c{k}", procs, threads, per_client)
                lat = r["latency_s"]
                row = {
                    "commits_per_s": total / r["wall_s"],
                    "wall_s": r["wall_s"],
                    "p50_ms": 1000 * _pct(lat, 0.5),
                    "p90_ms": 1000 * _pct(lat, 0.9),
                    "p99_ms": 1000 * _pct(lat, 0.99),
                    "max_ms": 1000 * max(lat),
                    "solo_p50_ms": 1000 * _pct(solo, 0.5),
                    "solo_p99_ms": 1000 * _pct(solo, 0.99),
                    "solo_commits_per_s": len(solo) / sum(solo),
                    "late_start_s": r["late_start_s"],
                    "server_cpu_s": srv.cpu_s() - cpu,
                    "load_start": load,
                    "load_end": _load(),
                }
                rows[backend].append(
                    {key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()}
                )
                ctx.log(
                    f"server_commits run {k} {backend}: {total} commits in "
                    f"{r['wall_s']:.1f} s = {row['commits_per_s']:.0f}/s, p50 "
                    f"{row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms; one client "
                    f"alone p50 {row['solo_p50_ms']:.1f} ms; load {load}"
                )
                res[backend] = {"runs": rows[backend]}
                ctx.save()
    finally:
        for srv in serves.values():
            srv.stop()
        if servers is not None:
            servers.stop()
    for backend in kinds:
        rs = rows[backend]
        agg = _medians(rs, h, digits=2)
        res[backend].update(agg)
        name = "local dir + SQLite" if backend == "local" else "SeaweedFS S3 + PostgreSQL"
        ctx.check(
            f"{procs * threads} clients x {per_client} one-off commits, one branch ({name}): "
            "errors / missing commits / missing files",
            0,
            "",
            "0 / 0 / 0",
            True,
            f"{total:,} commits and files verified each run",
        )
        ctx.check(
            f"{procs * threads} clients x {per_client} commits ({name}): throughput",
            agg["commits_per_s"],
            "commits/s",
            "reported",
            None,
            f"p50 {agg['p50_ms']:.0f} ms, p99 {agg['p99_ms']:.0f} ms per commit; one client "
            f"alone {agg['solo_commits_per_s']:.0f}/s (p50 {agg['solo_p50_ms']:.1f} ms); "
            f"load {agg['load_range'][0]}-{agg['load_range'][1]}",
        )


# --------------------------------------------------------------------------------------------
# server_inspect: inspect commit at a fixed 200 requests/s


def inspect_child(spec: dict[str, Any]) -> None:
    import haathi

    url, target = spec["url"], spec["target"]
    rate, duration, proc, procs = spec["rate"], spec["duration"], spec["proc"], spec["procs"]
    t0 = spec["start_at"]
    slots = iter(range(proc, int(rate * duration), procs))
    lock = threading.Lock()
    records: list[tuple[float, float, float]] = []
    errors: list[str] = []
    clients = [haathi.connect(url, token=spec["token"]) for _ in range(spec["threads"])]
    for c in clients:
        c.inspect_commit(target)  # connected and warm before the start

    def work(c: Any) -> None:
        while True:
            with lock:
                slot = next(slots, None)
            if slot is None:
                return
            due = t0 + slot / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            start = time.time()
            try:
                c.inspect_commit(target)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            records.append((due, start, time.time()))

    pool = [threading.Thread(target=work, args=(c,)) for c in clients]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    print(json.dumps({"records": records, "errors": errors}))


def _inspect_run(srv: ServeProcess, emb: Any, rem: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """One open-loop run at spec's rate, with its baselines (the same call embedded and from
    one client alone, 200 each): latencies and the server's CPU."""
    base = {}
    for name, c in (("embedded", emb), ("remote_alone", rem)):
        times = []
        for i in range(210):
            t = time.perf_counter()
            c.inspect_commit(spec["target"])
            if i >= 10:
                times.append(time.perf_counter() - t)
        base[f"{name}_p50_ms"] = 1000 * _pct(times, 0.5)
        base[f"{name}_p99_ms"] = 1000 * _pct(times, 0.99)
    load, cpu = _load(), srv.cpu_s()
    start_at = time.time() + 3.0
    procs = spec["procs"]
    children = [_spawn("inspect", {**spec, "proc": p, "start_at": start_at}) for p in range(procs)]
    out = _collect(children)
    errors = [e for r in out for e in r["errors"]]
    if errors:
        raise AssertionError(f"{len(errors)} requests failed: {errors[:3]}")
    recs = [tuple(x) for r in out for x in r["records"]]
    lat = [end - due for due, _, end in recs]
    service = [end - start for _, start, end in recs]
    lag = [start - due for due, start, _ in recs]
    span = max(end for _, _, end in recs) - start_at
    row = {
        "requests": len(recs), "achieved_rate": len(recs) / span,
        "p50_ms": 1000 * _pct(lat, 0.5), "p90_ms": 1000 * _pct(lat, 0.9),
        "p99_ms": 1000 * _pct(lat, 0.99), "max_ms": 1000 * max(lat),
        "service_p50_ms": 1000 * _pct(service, 0.5),
        "send_lag_p99_ms": 1000 * _pct(lag, 0.99),
        "server_cpu_per_s": (srv.cpu_s() - cpu) / span,
        "server_cpu_ms_per_request": 1000 * (srv.cpu_s() - cpu) / len(recs),
        **base, "load_start": load, "load_end": _load(),
    }  # fmt: skip
    return {key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()}


def _medians(runs: list[dict[str, Any]], h: ModuleType, digits: int = 3) -> dict[str, Any]:
    """Per figure, its median over the runs; and the load range the runs saw."""
    out: dict[str, Any] = {
        key: round(float(h.median([r[key] for r in runs])), digits)
        for key in runs[0] if key not in ("load_start", "load_end", "requests")
    }  # fmt: skip
    loads = [r[x] for r in runs for x in ("load_start", "load_end")]
    out["load_range"] = [min(loads), max(loads)]
    return out


def server_inspect(ctx: Any, h: ModuleType) -> None:
    """Open-loop ``inspect commit`` with auth off, then (the same server, auth activated
    through it) as a user holding only ``repoReader`` on the repo."""
    import haathi

    rate, duration = 200.0, 5.0 if ctx.args.quick else 25.0
    procs, threads = 2, 8
    wd = ctx.work / "server_inspect"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    store = wd / "store"
    target = "data@master"
    with haathi.init(str(store)) as c:
        c.create_repo("data")
        for i in range(200):
            c.put_file(f"data@master:/f{i:04d}", f"{i}\n".encode())
    res: dict[str, Any] = {
        "rate": rate,
        "duration_s": duration,
        "target": target,
        "layout": f"{procs} processes x {threads} threads",
        "runs": [],
    }
    ctx.results["server_inspect"] = res
    srv = ServeProcess(store, wd / "serve.log")
    spec = {
        "url": srv.url,
        "target": target,
        "rate": rate,
        "duration": duration,
        "procs": procs,
        "threads": threads,
        "token": None,
    }
    try:
        with haathi.connect(str(store)) as emb:
            phases: list[tuple[str, dict[str, Any], str | None]] = [("auth off", res, None)]
            with haathi.connect(srv.url) as anon:
                for k in range(ctx.runs):
                    res["runs"].append(_inspect_run(srv, emb, anon, spec))
                    _log_inspect(ctx, f"run {k}", res["runs"][-1])
                    ctx.save()
                root = anon.auth_activate()
            with haathi.connect(srv.url, token=root) as admin:
                reader = admin.get_auth_token("user:reader")
                admin.set_repo_roles("data", "repoReader", "user:reader")
            on: dict[str, Any] = {"caller": "user:reader (repoReader on data)", "runs": []}
            res["auth_on"] = on
            phases.append(("auth on (a repoReader's token)", on, reader))
            with haathi.connect(srv.url, token=reader) as rem:
                for k in range(ctx.runs):
                    on["runs"].append(_inspect_run(srv, emb, rem, {**spec, "token": reader}))
                    _log_inspect(ctx, f"auth on, run {k}", on["runs"][-1])
                    ctx.save()
    finally:
        srv.stop()
    for name, r, _ in phases:
        r.update(_medians(r["runs"], h))
        loads = r["load_range"]
        ctx.check(
            f"inspect commit at {rate:.0f} requests/s for {duration:.0f} s, {name}: p50 (from "
            "the scheduled time)", round(r["p50_ms"], 2), "ms", "< 10 ms", r["p50_ms"] < 10,
            f"p90 {r['p90_ms']:.1f}, p99 {r['p99_ms']:.1f} ms at {r['achieved_rate']:.1f}/s; "
            f"server CPU {r['server_cpu_ms_per_request']:.2f} ms per request; one client alone "
            f"{r['remote_alone_p50_ms']:.2f} ms, embedded {r['embedded_p50_ms']:.2f} ms; load "
            f"{loads[0]}-{loads[1]}",
        )  # fmt: skip


def _log_inspect(ctx: Any, what: str, row: dict[str, Any]) -> None:
    ctx.log(
        f"server_inspect {what}: {row['requests']} requests at {row['achieved_rate']:.1f}/s, "
        f"p50 {row['p50_ms']:.1f} ms, p90 {row['p90_ms']:.1f}, p99 {row['p99_ms']:.1f} ms; "
        f"server CPU {row['server_cpu_ms_per_request']:.2f} ms/request (one client alone "
        f"{row['remote_alone_p50_ms']:.1f}, embedded {row['embedded_p50_ms']:.2f} ms); "
        f"load {row['load_start']}"
    )


# --------------------------------------------------------------------------------------------


def run(ctx: Any, h: ModuleType, only: set[str]) -> bool:
    """The selected server workloads, each on its own; False when one failed."""
    from haathi import allocator

    steps = [name for name in SERVER_WORKLOADS if name in only]
    ok = True
    # the malloc settings the CLI (so the server) runs with, for the clients in this process
    ctx.results["meta"]["malloc_tuned"] = allocator.tune()
    for i, name in enumerate(steps):
        load = ctx.results["meta"].setdefault("loadavg_1m", {})
        load[f"{name}_start"] = _load()
        try:
            if name == "server_io":
                server_io(ctx, h)
            elif name == "server_commits":
                server_commits(ctx, h, ["local", "s3pg"])
            else:
                server_inspect(ctx, h)
        except Exception as exc:  # report and go on with the other workloads
            import traceback

            traceback.print_exc()
            ctx.note(f"workload {name} failed: {type(exc).__name__}: {str(exc)[:500]}")
            ok = False
        finally:  # its stores and files; the disk crawls for a while after mass deletions,
            # so the next workload waits (--settle)
            h.remove(ctx, ctx.work / name, settle=i < len(steps) - 1)
        load[f"{name}_end"] = _load()
        ctx.save()
    return ok


if __name__ == "__main__":
    kind, arg = sys.argv[1], json.loads(sys.argv[2])
    {"commits": commits_child, "inspect": inspect_child}[kind](arg)
