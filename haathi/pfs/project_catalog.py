"""Projects as users see them: create, inspect, list and update (Pachyderm's ``pachctl
create|inspect|list|update project``). Deleting one deletes its pipelines too, so that lives
a layer up, in :mod:`haathi.pps.project_lifecycle`."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from haathi.models.bounds import check_description
from haathi.models.ids import validate_project_name
from haathi.models.info import ProjectInfo
from haathi.models.text import check_text
from haathi.pfs import projects
from haathi.pfs.context import PfsContext


def _description(name: str, description: str) -> str:
    check_text(description, f"the description of project {name}")
    return check_description(description, f"the description of project {name}")


def create_project(
    ctx: PfsContext,
    name: str,
    description: str = "",
    created_by: str | None = None,
    *,
    then: Callable[[Connection], None] | None = None,
) -> ProjectInfo:
    """Create project ``name``; ``then`` runs in the same transaction (the caller's role
    bindings on it: nothing is written if it fails)."""
    validate_project_name(name)
    with ctx.db.write() as conn:
        projects.insert_project(conn, name, _description(name, description), created_by)
        if then is not None:
            then(conn)
    return inspect_project(ctx, name)


def inspect_project(ctx: PfsContext, name: str) -> ProjectInfo:
    validate_project_name(name)
    with ctx.db.read() as conn:
        return projects.info(projects.project_row(conn, name))


def list_project(ctx: PfsContext) -> list[ProjectInfo]:
    with ctx.db.read() as conn:
        return projects.all_projects(conn)


def update_project(ctx: PfsContext, name: str, description: str) -> ProjectInfo:
    """Replace the project's description (its metadata is kept)."""
    validate_project_name(name)
    with ctx.db.write() as conn:
        projects.set_description(conn, name, _description(name, description))
    return inspect_project(ctx, name)
