"""``haathi <verb> <noun>``: each command parses, makes one client call, renders.

This module sets the command line up: the app and its verbs, the global options, the client
the commands share, :func:`command` to register one, and the entry point (:func:`run`: one-line
errors and exit codes, never a traceback). The commands live beside it, by topic:
:mod:`~haathi.cli.pfs_commands`, :mod:`~haathi.cli.store_commands`,
:mod:`~haathi.cli.pps_commands`, :mod:`~haathi.cli.lineage_commands`,
:mod:`~haathi.cli.history_commands`, :mod:`~haathi.cli.secret_commands`,
:mod:`~haathi.cli.auth_commands` and :mod:`~haathi.cli.serve_command`.

A command starts light: this module imports neither those modules nor rich, the client or
the store. ``haathi version`` and ``haathi demo`` (defined here) import nothing more; any other
command imports the topic modules (:func:`load_commands`), and only the one command it runs
becomes a click command (:mod:`~haathi.cli.command_tree`). The client, and with it HTTP or
the embedded store, is imported when a command first asks for it (:func:`client`).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from haathi.cli.command_tree import click_app
from haathi.cli.output import Output
from haathi.errors import HaathiError

if TYPE_CHECKING:
    from haathi.client import Client
    from haathi.pps.sidecars import JobGateways

app = typer.Typer(
    help="haathi: version control for data, with Pachyderm's commands (pachctl -> haathi).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
VERBS = {
    "create": "Create a project, repo, branch, pipeline or secret.",
    "list": "List projects, repos, branches, commits, files, pipelines, jobs, datums, secrets, "
    "transactions or preloaders.",
    "inspect": "Show a project, repo, branch, commit, file, pipeline, job, datum, secret or "
    "transaction, or the store.",
    "update": "Update a project, repo or pipeline.",
    "delete": "Delete a project, repo, branch, commit, file, pipeline, secret or transaction.",
    "start": "Start a commit, a stopped pipeline or a transaction.",
    "stop": "Stop a pipeline, a job, the preloaders or adding to a transaction.",
    "finish": "Finish a commit or a transaction.",
    "wait": "Wait for a commit or job to finish.",
    "squash": "Squash a commit into its neighbours.",
    "put": "Put files into a repo.",
    "get": "Get files out of a repo.",
    "glob": "Find files by glob pattern.",
    "diff": "Show what changed between commits.",
    "copy": "Copy files without copying bytes.",
    "find": "Find the commits that changed a path.",
    "edit": "Edit the key/value metadata of a repo, branch or commit.",
    "rerun": "Rerun a pipeline: its current spec as a new version.",
    "rollback": "Roll a pipeline back to an earlier spec version.",
    "config": "Show or change the client's context (its default project).",
    "resume": "Resume a stopped transaction.",
}
verbs: dict[str, typer.Typer] = {}
for _verb, _help in VERBS.items():
    verbs[_verb] = typer.Typer(help=_help, no_args_is_help=True)
    app.add_typer(verbs[_verb], name=_verb)


class State:
    address: str | None = None
    overrides: dict[str, Any]
    client: Client | None = None


state = State()
state.overrides = {}


def client(project: str | None = None) -> Client:
    """The store or server the command works on (connected on first use), in ``project``
    (the command's ``--project``; else ``$HAATHI_PROJECT``, else the context's, else
    ``default``), adding to the context's active transaction if there is one."""
    if state.client is None:
        from haathi import allocator
        from haathi.client import connect
        from haathi.client.context import active_transaction
        from haathi.config import resolve_address

        allocator.tune()  # before the command moves data (not for `version` or `--help`)
        state.client = connect(
            state.address, run_jobs=False, gateways=job_gateways(state.address),
            project=project, **state.overrides,
        )  # fmt: skip
        state.client.transaction_id = active_transaction(resolve_address(state.address))
    elif project is not None:
        state.client.project = project
    return state.client


def job_gateways(address: str | None) -> JobGateways | None:
    """What serves the S3 gateways of the jobs a command runs on a store directory (none for
    a server, which runs its jobs itself)."""
    from haathi.client.client import is_server_address
    from haathi.config import resolve_address

    if is_server_address(resolve_address(address)):
        return None
    from haathi.server.sidecar import JobGatewayFactory

    return JobGatewayFactory()


@app.callback()
def main(
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Store directory or server URL (default $HAATHI_ADDRESS, else ~/.haathi).",
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Metadata database URL (overrides the store's).")
    ] = None,
    objects: Annotated[
        str | None, typer.Option("--objects", help="Object store URL (overrides the store's).")
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="S3 endpoint URL (overrides the store's).")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option("--executor", help="Where datums run: local (default) or dask://host:port."),
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option("--sandbox", help="How user code runs: auto (bwrap if usable), bwrap, none."),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="How a pipeline with an image runs: auto, bwrap (daemonless), podman, docker.",
        ),
    ] = None,
) -> None:
    state.address = address
    state.overrides = {
        "db_url": db, "objects_url": objects, "s3_endpoint": s3_endpoint,
        "executor": executor, "sandbox": sandbox, "runtime": runtime,
    }  # fmt: skip


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json")]
ProjectOpt = Annotated[
    str | None,
    typer.Option(
        "--project",
        help="the project of bare repo and pipeline names (default: $HAATHI_PROJECT, else the "
        "context's, else default)",
    ),
]
AllProjectsOpt = Annotated[
    bool, typer.Option("--all-projects", "-A", help="of every project, not only the current one")
]


