"""The overview (``/``): projects, their repos and pipelines, as the caller may read them.

A repo shows its size (its ``master`` head, as ``list repo``), branches, newest commit and its
age, and description; a pipeline its state and its newest job's state. What the caller may
not read is absent: the lists come from ``list_repo`` and ``list_pipeline``, and a repo they
list that the caller may not read (seen through ``projectViewer`` on its project) is left
out with its pipeline. Projects are headings when there is any but ``default``. The page
costs a few queries per repo (its newest commit) and none per file.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from haathi.api import Api
from haathi.console.pages import Page
from haathi.errors import NotFound, PermissionDenied
from haathi.models.ids import DEFAULT_PROJECT
from haathi.models.info import CommitInfo, PipelineInfo, ProjectInfo, RepoInfo


@dataclass(frozen=True)
class RepoRow:
    info: RepoInfo
    newest: CommitInfo | None  # its newest commit on any branch (None: no commit yet)
    output_of: str | None  # the pipeline whose output it is


@dataclass(frozen=True)
class Section:
    """One project's part of the overview."""

    project: ProjectInfo | None  # None: only the default project exists (no heading)
    repos: list[RepoRow]
    pipelines: list[PipelineInfo]


def _readable(api: Api, repo: RepoInfo, output_of: str | None) -> RepoRow | None:
    """The repo's row, with its newest commit; None if the caller may not read it (a
    ``projectViewer`` sees it listed, not its commits) or it was deleted since it was
    listed."""
    try:
        found = api.list_commit(repo.name, None, 1)
    except (NotFound, PermissionDenied):
        return None
    return RepoRow(repo, found[0] if found else None, output_of)


def sections(api: Api) -> list[Section]:
    """The overview's sections: one per project (or one without a heading)."""
    projects = api.list_project()
    pipelines = api.list_pipeline()
    outputs = {p.name for p in pipelines}
    listed = [_readable(api, r, r.name if r.name in outputs else None) for r in api.list_repo()]
    rows = [r for r in listed if r is not None]
    readable = {r.info.name for r in rows}
    pipelines = [p for p in pipelines if p.name in readable]  # as its output repo
    if all(p.name == DEFAULT_PROJECT for p in projects):
        return [Section(None, rows, pipelines)]
    return [
        Section(
            p,
            [r for r in rows if r.info.project == p.name],
            [q for q in pipelines if q.project == p.name],
        )
        for p in projects
    ]


def overview(page: Page) -> Response:
    return page.render("overview.html", sections=sections(page.api))
