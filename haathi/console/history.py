"""A repo's page: its branches, and a branch's commit history, a page at a time.

The history follows a branch's head back through its parents (``list_commit`` from a commit:
the commit, then its ancestors), :data:`COMMITS_PER_PAGE` at a time; the next page starts at
the commit after the last one shown (``?from=ID``), so every page costs its own commits only.
A repo with no branch (all deleted) shows its newest commits, then the ancestors of the last
one shown. Each commit
shows its author, message, origin and size.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from haathi.api import Api
from haathi.console import locate, urls
from haathi.console.pages import Missing, Page, back_to
from haathi.errors import HaathiError, NotFound
from haathi.models.info import BranchInfo, CommitInfo
from haathi.models.refspec import parse_commit

COMMITS_PER_PAGE = 50


@dataclass(frozen=True)
class BranchRow:
    info: BranchInfo
    head: CommitInfo | None  # None: no commit yet


def _head(api: Api, key: str, branch: BranchInfo) -> CommitInfo | None:
    return None if branch.head is None else api.list_commit(key, branch.head, 1)[0]


def _output_of(api: Api, key: str) -> str | None:
    """The pipeline whose output repo this is (None: none)."""
    try:
        return api.inspect_pipeline(key).name
    except HaathiError:  # NotFound: a repo of data (or a pipeline the caller may not read)
        return None


def _history(page: Page, key: str, branch: str | None) -> list[CommitInfo]:
    """The commits of this page, and the first of the next one (if any) after them."""
    start = page.request.query_params.get("from") or None
    ref = start or branch
    back = ("the newest commits", urls.repo(key, branch=branch))
    with back_to(*back):
        if ref is not None:
            parse_commit(f"{key}@{ref}")  # a bad ref: the 404 page, not a crash
        found = page.api.list_commit(key, ref, COMMITS_PER_PAGE + 1)
        if start is not None and not found:
            raise NotFound(f"no commit {start} in {key}")
    return found


def repo_page(page: Page) -> Response:
    info = locate.repo(page)
    key = info.name
    branches = [BranchRow(b, _head(page.api, key, b)) for b in page.api.list_branch(key)]
    asked = page.request.query_params.get("branch") or None
    if asked is not None and asked not in info.branches:
        raise Missing(f"repo {key} has no branch {asked}", (f"repo {key}", urls.repo(key)))
    branch = asked or ("master" if "master" in info.branches else next(iter(info.branches), None))
    commits = _history(page, key, branch)
    more = commits[COMMITS_PER_PAGE] if len(commits) > COMMITS_PER_PAGE else None
    return page.render(
        "repo.html",
        repo=info,
        key=key,
        output_of=_output_of(page.api, key),
        branches=branches,
        branch=branch,
        commits=commits[:COMMITS_PER_PAGE],
        older=None if more is None else urls.repo(key, branch=branch, start=more.id),
        newest=urls.repo(key, branch=branch) if page.request.query_params.get("from") else None,
    )
