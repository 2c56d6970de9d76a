"""Restore: a commit's files written back out to a directory, against peers in the same run.

- ``w1_restore``: W1's files (20,000 of 1-8 KiB in 100 directories), ``haathi get file
  REPO@master:/ -r -o DIR`` as a process, against ``git checkout -- .`` of the same files
  committed to git, ``restic restore`` of a snapshot of them and ``cp -r`` of the source.
- ``w2_restore``: W2's files (8 x 128 MiB), ``haathi get file -r`` against ``cp -r``, each with
  the ``sync`` after it.

Every store (haathi's, git's, restic's) is made once per workload, untimed. Each run restores
into a new directory (deleting 20,000 files between runs would slow the next run's writes: see
the Method in the README), and every restored tree is compared byte for byte with the source
after its timed run; a difference fails the workload. None of the contenders fsyncs what it
writes, so W1 compares the bare times (the ``sync`` after each is recorded beside them) and W2
judges both with the ``sync`` after.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import blake3
from harness import Ctx, MiB, Row, Target, Trials, Workload, alternate
from ingest import gen_w1, gen_w2, new_store, put, scale
from measure import (
    HAATHI_BIN,
    Argv,
    fresh_dir,
    output_of,
    profile_process,
    remove,
    run_proc,
    timed_sync,
    warm,
)

# what a restore is run with: the directory to write (new), then its argv, env and cwd
Restorer = Callable[[Path], tuple[Argv, dict[str, str], Path | None]]


def tree_digests(root: Path) -> dict[str, bytes]:
    """Per path below ``root`` (relative, ``/``-separated), the BLAKE3 of a file's bytes, or
    ``b"dir"`` for a directory: two trees are byte-identical when these are equal."""
    out: dict[str, bytes] = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in dirs:
            out[prefix + name] = b"dir"
        for name in files:
            path = os.path.join(d, name)
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            if os.path.getsize(path) >= MiB:
                h.update_mmap(path)
            else:
                with open(path, "rb") as fh:
                    h.update(fh.read())
            out[prefix + name] = h.digest()
    return out


def check_same(who: str, got: Path, expected: dict[str, bytes]) -> None:
    """Raise unless the tree at ``got`` is byte-identical to the one ``expected`` describes."""
    found = tree_digests(got)
    if found == expected:
        return
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    differ = sorted(p for p in expected.keys() & found.keys() if expected[p] != found[p])
    raise RuntimeError(
        f"{who}'s restore in {got} is not the source: {len(missing)} missing (e.g. "
        f"{missing[:3]}), {len(extra)} extra ({extra[:3]}), {len(differ)} differ ({differ[:3]})"
    )


def restore_trials(
    ctx: Ctx,
    out: Path,
    restorers: dict[str, Restorer],
    sources: Sequence[Path],
    expected: dict[str, bytes],
    pause: float = 1.0,
) -> Trials:
    """Each restorer once per run (alternated), into ``out/WHO-K``: its seconds ``s``, with the
    ``sync`` after it ``s_sync``; then its tree checked against ``expected``. Before each:
    ``sync``, a pause, and every store in ``sources`` read back (the page cache drops files
    untouched for a minute)."""

    def before() -> None:
        os.sync()
        time.sleep(pause)
        for s in sources:
            warm(s)

    def contender(who: str, restorer: Restorer) -> Callable[[int], Row]:
        def run(k: int) -> Row:
            dest = out / f"{who}-{k}"
            argv, env, cwd = restorer(dest)
            row = run_proc(argv, env=env, cwd=cwd)
            row["s_sync"] = row["s"] + timed_sync()
            check_same(who, dest, expected)
            return row

        return run

    return alternate(ctx, {who: contender(who, r) for who, r in restorers.items()}, before=before)


def haathi_get(store: Path, repo: str) -> Restorer:
    """``haathi get file REPO@master:/ -r -o DEST`` on the embedded store at ``store``."""
    env = {"HAATHI_ADDRESS": str(store)}

    def argv(dest: Path) -> tuple[Argv, dict[str, str], Path | None]:
        return [HAATHI_BIN, "get", "file", f"{repo}@master:/", "-r", "-o", dest], env, None

    return argv


def cp_r(src: Path) -> Restorer:
    def argv(dest: Path) -> tuple[Argv, dict[str, str], Path | None]:
        return ["cp", "-r", src, dest], {}, None

    return argv


def load_range(trials: Trials) -> str:
    loads = [float(r["load"]) for rows in trials.rows.values() for r in rows]
    return f"load {min(loads):.1f}-{max(loads):.1f}"


# --------------------------------------------------------------------------------------------
# W1: 20,000 small files


def git_store(out: Path, src: Path) -> tuple[Path, Restorer]:
    """``src`` committed to a new git repository (packed by ``git gc``, as ``git commit``'s
    automatic gc would leave it, or a clone); the restore: ``git checkout -- .`` in an empty
    work tree, with the index as the commit left it (what ``rm -rf`` of the files and then
    ``git checkout -- .`` does, in a new directory per run)."""
    gitdir = out / "git"
    git = ["git", "--git-dir", str(gitdir), "--work-tree", str(src)]
    output_of(["git", "init", "-q", "--bare", gitdir])
    output_of([*git, "config", "core.bare", "false"])
    output_of([*git, "add", "-A"], cwd=src)
    who = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "gc.auto=0"]
    output_of([git[0], *who, *git[1:], "commit", "-q", "-m", "w1"], cwd=src)
    output_of([*git, "gc", "-q"], cwd=src)

    def argv(dest: Path) -> tuple[Argv, dict[str, str], Path | None]:
        dest.mkdir()
        index = dest.parent / f"{dest.name}.index"
        shutil.copyfile(gitdir / "index", index)
        cmd: Argv = ["git", "--git-dir", gitdir, "--work-tree", dest, "checkout", "--", "."]
        return cmd, {"GIT_INDEX_FILE": str(index)}, dest

    return gitdir, argv


def restic_store(out: Path, src: Path, restic: str) -> tuple[list[Path], Restorer]:
    """A snapshot of ``src`` (its files at the snapshot's root) in a new restic repository;
    the restore: ``restic restore latest --target DEST`` (the cache the backup made, kept)."""
    repo, cache = out / "restic", out / "restic-cache"
    env = {"RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(cache)}
    output_of([restic, "-r", repo, "init"], env=env)
    output_of([restic, "-r", repo, "backup", "--quiet", "."], env=env, cwd=src)

    def argv(dest: Path) -> tuple[Argv, dict[str, str], Path | None]:
        return [restic, "-r", repo, "restore", "latest", "--target", dest], env, None

    return [repo, cache], argv


def w1_restore(ctx: Ctx) -> None:
    sc = scale(ctx)
    src, nbytes = gen_w1(ctx)
    out = fresh_dir(ctx.work / "out-w1-restore")
    ctx.data.update(files=sc.w1_files, dirs=sc.w1_dirs, bytes=nbytes)
    expected = tree_digests(src)

    store = out / "store"
    new_store(store, "w1")
    warm(src)
    put(ctx, store, "w1", src)
    restorers: dict[str, Restorer] = {"haathi": haathi_get(store, "w1")}
    sources = [src, store]
    if shutil.which("git") is not None:
        gitdir, restorers["git"] = git_store(out, src)
        sources.append(gitdir)
    else:
        ctx.note("git is not installed: W1 restore has no git figure")
    restic = shutil.which("restic")
    if restic is not None:
        restic_paths, restorers["restic"] = restic_store(out, src, restic)
        sources += restic_paths
    else:
        ctx.note(
            "restic is not installed (run.py --install-peers): W1 restore has no restic figure"
        )
    restorers["cp"] = cp_r(src)
    ctx.settle("stores made (git gc deleted 20,000 loose objects)")

    trials = restore_trials(ctx, out, restorers, sources, expected)

    def detail(peer: str) -> str:
        if peer == "git":
            return (
                f"haathi {trials.median('haathi'):.2f} s, git {trials.median('git'):.2f} s; per"
                f" run haathi {trials.per_run('haathi')}, git {trials.per_run('git')} s;"
                f" {load_range(trials)}"
            )
        synced = ", ".join(f"{who} {trials.median(who, 's_sync'):.2f}" for who in restorers)
        return (
            f"restic {trials.median('restic'):.2f} s, cp -r {trials.median('cp'):.2f} s; with"
            f" the sync after: {synced} s"
        )

    verdicts = [
        ctx.figure(
            f"W1 restore haathi/{peer} time",
            trials.ratio("haathi", peer),
            "x",
            Target("<=", 1.0),
            detail(peer),
        )
        for peer in ("git", "restic")
        if peer in restorers
    ]
    if ctx.wants_profile(False if False in verdicts else None):
        argv, env, _ = restorers["haathi"](out / "profile")
        profile_process(ctx, "w1_restore", argv, env)
    remove(ctx, out)


# --------------------------------------------------------------------------------------------
# W2: 8 x 128 MiB


def w2_restore(ctx: Ctx) -> None:
    sc = scale(ctx)
    src = gen_w2(ctx)
    total = sc.w2_files * sc.w2_size
    out = fresh_dir(ctx.work / "out-w2-restore")
    ctx.data.update(files=sc.w2_files, file_mib=sc.w2_size // MiB)
    expected = tree_digests(src)

    store = out / "store"
    new_store(store, "w2")
    warm(src)
    put(ctx, store, "w2", src)
    restorers = {"haathi": haathi_get(store, "w2"), "cp": cp_r(src)}
    trials = restore_trials(ctx, out, restorers, [src, store], expected, pause=2.0)
    mb_s = {
        f"{who}{key}": total / trials.median(who, f"s{key}") / 1e6
        for who in restorers
        for key in ("", "_sync")
    }
    # --quick: with 16 MiB files the ~0.5 s interpreter start-up dominates
    passed = ctx.figure(
        "W2 restore throughput haathi / (cp -r + sync), each + sync",
        trials.ratio("cp", "haathi", "s_sync"),
        "x",
        Target(">=", 0.7),
        f"haathi + sync {mb_s['haathi_sync']:.0f} MB/s, cp + sync {mb_s['cp_sync']:.0f} MB/s;"
        f" per run haathi {trials.per_run('haathi', 's_sync')}, cp {trials.per_run('cp', 's_sync')}"
        f" s; {load_range(trials)}",
        judged=not ctx.quick,
    )
    ctx.figure(
        "W2 restore throughput haathi / cp -r (page cache only, informative)",
        trials.ratio("cp", "haathi"),
        "x",
        None,
        f"haathi {mb_s['haathi']:.0f} MB/s, cp {mb_s['cp']:.0f} MB/s",
    )
    if ctx.wants_profile(passed):
        argv, env, _ = restorers["haathi"](out / "profile")
        profile_process(ctx, "w2_restore", argv, env)
    remove(ctx, out)


WORKLOADS = [
    Workload(
        "w1_restore",
        "restore",
        "W1's 20,000 files: get file -r vs git checkout, restic, cp",
        w1_restore,
    ),
    Workload("w2_restore", "restore", "8 x 128 MiB: get file -r vs cp -r (+ sync)", w2_restore),
]
