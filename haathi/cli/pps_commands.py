"""``haathi`` commands for pipelines, jobs, datums and logs (pachctl's PPS grammar)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer

from haathi.cli import render, render_pps
from haathi.cli.main import (
    AllProjectsOpt,
    NoWait,
    OutputOpt,
    ProjectOpt,
    added_to_transaction,
    after_write,
    app,
    client,
    command,
    one_or_all,
    state,
)
from haathi.cli.render import Output
from haathi.errors import InvalidArgument

if TYPE_CHECKING:
    from haathi.client import Client

SpecFile = Annotated[
    str | None,
    typer.Option(
        "--file",
        "-f",
        help="spec file or URL (JSON or YAML, several documents ok), or - (the default: stdin)",
    ),
]
Jsonnet = Annotated[
    str | None,
    typer.Option("--jsonnet", help="a Jsonnet template (file, URL or -) instead of -f"),
]
TemplateArgs = Annotated[
    list[str] | None,
    typer.Option("--arg", help="key=value: an argument of the --jsonnet template (repeatable)"),
]
run_app = typer.Typer(help="Run a worker or a cron tick.", no_args_is_help=True)
app.add_typer(run_app, name="run")
validate_app = typer.Typer(
    help="Check a pipeline spec here (as pachctl: no store is opened).", no_args_is_help=True
)
app.add_typer(validate_app, name="validate")
draw_app = typer.Typer(help="Draw the pipeline DAG.", no_args_is_help=True)
app.add_typer(draw_app, name="draw")


# pipelines ---------------------------------------------------------------------------------


@command("create", "pipeline")
def create_pipeline(
    file: SpecFile = None,
    jsonnet: Jsonnet = None,
    arg: TemplateArgs = None,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Create pipelines from a spec (or a Jsonnet template); runs their first jobs over the
    existing input."""
    _create(file, jsonnet, arg, update=False, reprocess=False, no_wait=no_wait, project=project)


