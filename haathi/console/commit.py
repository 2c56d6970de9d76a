"""A commit's page (its facts, metadata, provenance and subvenance, each linked, and the
start of its diff) and its diff page (against its parent or any other commit).

A diff lists each changed path once (added, modified or deleted) with its sizes before and
after, in path order, a page at a time: the Api walks both trees skipping equal subtrees and
starts at the path the page starts from (``?from=PATH``), so a page costs its own changes,
never the commit's files.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from haathi.console import locate, urls
from haathi.console.pages import Page, back_to
from haathi.errors import NotFound
from haathi.models.info import CommitInfo, DiffEntry
from haathi.models.refspec import CommitSpec, FileSpec, parse_commit

CHANGES_ON_COMMIT_PAGE = 50
CHANGES_PER_PAGE = 200


@dataclass(frozen=True)
class Changes:
    """A page of a diff: the changes shown, and where the next page starts (None: the end)."""

    entries: list[DiffEntry]
    more: str | None


def _changes(
    page: Page, new: FileSpec, old: FileSpec | None, start: str | None, limit: int
) -> Changes:
    found = page.api.diff_file(new, old, start=start, limit=limit + 1)
    more = found[limit].path if len(found) > limit else None
    return Changes(found[:limit], more)


def commit_page(page: Page) -> Response:
    key = locate.repo(page).name
    with back_to(f"repo {key}", urls.repo(key)):
        c = page.api.inspect_commit(parse_commit(f"{key}@{page.request.path_params['ref']}"))
    root = FileSpec(CommitSpec(key, c.id), "/", has_path=True)
    changes = _changes(page, root, None, None, CHANGES_ON_COMMIT_PAGE)
    return page.render(
        "commit.html",
        key=key,
        c=c,
        job=_job_of(c),
        changes=changes,
        all_changes=urls.diff(key, c.id),
    )


def _job_of(c: CommitInfo) -> str | None:
    """The page of the job that made ``c`` (a pipeline's output commit; None: a user's)."""
    if c.pipeline_version is None:
        return None
    return urls.job(c.repo, c.id)


def _against(page: Page, key: str, new: CommitInfo, text: str) -> CommitInfo:
    """The commit ``text`` names (a ref of this repo, or ``repo@ref``)."""
    with back_to(f"the changes of {key}@{new.id}", urls.diff(key, new.id)):
        spec = parse_commit(text if "@" in text else f"{key}@{text}")
        found = page.api.list_commit(spec.repo, spec.ref, 1)
        if not found:
            raise NotFound(f"{text} has no commits")
    return found[0]


def diff_page(page: Page) -> Response:
    key = locate.repo(page).name
    new = locate.commit(page, key)
    against = page.request.query_params.get("against") or None
    start = page.request.query_params.get("from") or None
    old = None if against is None else _against(page, key, new, against)
    old_spec = None if old is None else FileSpec(CommitSpec(old.repo, old.id), "/", has_path=True)
    new_spec = FileSpec(CommitSpec(key, new.id), "/", has_path=True)
    changes = _changes(page, new_spec, old_spec, start, CHANGES_PER_PAGE)
    following = changes.more and urls.diff(key, new.id, against, start=changes.more)
    return page.render(
        "diff.html",
        key=key,
        new=new,
        old=old,
        against=against,
        changes=changes,
        first=urls.diff(key, new.id, against) if start else None,
        following=following,
    )
