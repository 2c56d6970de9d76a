"""The preloader's gain: the CLI's latency as whole processes, cold against preloaded.

- ``preload``: on an embedded store with one repo (200 commits) and a pipeline copying its
  files, ``haathi version``, ``list repo``, ``inspect commit`` (also against a local ``haathi
  serve`` of the store) and the W4 step through the CLI (``put file`` of one new file, which
  runs its one-datum job, then ``wait commit`` of the output), each as whole processes of the
  console script: cold (``HAATHI_PRELOAD=0``: a new interpreter imports everything) and
  preloaded (handed to a preloader, which forks; started and warmed before timing, in a
  socket directory of its own, stopped at the end). Wall time from spawn to exit; CPU of the
  client process plus that of the preloader's fork (the preloader's count of its ended
  commands' CPU; a server's CPU is in neither).

The console script is a copy of what pip writes for ``[project.scripts]``
(``haathi.cli.launcher:main``), next to the store: the figures do not depend on how the haathi
under test was installed. Bytecode is written (``PYTHONDONTWRITEBYTECODE`` is dropped), as an
installed haathi has its ``.pyc`` files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from harness import Ctx, Row, Target, Workload, alternate, loadavg
from server import served

import haathi
from haathi.cli import launcher

TARGETS_MS = {
    "version": 100.0,
    "list repo": 150.0,
    "inspect commit": 150.0,
    "list repo, server": 200.0,
    "inspect commit, server": 200.0,
}


class Console:
    """The console script, a private socket directory, and the preloader's counters."""

    def __init__(self, work: Path, store: Path) -> None:
        self.script = work / "bin" / "haathi"
        self.script.parent.mkdir(parents=True, exist_ok=True)
        self.script.write_text(
            f"#!{sys.executable}\nimport sys\nfrom haathi.cli.launcher import main\n"
            "if __name__ == '__main__':\n    sys.exit(main())\n"
        )
        self.script.chmod(0o755)
        self.runtime = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))  # sun_path: 107 bytes
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env = env | {"HAATHI_ADDRESS": str(store), "HAATHI_SANDBOX": "none",
                          "XDG_RUNTIME_DIR": str(self.runtime)}  # fmt: skip

    def status(self) -> dict[str, Any] | None:
        for path in launcher.preloader_sockets(str(self.runtime / "haathi")):
            answer = launcher.ask(path, {"op": "status"})
            if isinstance(answer, dict) and not answer["stopping"]:
                return answer
        return None

    def run(self, argv: list[str], preloaded: bool) -> Row:
        """One whole process: wall and CPU seconds."""
        before = self.status() if preloaded else None
        env = dict(self.env, HAATHI_PRELOAD="1" if preloaded else "0")
        t0 = time.perf_counter()
        p = subprocess.Popen([str(self.script), *argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err = p.stderr.read() if p.stderr else b""
        if status != 0:
            raise RuntimeError(f"haathi {' '.join(argv)} failed ({status}): {err.decode()}")
        cpu = usage.ru_utime + usage.ru_stime
        if preloaded:
            after = self.status()
            if before is None or after is None or after["served"] != before["served"] + 1:
                raise RuntimeError(f"haathi {' '.join(argv)} was not served by the preloader")
            cpu += after["commands_cpu_s"] - before["commands_cpu_s"]
        return {"s": wall, "cpu_s": cpu}

    def warm(self, commands: list[list[str]]) -> None:
        """Run each command cold (its bytecode written: a new ``__pycache__`` would make a
        running preloader stale), then start a preloader, wait until it serves, and run each
        command through it once."""
        for argv in commands:
            self.run(argv, preloaded=False)
        env = dict(self.env, HAATHI_PRELOAD="1")
        subprocess.run([str(self.script), "version"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while self.status() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no preloader started")
            time.sleep(0.1)
        for argv in commands:
            self.run(argv, preloaded=True)

    def stop(self) -> None:
        for path in launcher.preloader_sockets(str(self.runtime / "haathi")):
            launcher.ask(path, {"op": "stop"})
        shutil.rmtree(self.runtime, ignore_errors=True)


def _store(path: Path, commits: int) -> str:
    """A store with repo ``in`` (``commits`` one-file commits) and pipeline ``copy`` over it;
    the newest commit's ID."""
    shutil.rmtree(path, ignore_errors=True)
    with haathi.connect(str(path), sandbox="none") as c:
        c.create_repo("in")
        for i in range(commits):
            c.put_file(f"in@master:/f{i:04d}", f"{i}\n".encode())
        c.create_pipeline({
            "pipeline": {"name": "copy"},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},
        })  # fmt: skip
        c.run_jobs()
        return c.list_commit("in")[0].id


def preload(ctx: Ctx) -> None:
    commits = 20 if ctx.quick else 200
    store = ctx.work / "preload-store"
    commit = _store(store, commits)
    console = Console(ctx.work / "preload", store)
    res = ctx.data
    res.update(commits=commits, load_start=loadavg())
    try:
        with served(store) as srv:
            remote = ["--address", srv.url]
            commands: dict[str, list[str]] = {
                "version": ["version"],
                "list repo": ["list", "repo"],
                "inspect commit": ["inspect", "commit", f"in@{commit}"],
                "list repo, server": [*remote, "list", "repo"],
                "inspect commit, server": [*remote, "inspect", "commit", f"in@{commit}"],
            }
            warm_put = ["put", "file", "in@master:/warm", "-f", str(console.script)]
            console.warm([*commands.values(), warm_put, ["wait", "commit", "copy@master"]])
            for label, argv in commands.items():
                measure(ctx, console, label, partial(console.run, argv))
        added = [commits]

        def w4(preloaded: bool) -> Row:
            """``put file`` of one new file (its one-datum job runs) + ``wait commit``."""
            n = added[0]
            added[0] += 1
            src = ctx.work / "preload" / "new.txt"
            src.write_text(f"{n}\n")
            a = console.run(["put", "file", f"in@master:/f{n:04d}", "-f", str(src)], preloaded)
            b = console.run(["wait", "commit", "copy@master"], preloaded)
            return {"s": a["s"] + b["s"], "cpu_s": a["cpu_s"] + b["cpu_s"]}

        measure(ctx, console, "put file + wait commit (W4 step)", w4)
    finally:
        console.stop()
        shutil.rmtree(store, ignore_errors=True)


def measure(ctx: Ctx, console: Console, label: str, fn: Callable[[bool], Row]) -> None:
    """Cold and preloaded alternating; the preloaded median is the figure."""

    def contender(preloaded: bool) -> Callable[[int], Row]:
        return lambda _k: fn(preloaded)

    runs = 5 if ctx.quick else 15
    trials = alternate(
        ctx, {"cold": contender(False), "preloaded": contender(True)}, runs=runs, key=label
    )
    cold_ms, pre_ms = (trials.median(w) * 1000 for w in ("cold", "preloaded"))
    cold_cpu, pre_cpu = (trials.median(w, "cpu_s") * 1000 for w in ("cold", "preloaded"))
    loads = [r["load"] for rows in trials.rows.values() for r in rows]
    ctx.figure(
        f"`haathi {label}`, whole process, preloaded",
        pre_ms,
        "ms",
        Target("<", TARGETS_MS[label], "ms") if label in TARGETS_MS else None,
        f"CPU {pre_cpu:.0f} ms; cold {cold_ms:.0f} ms (CPU {cold_cpu:.0f} ms); "
        f"load {min(loads):.1f}-{max(loads):.1f}",
        judged=label in TARGETS_MS,
    )


WORKLOADS = [
    Workload("preload", "cli", "CLI latency, whole process: cold and preloaded", preload),
]
