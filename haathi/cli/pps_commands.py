"""``haathi`` commands for pipelines, jobs, datums and logs (pachctl's PPS grammar)."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

from haathi.cli import render, render_pps
from haathi.cli.main import NoWait, OutputOpt, after_write, app, client, command
from haathi.cli.render import Output
from haathi.errors import InvalidArgument

SpecFile = Annotated[
    str, typer.Option("--file", "-f", help="spec file (JSON or YAML, several documents ok), or -")
]
run_app = typer.Typer(help="Run a worker or a cron tick.", no_args_is_help=True)
app.add_typer(run_app, name="run")
validate_app = typer.Typer(
    help="Check a pipeline spec without creating anything.", no_args_is_help=True
)
app.add_typer(validate_app, name="validate")
draw_app = typer.Typer(help="Draw the pipeline DAG.", no_args_is_help=True)
app.add_typer(draw_app, name="draw")


# pipelines ---------------------------------------------------------------------------------


@command("create", "pipeline")
def create_pipeline(file: SpecFile, no_wait: NoWait = False) -> None:
    """Create pipelines from a spec; runs their first jobs over the existing input."""
    _create(file, update=False, reprocess=False, no_wait=no_wait)


@command("update", "pipeline")
def update_pipeline(
    file: SpecFile,
    reprocess: Annotated[bool, typer.Option("--reprocess", help="re-run every datum")] = False,
    no_wait: NoWait = False,
) -> None:
    """Update pipelines; only datums whose inputs changed re-run unless --reprocess."""
    _create(file, update=True, reprocess=reprocess, no_wait=no_wait)


def _create(file: str, *, update: bool, reprocess: bool, no_wait: bool) -> None:
    from haathi.client.client import load_specs

    c = client()
    docs = load_specs(file)  # read once: the file may be stdin
    for doc in docs:
        render_pps.notes(c.validate_pipeline(doc)[0]["notes"])
    for doc in docs:
        c.create_pipeline(doc, update=update, reprocess=reprocess)
    after_write(no_wait)


@validate_app.command("pipeline")
def validate_pipeline(file: SpecFile, output: OutputOpt = Output.table) -> None:
    """Validate pipeline specs and show their effective form (defaults applied)."""
    checked = client().validate_pipeline(file)
    if output == Output.json:
        render.emit_json(checked)
        return
    for item in checked:
        render_pps.notes(item["notes"])
        render.out.print(f"pipeline {item['spec']['pipeline']['name']}: valid")


@command("inspect", "pipeline")
def inspect_pipeline(name: str, output: OutputOpt = Output.table) -> None:
    """Show a pipeline: state, version, inputs, effective spec."""
    p = client().inspect_pipeline(name)
    render.emit_json(p) if output == Output.json else render_pps.pipeline(p)


@command("list", "pipeline", "pipelines")
def list_pipeline(output: OutputOpt = Output.table) -> None:
    """List pipelines."""
    items = client().list_pipeline()
    render.emit_json(items) if output == Output.json else render_pps.pipelines(items)


@command("delete", "pipeline")
def delete_pipeline(
    name: str,
    keep_repo: Annotated[bool, typer.Option("--keep-repo", help="keep the output repo")] = False,
) -> None:
    """Delete a pipeline, its jobs, and (unless --keep-repo) its output repo."""
    client().delete_pipeline(name, keep_repo=keep_repo)


@command("stop", "pipeline")
def stop_pipeline(name: str) -> None:
    """Pause a pipeline: input commits start no jobs until it is started again."""
    client().stop_pipeline(name)


@command("start", "pipeline")
def start_pipeline(name: str, no_wait: NoWait = False) -> None:
    """Resume a paused pipeline (a job runs if its inputs changed meanwhile)."""
    client().start_pipeline(name)
    after_write(no_wait)


@draw_app.command("pipeline")
def draw_pipeline() -> None:
    """Draw the DAG of repos and pipelines as text."""
    render_pps.dag(client().list_pipeline())


@run_app.command("cron")
def run_cron(name: str, no_wait: NoWait = False) -> None:
    """Tick a cron pipeline's cron inputs now."""
    client().run_cron(name)
    after_write(no_wait)


