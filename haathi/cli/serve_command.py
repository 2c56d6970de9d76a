"""``haathi serve``: the store over HTTP for other clients (``HAATHI_ADDRESS=http://...``)."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from haathi.cli import render, units
from haathi.cli.main import app, state
from haathi.config import resolve_address
from haathi.errors import InvalidArgument


@app.command("serve")
def serve(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store directory to serve (default: --address, $HAATHI_ADDRESS or ~/.haathi).",
        ),
    ] = None,
    bind: Annotated[
        str, typer.Option("--bind", help="host:port to listen on (port 0: any free port).")
    ] = "127.0.0.1:8650",
    max_upload: Annotated[
        str | None,
        typer.Option("--max-upload", help="Refuse uploads larger than this (e.g. 10G)."),
    ] = None,
    s3_spool: Annotated[
        str | None,
        typer.Option(
            "--s3-spool",
            help="Bytes of S3 multipart parts held on disk at once, "
            "every upload together (default 64G, or --max-upload if larger).",
        ),
    ] = None,
    s3_bind: Annotated[
        str,
        typer.Option(
            "--s3-bind",
            help="host:port of the S3 gateway ('auto': the --bind host "
            "and port + 1; 'none': no gateway).",
        ),
    ] = "auto",
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run jobs here (workers run them).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Server processes sharing the port (e.g. one per core); the first also runs "
            "the jobs and the S3 gateway.",
        ),
    ] = 1,
) -> None:
    """Serve the store over HTTP (REST, OpenAPI at /docs, the web console at /) and run its jobs
    in the background."""
    from haathi import allocator
    from haathi.client.client import is_server_address
    from haathi.server.s3.multipart import UploadLimits
    from haathi.server.serve import Server
    from haathi.server.workers import MAX_WORKERS

    allocator.tune()

    address = resolve_address(store or state.address)
    if is_server_address(address):
        raise InvalidArgument(f"{address} is a server: serve a store directory (--store DIR)")
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidArgument(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    server = Server.for_store(
        address, state.overrides, bind, run_worker=not no_worker,
        max_upload_bytes=units.parse_size(max_upload) if max_upload else None, s3_bind=s3_bind,
        s3_uploads=UploadLimits(max_spool_bytes=units.parse_size(s3_spool)) if s3_spool else None,
    )  # fmt: skip
    if server.warning:
        render.err.print(server.warning, markup=False)
    processes = f" with {workers} worker processes" if workers > 1 else ""
    render.err.print(
        f"haathi serving {address} at {server.url}{processes} (HAATHI_ADDRESS={server.url}; "
        "Ctrl-C stops)", markup=False,
    )  # fmt: skip
    if server.s3_url:
        render.err.print(
            f"S3 gateway at {server.s3_url} (buckets BRANCH.REPO; e.g. aws --endpoint-url "
            f"{server.s3_url} s3 ls)", markup=False,
        )  # fmt: skip
    render.err.print(f"console at {server.url}/ (open it in a browser)", markup=False)
    # uvicorn shuts down gracefully on SIGTERM itself (the job runner gives its job back);
    # the CLI's own SIGTERM handling would interrupt its start-up instead
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if workers == 1:
        server.run()
        return
    from haathi.server import workers as worker_processes

    def say(line: str) -> None:
        render.err.print(line, markup=False)

    code = worker_processes.serve(server, workers, address, state.overrides, say)
    if code:
        raise typer.Exit(code)
