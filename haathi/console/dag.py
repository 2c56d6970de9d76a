"""The DAG of a project (``/projects/{project}/dag``): its repos and pipelines as a graph.

The server sends the graph as JSON (embedded in the page, and at ``/dag/state``, which the
page polls while it is visible: every 2 s, every second while a job is queued or running);
``static/graph.js`` lays it out with the vendored
dagre and draws it as SVG, each node a link to its page. A repo is a node; a pipeline is one
node with its output repo, and an edge runs from each input to the pipeline reading it. A
pipeline node shows its state, its newest job's state (running, failed, succeeded,
unrunnable, ...) and, while a job is queued or running, that job's progress in datums; a
poll that finds the same nodes and edges updates those in place, one that does not draws
the graph again.

What the caller may not read is absent: a repo (or a pipeline, by its output repo) that the
caller sees listed only as a ``projectViewer``, or an input repo of another project that the
caller may not read. A poll costs two lists (pipelines, and the project's unfinished jobs)
and, with auth on, one check per repo: none per commit, file or job.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from haathi.api import Api
from haathi.console import urls
from haathi.console.pages import Page, back_to
from haathi.console.render import visible
from haathi.errors import NotFound, PermissionDenied
from haathi.models.auth import Permission
from haathi.models.ids import split_key, validate_project_name
from haathi.models.info import JobInfo, JobState, PipelineInfo

OVERVIEW = ("the overview", urls.OVERVIEW)
UNFINISHED = (JobState.CREATED.value, JobState.RUNNING.value, JobState.EGRESSING.value)
POLL_MS = 2000


class Readable:
    """Whether the caller may read a repo, each repo checked once per request."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.seen: dict[str, bool] = {}

    def __call__(self, repo: str) -> bool:
        if repo not in self.seen:
            try:
                self.api.authorize(Permission.READ, repo)
                self.seen[repo] = True
            except (PermissionDenied, NotFound):
                self.seen[repo] = False
        return self.seen[repo]


def _name(key: str, project: str) -> str:
    """A repo's name as the DAG of ``project`` shows it: bare in its own project."""
    proj, name = split_key(key)
    return name if proj == project else key


def _progress(job: JobInfo) -> dict[str, Any]:
    done = job.data_processed + job.data_skipped + job.data_failed + job.data_recovered
    return {
        "id": job.id,
        "state": job.state.value,
        "url": urls.job(job.pipeline, job.id),
        "done": done,
        "total": job.data_total,
        "failed": job.data_failed,
    }


def _pipeline_node(p: PipelineInfo, project: str, active: JobInfo | None) -> dict[str, Any]:
    return {
        "id": f"pipeline:{p.name}",
        "kind": "pipeline",
        "label": visible(_name(p.name, project)),
        "url": urls.pipeline(p.name),
        "state": p.state,
        "job": p.last_job,  # the newest job's state (None: no job yet)
        "active": None if active is None else _progress(active),
    }


def _repo_node(key: str, project: str) -> dict[str, Any]:
    return {
        "id": f"repo:{key}",
        "kind": "repo",
        "label": visible(_name(key, project)),
        "url": urls.repo(key),
    }


def graph(api: Api, project: str) -> dict[str, Any]:
    """The DAG of ``project`` as the caller may read it: ``nodes`` (repos and pipelines, by
    name) and ``edges`` (``from`` an input, ``to`` the pipeline reading it)."""
    readable = Readable(api)
    pipelines = [p for p in api.list_pipeline(project=project) if readable(p.name)]
    outputs = {p.name for p in pipelines}
    active: dict[str, JobInfo] = {}
    for job in api.list_job(project=project, states=UNFINISHED):  # newest first
        if job.pipeline in outputs and (
            job.pipeline not in active or active[job.pipeline].state is not JobState.RUNNING
        ):
            active[job.pipeline] = job  # the running one, else the newest queued
    repos = [r.name for r in api.list_repo(project) if r.name not in outputs and readable(r.name)]
    nodes = [_repo_node(key, project) for key in repos]
    ids = {key: f"repo:{key}" for key in repos} | {key: f"pipeline:{key}" for key in outputs}
    edges: list[dict[str, str]] = []
    for p in pipelines:
        nodes.append(_pipeline_node(p, project, active.get(p.name)))
        for given in dict.fromkeys(p.inputs):
            key, _, branch = given.partition("@")
            if key not in ids:  # an input repo of another project
                if not readable(key):
                    continue
                ids[key] = f"repo:{key}"
                nodes.append(_repo_node(key, project))
            edges.append({"from": ids[key], "to": ids[p.name], "branch": visible(branch)})
    return {"project": project, "nodes": nodes, "edges": edges}


def _project(page: Page) -> str:
    with back_to(*OVERVIEW):
        name = validate_project_name(page.request.path_params["project"])
        page.api.inspect_project(name)
    return name


def dag_page(page: Page) -> Response:
    """``GET /projects/{project}/dag``."""
    project = _project(page)
    return page.render(
        "dag.html",
        project=project,
        graph=graph(page.api, project),
        state_url=urls.dag_state(project),
        poll_ms=POLL_MS,
    )


def dag_state(page: Page) -> Response:
    """``GET /projects/{project}/dag/state``: the graph the page shows, as JSON."""
    return JSONResponse(graph(page.api, _project(page)))
