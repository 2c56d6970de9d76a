"""How the workloads measure: processes (wall time, peak RSS, CPU), files (warm, sizes,
deterministic data), timers around functions, profiles, and measurements in child processes.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import blake3
from harness import PROJECT, SEED, Ctx, MiB, Row

PY = sys.executable
HAATHI_BIN = Path(sys.executable).parent / "haathi"
TIME_BIN = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
# DVC, a peer: installed by `run.py --install-peers` into its own venv (its dependencies would
# not fit haathi's), or into haathi's
DVC_BINS = (Path("/tmp/dvcenv/bin/dvc"), Path(sys.executable).parent / "dvc")

Argv = Sequence[str | Path]


# --------------------------------------------------------------------------------------------
# processes


def run_proc(argv: Argv, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Row:
    """Run ``argv``: its wall seconds ``s``, CPU seconds ``cpu`` (user + system, its children's
    included) and peak RSS bytes ``rss``. Raises with its stderr on failure.

    The peak RSS comes from ``/usr/bin/time``: a child forked straight from this (big) runner
    reports the runner's RSS at fork time as its ``ru_maxrss`` (Linux carries the old mm's
    high-water mark across exec).
    """
    cmd = [str(a) for a in argv]
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss_file:
        if TIME_BIN:
            cmd = [TIME_BIN, "-f", "%M", "-o", rss_file.name, *cmd]
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, env=os.environ | dict(env or {}), cwd=cwd, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}):\n{msg}")
        rss_kib = int(rss_file.read().split()[-1]) if TIME_BIN else usage.ru_maxrss
    return {"s": dt, "rss": rss_kib * 1024, "cpu": usage.ru_utime + usage.ru_stime}


def output_of(argv: Argv, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    return subprocess.run(
        [str(a) for a in argv],
        env=os.environ | dict(env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def version(argv: Argv) -> str:
    """The first line a ``--version``-like command prints, or why not."""
    try:
        p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60)
        return ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def dvc_bin(ctx: Ctx) -> Path | None:
    """DVC, when installed and wanted (else None, and a note)."""
    found = next((p for p in DVC_BINS if p.exists()), None) if ctx.opts.use_dvc else None
    if found is None and ctx.opts.use_dvc:
        ctx.note(f"{ctx.name}: dvc is not installed (run.py --install-peers): no dvc figure")
    return found


def cpu_of(argv: Argv) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``, its children's CPU included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [str(a) for a in argv], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------
# files


def timed_sync() -> float:
    t0 = time.perf_counter()
    os.sync()
    return time.perf_counter() - t0


def warm(path: Path) -> None:
    """Read every file below ``path``: this machine's page cache drops files untouched for
    about a minute, and a warm run must find its inputs there."""
    paths = [path] if path.is_file() else [Path(d) / f for d, _, fs in os.walk(path) for f in fs]
    buf = bytearray(4 * MiB)
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def fresh_inputs(path: Path, pause: float = 1.0) -> Callable[[], None]:
    """A ``before`` for :func:`harness.alternate`: ``sync``, a pause, ``path`` read again."""

    def before() -> None:
        os.sync()
        time.sleep(pause)
        warm(path)

    return before


def dir_bytes(path: Path, *, skip_tmp: bool = True) -> int:
    """The bytes of the files below ``path`` (without ``.tmp*`` ones unless asked)."""
    total = 0
    for d, dirs, fs in os.walk(path):
        if skip_tmp:
            dirs[:] = [x for x in dirs if not x.startswith(".tmp")]
        for f in fs:
            if not (skip_tmp and f.startswith(".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(d, f)).st_size
    return total


def rm_paths(*paths: Path) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def fresh_dir(path: Path) -> Path:
    """``path`` as a new empty directory."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def remove(ctx: Ctx, *paths: Path, settle: bool = True) -> None:
    """Delete ``paths``, then (``settle``) wait for the disk to recover."""
    rm_paths(*paths)
    if settle:
        ctx.settle(f"deleted {', '.join(p.name for p in paths)}")


def stream_bytes(label: str, n: int) -> bytes:
    """``n`` deterministic pseudo-random bytes (BLAKE3 in XOF mode, keyed by the seed)."""
    return blake3.blake3(f"{SEED}:{label}".encode()).digest(length=n)


