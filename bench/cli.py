"""``cli_latency``: a ``haathi`` command as a whole process, as a shell starts it (issue 17).

``haathi version``, ``haathi list repo`` and ``haathi inspect commit REPO@ID`` (a commit of 5
files, in a store of 3 repos) through the venv's ``haathi`` console script: on the embedded
store (local directory + SQLite) and against a local ``haathi serve`` of it. Each twice:
``cold`` (``HAATHI_PRELOAD=0``: the process imports and opens everything itself) and ``user``
(the environment as users have it: ``HAATHI_PRELOAD`` unset, so a preloaded process counts
once there is one). Baseline in the same run: ``python -c pass`` (the interpreter alone, with
this venv's ``site``). Figures: the medians of wall time (judged) and of CPU time (user +
system of the process and the children it waited for; a server's or a preloaded process's
own CPU is not in it).

Each contender runs ``REPS`` processes per run (their median is the run's row), the contenders
alternate, and a first untimed run of each checks what it prints (it also writes the bytecode
and starts whatever the user's environment starts). Bytecode is written: an installed haathi
has its ``.pyc`` files, so ``PYTHONDONTWRITEBYTECODE`` is dropped from the processes'
environment. A missed target writes the command's imports (``-X importtime``, by cumulative
time) and a cProfile of it to ``profiles/``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from harness import Ctx, Row, Target, Trials, Workload, alternate
from measure import HAATHI_BIN, PY, fresh_dir, profile_process, remove, shown
from server import served

import haathi

REPS = 5  # processes per contender per run; 2 with --quick
TARGET_MS = {"version": 100.0, "embedded": 150.0, "server": 200.0}


def environments() -> dict[str, dict[str, str]]:
    """``cold`` and ``user``: the environment of the measured processes."""
    user = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HAATHI_PRELOAD", "PYTHONDONTWRITEBYTECODE")
    }
    return {"cold": {**user, "HAATHI_PRELOAD": "0"}, "user": user}


def spawn(argv: list[str], env: Mapping[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process running ``argv``."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} failed: {err.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def processes(argv: list[str], env: Mapping[str, str], reps: int) -> Callable[[int], Row]:
    """A contender: ``reps`` processes of ``argv``, the medians of their wall and CPU times."""

    def run(_k: int) -> Row:
        walls, cpus = zip(*(spawn(argv, env) for _ in range(reps)), strict=True)
        return {"s": sorted(walls)[reps // 2], "cpu_s": sorted(cpus)[reps // 2]}

    return run


def make_store(store: Path) -> str:
    """Three repos, one with a commit of 5 files; that commit's ``REPO@ID``."""
    with haathi.init(str(store)) as c:
        for name in ("data", "models", "logs"):
            c.create_repo(name, f"the {name}")
        with c.start_commit("data@master") as commit:
            for i in range(5):
                commit.put_file(f"/part-{i}.csv", b"x,y\n%d,%d\n" % (i, i * i))
        return f"data@{c.inspect_commit('data@master').id}"


def check(argv: list[str], env: Mapping[str, str], expect: str) -> None:
    """Run ``argv`` once (untimed): it must succeed and print ``expect``."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or expect not in done.stdout:
        raise RuntimeError(f"{' '.join(argv)}: {done.returncode} {done.stdout!r} {done.stderr!r}")


def import_profile(ctx: Ctx, name: str, argv: list[str], env: Mapping[str, str]) -> None:
    """The modules ``argv`` imports (``-X importtime``), the costliest first."""
    done = subprocess.run(
        [PY, "-X", "importtime", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    rows = []
    for line in done.stderr.splitlines()[1:]:
        if line.startswith("import time:") and line.count("|") == 2:
            own, total, module = line[len("import time:") :].split("|")
            rows.append((int(total), int(own), module.rstrip()))
    rows.sort(reverse=True)
    head = f"{' '.join(argv)}: {len(rows)} modules; cumulative and own µs, by cumulative\n"
    body = "\n".join(f"{t:>9} {o:>9} {m}" for t, o, m in rows[:80])
    path = ctx.opts.out.resolve().parent / "profiles" / f"{name}_imports.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(head + body + "\n")
    ctx.profiles[f"{name}_imports"] = shown(path)


def cli_latency(ctx: Ctx) -> None:
    reps = 2 if ctx.quick else REPS
    wd = fresh_dir(ctx.work / "cli")
    store = wd / "store"
    commit = make_store(store)
    envs = environments()
    haathi_bin = str(HAATHI_BIN)
    with served(store) as srv:
        commands: dict[str, tuple[str, list[str], str]] = {  # key: (target, args, printed)
            "version": ("version", ["version"], haathi.__version__),
            "list_embedded": ("embedded", ["--address", str(store), "list", "repo"], "models"),
            "inspect_embedded": (
                "embedded",
                ["--address", str(store), "inspect", "commit", commit],
                "in 5 files",
            ),
            "list_server": ("server", ["--address", srv.url, "list", "repo"], "models"),
            "inspect_server": (
                "server",
                ["--address", srv.url, "inspect", "commit", commit],
                "in 5 files",
            ),
        }
        contenders = {"python": processes([PY, "-c", "pass"], envs["user"], reps)}
        for key, (_, args, printed) in commands.items():
            for env_name, env in envs.items():
                check([haathi_bin, *args], env, printed)
                contenders[f"{key}_{env_name}"] = processes([haathi_bin, *args], env, reps)
        trials = alternate(ctx, contenders)
        report(ctx, trials, commands, envs)
    remove(ctx, wd, settle=False)


def report(
    ctx: Ctx,
    trials: Trials,
    commands: Mapping[str, tuple[str, list[str], str]],
    envs: Mapping[str, Mapping[str, str]],
) -> None:
    ms = 1000.0
    base, base_cpu = trials.median("python") * ms, trials.median("python", "cpu_s") * ms
    ctx.figure("`python -c pass` (baseline)", base, "ms", None, f"CPU {base_cpu:.0f} ms")
    labels = {
        "version": "`haathi version`",
        "list_embedded": "`list repo`, embedded",
        "inspect_embedded": "`inspect commit`, embedded",
        "list_server": "`list repo`, server",
        "inspect_server": "`inspect commit`, server",
    }
    for key, (target, args, _) in commands.items():
        for env_name, env in envs.items():
            who = f"{key}_{env_name}"
            wall, cpu = trials.median(who) * ms, trials.median(who, "cpu_s") * ms
            passed = ctx.figure(
                f"{labels[key]}, {env_name}",
                wall,
                "ms",
                Target("<", TARGET_MS[target], "ms"),
                f"CPU {cpu:.0f} ms; runs {trials.per_run(who, scale=ms, spec='.0f')} ms; "
                f"{wall - base:+.0f} ms over `python -c pass`",
            )
            if ctx.wants_profile(passed):
                argv = [str(HAATHI_BIN), *args]
                import_profile(ctx, f"cli_{who}", argv, env)
                profile_process(ctx, f"cli_{who}", argv, env)


WORKLOADS = [
    Workload(
        "cli_latency",
        "cli",
        "haathi version, list repo, inspect commit as processes: embedded, server; cold, user",
        cli_latency,
    ),
]
