"""Progress display for long transfers and running jobs (bars only on a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from haathi.cli.render import err
from haathi.models.info import JobProgress
from haathi.models.ops import ProgressFn

JobProgressFn = Callable[[JobProgress], None]

MIN_FILES = 100


@contextmanager
def put_progress(total_files: int) -> Iterator[ProgressFn | None]:
    """A progress callback showing files and bytes, on a terminal; None elsewhere."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (
        TextColumn("put file"),
        BarColumn(),
        MofNCompleteColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        files = bar.add_task("files", total=total_files)
        bytes_task = bar.add_task("bytes", total=None, visible=False)

        def update(nbytes: int, nfiles: int) -> None:
            bar.update(files, advance=nfiles)
            bar.update(bytes_task, advance=nbytes)
            bar.tasks[files].completed  # noqa: B018 - keep the display fresh

        yield update


@contextmanager
def job_progress(console: Console = err) -> Iterator[JobProgressFn]:
    """A callback showing each job's datums as a bar (on a terminal) and its end as a line."""
    from haathi.cli.render_pps import job_line

    live = console.is_terminal
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=console, transient=True, disable=not live)
    tasks: dict[str, TaskID] = {}
    with bar:

        def update(p: JobProgress) -> None:
            key = f"{p.pipeline}@{p.job}"
            if key not in tasks:
                tasks[key] = bar.add_task(f"job {p.pipeline}@{p.job[:12]}", total=p.total)
            bar.update(tasks[key], total=p.total, completed=p.skipped + p.done)
            if p.state.terminal:
                bar.remove_task(tasks[key])
                job_line(p, console)

        yield update
