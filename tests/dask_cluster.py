"""A real Dask cluster for tests: one ``dask scheduler`` and worker processes on loopback.

``DaskCluster().start()`` returns the scheduler address (``tcp://127.0.0.1:PORT``) once every
worker has joined; ``stop()`` ends every process it started (each in its own process group) and
removes its directory. Workers run with the repository root and ``tests/`` on ``PYTHONPATH``,
so functions defined in test modules or in haathi can be shipped to them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _dask_binary() -> str:
    found = Path(sys.executable).parent / "dask"
    if not found.exists():
        raise RuntimeError(
            f'dask is not installed next to {sys.executable}: pip install "dask[distributed]"'
        )
    return str(found)


@dataclass
class DaskCluster:
    """A scheduler and ``workers`` single-threaded workers (no nanny), started together."""

    workers: int = 2
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="haathi-dask-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    address: str = ""

    def start(self, timeout: float = 60.0) -> str:
        """Start everything; the scheduler address once all workers are connected."""
        dask = _dask_binary()
        sched_file = self.workdir / "scheduler.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), str(REPO / "tests"), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
        common = ["--scheduler-file", str(sched_file)]
        try:
            self._spawn(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--no-show", *common],
                "scheduler", env,
            )  # fmt: skip
            # Workers wait for the scheduler file, so all start at once.
            for i in range(self.workers):
                self._spawn(
                    [dask, "worker", "--no-nanny", "--nworkers", "1", "--nthreads", "1",
                     "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}",
                     "--local-directory", str(self.workdir / f"w{i}"), *common],
                    f"worker-{i}", env,
                )  # fmt: skip
            self.address = self._wait_for_workers(sched_file, timeout)
        except BaseException:
            self.stop()
            raise
        return self.address

    def _spawn(self, argv: list[str], name: str, env: dict[str, str]) -> None:
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=REPO, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)

    def _wait_for_workers(self, sched_file: Path, timeout: float) -> str:
        from distributed import Client

        deadline = time.monotonic() + timeout
        address = None
        while address is None:  # the scheduler writes its file in place: wait until it parses
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no dask scheduler in {timeout:.0f}s:\n{self.logs()}")
            try:
                address = str(json.loads(sched_file.read_text())["address"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.02)
        with Client(address, timeout=timeout, set_as_default=False) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < self.workers:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dask workers missing after {timeout:.0f}s:\n{self.logs()}")
                time.sleep(0.02)
        return address

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a dask process exited early:\n{self.logs()}")

    def logs(self) -> str:
        """Every process's log, for failure messages."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
            for log in sorted(self.workdir.glob("*.log"))
        )

    def pids(self) -> list[int]:
        """Process IDs of the scheduler and the workers."""
        return [proc.pid for proc in self.procs]

    def stop(self) -> None:
        """Stop the workers, then the scheduler; kill what does not stop within 10 s."""
        workers, schedulers = self.procs[1:], self.procs[:1]
        for group in (workers, schedulers):
            for proc in group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in group:
                # Wait without reaping, so the group ID stays ours for the final SIGKILL.
                while time.monotonic() < deadline and not _exited(proc.pid):
                    time.sleep(0.02)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # and anything it left in its group
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
