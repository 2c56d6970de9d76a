"""haathi benchmark suite.

    .venv/bin/python bench/run.py            # the full suite (about half an hour on 2 cores)
    .venv/bin/python bench/run.py --quick    # a small version (a few minutes)
    .venv/bin/python bench/run.py --only w1,latency

Workloads (see bench/README.md): W1 many small files vs restic / cp / dvc, list and diff on the
result; W2 large-file throughput vs cp; W3 incremental storage after small edits; one-off commit
latency; a 1,000,000-entry tree diff; peak memory of putting a 4 GiB file. The production
backends (bench/backends.py, on SeaweedFS S3 and PostgreSQL servers started for the run): W1
into S3+PostgreSQL vs the local store (s3w1), W2 into S3 vs aws s3 cp and boto3 (s3w2), one-off
commit latency on PostgreSQL (pglatency). ``haathi serve`` (bench/server.py, ``--only server``):
1 GiB put/get remote vs embedded, 32 concurrent committers, inspect commit at 200 requests/s.

Data is generated deterministically (seeded) under ``--work`` (default bench/work/, git-ignored)
and big data is deleted at the end. Results go to bench/results.json and a table is printed.
Each timed figure is the median of ``--runs`` runs with the tools alternated; inputs are read just
before each timed run (warm cache) and ``sync`` is run before it. After mass deletions the
runner waits ``--settle`` seconds, as this machine's disk crawls for a while after them.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
PY = sys.executable
HAATHI_BIN = Path(sys.executable).parent / "haathi"
DVC_BIN = Path("/tmp/dvcenv/bin/dvc")
TIME_BIN = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
SEED = 20260521
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


# --------------------------------------------------------------------------------------------
# scale and context


@dataclass
class Scale:
    w1_files: int
    w1_dirs: int
    w2_files: int
    w2_size: int
    lat_n: int
    tree_n: int
    mem_size: int


FULL = Scale(20_000, 100, 8, 128 * MiB, 200, 1_000_000, 4 * GiB)
QUICK = Scale(2_000, 20, 4, 16 * MiB, 50, 100_000, 256 * MiB)


@dataclass
class Ctx:
    args: argparse.Namespace
    scale: Scale
    work: Path
    runs: int
    settle: float
    cli: bool
    results: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    dir_dest: str = "/"  # where a directory put lands: "/" or "/<dir name>" (CLI fallback)

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def note(self, msg: str) -> None:
        self.log("NOTE: " + msg)
        self.notes.append(msg)

    def check(
        self,
        name: str,
        value: float | None,
        unit: str,
        target: str,
        ok: bool | None,
        detail: str = "",
    ) -> None:
        self.checks.append(
            {
                "name": name,
                "value": value,
                "unit": unit,
                "target": target,
                "pass": ok,
                "detail": detail,
            }
        )
        self.save()

    def save(self) -> None:
        out = {
            "meta": self.results.get("meta", {}),
            "checks": self.checks,
            "notes": self.notes,
            "profiles": self.profiles,
            "workloads": {k: v for k, v in self.results.items() if k != "meta"},
        }
        path = Path(self.args.out)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2, default=str) + "\n")
        tmp.replace(path)


# --------------------------------------------------------------------------------------------
# helpers


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return s[k]


def run_proc(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, int]:
    """Run ``cmd``; returns (wall seconds, peak RSS bytes of that process). Raises on failure.

    The peak RSS comes from ``/usr/bin/time``: a child forked straight from this (big) runner
    would report the runner's RSS at fork time as its ``ru_maxrss`` (Linux carries the old
    mm's high-water mark across exec), so a small intermediate process is needed.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    argv = [str(c) for c in cmd]
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss_file:
        if TIME_BIN:
            argv = [TIME_BIN, "-f", "%M", "-o", rss_file.name, *argv]
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=full_env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{msg}")
        # without /usr/bin/time, ru_maxrss over-reports (it includes this runner's RSS)
        rss_kib = int(rss_file.read().strip().splitlines()[-1]) if TIME_BIN else ru.ru_maxrss
    return dt, rss_kib * 1024


def output_of(cmd: list[str], *, env: dict[str, str] | None = None) -> str:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [str(c) for c in cmd], env=full_env, capture_output=True, text=True, check=True
    ).stdout


def timed_sync() -> float:
    t0 = time.perf_counter()
    os.sync()
    return time.perf_counter() - t0


def warm(path: Path) -> None:
    """Read every file below ``path`` so a warm run finds it in the page cache."""
    paths = [path] if path.is_file() else [Path(d) / f for d, _, fs in os.walk(path) for f in fs]
    buf = bytearray(4 * MiB)
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def dir_bytes(path: Path, *, skip_tmp: bool = True) -> int:
    total = 0
    for d, dirs, fs in os.walk(path):
        if skip_tmp:
            dirs[:] = [x for x in dirs if not x.startswith(".tmp")]
        for f in fs:
            if skip_tmp and f.startswith(".tmp"):
                continue
            with contextlib.suppress(FileNotFoundError):
                total += (Path(d) / f).stat().st_size
    return total


def store_objects_bytes(store: Path) -> int:
    return dir_bytes(store / "objects")


def store_meta_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.glob("meta.db*"))