def shown(path: Path) -> str:
    """``path`` relative to the project when it lies inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# timers and profiles


def replace(owner: object, fn: Callable[..., Any], new: Callable[..., Any]) -> None:
    """Put ``new`` where ``owner`` (a module or class) holds ``fn`` under its own name."""
    setattr(owner, fn.__name__, new)


class Timers:
    """Wall-clock timers wrapped around functions (summed over threads; no profiler, so the
    figures are not inflated: a wrapper costs about a microsecond per call)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, label: str, seconds: float) -> None:
        with self._lock:
            self.totals[label] = self.totals.get(label, 0.0) + seconds
            self.counts[label] = self.counts.get(label, 0) + 1

    def wrap(self, owner: object, fn: Callable[..., Any], label: str) -> None:
        """Time every call of ``fn`` through ``owner`` (a module or class that holds it under
        its own name), e.g. ``wrap(jobs, jobs.plan_job, "plan")``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - t0)

        replace(owner, fn, timed)
        self.totals[label], self.counts[label] = 0.0, 0  # reported in this order

    def reset(self) -> None:
        self.totals = dict.fromkeys(self.totals, 0.0)
        self.counts = dict.fromkeys(self.counts, 0)


def write_profile(ctx: Ctx, name: str, stats: pstats.Stats, head: str = "") -> None:
    """A profile report (top functions by cumulative and by own time) in ``profiles/`` next to
    the results file."""
    s = io.StringIO()
    s.write(head + "\n" if head else "")
    stats.stream = s  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats("cumulative").print_stats(35)
    s.write("\n---- by own time ----\n")
    stats.sort_stats("tottime").print_stats(20)
    pdir = ctx.opts.out.resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    path = pdir / f"{name}.txt"
    path.write_text(s.getvalue())
    ctx.profiles[name] = shown(path)
    ctx.log(f"profile {name} written to {path}")


def profile_call(ctx: Ctx, name: str, fn: Callable[[], object], head: str = "") -> None:
    """``fn`` under cProfile (this thread only)."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    write_profile(ctx, name, pstats.Stats(prof), head)


def profile_process(ctx: Ctx, name: str, argv: Argv, env: Mapping[str, str]) -> None:
    """A Python console script or module (``argv[0]``) in its own process under cProfile
    (its main thread only)."""
    raw = ctx.work / f"{name}.pstats"
    try:
        run_proc([PY, "-m", "cProfile", "-o", raw, *argv], env=env)
    except RuntimeError as exc:
        ctx.note(f"profiling {name} failed: {str(exc)[:300]}")
        return
    head = " ".join(map(str, argv)) + "\n(python -m cProfile: the main thread only)"
    write_profile(ctx, name, pstats.Stats(str(raw)), head)
    raw.unlink()


# --------------------------------------------------------------------------------------------
# measurements in child processes (so that the runner's own heap does not weigh on them)


def spawn_child(
    script: Path, op: str, env: Mapping[str, str] | None = None, /, **kw: Any
) -> subprocess.Popen[str]:
    """Start ``script``'s child operation ``op`` with ``kw`` in a new process."""
    return subprocess.Popen(
        [PY, str(script), json.dumps({"op": op, **kw})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(PROJECT),
        env=os.environ | dict(env or {}),
    )


def child_result(p: subprocess.Popen[str]) -> dict[str, Any]:
    """The result of a child started by :func:`spawn_child` (raises with its stderr when it
    failed)."""
    stdout, stderr = p.communicate(timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{p.args!r} failed ({p.returncode}):\n{stderr[-3000:]}")
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"{p.args!r} printed no result:\n{stdout[-2000:]}{stderr[-2000:]}")


def call_child(
    script: Path, op: str, env: Mapping[str, str] | None = None, /, **kw: Any
) -> dict[str, Any]:
    """Run ``script``'s child operation ``op`` with ``kw`` in a new process; its result."""
    return child_result(spawn_child(script, op, env, **kw))


def child_main(ops: Mapping[str, Callable[..., dict[str, Any]]]) -> int:
    """The child side of :func:`call_child`: run the operation ``sys.argv[1]`` names (JSON:
    ``op`` and its arguments) and print its result."""
    req = json.loads(sys.argv[1])
    res = ops[req.pop("op")](**req)
    print("RESULT " + json.dumps(res), flush=True)
    return 0