@command("update", "pipeline")
def update_pipeline(
    file: SpecFile = None,
    jsonnet: Jsonnet = None,
    arg: TemplateArgs = None,
    reprocess: Annotated[bool, typer.Option("--reprocess", help="re-run every datum")] = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Update pipelines; only datums whose inputs changed re-run unless --reprocess."""
    _create(file, jsonnet, arg, update=True, reprocess=reprocess, no_wait=no_wait, project=project)


def _create(
    file: str | None,
    jsonnet: str | None,
    args: list[str] | None,
    *,
    update: bool,
    reprocess: bool,
    no_wait: bool,
    project: str | None,
) -> None:
    from haathi.client.client import load_specs

    if file is not None and jsonnet is not None:
        raise InvalidArgument("cannot set both --file and --jsonnet; exactly one must be set")
    if args and jsonnet is None:
        raise InvalidArgument("--arg takes --jsonnet (a template's arguments)")
    c = client(project)
    # read once: the file may be stdin
    docs = (
        c.render_template(jsonnet, args or ()) if jsonnet is not None else load_specs(file or "-")
    )
    checked = [c.validate_pipeline(doc)[0] for doc in docs]
    for item in checked:
        render_pps.notes(item["notes"])
    for doc in docs:
        c.create_pipeline(doc, update=update, reprocess=reprocess)
    if not added_to_transaction():
        for item in checked:  # a spout or a service: nothing to wait for here
            render_pps.daemon_started(item["spec"])
        after_write(no_wait)


@validate_app.command("pipeline")
def validate_pipeline(
    file: SpecFile = None, output: OutputOpt = Output.table, project: ProjectOpt = None
) -> None:
    """Validate pipeline specs and show their effective form (defaults applied).

    As pachctl's, on the client: no store is opened (nor created). Notes say what create
    pipeline refuses beyond that, and why the jobs would fail on this machine.
    """
    from haathi.client.client import load_specs
    from haathi.client.context import project_for
    from haathi.client.projects import in_project
    from haathi.config import resolve_address
    from haathi.pps.spec_check import check_spec

    images = _image_settings()
    current = project or project_for(resolve_address(state.address))
    checked = [check_spec(in_project(doc, current), images) for doc in load_specs(file or "-")]
    if output == Output.json:
        render.emit_json(checked)
        return
    for item in checked:
        render_pps.notes(item["notes"])
        render.out.print(f"pipeline {item['spec']['pipeline']['name']}: valid")


def _image_settings() -> tuple[str, str] | None:
    """The (runtime, image pull policy) a job of the store at the address would run its image
    under, read without opening the store; None for a server (its jobs run on its machine)."""
    from haathi.client.client import is_server_address
    from haathi.config import resolve_address, store_config

    address = resolve_address(state.address)
    if is_server_address(address):
        return None
    config = store_config(address, state.overrides)
    return config.runtime, config.image_pull_policy


@command("inspect", "pipeline")
def inspect_pipeline(
    name: Annotated[
        str, typer.Argument(help="NAME, or an earlier version: NAME@vN, NAME^ or NAME~k")
    ],
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a pipeline (or one of its versions): state, version, inputs, effective spec."""
    p = client(project).inspect_pipeline(name)
    render.emit_json(p) if output == Output.json else render_pps.pipeline(p)


History = Annotated[
    str | None,
    typer.Option(
        "--history",
        help="also N versions before the current one, all of them (all) or none (none)",
    ),
]


@command("list", "pipeline", "pipelines")
def list_pipeline(
    name: Annotated[str | None, typer.Argument(help="only this pipeline")] = None,
    history: History = None,
    spec: Annotated[
        bool,
        typer.Option("--spec", "-s", help="print the specs (JSON), as update pipeline -f takes"),
    ] = False,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
    all_projects: AllProjectsOpt = False,
) -> None:
    """List the pipelines of the project (-A: of every project; with --history, each one's
    earlier versions too, newest first)."""
    items = client(project).list_pipeline(
        name, history="none" if history is None else history, all_projects=all_projects
    )
    if spec:
        render.emit_json([p.spec for p in items])
        return
    render.emit_json(items) if output == Output.json else render_pps.pipelines(items)


@command("delete", "pipeline")
def delete_pipeline(
    name: Annotated[str | None, typer.Argument()] = None,
    keep_repo: Annotated[bool, typer.Option("--keep-repo", help="keep the output repo")] = False,
    every: Annotated[
        bool, typer.Option("--all", help="every pipeline of the project (-A: of every project)")
    ] = False,
    project: ProjectOpt = None,
    all_projects: AllProjectsOpt = False,
) -> None:
    """Delete a pipeline, its jobs, and (unless --keep-repo) its output repo."""
    one_or_all("pipeline", name, every, all_projects)
    c = client(project)
    if every:
        c.delete_all_pipelines(keep_repo=keep_repo, all_projects=all_projects)
    else:
        c.delete_pipeline(str(name), keep_repo=keep_repo)


@command("stop", "pipeline")
def stop_pipeline(
    name: str,
    project: ProjectOpt = None,
) -> None:
    """Pause a pipeline: input commits start no jobs until it is started again."""
    client(project).stop_pipeline(name)


@command("start", "pipeline")
def start_pipeline(
    name: str,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Resume a paused pipeline (a job runs if its inputs changed meanwhile)."""
    client(project).start_pipeline(name)
    after_write(no_wait)


@draw_app.command("pipeline")
def draw_pipeline(project: ProjectOpt = None, all_projects: AllProjectsOpt = False) -> None:
    """Draw the DAG of repos and pipelines as text."""
    render_pps.dag(client(project).list_pipeline(all_projects=all_projects))


@run_app.command("cron")
def run_cron(
    name: str,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Tick a cron pipeline's cron inputs now."""
    client(project).run_cron(name)
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
    history: History = None,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", "-s", help="only jobs in this state (repeat it): running, egressing, ..."
        ),
    ] = None,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
    all_projects: AllProjectsOpt = False,
) -> None:
    """List jobs, newest first: of the project (-A: of every project), of one pipeline with
    -p, or of one job set given its ID (in every project). With -p, of the pipeline's current
    version only unless --history (as pachctl's)."""
    if history is None:
        history = "none" if pipeline is not None else "all"
    items = client(project).list_job(
        pipeline, job, history=history, state=state or (), all_projects=all_projects
    )
    render.emit_json(items) if output == Output.json else render_pps.jobs(items)


