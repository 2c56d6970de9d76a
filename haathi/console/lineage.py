"""The lineage of a file at a commit (``{commit}/lineage/{path}``), and reproducing it.

The page shows, as one graph, where the file came from (upstream, down to user commits) and
what was derived from it (downstream: at the output branches' heads, or with ``?at=ID`` in
commit set ``ID``): the same data as ``haathi draw lineage`` (the Api's lineage, each file
version once). ``static/graph.js`` lays it out with the vendored dagre and draws it as SVG;
each node links to its file, to its own lineage, and for a pipeline's output to the datum
and the job that wrote it. A path naming a directory (or a glob) shows the lineage of every
file in it.

Only the files nearest to the target are laid out and drawn: at most :data:`SHOWN` by
default (``?limit=N``, up to :data:`MOST`, shows more), in the order of their distance from
it; the page says how many it leaves out. What the caller may not read is refused by the
Api one direction at a time: the page shows the other and says why.

With write access to the file's repo, a *Reproduce* button (a POST with the session's CSRF
token) re-runs the datums that wrote the files, from their recorded inputs and spec version,
and the page shows the Api's report, file by file: stored and reproduced hashes, matching
or not (``haathi reproduce``'s). It changes nothing, so it answers with the report rather
than a redirect. Without write access there is no button, and a forced POST is refused by
the Api (403) before anything runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from haathi.api import Api
from haathi.console import urls
from haathi.console.pages import Page, back_to
from haathi.console.render import size, visible
from haathi.errors import InvalidArgument, PermissionDenied
from haathi.models import paths
from haathi.models.auth import Permission
from haathi.models.ids import is_commit_id, repo_key
from haathi.models.info import CommitInfo, Origin
from haathi.models.lineage import LineageGraph, LineageNode
from haathi.models.refspec import parse_commit
from haathi.models.reproduce import ReproduceReport

SHOWN = 500  # nodes laid out by default: dagre lays out and draws 500 in well under 1 s
MOST = 5000  # what ?limit= may ask for
OVERVIEW = ("the overview", urls.OVERVIEW)


@dataclass(frozen=True)
class Target:
    """The file (or directory, or glob) whose lineage the page shows."""

    key: str  # its repo
    commit: CommitInfo
    path: str

    @property
    def spec(self) -> str:
        return f"{self.key}@{self.commit.id}:{self.path}"

    @property
    def url(self) -> str:
        return urls.lineage(self.key, self.commit.id, self.path)


@dataclass(frozen=True)
class Side:
    """One direction of the lineage: its files, or why the caller may not see them."""

    roots: list[LineageNode]
    refused: str | None = None


def _target(page: Page) -> Target:
    params = page.request.path_params
    with back_to(*OVERVIEW):
        key = repo_key(params["project"], params["repo"])
        page.api.inspect_repo(key)
    with back_to(f"repo {key}", urls.repo(key)):
        commit = page.api.inspect_commit(parse_commit(f"{key}@{params['ref']}"))
    with back_to(f"commit {key}@{commit.id}", urls.files(key, commit.id)):
        path = paths.normalize("/" + params["path"])
    return Target(key, commit, path)


def _side(target: Target, call: Callable[[], list[LineageNode]]) -> Side:
    """One direction of the lineage; a path naming nothing is the 404 page."""
    where = f"the files of {target.key}@{target.commit.id}"
    with back_to(where, urls.files(target.key, target.commit.id)):
        try:
            return Side(call())
        except PermissionDenied as exc:
            return Side([], exc.message)


def _view(page: Page, target: Target) -> tuple[str | None, int]:
    """The view the query asks for: downstream in commit set ``at`` (None: at the heads),
    and how many nodes to show."""
    query = page.request.query_params
    at = query.get("at") or None
    limit = query.get("limit") or str(SHOWN)
    with back_to(f"the lineage of {target.path}", target.url):
        if at is not None and not is_commit_id(at):
            raise InvalidArgument(f"?at={at!r} is not a commit ID")
        if not limit.isdigit() or not 1 <= int(limit) <= MOST:
            raise InvalidArgument(f"?limit= takes a number of nodes from 1 to {MOST}")
    return at, int(limit)


def nearest(graph: LineageGraph, targets: list[str], limit: int) -> list[LineageNode]:
    """At most ``limit`` nodes of ``graph``: the targets, then the others in the order of
    their distance from them (each edge one step, either way)."""
    linked: dict[str, list[str]] = {n.ref: [] for n in graph.nodes}
    for a, b in graph.edges:
        linked[a].append(b)
        linked[b].append(a)
    by_ref = {n.ref: n for n in graph.nodes}
    seen = dict.fromkeys(t for t in targets if t in by_ref)
    queue = deque(seen)
    while queue and len(seen) < limit:
        for other in linked[queue.popleft()]:
            if other not in seen:
                seen[other] = None
                queue.append(other)
    return [by_ref[ref] for ref in list(seen)[:limit]]


def _job(node: LineageNode) -> tuple[str, str] | None:
    """(pipeline, job ID) of the job that wrote an output file."""
    if node.job is None:
        return None
    pipeline, _, job_id = node.job.rpartition("@")
    return pipeline, job_id


def node_json(node: LineageNode, index: int, target: bool) -> dict[str, Any]:
    """A node as ``graph.js`` draws it: labels (control characters shown as escapes) and
    the URLs it links to."""
    job = _job(node)
    return {
        "id": f"n{index}",
        "path": visible(node.path),
        "repo": visible(node.repo),
        "commit": node.commit,
        "commit_url": urls.commit(node.repo, node.commit),
        "hash": node.hash[:16],
        "size": size(node.size_bytes),
        "file": urls.files(node.repo, node.commit, node.path),
        "lineage": urls.lineage(node.repo, node.commit, node.path),
        "origin": node.origin,
        "target": target,
        "datum": node.datum,
        "datum_url": None if job is None or not node.datum else urls.datum(*job, node.datum),
        "job": None if job is None else job[1],
        "job_url": None if job is None else urls.job(*job),
        "pipeline": None if job is None else visible(job[0]),
        "version": node.spec_version,
    }


def graph_json(shown: list[LineageNode], graph: LineageGraph, targets: set[str]) -> dict[str, Any]:
    ids = {n.ref: f"n{i}" for i, n in enumerate(shown)}
    return {
        "nodes": [node_json(n, i, n.ref in targets) for i, n in enumerate(shown)],
        "edges": [{"from": ids[a], "to": ids[b]} for a, b in graph.edges if a in ids and b in ids],
    }


def may_write(api: Api, repo: str) -> bool:
    try:
        api.authorize(Permission.WRITE, repo)
    except PermissionDenied:
        return False
    return True


@dataclass(frozen=True)
class Check:
    """A row of the reproduce report: one file a re-run datum wrote (or should have)."""

    path: str
    status: str  # match, differs, missing (not reproduced), extra (not stored)
    stored: str | None
    reproduced: str | None
    file_url: str
    datum: str
    datum_url: str
    job: str
    job_url: str
    version: int


def checks(report: ReproduceReport) -> list[Check]:
    """The report's files, datum by datum, each with the links the page gives it."""
    repo, _, commit = report.commit.rpartition("@")
    rows = []
    for d in report.datums:
        pipeline, _, job_id = d.job.rpartition("@")
        for f in d.files:
            rows.append(
                Check(
                    f.path,
                    f.status,
                    f.stored_hash,
                    f.reproduced_hash,
                    urls.files(repo, commit, f.path),
                    d.datum,
                    urls.datum(pipeline, job_id, d.datum),
                    job_id,
                    urls.job(pipeline, job_id),
                    d.spec_version,
                )
            )
    return rows


def _render(page: Page, target: Target, report: ReproduceReport | None = None) -> Response:
    at, limit = _view(page, target)
    up = _side(target, lambda: page.api.lineage(target.spec))
    down = _side(target, lambda: page.api.lineage(target.spec, downstream=True, at=at))
    graph = LineageGraph.of(up.roots + down.roots)
    targets = [n.ref for n in (up.roots or down.roots)]
    shown = nearest(graph, targets, limit)
    output = target.commit.origin is Origin.AUTO
    return page.render(
        "lineage.html",
        target=target,
        at=at,
        limit=limit,
        most=MOST,
        up=up,
        down=down,
        total=len(graph.nodes),
        graph=graph_json(shown, graph, set(targets)),
        targets=len(targets),
        may_reproduce=output and may_write(page.api, target.key),
        report=report,
        checks=[] if report is None else checks(report),
    )


def lineage_page(page: Page) -> Response:
    """``GET {commit}/lineage/{path}``."""
    return _render(page, _target(page))


def reproduce(page: Page) -> Response:
    """``POST {commit}/lineage/{path}/reproduce``: re-run and compare; the page with the
    report (the Api refuses a caller without write access: nothing runs)."""
    target = _target(page)
    return _render(page, target, page.api.reproduce(target.spec))
