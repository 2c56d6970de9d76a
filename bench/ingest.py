"""Ingest and reading on the embedded store (local directory + SQLite).

- ``w1``: 20,000 files of 1-8 KiB in 100 directories: ``haathi put file -r`` against ``restic
  backup``, ``cp -r`` and ``dvc add``; then the same directory put again with nothing changed
  (the stat cache) against ``git add -A`` and ``restic backup`` again; then ``list file`` and
  ``diff file`` on the result.
- ``w2``: 8 files x 128 MiB random: ``haathi put file -r`` against ``cp -r`` (+ ``sync``).
- ``w3``: on a store holding W2, 1 MiB overwritten mid-file and 100 B inserted at the start
  of another file, each put again: how much new storage each edit costs.
- ``latency``: one-off ``put_file`` commits of 1 KiB.
- ``tree``: a 1,000,000-entry tree, 10 edits, then the diff of the two with a cold cache.
- ``memory``: peak RSS of ``haathi put file`` of one 4 GiB file.
"""

from __future__ import annotations

import random
import resource
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from harness import SEED, Ctx, GiB, KiB, MiB, Row, Target, Workload, alternate, pct
from measure import (
    HAATHI_BIN,
    Argv,
    call_child,
    dir_bytes,
    dvc_bin,
    fresh_dir,
    fresh_inputs,
    output_of,
    profile_call,
    profile_process,
    remove,
    rm_paths,
    run_proc,
    stream_bytes,
    timed_sync,
    warm,
)

import haathi
from haathi.client.sources import bytes_op


@dataclass(frozen=True)
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


def scale(ctx: Ctx) -> Scale:
    return QUICK if ctx.quick else FULL


# --------------------------------------------------------------------------------------------
# data and haathi's put (shared with backends.py)


def gen_w1(ctx: Ctx) -> tuple[Path, int]:
    """W1's files (seeded: half random bytes, half text-like) and their total size; made once
    per size and kept under ``--work`` until the end of the run."""
    sc = scale(ctx)
    root = ctx.work / "w1"
    data = root / "data"
    marker = root / f".complete-{sc.w1_files}-{sc.w1_dirs}-{SEED}"
    if marker.exists():
        return data, int(marker.read_text())
    fresh_dir(data)
    rng = random.Random(SEED)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(600)]
    for d in range(sc.w1_dirs):
        (data / f"d{d:03d}").mkdir()
    total = 0
    for i in range(sc.w1_files):
        size = rng.randint(1 * KiB, 8 * KiB)
        if rng.random() < 0.5:
            body, name = rng.randbytes(size), f"f{i:05d}.bin"
        else:
            text = ""
            while len(text) < size:
                text += " ".join(rng.choices(words, k=rng.randint(4, 14))) + "\n"
            body, name = text.encode()[:size], f"f{i:05d}.txt"
        (data / f"d{i % sc.w1_dirs:03d}" / name).write_bytes(body)
        total += size
    marker.write_text(str(total))
    return data, total


def gen_w2(ctx: Ctx) -> Path:
    """W2's large random files (made once per size, like W1's)."""
    sc = scale(ctx)
    data = ctx.work / "w2" / "data"
    marker = ctx.work / "w2" / f".complete-{sc.w2_files}-{sc.w2_size}-{SEED}"
    if not marker.exists():
        fresh_dir(data)
        for i in range(sc.w2_files):
            (data / f"big{i}.bin").write_bytes(stream_bytes(f"w2-{i}", sc.w2_size))
        marker.touch()
    return data


def new_store(store: Path, repo: str) -> None:
    """A new embedded store at ``store`` holding an empty ``repo``."""
    shutil.rmtree(store, ignore_errors=True)
    with haathi.connect(str(store)) as c:
        c.create_repo(repo)


def put_argv(ctx: Ctx, repo: str, src: Path) -> list[str]:
    """``haathi put file``: a directory goes to the root of ``repo``, a file under its name."""
    if src.is_dir():
        return [
            str(HAATHI_BIN),
            "put",
            "file",
            f"{repo}@master:/",
            "-r",
            "-f",
            str(src),
            "-p",
            str(ctx.opts.parallelism),
        ]
    return [str(HAATHI_BIN), "put", "file", f"{repo}@master:/{src.name}", "-f", str(src)]