@command("inspect", "job")
def inspect_job(
    job: Annotated[str, typer.Argument(help="pipeline@id")],
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a job: state, datum counts, timings, inputs."""
    j = client(project).inspect_job(job)
    render.emit_json(j) if output == Output.json else render_pps.job(j)


@command("wait", "job")
def wait_job(
    job: Annotated[str, typer.Argument(help="pipeline@id, or a job set ID")],
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Block until a job (or every job of a job set) has ended."""
    items = client(project).wait_job(job, timeout)
    render.emit_json(items) if output == Output.json else render_pps.jobs(items)


@command("stop", "job")
def stop_job(
    job: Annotated[str, typer.Argument(help="pipeline@id")],
    project: ProjectOpt = None,
) -> None:
    """Kill a job (state KILLED; its output commit is finished with an error)."""
    client(project).stop_job(job)


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
    project: ProjectOpt = None,
) -> None:
    """List a job's datums, or (-f) the datums a spec's input has now."""
    if (job is None) == (file is None):
        raise InvalidArgument("list datum takes pipeline@id, or -f spec")
    if file is not None and (number is not None or marker is not None):
        raise InvalidArgument("list datum -f takes no --number or --marker")
    c = client(project)
    items = c.preview_datums(file) if file is not None else c.list_datum(str(job), number, marker)
    render.emit_json(items) if output == Output.json else render_pps.datums(items)
    if number and len(items) == number and output != Output.json:
        render.err.print(f"next page: --marker {items[-1].id}", markup=False)


@command("inspect", "datum")
def inspect_datum(
    job: Annotated[str, typer.Argument(help="pipeline@id")],
    datum: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a datum: inputs with commits and hashes, outputs, env, state, attempts, time."""
    d = client(project).inspect_datum(job, datum)
    render.emit_json(d) if output == Output.json else render_pps.datum(d)


@app.command("logs")
def logs(
    pipeline: Annotated[str, typer.Option("--pipeline", "-p")],
    job: Annotated[str | None, typer.Option("--job", "-j")] = None,
    datum: Annotated[str | None, typer.Option("--datum")] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="keep printing until the job ends (a spout's or service's: until interrupted)",
        ),
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option("--tail", help="the newest N lines of a spout or service (0: all kept)"),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Print the user code's output (stdout and stderr) per datum; of a spout or a service
    (without --job), what its program prints."""
    c = client(project)
    if job is None and datum is None and c.inspect_pipeline(pipeline).daemon is not None:
        _daemon_logs(c, pipeline, 1000 if tail is None else tail, follow=follow)
        return
    if tail is not None:
        raise InvalidArgument("--tail is for the output of a spout or a service")
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


def _daemon_logs(c: Client, pipeline: str, tail: int, *, follow: bool) -> None:
    """Print the program's newest ``tail`` lines; with ``follow``, then each new one."""
    lines, since = c.daemon_logs(pipeline, limit=tail), 0
    while True:
        render_pps.log_lines(lines)
        if not follow:
            return
        since = lines[-1].seq if lines else since  # (a quiet poll keeps its place)
        time.sleep(0.5)
        lines = c.daemon_logs(pipeline, since=since)


from haathi.cli import lineage_commands  # noqa: E402  registers lineage and draw lineage

_ = lineage_commands
