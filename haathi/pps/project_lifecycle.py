"""Deleting a project: its pipelines, then its repos, then the project, in one transaction.

Here, above PFS, because a project's pipelines go with it (Pachyderm's ``pachctl delete
project`` deletes them first). Without ``force`` a project that holds anything is refused,
naming what it holds; ``default`` is never deleted. The role bindings of what goes (the
project, its repos, its pipelines' own identities) go with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from haathi.auth import bindings
from haathi.errors import FailedPrecondition
from haathi.models.auth import pipeline_subject
from haathi.models.ids import DEFAULT_PROJECT, split_key, validate_project_name
from haathi.pfs import projects, repos
from haathi.pfs.catalog import delete_repo_rows
from haathi.pps import pipelines, records
from haathi.pps.context import PpsContext


@dataclass(frozen=True)
class Deleted:
    """What deleting a project removed (keys)."""

    pipelines: tuple[str, ...]
    repos: tuple[str, ...]


def _names(keys: list[str]) -> str:
    return ", ".join(split_key(k)[1] for k in keys)


def _holds(name: str, pipes: list[str], repo_keys: list[str]) -> str:
    parts = []
    if pipes:
        parts.append(f"{len(pipes)} pipeline{'s' * (len(pipes) != 1)} ({_names(pipes)})")
    if repo_keys:
        parts.append(f"{len(repo_keys)} repo{'s' * (len(repo_keys) != 1)} ({_names(repo_keys)})")
    return f"project {name} holds {' and '.join(parts)}: delete them first, or use --force"


def _downstream_first(conn: Connection, pipes: list[str]) -> list[str]:
    """``pipes`` ordered so that each comes before the pipelines it reads from."""
    remaining, order = list(pipes), []
    while remaining:
        ready = [p for p in remaining if not set(pipelines.downstream_of(conn, p)) & set(remaining)]
        if not ready:  # (a cycle cannot be made; deleting names what blocks it)
            ready = remaining[:1]
        order += ready
        remaining = [p for p in remaining if p not in ready]
    return order


def delete_project(ctx: PpsContext, name: str, *, force: bool = False) -> Deleted:
    """Delete project ``name``; with ``force`` also the pipelines and repos it holds (a repo
    or output that a pipeline of another project reads is still refused)."""
    validate_project_name(name)
    if name == DEFAULT_PROJECT:
        raise FailedPrecondition("the default project cannot be deleted", project=name)
    with ctx.pfs.db.write() as conn:
        projects.project_row(conn, name)
        pipes = [p.name for p in records.all_pipelines(conn, name)]
        held = repos.repo_names(conn, name)
        if (pipes or held) and not force:
            raise FailedPrecondition(_holds(name, pipes, held), project=name)
        gone: list[str] = []
        for pipe in _downstream_first(conn, pipes):
            gone += pipelines.delete_pipeline_rows(conn, pipe)
        for key in repos.repo_names(conn, name):
            delete_repo_rows(conn, key)  # refused if another project's pipeline reads it
            gone.append(key)
        projects.delete_project_row(conn, name)
        bindings.drop(conn, resource=bindings.project_resource(name))
        for pipe in pipes:
            bindings.drop(conn, subject=pipeline_subject(pipe))
        for repo in gone:
            bindings.drop(conn, resource=bindings.repo_resource(repo))
        return Deleted(tuple(pipes), tuple(gone))