def one_or_all(what: str, name: str | None, every: bool, all_projects: bool) -> None:
    """``delete WHAT``'s arguments: a name or ``--all`` (with ``-A`` only beside ``--all``)."""
    from haathi.errors import InvalidArgument

    if (name is None) == (not every):
        raise InvalidArgument(f"delete {what} takes a {what} name, or --all")
    if all_projects and not every:
        raise InvalidArgument("--all-projects goes with --all")


NoWait = Annotated[
    bool,
    typer.Option(
        "--no-wait", help="queue the jobs this starts and return; `haathi run worker` runs them"
    ),
]


def added_to_transaction() -> bool:
    """After a transactional command: whether it added a request to the active transaction
    (then it says so, as pachctl does)."""
    c = client()
    if c.transaction_id is None:
        return False
    print(f"Added to transaction: {c.transaction_id}", flush=True)
    return True


def after_write(no_wait: bool) -> None:
    """Run the jobs a command started (with progress), or say they are queued."""
    from haathi.cli import render
    from haathi.cli.progress import job_progress

    c = client()
    if no_wait:
        queued = [j for j in c.list_job(all_projects=True) if not j.state.terminal]
        if queued:
            render.err.print(
                f"{len(queued)} job(s) queued: `haathi run worker` (or any command without "
                "--no-wait) runs them; `haathi list job` shows them"
            )
        return
    c.progress = None
    with job_progress() as progress:
        c.progress = progress
        summary = c.run_jobs()
    for key, why in summary.waiting.items():
        render.err.print(f"job {key} is queued: {why}", markup=False)


def command(verb: str, noun: str, *aliases: str) -> Any:
    """Register a function as ``haathi <verb> <noun>`` (plus hidden plural aliases)."""

    def deco(fn: Any) -> Any:
        verbs[verb].command(noun)(fn)
        for alias in aliases:
            verbs[verb].command(alias, hidden=True)(fn)
        return fn

    return deco


@app.command("version")
def version() -> None:
    """Print haathi's version."""
    from haathi import __version__

    print(__version__)


@app.command(
    "demo",
    help="Run a two-stage pipeline DAG on a new embedded store, then change one input.\n\n"
    "Monthly sales go in; totals (one datum per month) and report (over all months) run, and "
    "the results and their lineage are shown; then one month changes and only its datum runs "
    "again. The pipelines run in a BusyBox image built on the spot when this host can "
    "(busybox-static, umoci and a container runtime), else in the host sandbox.",
)
def demo(
    address: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="store directory (default: a new temp dir), or a server's URL (the demo's data "
            "then shows in its console)",
        ),
    ] = None,
) -> None:
    """``haathi demo``: see haathi/cli/demo.py."""
    from haathi.cli.demo import run_demo

    run_demo(address)


# the modules that register the other commands, in the order `haathi --help` lists them
COMMAND_MODULES = (
    "haathi.cli.project_commands",
    "haathi.cli.pfs_commands",
    "haathi.cli.store_commands",
    "haathi.cli.auth_commands",
    "haathi.cli.pps_commands",  # and haathi.cli.lineage_commands
    "haathi.cli.history_commands",
    "haathi.cli.secret_commands",
    "haathi.cli.transaction_commands",
    "haathi.cli.serve_command",
    "haathi.cli.preloader_commands",
)


def load_commands() -> None:
    """Register every command (the CLI calls it when a command line names one that is not
    registered yet, or asks for a listing)."""
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    # the store's commands (init, fsck, gc) come before this module's own (version, demo)
    store = "haathi.cli.store_commands"
    app.registered_commands.sort(key=lambda c: getattr(c.callback, "__module__", "") != store)


class Terminated(KeyboardInterrupt):
    """SIGTERM: the command unwinds as on Ctrl-C, so it gives back what it holds (a job it
    was running goes back to the queue at once) before it exits."""


_terminated: list[bool] = []  # set by the SIGTERM handler (typer turns the exception into 130)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _terminated.append(True)
    raise Terminated


_click: list[Any] = []


def click_command() -> Any:
    """The click group of :data:`app` (:mod:`~haathi.cli.command_tree`), one per process: a
    preloader (:mod:`haathi.cli.preload`) makes every command of it before it forks, so that
    its commands find them made."""
    if not _click:
        _click.append(click_app(app, load_commands))
    return _click[0]


def run(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and meaningful exit codes, never a traceback.

    ``argv`` defaults to ``sys.argv[1:]``; the process exits with the command's code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    state.address, state.overrides, state.client = None, {}, None
    _terminated.clear()
    try:
        result = click_command()(args=argv, prog_name="haathi", standalone_mode=False)
        code = result if isinstance(result, int) else 0  # typer.Exit(n) comes back as n
    except HaathiError as exc:
        _say(f"error: {exc}", markup=False)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _say("aborted")
        code = 130
    except KeyboardInterrupt:
        _say("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        # typer >= 0.20 vendors click: its usage errors derive from TyperException instead.
        usage = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
        if isinstance(exc, usage):
            message = exc.format_message()
            if message:  # empty when the help was shown instead
                _say(f"error: {message}", markup=False)
            code = exc.exit_code
        else:
            if os.environ.get("HAATHI_DEBUG"):
                raise
            _say(f"internal error: {type(exc).__name__}: {exc}", markup=False)
            code = 1
    finally:
        if state.client is not None:
            state.client.close()
            state.client = None
    if _terminated:
        _say("terminated")
        code = 128 + signal.SIGTERM
    sys.exit(code)


def _say(message: str, *, markup: bool = True) -> None:
    """One line on stderr (rich is imported by the commands that print, not before)."""
    from haathi.cli import render

    render.err.print(message, markup=markup)