@run_app.command("worker")
def run_worker(
    once: Annotated[bool, typer.Option("--once", help="run what is runnable, then exit")] = False,
) -> None:
    """Run queued jobs and cron ticks continuously (until Ctrl-C)."""
    from haathi.cli.progress import job_progress

    c = client()
    info = c.store_info()  # (a server shows its address to cluster admins only)
    where = info.get("address") or info.get("server") or "the store"
    render.err.print(f"haathi worker: running jobs of {where} (Ctrl-C stops)")
    with job_progress() as progress:
        c.progress = progress
        if once:
            summary = c.run_jobs()
            for key, why in summary.waiting.items():
                render.err.print(f"job {key} is queued: {why}", markup=False)
            return
        stop = threading.Event()
        try:
            c.run_worker(stop)
        except KeyboardInterrupt:
            stop.set()


# jobs --------------------------------------------------------------------------------------


@command("list", "job", "jobs")
def list_job(
    job: Annotated[str | None, typer.Argument(help="a job set ID")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """List jobs, newest first (of one pipeline with -p, of one job set given its ID)."""
    items = client().list_job(pipeline, job)
    render.emit_json(items) if output == Output.json else render_pps.jobs(items)


@command("inspect", "job")
def inspect_job(
    job: Annotated[str, typer.Argument(help="pipeline@id")], output: OutputOpt = Output.table
) -> None:
    """Show a job: state, datum counts, timings, inputs."""
    j = client().inspect_job(job)
    render.emit_json(j) if output == Output.json else render_pps.job(j)


@command("wait", "job")
def wait_job(
    job: Annotated[str, typer.Argument(help="pipeline@id, or a job set ID")],
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Block until a job (or every job of a job set) has ended."""
    items = client().wait_job(job, timeout)
    render.emit_json(items) if output == Output.json else render_pps.jobs(items)


@command("stop", "job")
def stop_job(job: Annotated[str, typer.Argument(help="pipeline@id")]) -> None:
    """Kill a job (state KILLED; its output commit is finished with an error)."""
    client().stop_job(job)


# datums and logs ---------------------------------------------------------------------------


@command("list", "datum", "datums")
def list_datum(
    job: Annotated[str | None, typer.Argument(help="pipeline@id")] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="preview the datums of a spec's input instead"),
    ] = None,
    number: Annotated[
        int | None,
        typer.Option("--number", "-n", help="a page: at most N datums (in datum ID order)"),
    ] = None,
    marker: Annotated[
        str | None,
        typer.Option("--marker", help="start after this datum ID (the previous page's last)"),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """List a job's datums, or (-f) the datums a spec's input has now."""
    if (job is None) == (file is None):
        raise InvalidArgument("list datum takes pipeline@id, or -f spec")
    if file is not None and (number is not None or marker is not None):
        raise InvalidArgument("list datum -f takes no --number or --marker")
    c = client()
    items = c.preview_datums(file) if file is not None else c.list_datum(str(job), number, marker)
    render.emit_json(items) if output == Output.json else render_pps.datums(items)
    if number and len(items) == number and output != Output.json:
        render.err.print(f"next page: --marker {items[-1].id}", markup=False)


@command("inspect", "datum")
def inspect_datum(
    job: Annotated[str, typer.Argument(help="pipeline@id")],
    datum: str,
    output: OutputOpt = Output.table,
) -> None:
    """Show a datum: inputs with commits and hashes, outputs, env, state, attempts, time."""
    d = client().inspect_datum(job, datum)
    render.emit_json(d) if output == Output.json else render_pps.datum(d)


@app.command("logs")
def logs(
    pipeline: Annotated[str, typer.Option("--pipeline", "-p")],
    job: Annotated[str | None, typer.Option("--job", "-j")] = None,
    datum: Annotated[str | None, typer.Option("--datum")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing until the job ends")
    ] = False,
) -> None:
    """Print the user code's output (stdout and stderr) per datum."""
    c = client()
    shown: set[str] = set()
    while True:
        info, entries = c.logs(pipeline, job, datum)
        fresh = [(d, t) for d, t in entries if d not in shown]
        render_pps.logs(fresh, with_ids=datum is None)
        shown.update(d for d, _ in fresh)
        if not follow or info.state.terminal:
            return
        job = info.id
        time.sleep(0.5)


from haathi.cli import lineage_commands  # noqa: E402  registers lineage and draw lineage

_ = lineage_commands
