"""Progress display for long transfers (only on a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from haathi.cli.render import err
from haathi.models.ops import ProgressFn

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
