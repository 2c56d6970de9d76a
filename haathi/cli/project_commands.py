"""``haathi`` commands for projects (``create|inspect|list|update|delete project``) and the
client's context (``config update context --project P``, ``config get context``), as
pachctl's."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from haathi.cli import render
from haathi.cli.main import OutputOpt, client, command, state, verbs
from haathi.cli.render import Output
from haathi.errors import FailedPrecondition
from haathi.models.ids import DEFAULT_PROJECT, split_key, validate_project_name

Description = Annotated[str, typer.Option("--description", "-d")]

# projects ----------------------------------------------------------------------------------


@command("create", "project")
def create_project(name: str, description: Description = "") -> None:
    """Create a new project."""
    client().create_project(name, description)


@command("list", "project", "projects")
def list_project(output: OutputOpt = Output.table) -> None:
    """List projects (* marks the active one: see `haathi config update context`)."""
    c = client()
    items = c.list_project()
    render.emit_json(items) if output == Output.json else render.projects(items, c.project)


@command("inspect", "project")
def inspect_project(name: str, output: OutputOpt = Output.table) -> None:
    """Show a project."""
    p = client().inspect_project(name)
    render.emit_json(p) if output == Output.json else render.project(p)


@command("update", "project")
def update_project(name: str, description: Description) -> None:
    """Replace a project's description."""
    client().update_project(name, description)


@command("delete", "project")
def delete_project(
    name: str,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="delete its pipelines and repos without asking")
    ] = False,
) -> None:
    """Delete a project. One that holds pipelines or repos is deleted with them once you
    answer y (read from stdin), or with -f."""
    c = client()
    c.inspect_project(name)  # a project that is not there: NotFound, before any question
    if not force and name != DEFAULT_PROJECT:  # (default: refused, not asked about)
        pipelines = [split_key(p.name)[1] for p in c.list_pipeline(project=name)]
        repos = [split_key(r.name)[1] for r in c.list_repo(project=name)]
        if pipelines or repos:
            _confirm(name, pipelines, repos)
            force = True
    c.delete_project(name, force=force)
    if name == c.project:
        render.err.print(
            f"warning: deleted current project {name}; update context by running:\n"
            "   haathi config update context --project PROJECT",
            markup=False,
        )


def _confirm(name: str, pipelines: list[str], repos: list[str]) -> None:
    """Ask before deleting what the project holds (the question only on a terminal); a
    refusal (anything but y, or no answer) is a FailedPrecondition."""
    if sys.stdin.isatty():
        for p in pipelines:
            render.err.print(f"This will delete pipeline {p}", markup=False)
        for r in repos:
            render.err.print(f"This will delete repo {r}", markup=False)
        render.err.print("Are you sure you want to do this? (y/N): ", end="")
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise FailedPrecondition(
            f"not deleting project {name}: it holds {len(pipelines)} pipelines and "
            f"{len(repos)} repos (answer y, or use --force)",
            project=name,
        )


# the client's context ----------------------------------------------------------------------

config_update = typer.Typer(help="Change the client's context.", no_args_is_help=True)
config_get = typer.Typer(help="Show the client's context.", no_args_is_help=True)
verbs["config"].add_typer(config_update, name="update")
verbs["config"].add_typer(config_get, name="get")


def _address() -> str:
    from haathi.config import resolve_address

    return resolve_address(state.address)


@config_update.command("context")
def update_context(
    project: Annotated[
        str | None,
        typer.Option("--project", help="the project of bare repo and pipeline names"),
    ] = None,
) -> None:
    """Change the context of the current store or server (its default project)."""
    from haathi.client.context import context_key, update_context

    address = _address()
    if project is not None:
        validate_project_name(project)  # (whether it exists is not checked, as in pachctl)
    render.err.print(f'editing the currently active context "{context_key(address)}"', markup=False)
    update_context(address, project=project)


@config_get.command("context")
def get_context() -> None:
    """Print the context of the current store or server (JSON)."""
    from haathi.client.context import context

    print(json.dumps(context(_address()), indent=2, sort_keys=True))


@config_get.command("active-context")
def get_active_context() -> None:
    """Print the address whose context commands use (the current store or server)."""
    from haathi.client.context import context_key

    print(context_key(_address()))
