"""The executor contract, one suite run against every executor: threads in this process
(``local``) and a real Dask cluster (a scheduler and two single-threaded workers on loopback).

What every :class:`haathi.pps.executors.Executor` promises: ``map(fn, tasks, parallelism=n)``
runs each task once, at most ``n`` at a time, and yields the results as the tasks complete; a
task's exception is re-raised as it was raised (type, message, details); ``cancel()`` stops the
maps in progress from starting more tasks, and maps started later run in full; dropping the
results starts nothing more; an executor keeps working after a failed map.

Parallelism is checked from the intervals the tasks themselves record, not from wall-clock
thresholds. The tasks are in ``executor_tasks.py`` (Dask workers import them by name). The
Dask half is marked slow, as are the other tests that start a cluster.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haathi.errors import FailedPrecondition, InvalidArgument, NotFound
from haathi.pps.executors import DaskExecutor, Executor, LocalExecutor, make_executor
from tests.conformance.executor_tasks import (
    Span,
    echo,
    fail_on_three,
    nap,
    not_found_on_two,
    record,
    slow_first,
)
from tests.dask_cluster import DaskCluster


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """A Dask cluster of two workers for this module; every process of it ends afterwards."""
    cluster = DaskCluster(workers=2)
    address = cluster.start()
    pids = cluster.pids()
    yield address
    cluster.stop()
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert alive == [], f"dask processes left running: {alive}"


@pytest.fixture(params=["local", pytest.param("dask", marks=pytest.mark.slow)])
def impl(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """A new executor of each kind (each Dask one has its own connection to the cluster)."""
    if request.param == "local":
        executor = make_executor("local")
    else:
        port = request.getfixturevalue("dask_address").rsplit(":", 1)[1]
        executor = make_executor(f"dask://127.0.0.1:{port}")
    yield executor
    executor.close()


def most_at_once(spans: list[Span]) -> int:
    """The largest number of spans that overlap at one moment."""
    events = sorted([(s[1], 1) for s in spans] + [(s[2], -1) for s in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def check_map(executor: Executor, parallelism: int, n: int = 4) -> list[Span]:
    spans = list(executor.map(nap, list(range(n)), parallelism=parallelism))
    assert sorted(s[0] for s in spans) == list(range(n))
    assert most_at_once(spans) == min(parallelism, n)
    return spans


# ---------------------------------------------------------------------------------------------
# The contract


@pytest.mark.parametrize("parallelism", [1, 2])
def test_each_task_runs_once_and_at_most_parallelism_at_a_time(
    impl: Executor, parallelism: int
) -> None:
    check_map(impl, parallelism)


def test_results_come_as_the_tasks_complete(impl: Executor) -> None:
    assert list(impl.map(slow_first, [0, 1, 2], parallelism=2)) == [1, 2, 0]


def test_a_task_error_is_reraised_as_it_was_raised(impl: Executor) -> None:
    with pytest.raises(ValueError, match="task 3 failed"):
        list(impl.map(fail_on_three, list(range(8)), parallelism=2))
    with pytest.raises(NotFound, match="datum 2 is missing") as caught:
        list(impl.map(not_found_on_two, [0, 1, 2], parallelism=1))
    assert caught.value.details == {"datum": "d2"}


def test_the_executor_works_after_a_failed_map(impl: Executor) -> None:
    with pytest.raises(ValueError):
        list(impl.map(fail_on_three, list(range(8)), parallelism=2))
    assert sorted(impl.map(fail_on_three, [0, 1, 2, 4], parallelism=2)) == [0, 1, 2, 4]


def test_cancel_stops_handing_out_tasks_and_later_maps_run(impl: Executor) -> None:
    results = []
    for span in impl.map(nap, list(range(10)), parallelism=2):
        results.append(span[0])
        if len(results) == 1:
            impl.cancel()
    # The first result's replacement had started already; nothing after the cancel did.
    assert len(results) == 3
    assert sorted(s[0] for s in impl.map(nap, [0, 1, 2], parallelism=2)) == [0, 1, 2]


def test_dropping_the_results_starts_nothing_more(impl: Executor, tmp_path: Path) -> None:
    results = impl.map(record, [(str(tmp_path), i) for i in range(10)], parallelism=2)
    next(results)
    results.close()  # type: ignore[attr-defined]
    time.sleep(0.5)
    started = sorted(int(p.name) for p in tmp_path.iterdir())
    assert 2 <= len(started) <= 3, started  # the first two, perhaps the first one's replacement


def test_no_tasks_and_bad_parallelism(impl: Executor) -> None:
    assert list(impl.map(nap, [], parallelism=2)) == []
    with pytest.raises(InvalidArgument, match="parallelism must be at least 1"):
        impl.map(nap, [1], parallelism=0)


def test_large_tasks_and_results_travel_whole(impl: Executor) -> None:
    payloads = [os.urandom(4 * 1024 * 1024), b"", os.urandom(10)]
    assert sorted(impl.map(echo, payloads, parallelism=2)) == sorted(p[::-1] for p in payloads)


# ---------------------------------------------------------------------------------------------
# Where each executor runs tasks


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_local_runs_tasks_on_that_many_threads_of_this_process(parallelism: int) -> None:
    spans = check_map(LocalExecutor(), parallelism)
    assert len({s[4] for s in spans}) == parallelism  # that many threads
    assert {s[3] for s in spans} == {os.getpid()}


@pytest.mark.slow  # a Dask cluster
def test_dask_runs_tasks_on_both_workers(dask_address: str) -> None:
    executor = DaskExecutor(dask_address)
    try:
        spans = check_map(executor, parallelism=2)
    finally:
        executor.close()
    assert len({s[3] for s in spans}) == 2  # two worker processes
    assert os.getpid() not in {s[3] for s in spans}
    assert all(s[4].startswith("tcp://127.0.0.1:") for s in spans)


# ---------------------------------------------------------------------------------------------
# Choosing an executor


def test_make_executor() -> None:
    assert isinstance(make_executor(None), LocalExecutor)
    assert make_executor("local").name == "local"
    for bad in ["ftp://host:1", "dask://", "dask://host:notaport", "threads"]:
        with pytest.raises(InvalidArgument, match="bad executor"):
            make_executor(bad)


@pytest.mark.slow  # a Dask cluster
def test_dask_and_tcp_urls_name_the_scheduler(dask_address: str) -> None:
    port = dask_address.rsplit(":", 1)[1]
    for url in (f"dask://127.0.0.1:{port}", dask_address):
        executor = make_executor(url)
        try:
            assert isinstance(executor, DaskExecutor)
            assert executor.name == f"dask://127.0.0.1:{port}"
            assert list(executor.map(fail_on_three, [5], parallelism=1)) == [5]
        finally:
            executor.close()


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
