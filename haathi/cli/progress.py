"""Progress display for long transfers and running jobs (bars only on a terminal)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from haathi.cli.render import err
from haathi.models.info import JobProgress, JobState
from haathi.models.ops import ProgressFn

JobProgressFn = Callable[[JobProgress], None]


def put_columns() -> tuple[ProgressColumn, ...]:
    """``put file`` 3/10 files  ━━━━━━  1.2/4.0 MB  3.1 MB/s``: files counted as files, bytes
    (the bar, the size and the speed) as bytes."""
    return (
        TextColumn("put file"),
        BarColumn(),
        TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
        DownloadColumn(),
        TransferSpeedColumn(),
    )


@contextmanager
def put_progress(
    total_files: int, total_bytes: int | None = None, console: Console = err
) -> Iterator[ProgressFn | None]:
    """A progress callback showing files and bytes on a terminal (None elsewhere).
    ``total_bytes``: the bytes to put, when every source's size is known (else the bar
    pulses)."""
    if not console.is_terminal:
        yield None
        return
    lock = threading.Lock()
    with Progress(*put_columns(), console=console, transient=True) as bar:
        task = bar.add_task("put", total=total_bytes, files=0, total_files=total_files)
        done = 0

        def update(nbytes: int, nfiles: int) -> None:
            nonlocal done
            with lock:  # puts of one change may run on several threads
                done += nfiles
                bar.update(task, advance=nbytes, files=done)

        yield update


@contextmanager
def job_progress(console: Console = err) -> Iterator[JobProgressFn]:
    """A callback showing each job's datums as a bar (on a terminal) and its end as a line."""
    from haathi.cli.render_pps import job_line

    live = console.is_terminal
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not live,
    )
    tasks: dict[str, TaskID] = {}
    with bar:

        def update(p: JobProgress) -> None:
            key = f"{p.pipeline}@{p.job}"
            if key not in tasks:
                tasks[key] = bar.add_task(f"job {p.pipeline}@{p.job[:12]}", total=p.total)
            bar.update(tasks[key], total=p.total, completed=p.skipped + p.done)
            if p.state == JobState.EGRESSING:
                bar.update(tasks[key], description=f"job {p.pipeline}@{p.job[:12]} egressing")
            if p.state.terminal:
                bar.remove_task(tasks[key])
                job_line(p, console)

        yield update
