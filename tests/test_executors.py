"""Executors: threads in this process, and a real Dask cluster (a scheduler and two workers).

Parallelism is checked from the intervals the tasks themselves record (CLOCK_MONOTONIC is
shared by every process on the machine), not from wall-clock thresholds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.pps.executors import DaskExecutor, Executor, LocalExecutor, make_executor
from tests.dask_cluster import DaskCluster

Span = tuple[int, float, float, int, str]  # task, start, end, pid, thread or worker


def nap(task: int) -> Span:
    """A task that sleeps 0.3 s and says when and where it ran (top level: Dask pickles it)."""
    start = time.monotonic()
    time.sleep(0.3)
    where = threading.current_thread().name
    try:
        from distributed import get_worker

        where = get_worker().address
    except (ImportError, ValueError):
        pass
    return task, start, time.monotonic(), os.getpid(), where


def fail_on_three(task: int) -> int:
    if task == 3:
        raise ValueError(f"task {task} failed")
    time.sleep(0.05)
    return task


def most_at_once(spans: list[Span]) -> int:
    """The largest number of spans that overlap at one moment."""
    events = sorted([(s[1], 1) for s in spans] + [(s[2], -1) for s in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def check_map(executor: Executor, parallelism: int, n: int = 6) -> list[Span]:
    spans = list(executor.map(nap, list(range(n)), parallelism=parallelism))
    assert sorted(s[0] for s in spans) == list(range(n))
    assert most_at_once(spans) == min(parallelism, n)
    return spans


def check_cancel(executor: Executor) -> None:
    results = []
    for span in executor.map(nap, list(range(10)), parallelism=2):
        results.append(span[0])
        if len(results) == 1:
            executor.cancel()
    # The first result's replacement had started already; nothing after the cancel did.
    assert len(results) == 3
    # A map started after cancel() runs in full.
    assert sorted(s[0] for s in executor.map(nap, [0, 1, 2], parallelism=3)) == [0, 1, 2]


# ---------------------------------------------------------------------------------------------
# Local


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_local_runs_at_most_parallelism_tasks_at_once(parallelism: int) -> None:
    spans = check_map(LocalExecutor(), parallelism)
    assert len({s[4] for s in spans}) == parallelism  # that many threads
    assert {s[3] for s in spans} == {os.getpid()}


def test_local_yields_results_as_they_complete() -> None:
    def slow_first(task: int) -> int:
        time.sleep({0: 0.6, 1: 0.05, 2: 0.3}[task])
        return task

    assert list(LocalExecutor().map(slow_first, [0, 1, 2], parallelism=3)) == [1, 2, 0]


def test_local_reraises_the_task_error() -> None:
    with pytest.raises(ValueError, match="task 3 failed"):
        list(LocalExecutor().map(fail_on_three, list(range(8)), parallelism=2))


def test_local_cancel_stops_handing_out_tasks() -> None:
    check_cancel(LocalExecutor())


def test_local_empty_and_bad_parallelism() -> None:
    assert list(LocalExecutor().map(nap, [], parallelism=2)) == []
    with pytest.raises(InvalidArgument, match="parallelism must be at least 1"):
        LocalExecutor().map(nap, [1], parallelism=0)


def test_abandoning_the_iterator_starts_nothing_more() -> None:
    started: list[int] = []

    def record(task: int) -> int:
        started.append(task)
        time.sleep(0.1)
        return task

    results = LocalExecutor().map(record, list(range(10)), parallelism=2)
    next(results)
    results.close()  # type: ignore[attr-defined]
    time.sleep(0.3)
    assert 2 <= len(started) <= 3  # the first two, and perhaps the first one's replacement


# ---------------------------------------------------------------------------------------------
# Choosing an executor


def test_make_executor() -> None:
    assert isinstance(make_executor(None), LocalExecutor)
    assert make_executor("local").name == "local"
    for bad in ["ftp://host:1", "dask://", "dask://host:notaport", "threads"]:
        with pytest.raises(InvalidArgument, match="bad executor"):
            make_executor(bad)


def test_unreachable_scheduler_is_a_failed_precondition() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FailedPrecondition) as info:
        DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout=1)
    message = str(info.value)
    assert message.startswith(f"cannot reach the dask scheduler at tcp://127.0.0.1:{port}: ")
    assert "\n" not in message


def test_importing_executors_does_not_import_dask() -> None:
    code = (
        "import sys, haathi.pps.executors\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


# ---------------------------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    cluster = DaskCluster(workers=2)
    address = cluster.start()
    pids = cluster.pids()
    yield address
    cluster.stop()
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert alive == [], f"dask processes left running: {alive}"


@pytest.fixture
def dask(dask_address: str) -> Iterator[DaskExecutor]:
    port = dask_address.rsplit(":", 1)[1]
    executor = make_executor(f"dask://127.0.0.1:{port}")
    assert isinstance(executor, DaskExecutor)
    assert executor.name == f"dask://127.0.0.1:{port}"
    yield executor
    executor.close()


def test_dask_runs_tasks_on_both_workers(dask: DaskExecutor) -> None:
    spans = check_map(dask, parallelism=2)
    assert len({s[3] for s in spans}) == 2  # two worker processes
    assert os.getpid() not in {s[3] for s in spans}
    assert all(s[4].startswith("tcp://127.0.0.1:") for s in spans)


def test_dask_honours_parallelism_below_the_cluster_size(dask: DaskExecutor) -> None:
    check_map(dask, parallelism=1, n=4)


def test_dask_reraises_the_task_error(dask: DaskExecutor) -> None:
    with pytest.raises(ValueError, match="task 3 failed"):
        list(dask.map(fail_on_three, list(range(8)), parallelism=2))


def test_dask_cancel_stops_handing_out_tasks(dask: DaskExecutor) -> None:
    check_cancel(dask)


def test_tcp_url_is_accepted(dask_address: str) -> None:
    executor = make_executor(dask_address)
    try:
        assert executor.name == "dask://" + dask_address.removeprefix("tcp://")
        assert list(executor.map(fail_on_three, [5], parallelism=1)) == [5]
    finally:
        executor.close()