def rm_paths(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def remove(ctx: Ctx, *paths: Path, settle: bool = True) -> None:
    rm_paths(*paths)
    if settle:
        os.sync()
        ctx.log(f"deleted {', '.join(p.name for p in paths)}; settling {ctx.settle:.0f} s")
        time.sleep(ctx.settle)


def stream_bytes(label: str, n: int) -> bytes:
    """``n`` deterministic pseudo-random bytes (BLAKE3 in XOF mode, keyed by the seed)."""
    return blake3.blake3(f"{SEED}:{label}".encode()).digest(length=n)


def shown(path: Path) -> str:
    """``path`` relative to the project when it lies inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)


def profile_call(ctx: Ctx, name: str, fn: Callable[[], object], note: str = "") -> str:
    """Run ``fn`` under cProfile; keep the top functions by cumulative and own time."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.strip_dirs().sort_stats("cumulative").print_stats(30)
    s.write("\n---- by own time ----\n")
    st.sort_stats("tottime").print_stats(20)
    text = (note + "\n" if note else "") + s.getvalue()
    pdir = Path(ctx.args.out).resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    (pdir / f"{name}.txt").write_text(text)
    ctx.profiles[name] = shown(pdir / f"{name}.txt")
    ctx.log(f"profile of {name} written to {pdir / f'{name}.txt'}")
    return text


def profile_put_process(ctx: Ctx, name: str, store: Path, repo: str, src: Path) -> None:
    """cProfile the real ``put`` process (CLI or API helper), main thread only."""
    cmd, env = put_cmd(ctx, store, repo, src)
    if not ctx.cli:
        cmd.append("--create")
    prof = ctx.work / f"{name}.pstats"
    os.sync()
    warm(src)
    try:
        run_proc([PY, "-m", "cProfile", "-o", str(prof), *cmd], env=env)
    except RuntimeError as exc:
        ctx.note(f"profiling {name} failed: {str(exc)[:300]}")
        return
    s = io.StringIO()
    st = pstats.Stats(str(prof), stream=s)
    st.strip_dirs().sort_stats("cumulative").print_stats(35)
    s.write("\n---- by own time ----\n")
    st.sort_stats("tottime").print_stats(20)
    prof.unlink()
    pdir = Path(ctx.args.out).resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    head = (
        f"{' '.join(cmd)}\nwhole process under python -m cProfile (main thread only; "
        f"the -p {ctx.args.parallelism} reader threads are not seen)\n"
    )
    (pdir / f"{name}.txt").write_text(head + s.getvalue())
    ctx.profiles[name] = shown(pdir / f"{name}.txt")
    ctx.log(f"profile of {name} written to {pdir / f'{name}.txt'}")


# --------------------------------------------------------------------------------------------
# haathi invocation (CLI when it exists, else the Python API in a subprocess)


def detect_cli(mode: str) -> bool:
    if mode == "no":
        return False
    ok = False
    if HAATHI_BIN.exists():
        try:
            out = subprocess.run(
                [str(HAATHI_BIN), "put", "file", "--help"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            ok = out.returncode == 0 and "-r" in out.stdout
        except (OSError, subprocess.TimeoutExpired):
            ok = False
    if mode == "yes" and not ok:
        raise SystemExit("--cli yes, but `haathi put file --help` does not work")
    return ok


def new_store(ctx: Ctx, store: Path, repo: str) -> None:
    import haathi

    if store.exists():
        shutil.rmtree(store)
    with haathi.connect(str(store)) as c:
        c.create_repo(repo)


def put_cmd(ctx: Ctx, store: Path, repo: str, src: Path) -> tuple[list[str], dict[str, str]]:
    p = str(ctx.args.parallelism)
    if ctx.cli:
        if not src.is_dir():
            dest = f"{repo}@master:/{src.name}"
        elif ctx.dir_dest == "/":
            dest = f"{repo}@master:/"
        else:  # the CLI puts the directory under /<its name>
            dest = f"{repo}@master"
        cmd = [str(HAATHI_BIN), "put", "file", dest, "-f", str(src), "-p", p]
        if src.is_dir():
            cmd.insert(4, "-r")
        return cmd, {"HAATHI_ADDRESS": str(store)}
    cmd = [PY, str(BENCH / "haathi_put.py"), str(store), f"{repo}@master", str(src), "-p", p]
    if src.is_dir():
        cmd += ["--dest", ctx.dir_dest if ctx.dir_dest == "/" else "/" + src.name]
    return cmd, {}


def run_put(
    ctx: Ctx, store: Path, repo: str, src: Path, *, create: bool = False
) -> tuple[float, int]:
    """Time one haathi put of ``src`` (a directory goes to the root of the repo if possible)."""
    cmd, env = put_cmd(ctx, store, repo, src)
    if create and not ctx.cli:
        cmd.append("--create")
    try:
        return run_proc(cmd, env=env)
    except RuntimeError as exc:
        if not (ctx.cli and src.is_dir() and ctx.dir_dest == "/" and "needs a name" in str(exc)):
            raise
        why = str(exc).strip().splitlines()[-1]
        ctx.note(
            f"the CLI rejects `put file {repo}@master:/ -r -f DIR` ({why})"
            f"; using `put file {repo}@master -r -f DIR` instead, which puts the files under "
            f"/{src.name}/ (lists and diffs below use that directory as the root)"
        )
        ctx.dir_dest = "/" + src.name
        os.sync()
        warm(src)
        cmd, env = put_cmd(ctx, store, repo, src)
        return run_proc(cmd, env=env)


def api_put(ctx: Ctx, store: Path, repo: str, src: Path, parallelism: int) -> None:
    import haathi
    from haathi.client import sources

    with haathi.connect(str(store)) as c:
        if src.is_dir():
            ops = list(sources.walk_dir(src, ctx.dir_dest))
        else:
            ops = [sources.file_op(src, "/" + src.name)]
        c.modify_file(f"{repo}@master", ops, parallelism=parallelism)


# --------------------------------------------------------------------------------------------
# W1: many small files


def gen_w1(ctx: Ctx) -> Path:
    sc = ctx.scale
    root = ctx.work / "w1"
    data = root / "data"
    marker = root / f".complete-{sc.w1_files}-{sc.w1_dirs}-{SEED}"
    if marker.exists():
        return data
    shutil.rmtree(root, ignore_errors=True)
    data.mkdir(parents=True)
    rng = random.Random(SEED)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(600)]
    for d in range(sc.w1_dirs):
        (data / f"d{d:03d}").mkdir()
    total = 0
    for i in range(sc.w1_files):
        size = rng.randint(1 * KiB, 8 * KiB)
        if rng.random() < 0.5:
            body = rng.randbytes(size)
            name = f"f{i:05d}.bin"
        else:
            parts: list[str] = []
            n = 0
            while n < size:
                line = " ".join(rng.choices(words, k=rng.randint(4, 14))) + "\n"
                parts.append(line)
                n += len(line)
            body = "".join(parts).encode()[:size]
            name = f"f{i:05d}.txt"
        (data / f"d{i % sc.w1_dirs:03d}" / name).write_bytes(body)
        total += size
    marker.write_text(str(total))
    return data


def w1(ctx: Ctx) -> None:
    sc = ctx.scale
    ctx.log(f"W1: generating {sc.w1_files} files in {sc.w1_dirs} dirs")
    src = gen_w1(ctx)
    nbytes = int(next((ctx.work / "w1").glob(".complete-*")).read_text())
    out = ctx.work / "out-w1"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    res: dict[str, Any] = {"files": sc.w1_files, "dirs": sc.w1_dirs, "bytes": nbytes, "runs": {}}
    ctx.results["w1"] = res

    restic = shutil.which("restic")
    tools = ["haathi", "restic", "cp"]
    if restic is None:
        tools.remove("restic")
        ctx.note("restic is not installed: W1 has no restic figure (apt-get install -y restic)")
    if DVC_BIN.exists() and not ctx.args.no_dvc:
        tools.append("dvc")
    elif not ctx.args.no_dvc:
        ctx.note(
            f"dvc not found at {DVC_BIN}: W1 has no dvc figure "
            "(python3 -m venv /tmp/dvcenv && /tmp/dvcenv/bin/pip install dvc)"
        )
    rows: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    restic_env = {"RESTIC_PASSWORD": "bench"}
    dvc_project = ctx.work / "w1"

    for k in range(ctx.runs):
        order = tools[k % len(tools) :] + tools[: k % len(tools)]
        for tool in order:
            env: dict[str, str] = {}
            cwd = None
            cmd: list[str] = []
            if tool == "haathi":
                store = out / f"haathi-{k}"
                if ctx.cli:
                    new_store(ctx, store, "w1")
                target = store
            elif tool == "restic":
                target = out / f"restic-{k}"
                env = dict(restic_env, RESTIC_CACHE_DIR=str(out / f"restic-cache-{k}"))
                output_of([restic, "-r", str(target), "init"], env=env)
                cmd = [restic, "-r", str(target), "backup", "--quiet", str(src)]
            elif tool == "cp":
                target = out / f"cp-{k}"
                cmd = ["cp", "-r", str(src), str(target)]
            else:
                # dvc: a project around the data with a new, empty cache dir and state (site
                # cache) dir per run; nothing big is deleted here (deletions slow the disk)
                target = out / f"dvc-cache-{k}"
                env = {"DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(out / f"dvc-site-{k}")}
                rm_paths(dvc_project / "data.dvc")
                if not (dvc_project / ".dvc").exists():
                    subprocess.run(
                        [str(DVC_BIN), "init", "--no-scm", "-q"],
                        cwd=dvc_project,
                        env=dict(os.environ, **env),
                        check=True,
                        capture_output=True,
                    )
                subprocess.run(
                    [str(DVC_BIN), "cache", "dir", str(target)],
                    cwd=dvc_project,
                    env=dict(os.environ, **env),
                    check=True,
                    capture_output=True,
                )
                cmd = [str(DVC_BIN), "add", "-q", "data"]
                cwd = dvc_project
            os.sync()
            time.sleep(1)
            warm(src)
            if tool == "haathi":
                dt, rss = run_put(ctx, store, "w1", src, create=True)
            else:
                dt, rss = run_proc(cmd, env=env, cwd=cwd)
            ts = timed_sync()
            size = dir_bytes(target, skip_tmp=False)
            rows[tool].append({"s": dt, "s_sync": dt + ts, "rss": rss, "bytes": size})
            ctx.log(
                f"W1 run {k} {tool}: {dt:.2f} s (+sync {ts:.2f} s), "
                f"rss {rss / MiB:.0f} MiB, out {size / MiB:.1f} MiB"
            )
    for tool, rs in rows.items():
        res["runs"][tool] = rs
        res[tool] = {
            "median_s": median([r["s"] for r in rs]),
            "median_s_sync": median([r["s_sync"] for r in rs]),
            "peak_rss_mib": max(r["rss"] for r in rs) / MiB,
            "out_mib": rs[-1]["bytes"] / MiB,
            "files_per_s": sc.w1_files / median([r["s"] for r in rs]),
        }
    h = res["haathi"]["median_s"]
    if "restic" in res:
        ratio = h / res["restic"]["median_s"]
        res["ratio_haathi_restic"] = ratio
        ctx.check(
            "W1 ingest haathi/restic time",
            ratio,
            "x",
            "<= 1.0",
            ratio <= 1.0,
            f"haathi {h:.2f} s, restic {res['restic']['median_s']:.2f} s, "
            f"cp {res['cp']['median_s']:.2f} s",
        )
    res["ratio_haathi_cp"] = h / res["cp"]["median_s"]
    if "dvc" in res:
        res["ratio_haathi_dvc"] = h / res["dvc"]["median_s"]

    w1_list_diff(ctx, out / "haathi-0", src, res)
    if res.get("ratio_haathi_restic", 0) > 1.0 or ctx.args.profile_all:
        store = out / "profile-store"
        shutil.rmtree(store, ignore_errors=True)
        new_store(ctx, store, "w1")
        warm(src)
        profile_call(
            ctx,
            "w1_ingest_api",
            lambda: api_put(ctx, store, "w1", src, 1),
            note="W1 ingest through the Python API in-process, parallelism=1 "
            "(cProfile sees only the main thread)",
        )
        store = out / "profile-store-2"
        if ctx.cli:
            new_store(ctx, store, "w1")
        profile_put_process(ctx, "w1_ingest_process", store, "w1", src)
    rm_paths(dvc_project / ".dvc", dvc_project / "data.dvc", dvc_project / ".gitignore")
    remove(ctx, out)


def w1_list_diff(ctx: Ctx, store: Path, src: Path, res: dict[str, Any]) -> None:
    import haathi
    from haathi.client import sources

    rng = random.Random(SEED + 1)
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    picked = sorted(rng.sample(files, 10))
    base = ctx.dir_dest.rstrip("/")  # "" when the data is at the repo's root
    root = base or "/"
    with haathi.connect(str(store)) as c:
        ops = [
            sources.bytes_op(rng.randbytes(rng.randint(KiB, 8 * KiB)), f"{base}/{p}")
            for p in picked
        ]
        c.modify_file("w1@master", ops)
    a_dir = f"{base}/" + files[len(files) // 2].split("/")[0]
    queries: dict[str, Callable[[Any], list[Any]]] = {
        "list_dir": lambda c: c.list_file(f"w1@master:{a_dir}"),
        "list_root": lambda c: c.list_file(f"w1@master:{root}"),
        "diff_10": lambda c: c.diff_file("w1@master", "w1@master^"),
    }
    out: dict[str, Any] = {}
    for name, q in queries.items():
        cold: list[float] = []
        warm_t: list[float] = []
        n = 0
        for _ in range(3):
            with haathi.connect(str(store)) as c:  # a fresh connection: cold node cache
                t0 = time.perf_counter()
                n = len(q(c))
                cold.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                q(c)
                warm_t.append(time.perf_counter() - t0)
        out[name] = {"cold_s": median(cold), "warm_s": median(warm_t), "results": n}
        ctx.log(
            f"W1 {name}: {n} results, cold {median(cold) * 1000:.1f} ms, "
            f"warm {median(warm_t) * 1000:.1f} ms"
        )
    t0 = time.perf_counter()
    haathi.connect(str(store)).close()
    out["connect_s"] = time.perf_counter() - t0
    if out["diff_10"]["results"] != 10:
        ctx.note(f"W1 diff returned {out['diff_10']['results']} entries, expected 10")
    if ctx.cli:
        env = {"HAATHI_ADDRESS": str(store)}
        cli_cmds = {
            "cli_startup": [str(HAATHI_BIN), "--help"],
            "cli_list_dir": [str(HAATHI_BIN), "list", "file", f"w1@master:{a_dir}"],
            "cli_list_root": [str(HAATHI_BIN), "list", "file", f"w1@master:{root}"],
            "cli_diff_10": [str(HAATHI_BIN), "diff", "file", "w1@master", "w1@master^"],
        }
        for name, cmd in cli_cmds.items():
            try:
                ts = [run_proc(cmd, env=env)[0] for _ in range(3)]
                out[name] = {"s": median(ts)}
                ctx.log(f"W1 {name}: {median(ts) * 1000:.0f} ms (whole process)")
            except RuntimeError as exc:
                ctx.note(f"W1 {name} failed: {str(exc)[:300]}")
    res["list_diff"] = out
    for name, label in (
        ("list_dir", f"list file {a_dir} ({out['list_dir']['results']} files)"),
        ("list_root", f"list file {root} ({out['list_root']['results']} dirs)"),
        ("diff_10", f"diff file, 10 changed of {ctx.scale.w1_files:,}"),
    ):
        v = out[name]["cold_s"]
        extra = ""
        if f"cli_{name}" in out:
            extra = f"; CLI process {out['cli_' + name]['s'] * 1000:.0f} ms"
        ctx.check(
            f"W1 {label} (API, cold)",
            v * 1000,
            "ms",
            "< 1000 ms",
            v < 1.0,
            f"warm {out[name]['warm_s'] * 1000:.1f} ms{extra}",
        )
        if f"cli_{name}" in out:
            cv = out[f"cli_{name}"]["s"]
            ctx.check(f"W1 {label} (CLI process)", cv * 1000, "ms", "< 1000 ms", cv < 1.0)
        if v >= 1.0 or ctx.args.profile_all:

            def run_q(q: Callable[[Any], list[Any]] = queries[name]) -> None:
                with haathi.connect(str(store)) as c:
                    q(c)

            profile_call(ctx, f"w1_{name}", run_q)


# --------------------------------------------------------------------------------------------
# W2: large files throughput; W3: incremental storage


def gen_w2(ctx: Ctx) -> Path:
    sc = ctx.scale
    data = ctx.work / "w2" / "data"
    marker = ctx.work / "w2" / f".complete-{sc.w2_files}-{sc.w2_size}-{SEED}"
    if marker.exists():
        return data
    shutil.rmtree(ctx.work / "w2", ignore_errors=True)
    data.mkdir(parents=True)
    for i in range(sc.w2_files):
        (data / f"big{i}.bin").write_bytes(stream_bytes(f"w2-{i}", sc.w2_size))
    marker.touch()
    return data


def w2_w3(ctx: Ctx, do_w2: bool, do_w3: bool) -> None:
    sc = ctx.scale
    ctx.log(f"W2: generating {sc.w2_files} x {sc.w2_size // MiB} MiB random")
    src = gen_w2(ctx)
    total = sc.w2_files * sc.w2_size
    out = ctx.work / "out-w2"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()
    time.sleep(min(ctx.settle, 10))
    res: dict[str, Any] = {"files": sc.w2_files, "file_mib": sc.w2_size // MiB, "runs": {}}
    ctx.results["w2"] = res
    tools = ["haathi", "cp"]
    rows: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    runs = ctx.runs if do_w2 else 1
    last_store = out / "haathi-0"
    for k in range(runs):
        order = tools if k % 2 == 0 else tools[::-1]
        for tool in order:
            if tool == "cp" and not do_w2:
                continue
            if tool == "haathi":
                store = out / f"haathi-{k}"
                if ctx.cli:
                    new_store(ctx, store, "w2")
                last_store = store
                target = store
            else:
                target = out / f"cp-{k}"
            os.sync()
            time.sleep(2)
            warm(src)
            if tool == "haathi":
                dt, rss = run_put(ctx, store, "w2", src, create=True)
            else:
                dt, rss = run_proc(["cp", "-r", str(src), str(target)])
            ts = timed_sync()
            rows[tool].append({"s": dt, "s_sync": dt + ts, "rss": rss, "bytes": dir_bytes(target)})
            ctx.log(
                f"W2 run {k} {tool}: {dt:.2f} s ({total / dt / 1e6:.0f} MB/s), "
                f"+sync {ts:.2f} s, rss {rss / MiB:.0f} MiB"
            )
    for tool, rs in rows.items():
        if not rs:
            continue
        res["runs"][tool] = rs
        s = median([r["s"] for r in rs])
        s2 = median([r["s_sync"] for r in rs])
        res[tool] = {
            "median_s": s,
            "median_s_sync": s2,
            "mb_s": total / s / 1e6,
            "mb_s_sync": total / s2 / 1e6,
            "peak_rss_mib": max(r["rss"] for r in rs) / MiB,
            "out_mib": rs[-1]["bytes"] / MiB,
        }
    if do_w2:
        h, cp = res["haathi"], res["cp"]
        res["ratio_vs_cp"] = h["mb_s"] / cp["mb_s"]
        res["ratio_vs_cp_sync"] = h["mb_s_sync"] / cp["mb_s_sync"]
        ok: bool | None = res["ratio_vs_cp_sync"] >= 0.5
        if ctx.args.quick:  # 16 MiB files: the ~0.5 s interpreter start-up dominates
            ok = None
        ctx.check(
            "W2 throughput haathi / (cp -r + sync)",
            res["ratio_vs_cp_sync"],
            "x",
            ">= 0.5",
            ok,
            f"haathi {h['mb_s_sync']:.0f} MB/s, cp+sync {cp['mb_s_sync']:.0f} MB/s",
        )
        ctx.check(
            "W2 throughput haathi / cp -r (page cache only)",
            res["ratio_vs_cp"],
            "x",
            ">= 0.5 (informative)",
            None if ctx.args.quick else res["ratio_vs_cp"] >= 0.5,
            f"haathi {h['mb_s']:.0f} MB/s, cp {cp['mb_s']:.0f} MB/s",
        )
        if ok is False or ctx.args.profile_all:
            store = out / "profile-store"
            new_store(ctx, store, "w2")
            warm(src)
            profile_call(
                ctx,
                "w2_ingest_api",
                lambda: api_put(ctx, store, "w2", src, 1),
                note="W2 ingest through the Python API in-process, parallelism=1 "
                "(cProfile sees only the main thread)",
            )
            shutil.rmtree(store, ignore_errors=True)
            if ctx.cli:
                new_store(ctx, store, "w2")
            profile_put_process(ctx, "w2_ingest_process", store, "w2", src)
            shutil.rmtree(store, ignore_errors=True)
    # free the other stores and copies before W3 (W3 keeps the last haathi store)
    for p in out.iterdir():
        if p != last_store:
            shutil.rmtree(p, ignore_errors=True)
    if do_w3:
        os.sync()
        ctx.log(f"W3: settling {ctx.settle:.0f} s after deleting W2 copies")
        time.sleep(ctx.settle)
        w3(ctx, last_store, src)
    remove(ctx, out, ctx.work / "w2")


def w3(ctx: Ctx, store: Path, src: Path) -> None:
    import haathi

    sc = ctx.scale
    res: dict[str, Any] = {}
    ctx.results["w3"] = res
    files = sorted(src.iterdir())

    def put_again(label: str) -> dict[str, Any]:
        objs0, meta0 = store_objects_bytes(store), store_meta_bytes(store)
        os.sync()
        warm(src)
        dt, rss = run_put(ctx, store, "w2", src)
        grow = store_objects_bytes(store) - objs0
        meta = store_meta_bytes(store) - meta0
        with haathi.connect(str(store)) as c:
            changed = [d for d in c.diff_file("w2@master", "w2@master^")]
        r = {
            "objects_growth_bytes": grow,
            "meta_growth_bytes": meta,
            "put_s": dt,
            "rss_mib": rss / MiB,
            "changed_files": len(changed),
        }
        ctx.log(
            f"W3 {label}: objects +{grow / MiB:.2f} MiB, meta.db +{meta / KiB:.0f} KiB, "
            f"re-put of {sc.w2_files} files {dt:.2f} s, {len(changed)} file(s) changed"
        )
        return r

    # (a) overwrite 1 MiB in the middle of one file
    f0 = files[0]
    with open(f0, "r+b") as fh:
        fh.seek(sc.w2_size // 2)
        fh.write(stream_bytes("w3-a", MiB))
    res["a_overwrite_1mib_middle"] = put_again("(a) 1 MiB overwritten mid-file")
    # (b) insert 100 bytes at the start of another file
    f1 = files[1]
    body = f1.read_bytes()
    f1.write_bytes(stream_bytes("w3-b", 100) + body)
    del body
    res["b_insert_100b_start"] = put_again("(b) 100 B inserted at the start")
    for key, label in (
        ("a_overwrite_1mib_middle", "W3a 1 MiB overwritten mid-file: new storage"),
        ("b_insert_100b_start", "W3b 100 B inserted at start: new storage"),
    ):
        g = res[key]["objects_growth_bytes"]
        ctx.check(
            label,
            g / MiB,
            "MiB",
            "< 4 MiB",
            g < 4 * MiB,
            f"meta.db +{res[key]['meta_growth_bytes'] / KiB:.0f} KiB; re-put of the "
            f"{sc.w2_files} files took {res[key]['put_s']:.2f} s",
        )


# --------------------------------------------------------------------------------------------
# latency of a one-off commit


def latency(ctx: Ctx) -> None:
    import haathi

    n = ctx.scale.lat_n
    store = ctx.work / "out-latency"
    shutil.rmtree(store, ignore_errors=True)
    rng = random.Random(SEED + 2)
    times: list[float] = []
    with haathi.connect(str(store)) as c:
        c.create_repo("lat")
        for i in range(5):  # warm-up
            c.put_file(f"lat@master:/warm{i}.bin", rng.randbytes(KiB))
        for i in range(n):
            data = rng.randbytes(KiB)
            t0 = time.perf_counter()
            c.put_file(f"lat@master:/f{i:04d}.bin", data)
            times.append(time.perf_counter() - t0)
        res = {
            "n": n,
            "median_ms": median(times) * 1000,
            "p95_ms": pct(times, 0.95) * 1000,
            "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000,
            "mean_ms": statistics.fmean(times) * 1000,
        }
        ctx.results["latency"] = res
        ctx.log(
            f"latency: median {res['median_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms, "
            f"max {res['max_ms']:.1f} ms over {n} one-off commits"
        )
        ctx.check(
            "one-off put_file 1 KiB commit latency, median",
            res["median_ms"],
            "ms",
            "< 20 ms",
            res["median_ms"] < 20,
            f"p95 {res['p95_ms']:.1f} ms",
        )
        if res["median_ms"] >= 20 or ctx.args.profile_all:

            def more() -> None:
                for i in range(50):
                    c.put_file(f"lat@master:/p{i:04d}.bin", rng.randbytes(KiB))

            profile_call(ctx, "latency_put_file", more, note="50 one-off put_file commits")
    remove(ctx, store, settle=False)


# --------------------------------------------------------------------------------------------
# a 1,000,000-entry tree: build, apply 10 edits, cold diff


def big_tree(ctx: Ctx) -> None:
    import haathi
    from haathi.tree import prolly
    from haathi.tree.entry import FileEntry, pack_chunks
    from haathi.tree.prolly import NodeStore

    n = ctx.scale.tree_n
    store = ctx.work / "out-tree"
    shutil.rmtree(store, ignore_errors=True)
    rng = random.Random(SEED + 3)
    res: dict[str, Any] = {"entries": n}
    ctx.results["big_tree"] = res
    with haathi.connect(str(store)) as c:
        rt = c._api.runtime
        nodes = rt.pfs.nodes

        def entry(i: int, salt: str = "") -> FileEntry:
            h = blake3.blake3(f"{salt}{i}".encode()).digest()
            size = 1024 + (i * 7919) % 65536
            return FileEntry(
                f"/d{i // 1000:04d}/f{i % 1000:04d}.bin", size, h, pack_chunks([(h, size)])
            )

        t0 = time.perf_counter()
        entries = [entry(i) for i in range(n)]
        res["make_entries_s"] = time.perf_counter() - t0
        writer = rt.pfs.blobs.writer()
        t0 = time.perf_counter()
        root1 = prolly.build(entries, nodes, writer)
        writer.flush()
        res["build_s"] = time.perf_counter() - t0
        res["build_bytes_written"] = writer.bytes_written
        idx = sorted(rng.sample(range(n), 10))
        edits = [(entries[i].path, entry(i, "edited")) for i in idx]
        writer2 = rt.pfs.blobs.writer()
        t0 = time.perf_counter()
        root2 = prolly.apply(root1, edits, nodes, writer2)
        writer2.flush()
        res["apply_10_s"] = time.perf_counter() - t0
        del entries
        assert root1 is not None and root2 is not None

        reads = [0]

        def counting_get(d: bytes) -> bytes:
            reads[0] += 1
            return rt.pfs.blobs.get(d)

        cold: list[float] = []
        warm_t: list[float] = []
        got = 0
        for _ in range(3):
            ns = NodeStore(counting_get)
            reads[0] = 0
            t0 = time.perf_counter()
            got = len(list(prolly.diff(root1, root2, ns)))
            cold.append(time.perf_counter() - t0)
            res["nodes_read_cold"] = reads[0]
            t0 = time.perf_counter()
            list(prolly.diff(root1, root2, ns))
            warm_t.append(time.perf_counter() - t0)
        res["diff_cold_s"] = median(cold)
        res["diff_warm_s"] = median(warm_t)
        res["diff_results"] = got
        ctx.log(
            f"big tree: {n} entries built in {res['build_s']:.1f} s "
            f"(entries made in {res['make_entries_s']:.1f} s), 10 edits applied in "
            f"{res['apply_10_s'] * 1000:.0f} ms; cold diff {res['diff_cold_s'] * 1000:.1f} ms "
            f"({res['nodes_read_cold']} nodes read, {got} results), "
            f"warm {res['diff_warm_s'] * 1000:.1f} ms"
        )
        if got != 10:
            ctx.note(f"big tree diff returned {got} entries, expected 10")
        ctx.check(
            f"tree diff, {n:,} entries, 10 edits (cold cache)",
            res["diff_cold_s"] * 1000,
            "ms",
            "< 1000 ms",
            res["diff_cold_s"] < 1.0,
            f"build {res['build_s']:.1f} s, apply 10 edits {res['apply_10_s'] * 1000:.0f} ms",
        )
        if res["diff_cold_s"] >= 1.0 or ctx.args.profile_all:
            profile_call(
                ctx,
                "tree_diff",
                lambda: list(prolly.diff(root1, root2, NodeStore(rt.pfs.blobs.get))),
            )
    remove(ctx, store, settle=False)


# --------------------------------------------------------------------------------------------
# memory: put one 4 GiB file


def memory(ctx: Ctx) -> None:
    size = ctx.scale.mem_size
    d = ctx.work / "mem"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    big = d / "big.bin"
    ctx.log(f"memory: generating a {size / GiB:.2f} GiB file")
    block = 64 * MiB
    with open(big, "wb") as fh:
        for i in range(0, size, block):
            fh.write(stream_bytes(f"mem-{i}", min(block, size - i)))
    store = ctx.work / "out-mem"
    shutil.rmtree(store, ignore_errors=True)
    if ctx.cli:
        new_store(ctx, store, "mem")
    os.sync()
    time.sleep(2)
    warm(big)
    dt, rss = run_put(ctx, store, "mem", big, create=True)
    res = {
        "file_gib": size / GiB,
        "peak_rss_mib": rss / MiB,
        "put_s": dt,
        "mb_s": size / dt / 1e6,
        "via": "CLI" if ctx.cli else "Python API subprocess",
    }
    ctx.results["memory"] = res
    ctx.log(
        f"memory: put of {size / GiB:.2f} GiB took {dt:.1f} s "
        f"({res['mb_s']:.0f} MB/s), peak RSS {rss / MiB:.0f} MiB"
    )
    ctx.check(
        f"put file of {size / GiB:.2g} GiB: peak RSS",
        rss / MiB,
        "MiB",
        "< 500 MiB",
        rss < 500 * MiB,
        f"{dt:.1f} s, {res['mb_s']:.0f} MB/s",
    )
    remove(ctx, big, store, d)


# --------------------------------------------------------------------------------------------
# main


def machine_meta(ctx: Ctx) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"

    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "-C", str(PROJECT), "status", "--porcelain", "haathi"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            != ""
        )
    except OSError:
        commit, dirty = "", False
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem / GiB, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "haathi_commit": commit + ("+dirty" if dirty else ""),
        "haathi_via": "CLI (haathi put file -r)"
        if ctx.cli
        else "Python API subprocess (bench/haathi_put.py; CLI not available)",
        "parallelism": ctx.args.parallelism,
        "restic": version(["restic", "version"]),
        "dvc": version([str(DVC_BIN), "version"]).splitlines()[0]
        if DVC_BIN.exists()
        else "not installed",
        "mode": "quick" if ctx.args.quick else "full",
        "runs": ctx.runs,
        "settle_s": ctx.settle,
        "scale": ctx.scale.__dict__,
    }


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def print_table(ctx: Ctx) -> None:
    rows = [("check", "value", "target", "result", "detail")]
    for c in ctx.checks:
        res = "PASS" if c["pass"] else ("FAIL" if c["pass"] is not None else "-")
        rows.append((c["name"], f"{fmt(c['value'])} {c['unit']}", c["target"], res, c["detail"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for j, r in enumerate(rows):
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
        if j == 0:
            print("  ".join("-" * w for w in widths) + "  ------")
    if ctx.args.markdown:
        print("\n| check | value | target | result | detail |\n| --- | --- | --- | --- | --- |")
        for r in rows[1:]:
            print("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")
    if ctx.notes:
        print("\nnotes:")
        for n in ctx.notes:
            print(" -", n)


def install_peers(ctx: Ctx) -> None:
    if shutil.which("restic") is None:
        ctx.log("installing restic (apt-get)")
        subprocess.run(["apt-get", "install", "-y", "restic"], capture_output=True)
    if not DVC_BIN.exists():
        ctx.log("installing dvc into /tmp/dvcenv (pip)")
        r = subprocess.run(["python3", "-m", "venv", "/tmp/dvcenv"], capture_output=True)
        if r.returncode == 0:
            r = subprocess.run(
                ["/tmp/dvcenv/bin/pip", "install", "-q", "dvc"], capture_output=True, text=True
            )
        if r.returncode != 0:
            ctx.note("installing dvc failed: " + (r.stderr or "")[-300:])


WORKLOADS = (
    "w1",
    "w2",
    "w3",
    "latency",
    "tree",
    "memory",
    "s3w1",
    "s3w2",
    "pglatency",
    "w4",
    "datum_overhead",
    "sandbox",
    "parallel",
    "noop",
    "lineage",
    "server_io",
    "server_commits",
    "server_inspect",
    "img_datums",
    "img_start",
    "img_unpack",
    "img_w4",
)
BACKEND_WORKLOADS = ("s3w1", "s3w2", "pglatency")  # in bench/backends.py
PIPELINE_WORKLOADS = ("w4", "datum_overhead", "sandbox", "parallel", "noop")  # bench/pipelines.py
SERVER_WORKLOADS = ("server_io", "server_commits", "server_inspect")  # bench/server.py
IMAGE_WORKLOADS = ("img_datums", "img_start", "img_unpack", "img_w4")  # bench/images.py
ALIASES = {"server": SERVER_WORKLOADS, "images": IMAGE_WORKLOADS}


def run_backends(ctx: Ctx, only: set[str]) -> bool:
    """The issue-3 workloads (SeaweedFS S3 + PostgreSQL), with this module as their helpers."""
    import backends  # bench/backends.py: this script's directory is on sys.path

    return backends.run(ctx, sys.modules[__name__], only)


def run_pipelines(ctx: Ctx, only: set[str]) -> bool:
    """The issue-4 workloads (pipelines: W4 vs DVC, per-datum and sandbox overhead, ...)."""
    import pipelines  # bench/pipelines.py

    return pipelines.run(ctx, sys.modules[__name__], only)


def run_lineage(ctx: Ctx, only: set[str]) -> bool:
    """The issue-5 workload (lineage queries on a 4-stage DAG of 10,000 files per stage)."""
    import lineage  # bench/lineage.py

    return lineage.run(ctx, sys.modules[__name__], only)


def run_server(ctx: Ctx, only: set[str]) -> bool:
    """The issue-6 workloads (haathi serve: 1 GiB put/get over loopback, 32 concurrent
    committers, inspect commit at 200 requests/s)."""
    import server  # bench/server.py

    return server.run(ctx, sys.modules[__name__], only)


def run_images(ctx: Ctx, only: set[str]) -> bool:
    """The issue-15 workloads (pipelines in container images: per-datum time in a container,
    start of a datum set, first unpack vs a second job, W4 in an image vs DVC)."""
    import images  # bench/images.py

    return images.run(ctx, sys.modules[__name__], only)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smaller version of every workload")
    ap.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (server: the "
        "three server_* workloads; images: the four img_* workloads)",
    )
    ap.add_argument("--work", default=str(BENCH / "work"), help="where data is generated")
    ap.add_argument("--out", default=str(BENCH / "results.json"))
    ap.add_argument("--runs", type=int, help="runs per timed figure (median); default 3")
    ap.add_argument(
        "--settle",
        type=float,
        help="seconds to wait after mass deletions (default 30, 5 with --quick)",
    )
    ap.add_argument("-p", "--parallelism", type=int, default=4, help="haathi put -p")
    ap.add_argument(
        "--cli",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run haathi ingests through the CLI (auto: when it exists)",
    )
    ap.add_argument("--no-dvc", action="store_true", help="skip the dvc peer")
    ap.add_argument(
        "--install-peers",
        action="store_true",
        help="apt-get install restic and pip install dvc into /tmp/dvcenv if missing",
    )
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="also print the results table as Markdown (for bench/README.md)",
    )
    ap.add_argument(
        "--profile-all",
        action="store_true",
        help="write cProfile reports for every workload, not only missed targets",
    )
    args = ap.parse_args(argv)
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    for alias, names in ALIASES.items():
        if alias in only:
            only = (only - {alias}) | set(names)
    unknown = only - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    scale = QUICK if args.quick else FULL
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(
        args,
        scale,
        work,
        args.runs or 3,
        args.settle if args.settle is not None else (5.0 if args.quick else 30.0),
        detect_cli(args.cli),
    )
    if args.install_peers:
        install_peers(ctx)
    if TIME_BIN is None:
        ctx.note(
            "/usr/bin/time is missing (apt-get install -y time): peak RSS figures "
            "include the runner's own RSS and over-report"
        )
    ctx.results["meta"] = machine_meta(ctx)
    ctx.log(
        f"haathi via {ctx.results['meta']['haathi_via']}; runs={ctx.runs}; "
        f"settle={ctx.settle:.0f} s; work dir {work}"
    )
    t_start = time.perf_counter()
    steps: list[tuple[str, Callable[[], object]]] = []
    if "w1" in only:
        steps.append(("w1", lambda: w1(ctx)))
    if "w2" in only or "w3" in only:
        steps.append(("w2/w3", lambda: w2_w3(ctx, "w2" in only, "w3" in only)))
    if "latency" in only:
        steps.append(("latency", lambda: latency(ctx)))
    if "tree" in only:
        steps.append(("tree", lambda: big_tree(ctx)))
    if "memory" in only:
        steps.append(("memory", lambda: memory(ctx)))
    if only & set(BACKEND_WORKLOADS):
        steps.append(("s3/postgresql", lambda: run_backends(ctx, only)))
    if only & set(PIPELINE_WORKLOADS):
        steps.append(("pipelines", lambda: run_pipelines(ctx, only)))
    if "lineage" in only:
        steps.append(("lineage", lambda: run_lineage(ctx, only)))
    if only & set(SERVER_WORKLOADS):
        steps.append(("server", lambda: run_server(ctx, only)))
    if only & set(IMAGE_WORKLOADS):
        steps.append(("images", lambda: run_images(ctx, only)))
    failed = False
    for name, step in steps:
        try:
            if step() is False:  # the backend workloads report their own failures
                failed = True
        except Exception as exc:  # report and go on with the other workloads
            import traceback

            failed = True
            traceback.print_exc()
            ctx.note(f"workload {name} failed: {type(exc).__name__}: {str(exc)[:500]}")
        ctx.save()
    if not args.quick or args.work == str(BENCH / "work"):
        for p in ("w1", "w2", "mem"):
            shutil.rmtree(work / p, ignore_errors=True)
    ctx.results["meta"]["total_s"] = round(time.perf_counter() - t_start, 1)
    ctx.save()
    print_table(ctx)
    print(f"\nresults written to {args.out} ({ctx.results['meta']['total_s']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
