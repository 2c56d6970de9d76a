"""Tasks for the executor suite. They live in a module of their own, imported by its full name
(``tests.conformance.executor_tasks``), so that Dask workers, which unpickle a task's function
by that name, can import them too (``tests/dask_cluster.py`` puts the repository on their path).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from haathi.errors import NotFound

Span = tuple[int, float, float, int, str]  # task, start, end, pid, thread or worker


def nap(task: int) -> Span:
    """Sleep 0.2 s and say when and where it ran (CLOCK_MONOTONIC is shared by every process
    on the machine, so spans from workers compare with each other)."""
    start = time.monotonic()
    time.sleep(0.2)
    where = threading.current_thread().name
    try:
        from distributed import get_worker

        where = get_worker().address
    except (ImportError, ValueError):
        pass
    return task, start, time.monotonic(), os.getpid(), where


def slow_first(task: int) -> int:
    """Task 0 takes longest, task 1 least."""
    time.sleep({0: 0.8, 1: 0.05, 2: 0.3}[task])
    return task


def fail_on_three(task: int) -> int:
    if task == 3:
        raise ValueError(f"task {task} failed")
    time.sleep(0.05)
    return task


def not_found_on_two(task: int) -> int:
    if task == 2:
        raise NotFound(f"datum {task} is missing", datum=f"d{task}")
    return task


def record(task: tuple[str, int]) -> int:
    """Leave a file named after the task in the directory ``task[0]``, then take 0.2 s."""
    where, number = task
    (Path(where) / str(number)).touch()
    time.sleep(0.2)
    return number


def echo(payload: bytes) -> bytes:
    return payload[::-1]
