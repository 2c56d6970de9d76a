"""``haathi`` commands for the store itself: create it (``init``), show its configuration
(``inspect store``, ``inspect cluster``), check it (``fsck``) and collect its garbage (``gc``)."""

from __future__ import annotations

from typing import Annotated

import typer

from haathi.cli import render, units
from haathi.cli.main import OutputOpt, app, client, command, state
from haathi.cli.render import Output


@app.command("init")
def init(
    db: Annotated[
        str | None,
        typer.Option("--db", help="PostgreSQL URL (default: SQLite in the store directory)."),
    ] = None,
    objects: Annotated[
        str | None,
        typer.Option("--objects", help="s3://bucket/prefix (default: the store directory)."),
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="S3 endpoint URL (default: AWS).")
    ] = None,
    s3_region: Annotated[str | None, typer.Option("--s3-region")] = None,
    cache_size: Annotated[
        str | None, typer.Option("--cache-size", help="Bound of the local read cache, e.g. 1GiB.")
    ] = None,
    save_credentials: Annotated[
        bool,
        typer.Option(
            "--save-credentials",
            help="Keep the AWS_* credentials now set in the store's config (mode 0600).",
        ),
    ] = False,
) -> None:
    """Create a store at --address: metadata in SQLite or PostgreSQL, data local or in S3."""
    from haathi.client import init as init_store

    c = init_store(
        state.address, db=db or state.overrides.get("db_url"),
        objects=objects or state.overrides.get("objects_url"),
        s3_endpoint=s3_endpoint or state.overrides.get("s3_endpoint"), s3_region=s3_region,
        cache_bytes=units.parse_size(cache_size) if cache_size else None,
        save_credentials=save_credentials,
    )  # fmt: skip
    state.client = c
    render.store(c.store_info())


@command("inspect", "store")
def inspect_store(output: OutputOpt = Output.table) -> None:
    """Show the store's configuration (secrets are never shown)."""
    info = client().store_info()
    render.emit_json(info) if output == Output.json else render.store(info)


@command("inspect", "cluster")
def inspect_cluster(output: OutputOpt = Output.table) -> None:
    """Show the store's configuration and the server's S3 endpoint (none for a directory)."""
    info = client().inspect_cluster()
    render.emit_json(info) if output == Output.json else render.cluster(info)


@app.command("fsck")
def fsck(
    fast: Annotated[bool, typer.Option("--fast", help="check sizes, not hashes")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="repair what is safely repairable")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Check the store: every blob, tree node and branch head a commit needs."""
    problems = client().fsck(fast=fast, fix=fix)
    render.emit_json(problems) if output == Output.json else render.problems(problems)
    if any(p.severity == "error" and not p.extra.get("fixed") for p in problems):
        raise typer.Exit(1)


@app.command("gc")
def gc(
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="Delete unreachable data once it has been condemned this long (e.g. 10m, 0).",
        ),
    ] = "10m",
    output: OutputOpt = Output.table,
) -> None:
    """Delete stored data that no commit, open commit or running write can reach."""
    report = client().gc(grace_s=units.parse_duration(grace))
    render.emit_json(report) if output == Output.json else render.gc_report(report)
