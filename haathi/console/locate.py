"""What a repo, commit or file page's URL names, resolved through the Api as the caller.

Each step resolves its parent first, so that a URL naming something that does not exist
answers the 404 page leading back to the nearest page that does: an unknown repo to the
overview, an unknown commit or branch to its repo, an unknown path to its commit's root.
"""

from __future__ import annotations

from haathi.console import urls
from haathi.console.pages import Page, back_to
from haathi.errors import NotFound
from haathi.models import paths
from haathi.models.ids import repo_key
from haathi.models.info import CommitInfo, RepoInfo
from haathi.models.refspec import CommitSpec, FileSpec, parse_commit

OVERVIEW = ("the overview", urls.OVERVIEW)


def repo(page: Page) -> RepoInfo:
    """The repo of the URL (``{project}``, ``{repo}``)."""
    params = page.request.path_params
    with back_to(*OVERVIEW):
        return page.api.inspect_repo(repo_key(params["project"], params["repo"]))


def commit(page: Page, key: str, ref: str | None = None) -> CommitInfo:
    """The commit ``ref`` (default: the URL's ``{ref}``) of repo ``key``: a cheap resolve
    (no provenance; :meth:`~haathi.api.Api.inspect_commit` adds it)."""
    ref = page.request.path_params["ref"] if ref is None else ref
    with back_to(f"repo {key}", urls.repo(key)):
        spec = parse_commit(f"{key}@{ref}")
        found = page.api.list_commit(key, spec.ref, 1)  # the commit, then its ancestors
        if not found:
            raise NotFound(f"branch {ref} of {key} has no commits yet")
    return found[0]


def path(page: Page, key: str, c: CommitInfo) -> FileSpec:
    """The URL's ``{path}`` at commit ``c`` (``/`` for the root), as a file spec."""
    with back_to(f"commit {key}@{c.id}", urls.commit(key, c.id)):
        normal = paths.normalize("/" + page.request.path_params.get("path", ""))
    return FileSpec(CommitSpec(key, c.id), normal, has_path=True)
