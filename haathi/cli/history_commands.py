"""``haathi rerun pipeline`` and ``haathi rollback pipeline``: a pipeline's spec versions made
anew (``list pipeline --history`` and ``inspect pipeline NAME@vN`` show them)."""

from __future__ import annotations

from typing import Annotated

import typer

from haathi.cli.main import NoWait, ProjectOpt, after_write, client, command

Reprocess = Annotated[
    bool,
    typer.Option("--reprocess", help="a new salt: every datum runs again"),
]


@command("rerun", "pipeline")
def rerun_pipeline(
    name: str,
    reprocess: Reprocess = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Make the current spec a new version and run a job with it: datums that succeeded are
    skipped (failed ones retried) unless --reprocess."""
    client(project).rerun_pipeline(name, reprocess=reprocess)
    after_write(no_wait)


@command("rollback", "pipeline")
def rollback_pipeline(
    name: Annotated[
        str,
        typer.Argument(help="NAME (to the previous version), NAME@vN or NAME^k (k versions back)"),
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="the version to roll back to (as NAME@vN)")
    ] = None,
    reprocess: Reprocess = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Make an earlier version's spec and salt the pipeline's new version, and run a job with
    it: datums whose inputs and salt are unchanged keep their outputs unless --reprocess."""
    client(project).rollback_pipeline(name, version=version, reprocess=reprocess)
    after_write(no_wait)