def put(ctx: Ctx, store: Path, repo: str, src: Path) -> Row:
    """One ``haathi put file`` process into the store at ``store``: seconds and peak RSS."""
    return run_proc(put_argv(ctx, repo, src), env={"HAATHI_ADDRESS": str(store)})


def stored(row: Row, target: Path) -> Row:
    """``row`` plus the ``sync`` after it (``s_sync``) and what was written to ``target``."""
    row["s_sync"] = row["s"] + timed_sync()
    row["bytes"] = dir_bytes(target, skip_tmp=False)
    return row


def restic_backup(ctx: Ctx, out: Path, src: Path, label: str) -> Callable[[int], Row] | None:
    """A contender: ``restic backup`` of ``src`` into a new repository below ``out`` per run
    (None, and a note, when restic is not installed)."""
    restic = shutil.which("restic")
    if restic is None:
        ctx.note(f"restic is not installed (run.py --install-peers): {label} has no restic figure")
        return None

    def backup(k: int) -> Row:
        repo = out / f"restic-{k}"
        env = {"RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(out / f"restic-cache-{k}")}
        output_of([restic, "-r", repo, "init"], env=env)
        return stored(run_proc([restic, "-r", repo, "backup", "--quiet", src], env=env), repo)

    return backup


def put_and_cp(ctx: Ctx, out: Path, repo: str, src: Path) -> dict[str, Callable[[int], Row]]:
    """Contenders: ``haathi put file`` of ``src`` into a new store, and ``cp -r`` of it; each
    with the ``sync`` after it and the bytes written (under ``out``)."""

    def haathi_put(k: int) -> Row:
        store = out / f"haathi-{k}"
        new_store(store, repo)
        return stored(put(ctx, store, repo, src), store)

    def cp(k: int) -> Row:
        return stored(run_proc(["cp", "-r", src, out / f"cp-{k}"]), out / f"cp-{k}")

    return {"haathi": haathi_put, "cp": cp}


def profile_put(ctx: Ctx, name: str, store: Path, repo: str, src: Path) -> None:
    """The ``haathi put file`` process of ``src`` into ``store`` under cProfile."""
    warm(src)
    profile_process(ctx, name, put_argv(ctx, repo, src), {"HAATHI_ADDRESS": str(store)})


# --------------------------------------------------------------------------------------------
# W1: many small files; then list and diff


def w1(ctx: Ctx) -> None:
    sc = scale(ctx)
    src, nbytes = gen_w1(ctx)
    out = fresh_dir(ctx.work / "out-w1")
    ctx.data.update(files=sc.w1_files, dirs=sc.w1_dirs, bytes=nbytes)

    contenders = put_and_cp(ctx, out, "w1", src)
    backup = restic_backup(ctx, out, src, "W1")
    if backup is not None:
        contenders["restic"] = backup
    restic = shutil.which("restic")
    dvc = dvc_bin(ctx)
    project = src.parent  # a DVC project around data/, a new cache and state dir per run
    if dvc is not None:

        def dvc_add(k: int) -> Row:
            env = {"DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(out / f"dvc-site-{k}")}
            rm_paths(project / "data.dvc")
            if not (project / ".dvc").exists():
                output_of([dvc, "init", "--no-scm", "-q"], env=env, cwd=project)
            output_of([dvc, "cache", "dir", out / f"dvc-cache-{k}"], env=env, cwd=project)
            row = run_proc([dvc, "add", "-q", "data"], env=env, cwd=project)
            return stored(row, out / f"dvc-cache-{k}")

        contenders["dvc"] = dvc_add
    trials = alternate(ctx, contenders, before=fresh_inputs(src))
    h = trials.median("haathi")
    detail = ", ".join(f"{who} {trials.median(who):.2f} s" for who in contenders)
    if restic is not None:
        ratio = h / trials.median("restic")
        # issue 17: at least 1.5x faster than restic, i.e. at most 1/1.5 of its time
        passed = ctx.figure("W1 ingest haathi/restic time", ratio, "x", Target("<=", 0.67), detail)
    else:
        passed = ctx.figure("W1 ingest haathi time", h, "s", None, detail)
    if ctx.wants_profile(passed):
        new_store(out / "profile", "w1")
        profile_put(ctx, "w1_ingest", out / "profile", "w1", src)
    w1_again(ctx, out, src, restic)
    w1_reads(ctx, out / "haathi-0", src)
    rm_paths(project / ".dvc", project / "data.dvc", project / ".gitignore")
    remove(ctx, out)


CHILD = Path(__file__).resolve().parent / "ingest_child.py"


def with_cpu(argv: Argv, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Row:
    """:func:`run_proc`, with the CPU seconds (user + system) the process used: ``cpu_s``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = run_proc(argv, env=env, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row["cpu_s"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return row


def w1_again(ctx: Ctx, out: Path, src: Path, restic: str | None) -> None:
    """W1 put again with nothing changed, into the store of the first ingest run (whose put
    recorded the stat cache): the whole ``haathi put file -r`` process, and the command alone
    in a process that has imported haathi (what a preloaded process runs); against ``git add
    -A`` in a work tree whose index holds W1, and ``restic backup`` again into the first run's
    repository (restic's parent snapshot plays the stat cache's part). Every haathi run must
    make a commit holding the same files as its parent."""
    store = out / "haathi-0"
    argv = put_argv(ctx, "w1", src)
    env = {"HAATHI_ADDRESS": str(store)}
    with haathi.connect(str(store)) as c:
        before = len(c.list_commit("w1@master"))

    def loaded(k: int) -> Row:
        return call_child(CHILD, "put_loaded", None, store=str(store), argv=argv[1:])

    contenders: dict[str, Callable[[int], Row]] = {
        "haathi": lambda k: with_cpu(argv, env=env),
        "haathi_loaded": loaded,
    }
    if shutil.which("git") is not None:
        gitdir = out / "git-again"
        git = ["git", "--git-dir", str(gitdir), "--work-tree", str(src)]
        output_of(["git", "init", "-q", "--bare", gitdir])
        output_of([*git, "config", "core.bare", "false"])
        output_of([*git, "add", "-A"], cwd=src)
        who = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "gc.auto=0"]
        output_of([git[0], *who, *git[1:], "commit", "-q", "-m", "w1"], cwd=src)
        contenders["git"] = lambda k: with_cpu([*git, "add", "-A"], cwd=src)
    else:
        ctx.note("git is not installed: W1 put again has no git figure")
    if restic is not None:
        renv = {"RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(out / "restic-cache-0")}
        rargv: Argv = [restic, "-r", out / "restic-0", "backup", "--quiet", src]
        contenders["restic"] = lambda k: with_cpu(rargv, env=renv)
    trials = alternate(ctx, contenders, before=fresh_inputs(src), key="again_runs")
    runs = len(trials.rows["haathi"]) + len(trials.rows["haathi_loaded"])
    with haathi.connect(str(store)) as c:
        commits = c.list_commit("w1@master")
        if len(commits) != before + runs or any(c.diff_file(f"w1@{x.id}") for x in commits[:runs]):
            raise RuntimeError("W1 put again: a run did not commit the same files as before")
    h, pre = trials.median("haathi"), trials.median("haathi_loaded")
    loads = [float(r["load"]) for rows in trials.rows.values() for r in rows]
    peers = "".join(
        f"; {who} {trials.median(who):.3f} s (haathi/{who} {trials.ratio('haathi', who):.2f}x),"
        f" CPU {trials.median(who, 'cpu_s'):.3f} s"
        for who in ("git", "restic")
        if who in contenders
    )
    passed = ctx.figure(
        "W1 put again, nothing changed: haathi put file -r, whole command",
        h,
        "s",
        Target("<", 0.3, "s"),
        f"CPU {trials.median('haathi', 'cpu_s'):.3f} s{peers}; per run"
        f" {trials.per_run('haathi', spec='.3f')} s; load {min(loads):.1f}-{max(loads):.1f}",
    )
    ctx.figure(
        "W1 put again, nothing changed: the command after start-up (haathi imported)",
        pre,
        "s",
        None,
        f"CPU {trials.median('haathi_loaded', 'cpu_s'):.3f} s; the rest of the whole"
        f" command, {h - pre:.3f} s, is the interpreter's start-up and imports",
    )
    if ctx.wants_profile(passed):
        profile_process(ctx, "w1_put_again", argv, env)


def w1_reads(ctx: Ctx, store: Path, src: Path) -> None:
    """On W1's store, after a second commit changing 10 files: ``list file`` of a directory
    and of the root, ``diff file`` of the two commits; through the API on a new connection
    (cold node cache), then again (warm), and as whole CLI processes."""
    rng = random.Random(SEED + 1)
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    with haathi.connect(str(store)) as c:
        ops = [
            bytes_op(rng.randbytes(rng.randint(KiB, 8 * KiB)), f"/{p}")
            for p in sorted(rng.sample(files, 10))
        ]
        c.modify_file("w1@master", ops)
    a_dir = "/" + files[len(files) // 2].split("/")[0]
    queries: dict[str, tuple[Callable[[Any], list[Any]], list[str]]] = {
        "list_dir": (
            lambda c: c.list_file(f"w1@master:{a_dir}"),
            ["list", "file", f"w1@master:{a_dir}"],
        ),
        "list_root": (lambda c: c.list_file("w1@master:/"), ["list", "file", "w1@master:/"]),
        "diff_10": (
            lambda c: c.diff_file("w1@master", "w1@master^"),
            ["diff", "file", "w1@master", "w1@master^"],
        ),
    }
    res: dict[str, Any] = ctx.data.setdefault("reads", {})
    for key, (query, cli) in queries.items():
        cold: list[float] = []
        warm_s: list[float] = []
        for _ in range(3):
            with haathi.connect(str(store)) as c:
                t0 = time.perf_counter()
                n = len(query(c))
                cold.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                query(c)
                warm_s.append(time.perf_counter() - t0)
        env = {"HAATHI_ADDRESS": str(store)}
        cli_s = [run_proc([HAATHI_BIN, *cli], env=env)["s"] for _ in range(3)]
        r = res[key] = {
            "results": n,
            "cold_s": statistics.median(cold),
            "warm_s": statistics.median(warm_s),
            "cli_s": statistics.median(cli_s),
        }
        label = {
            "list_dir": f"W1 list file {a_dir} ({n} files)",
            "list_root": f"W1 list file / ({n} dirs)",
            "diff_10": f"W1 diff file, {n} changed of {len(files):,}",
        }[key]
        passed = ctx.figure(
            f"{label} (API, cold)",
            r["cold_s"] * 1000,
            "ms",
            Target("<", 1000, "ms"),
            f"warm {r['warm_s'] * 1000:.1f} ms",
            area="reading",
        )
        ctx.figure(
            f"{label} (CLI process)",
            r["cli_s"] * 1000,
            "ms",
            Target("<", 1000, "ms"),
            "interpreter start-up included",
            area="reading",
        )
        if ctx.wants_profile(passed):

            def cold_query(query: Callable[[Any], list[Any]] = query) -> None:
                with haathi.connect(str(store)) as c:
                    query(c)

            profile_call(ctx, f"w1_{key}", cold_query)
    res["cli_startup_s"] = statistics.median(
        run_proc([HAATHI_BIN, "--help"])["s"] for _ in range(3)
    )


# --------------------------------------------------------------------------------------------
# W2: large files; W3: storage of small edits


def w2(ctx: Ctx) -> None:
    sc = scale(ctx)
    src = gen_w2(ctx)
    total = sc.w2_files * sc.w2_size
    out = fresh_dir(ctx.work / "out-w2")
    ctx.data.update(files=sc.w2_files, file_mib=sc.w2_size // MiB)

    trials = alternate(ctx, put_and_cp(ctx, out, "w2", src), before=fresh_inputs(src, 2.0))
    mb_s = {
        f"{who}{key}": total / trials.median(who, f"s{key}") / 1e6
        for who in ("haathi", "cp")
        for key in ("", "_sync")
    }
    # --quick: with 16 MiB files the ~0.5 s interpreter start-up dominates
    passed = ctx.figure(
        "W2 throughput haathi / (cp -r + sync)",
        mb_s["haathi_sync"] / mb_s["cp_sync"],
        "x",
        Target(">=", 0.5),
        f"haathi {mb_s['haathi_sync']:.0f} MB/s, cp+sync {mb_s['cp_sync']:.0f} MB/s",
        judged=not ctx.quick,
    )
    ctx.figure(
        "W2 throughput haathi / cp -r (page cache only, informative)",
        mb_s["haathi"] / mb_s["cp"],
        "x",
        None,
        f"haathi {mb_s['haathi']:.0f} MB/s, cp {mb_s['cp']:.0f} MB/s",
    )
    if ctx.wants_profile(passed):
        new_store(out / "profile", "w2")
        profile_put(ctx, "w2_ingest", out / "profile", "w2", src)
    remove(ctx, out)


def w3(ctx: Ctx) -> None:
    sc = scale(ctx)
    src = gen_w2(ctx)
    store = ctx.work / "out-w3"
    new_store(store, "w2")
    fresh_inputs(src)()
    put(ctx, store, "w2", src)
    files = sorted(src.iterdir())

    def put_again(label: str) -> Row:
        objects, meta = dir_bytes(store / "objects"), _meta_bytes(store)
        fresh_inputs(src)()
        row = put(ctx, store, "w2", src)
        row["objects_growth"] = dir_bytes(store / "objects") - objects
        row["meta_growth"] = _meta_bytes(store) - meta
        with haathi.connect(str(store)) as c:
            row["changed_files"] = len(c.diff_file("w2@master", "w2@master^"))
        g = row["objects_growth"]
        ctx.figure(
            label,
            g / MiB,
            "MiB",
            Target("<", 4, "MiB"),
            f"meta.db +{row['meta_growth'] / KiB:.0f} KiB; {row['changed_files']} file changed;"
            f" the put of all {sc.w2_files} files took {row['s']:.2f} s",
        )
        return row

    borg = shutil.which("borg")
    borg_repo, borg_env = (
        ctx.work / "out-w3-borg",
        {"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"},
    )
    if borg is not None:  # the same files, backed up before the edit
        shutil.rmtree(borg_repo, ignore_errors=True)
        output_of([borg, "init", "-e", "none", borg_repo], env=borg_env)
        output_of([borg, "create", f"{borg_repo}::before", src], env=borg_env)
    else:
        ctx.note("borg is not installed (apt-get install borgbackup): W3 has no borg figure")
    try:
        with open(files[0], "r+b") as fh:  # (a) 1 MiB overwritten in the middle
            fh.seek(sc.w2_size // 2)
            fh.write(stream_bytes("w3-a", MiB))
        ctx.data["a"] = put_again("W3a 1 MiB overwritten mid-file: new storage")
        if borg is not None:
            fresh_inputs(src)()
            row = run_proc([borg, "create", f"{borg_repo}::after", src], env=borg_env)
            ctx.data["a"]["borg_s"] = row["s"]
            ctx.figure(
                "W3a re-ingest after a 1 MiB edit, haathi/borg time",
                ctx.data["a"]["s"] / row["s"],
                "x",
                Target("<=", 1.0),
                f"haathi put file -r {ctx.data['a']['s']:.2f} s (all {sc.w2_files} files, "
                f"the stat cache on), borg create {row['s']:.2f} s (its files cache on)",
            )
        files[1].write_bytes(stream_bytes("w3-b", 100) + files[1].read_bytes())  # (b)
        ctx.data["b"] = put_again("W3b 100 B inserted at start: new storage")
    finally:  # W2's inputs are edited now: made again by the next workload that needs them
        remove(ctx, store, borg_repo, ctx.work / "w2")


def _meta_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.glob("meta.db*"))


# --------------------------------------------------------------------------------------------
# one-off commit latency; a 1,000,000-entry tree; memory of a 4 GiB put


def latency(ctx: Ctx) -> None:
    n = scale(ctx).lat_n
    store = ctx.work / "out-latency"
    shutil.rmtree(store, ignore_errors=True)
    rng = random.Random(SEED + 2)
    with haathi.connect(str(store)) as c:
        c.create_repo("lat")
        for i in range(5):  # warm-up
            c.put_file(f"lat@master:/warm{i}.bin", rng.randbytes(KiB))
        times = []
        for i in range(n):
            data = rng.randbytes(KiB)
            t0 = time.perf_counter()
            c.put_file(f"lat@master:/f{i:04d}.bin", data)
            times.append(time.perf_counter() - t0)
        ctx.data.update(n=n, times_ms=[round(t * 1000, 2) for t in times])
        passed = ctx.figure(
            "one-off put_file 1 KiB commit latency, median",
            statistics.median(times) * 1000,
            "ms",
            Target("<", 20, "ms"),
            f"p95 {pct(times, 0.95) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms",
        )
        if ctx.wants_profile(passed):

            def more() -> None:
                for i in range(50):
                    c.put_file(f"lat@master:/p{i:04d}.bin", rng.randbytes(KiB))

            profile_call(ctx, "latency_put_file", more, "50 one-off put_file commits")
    remove(ctx, store, settle=False)


def tree(ctx: Ctx) -> None:
    from haathi.config import store_config
    from haathi.runtime import init_store
    from haathi.tree import prolly
    from haathi.tree.entry import FileEntry, pack_chunks

    n = scale(ctx).tree_n
    store = ctx.work / "out-tree"
    shutil.rmtree(store, ignore_errors=True)
    rng = random.Random(SEED + 3)
    res = ctx.data
    res["entries"] = n

    def entry(i: int, salt: str = "") -> FileEntry:
        h = blake3.blake3(f"{salt}{i}".encode()).digest()
        size = 1024 + (i * 7919) % 65536
        path = f"/d{i // 1000:04d}/f{i % 1000:04d}.bin"
        return FileEntry(path, size, h, pack_chunks([(h, size)]))

    rt = init_store(store_config(str(store)))
    try:
        blobs = rt.pfs.blobs
        entries = [entry(i) for i in range(n)]
        writer = blobs.writer()
        t0 = time.perf_counter()
        root1 = prolly.build(entries, rt.pfs.nodes, writer)
        writer.flush()
        res["build_s"] = time.perf_counter() - t0
        edits = [(entries[i].path, entry(i, "edited")) for i in sorted(rng.sample(range(n), 10))]
        writer = blobs.writer()
        t0 = time.perf_counter()
        root2 = prolly.apply(root1, edits, rt.pfs.nodes, writer)
        writer.flush()
        res["apply_10_s"] = time.perf_counter() - t0
        del entries
        assert root1 is not None and root2 is not None
        reads = [0]

        def counting_get(d: bytes) -> bytes:
            reads[0] += 1
            return blobs.get(d)

        cold, warm_s = [], []
        for _ in range(3):
            nodes = prolly.NodeStore(counting_get)  # a new one: an empty (cold) cache
            reads[0] = 0
            t0 = time.perf_counter()
            got = len(list(prolly.diff(root1, root2, nodes)))
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            list(prolly.diff(root1, root2, nodes))
            warm_s.append(time.perf_counter() - t0)
        res.update(nodes_read_cold=reads[0], diff_results=got, diff_warm_s=min(warm_s))
        if got != 10:
            ctx.note(f"the tree diff returned {got} entries, not 10")
        passed = ctx.figure(
            f"tree diff, {n:,} entries, 10 edits (cold cache)",
            statistics.median(cold) * 1000,
            "ms",
            Target("<", 1000, "ms"),
            f"{reads[0]} nodes read; build {res['build_s']:.1f} s, apply 10 edits "
            f"{res['apply_10_s'] * 1000:.0f} ms",
            area="reading",
        )
        if ctx.wants_profile(passed):
            profile_call(
                ctx,
                "tree_diff",
                lambda: list(prolly.diff(root1, root2, prolly.NodeStore(blobs.get))),
            )
    finally:
        rt.close()
    remove(ctx, store, settle=False)


def memory(ctx: Ctx) -> None:
    size = scale(ctx).mem_size
    d = fresh_dir(ctx.work / "mem")
    big = d / "big.bin"
    with open(big, "wb") as fh:
        for i in range(0, size, 64 * MiB):
            fh.write(stream_bytes(f"mem-{i}", min(64 * MiB, size - i)))
    store = ctx.work / "out-mem"
    new_store(store, "mem")
    fresh_inputs(big, 2.0)()
    row = ctx.data["put"] = put(ctx, store, "mem", big)
    ctx.figure(
        f"put file of {size / GiB:.2g} GiB: peak RSS",
        row["rss"] / MiB,
        "MiB",
        Target("<", 500, "MiB"),
        f"{row['s']:.1f} s, {size / row['s'] / 1e6:.0f} MB/s",
    )
    remove(ctx, store, d)


WORKLOADS = [
    Workload("w1", "ingest", "20,000 small files: put vs restic, cp, dvc add; list, diff", w1),
    Workload("w2", "ingest", "8 x 128 MiB: put vs cp -r (+ sync)", w2),
    Workload("w3", "ingest", "new storage after 1 MiB / 100 B edits of W2's files", w3),
    Workload("latency", "ingest", "one-off 1 KiB put_file commits", latency),
    Workload("tree", "reading", "diff of two 1,000,000-entry trees, 10 edits, cold", tree),
    Workload("memory", "ingest", "peak RSS of putting one 4 GiB file", memory),
]
