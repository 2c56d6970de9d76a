"""Files at a commit (``{commit}/files/{path}``): a directory's entries, or a file's preview.

A directory shows :data:`ENTRIES_PER_PAGE` entries at a time, in path order: the Api seeks
to where the page starts (``?from=NAME``) and lists that many, so the first page of a
directory of 100,000 files costs as little as that of a directory of ten, and so does the
thousandth; a name typed in the "go to" box is such a start. With write access, on a branch,
the page also offers to upload files into the directory and delete paths (one commit:
:mod:`haathi.console.upload`).

A file shows its facts (size, hash, the datum that wrote it, for a pipeline's output), a
preview (:mod:`haathi.console.preview`), and links to download it and to its lineage.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from haathi.console import locate, preview, roles, urls
from haathi.console.pages import Page, back_to
from haathi.models import paths
from haathi.models.info import CommitInfo, FileInfo, FileType, RepoInfo
from haathi.models.refspec import FileSpec

ENTRIES_PER_PAGE = 100


@dataclass(frozen=True)
class At:
    """Where the page is: the repo, the URL's ref (a branch stays a branch in the page's
    links), the commit it names now, and the path."""

    repo: RepoInfo
    ref: str
    commit: CommitInfo
    spec: FileSpec

    @property
    def key(self) -> str:
        return self.repo.name

    @property
    def on_branch(self) -> bool:
        """Whether the ref is a branch (what a write goes to)."""
        return self.ref in self.repo.branches


def at(page: Page) -> At:
    """The repo, commit and path the URL names (the 404 page for what does not exist)."""
    repo = locate.repo(page)
    commit = locate.commit(page, repo.name)
    return At(repo, page.request.path_params["ref"], commit, locate.path(page, repo.name, commit))


def file_at(page: Page) -> tuple[At, FileInfo]:
    """Where the URL points and the file or directory there (the 404 page, leading back to
    the ref's files, for a path that does not exist)."""
    where = at(page)
    with back_to(f"the files of {where.key}@{where.ref}", urls.files(where.key, where.ref)):
        return where, page.api.inspect_file(where.spec)


def files_page(page: Page) -> Response:
    where, found = file_at(page)
    if found.type is FileType.DIR:
        return _directory(page, where, found)
    return _file(page, where, found)


def _directory(page: Page, where: At, info: FileInfo) -> Response:
    prefix = paths.dir_prefix(info.path)
    start = page.request.query_params.get("from", "").lstrip("/") or None
    listed = page.api.list_file(where.spec, start=prefix + (start or ""),
                                limit=ENTRIES_PER_PAGE + 1)  # fmt: skip
    more = (
        listed[ENTRIES_PER_PAGE].list_key[len(prefix) :] if len(listed) > ENTRIES_PER_PAGE else None
    )
    key, ref = where.key, where.ref
    writable = where.on_branch and roles.may_write(page.api, key)
    return page.render(
        "directory.html",
        at=where,
        key=key,
        ref=ref,
        info=info,
        entries=listed[:ENTRIES_PER_PAGE],
        start=start,
        first=urls.files(key, ref, info.path) if start else None,
        following=None if more is None else urls.files(key, ref, info.path, start=more),
        writable=writable,
    )


def _file(page: Page, where: At, info: FileInfo) -> Response:
    shown = preview.preview(page.api, where.spec, info)
    key, ref = where.key, where.ref
    parent = paths.normalize(info.path.rpartition("/")[0] or "/")
    return page.render(
        "file.html",
        at=where,
        key=key,
        ref=ref,
        info=info,
        parent=parent,
        preview=shown,
        download=urls.download(key, where.commit.id, info.path),
        image=urls.download(key, where.commit.id, info.path, inline=True),
        lineage=urls.lineage(key, where.commit.id, info.path),
        datum=None if info.datum is None else urls.datum(key, where.commit.id, info.datum),
    )
