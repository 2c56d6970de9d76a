"""Routes of repos, branches, commits, files and store checks (``/v1/...``).

A repo is its bare name in the path and its project in the query (``?project=P``: see
:mod:`haathi.server.keys`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import chain
from typing import Annotated, Any, TypeVar

from fastapi import Body, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from haathi.models import paths
from haathi.models.refspec import CommitSpec, FileSpec, parse_commit, parse_file
from haathi.models.tar_stream import tar_of
from haathi.models.trigger import Trigger
from haathi.models.wire import API_PREFIX, FILE_INFO_HEADER, ref_from_segment
from haathi.server import upload, zerocopy
from haathi.server.deps import ApiDep, SettingsDep
from haathi.server.keys import ProjectFilter, RepoKey
from haathi.server.offload import OffloadingRouter
from haathi.server.streaming import FileResponse, batched, read_ahead

router = OffloadingRouter(prefix=API_PREFIX)
COMMIT = "/repos/{repo}/commits/{ref}"
Json = dict[str, Any]


def commit_spec(repo: str, ref: str) -> CommitSpec:
    r = ref_from_segment(ref)
    return parse_commit(repo if r is None else f"{repo}@{r}")


def file_spec(repo: str, ref: str, path: str | None) -> FileSpec:
    commit = commit_spec(repo, ref)
    if path is None:
        return FileSpec(commit)
    return FileSpec(commit, paths.normalize("/" + path), has_path=True)


F = TypeVar("F", bound=Callable[..., Any])


def _file_routes(suffix: str, method: str = "GET", **kw: Any) -> Callable[[F], F]:
    """Register a file route with and without a trailing ``/{path}`` (no path: the spec names
    none, as ``repo@ref`` in the CLI)."""

    def register(fn: F) -> F:
        base = f"{COMMIT}/{suffix}"
        router.add_api_route(base + "/{path:path}", fn, methods=[method], **kw)
        router.add_api_route(base, fn, methods=[method], **kw)
        return fn

    return register


# repos ---------------------------------------------------------------------------------------


class RepoBody(BaseModel):
    name: str
    description: str = ""


class DescriptionBody(BaseModel):
    description: str


@router.get("/repos", tags=["repos"])
def list_repo(api: ApiDep, project: ProjectFilter = None) -> list[Json]:
    return [r.to_dict() for r in api.list_repo(project)]


@router.post("/repos", tags=["repos"], status_code=201)
def create_repo(api: ApiDep, body: RepoBody) -> Json:
    return api.create_repo(body.name, body.description).to_dict()


@router.get("/repos/{repo}", tags=["repos"])
def inspect_repo(api: ApiDep, repo: RepoKey) -> Json:
    return api.inspect_repo(repo).to_dict()


@router.patch("/repos/{repo}", tags=["repos"])
def update_repo(api: ApiDep, repo: RepoKey, body: DescriptionBody) -> Json:
    return api.update_repo(repo, body.description).to_dict()


@router.delete("/repos/{repo}", tags=["repos"], status_code=204)
def delete_repo(api: ApiDep, repo: RepoKey, force: bool = False) -> Response:
    api.delete_repo(repo, force)
    return Response(status_code=204)


# branches ------------------------------------------------------------------------------------


class BranchBody(BaseModel):
    branch: str | None = None
    head: str | None = None
    trigger: dict[str, Any] | None = None  # Pachyderm's Trigger (models/trigger.py)


@router.get("/repos/{repo}/branches", tags=["branches"])
def list_branch(api: ApiDep, repo: RepoKey) -> list[Json]:
    return [b.to_dict() for b in api.list_branch(repo)]


@router.post("/repos/{repo}/branches", tags=["branches"], status_code=201)
def create_branch(api: ApiDep, repo: RepoKey, body: BranchBody) -> Json:
    return api.create_branch(
        CommitSpec(repo, body.branch) if body.branch is None else commit_spec(repo, body.branch),
        body.head,
        None if body.trigger is None else Trigger.from_dict(body.trigger),
    ).to_dict()


@router.get("/repos/{repo}/branches/{branch}", tags=["branches"])
def inspect_branch(api: ApiDep, repo: RepoKey, branch: str) -> Json:
    return api.inspect_branch(commit_spec(repo, branch)).to_dict()


@router.delete("/repos/{repo}/branches/{branch}", tags=["branches"], status_code=204)
def delete_branch(api: ApiDep, repo: RepoKey, branch: str) -> Response:
    api.delete_branch(commit_spec(repo, branch))
    return Response(status_code=204)


# commits -------------------------------------------------------------------------------------


class StartBody(BaseModel):
    parent: str | None = None
    description: str = ""


class FinishBody(BaseModel):
    description: str | None = None


class MetadataBody(BaseModel):
    action: str
    items: dict[str, str] | list[str]


@router.get("/repos/{repo}/commits", tags=["commits"])
def list_commit(
    api: ApiDep, repo: RepoKey, branch: str | None = None, number: int | None = None
) -> list[Json]:
    return [c.to_dict() for c in api.list_commit(repo, branch, number)]


@router.post(COMMIT + "/start", tags=["commits"], status_code=201)
def start_commit(api: ApiDep, repo: RepoKey, ref: str, body: StartBody) -> Json:
    return api.start_commit(commit_spec(repo, ref), body.parent, body.description).to_dict()


@router.post(COMMIT + "/finish", tags=["commits"])
def finish_commit(api: ApiDep, repo: RepoKey, ref: str, body: FinishBody) -> Json:
    return api.finish_commit(commit_spec(repo, ref), body.description).to_dict()


@router.get(COMMIT, tags=["commits"])
def inspect_commit(api: ApiDep, repo: RepoKey, ref: str) -> Json:
    return api.inspect_commit(commit_spec(repo, ref)).to_dict()


@router.post(COMMIT + "/wait", tags=["commits"])
def wait_commit(api: ApiDep, repo: RepoKey, ref: str, timeout: float | None = None) -> list[Json]:
    return [c.to_dict() for c in api.wait_commit(commit_spec(repo, ref), timeout)]


@router.delete(COMMIT, tags=["commits"])
def delete_commit(api: ApiDep, repo: RepoKey, ref: str) -> Json:
    return {"id": api.delete_commit(commit_spec(repo, ref))}


@router.post(COMMIT + "/squash", tags=["commits"])
def squash_commit(api: ApiDep, repo: RepoKey, ref: str) -> Json:
    return {"id": api.squash_commit(commit_spec(repo, ref))}


@router.get("/commitsets/{commit_id}", tags=["commits"])
def list_commit_set(api: ApiDep, commit_id: str) -> list[Json]:
    return [c.to_dict() for c in api.list_commit_set(commit_id)]


@router.post("/commitsets/{commit_id}/wait", tags=["commits"])
def wait_commit_set(api: ApiDep, commit_id: str, timeout: float | None = None) -> list[Json]:
    return [c.to_dict() for c in api.wait_commit(commit_id, timeout)]


@_file_routes("history", tags=["commits"])
def find_commit(
    api: ApiDep, repo: RepoKey, ref: str, path: str | None = None, limit: int | None = None
) -> list[Json]:
    return [c.to_dict() for c in api.find_commit(file_spec(repo, ref, path), limit)]


@router.post("/repos/{repo}/metadata/{kind}/{ref}", tags=["metadata"])
def edit_metadata(
    api: ApiDep, repo: RepoKey, kind: str, ref: str, body: MetadataBody
) -> dict[str, str]:
    """Edit the metadata of the repo, the branch or the commit (``kind``); ``ref`` is the
    branch or commit (``~`` for none)."""
    return api.edit_metadata(kind, commit_spec(repo, ref), body.action, body.items)


# files ---------------------------------------------------------------------------------------


@router.post(COMMIT + "/modify", tags=["files"])
async def modify_file(
    api: ApiDep, settings: SettingsDep, request: Request, repo: RepoKey, ref: str
) -> Json:
    """Apply put/append/delete/copy ops as one atomic change. The body is framed (see
    ``haathi.models.wire``): a JSON header of ops, then each put's bytes, stored as they
    arrive. A truncated or oversized body commits nothing."""
    spec = commit_spec(repo, ref)
    body = await upload.Upload.start(request.receive, limit=settings.max_upload_bytes)
    commit = await body.apply(
        lambda ops, description: api.modify_file(spec, ops, description=description)
    )
    return {"commit": commit}


@_file_routes("files", response_class=StreamingResponse, tags=["files"])
def read_file(
    api: ApiDep,
    request: Request,
    repo: RepoKey,
    ref: str,
    path: str | None = None,
    offset: Annotated[int, Query(ge=0, description="first byte to read")] = 0,
    length: Annotated[int | None, Query(ge=0, description="at most this many bytes")] = None,
) -> StreamingResponse:
    """The file's bytes (from ``offset``, at most ``length``), streamed; its FileInfo is in
    the X-Haathi-File-Info header. Where the connection takes them, the chunks stored raw on
    a local store go from their packs to the socket (``sendfile``), verified first."""
    spec = file_spec(repo, ref, path)
    read = api.read_file_stored if zerocopy.offered(request.scope) else api.read_file
    info, chunks = read(spec, offset=offset, length=length)
    first = next(chunks, None)  # errors before the first byte still travel as an envelope
    body = read_ahead(batched(chunks if first is None else chain([first], chunks)))
    start, end = info.span(offset, length)
    headers = {FILE_INFO_HEADER: json.dumps(info.to_dict()), "Content-Length": str(end - start)}
    return FileResponse(body, headers)


@_file_routes("tar", response_class=StreamingResponse, tags=["files"])
def read_files(api: ApiDep, repo: RepoKey, ref: str, path: str | None = None) -> StreamingResponse:
    """Every file at or below the path with its bytes, as a tar stream (each member's
    FileInfo in its pax header ``HAATHI.info``): a restore in one request."""
    files = api.read_files(file_spec(repo, ref, path))  # a bad path fails here, as an envelope
    return StreamingResponse(read_ahead(batched(tar_of(files))), media_type="application/x-tar")


@_file_routes("info", tags=["files"])
def inspect_file(api: ApiDep, repo: RepoKey, ref: str, path: str | None = None) -> Json:
    return api.inspect_file(file_spec(repo, ref, path)).to_dict()


@_file_routes("list", tags=["files"])
def list_file(
    api: ApiDep,
    repo: RepoKey,
    ref: str,
    path: str | None = None,
    start: Annotated[
        str | None, Query(description="list from here on (a directory sorts as its path + /)")
    ] = None,
    limit: Annotated[int | None, Query(ge=0, description="at most this many entries")] = None,
) -> list[Json]:
    files = api.list_file(file_spec(repo, ref, path), start=start, limit=limit)
    return [f.to_dict() for f in files]


@_file_routes("walk", tags=["files"])
def walk_file(
    api: ApiDep,
    repo: RepoKey,
    ref: str,
    path: str | None = None,
    start: Annotated[str | None, Query(description="the first path to include")] = None,
    limit: Annotated[int | None, Query(ge=0, description="at most this many files")] = None,
) -> list[Json]:
    files = api.walk_file(file_spec(repo, ref, path), start=start, limit=limit)
    return [f.to_dict() for f in files]


@router.get(COMMIT + "/glob", tags=["files"])
def glob_file(api: ApiDep, repo: RepoKey, ref: str, pattern: str) -> list[Json]:
    return [f.to_dict() for f in api.glob_file(commit_spec(repo, ref), pattern)]


@_file_routes("diff", tags=["files"])
def diff_file(
    api: ApiDep,
    repo: RepoKey,
    ref: str,
    path: str | None = None,
    old: Annotated[str | None, Query(description="repo@ref:/path to compare with")] = None,
    start: Annotated[str | None, Query(description="the first path to include")] = None,
    limit: Annotated[int | None, Query(ge=0, description="at most this many changes")] = None,
) -> list[Json]:
    new = file_spec(repo, ref, path)
    old_spec = parse_file(old) if old else None
    return [d.to_dict() for d in api.diff_file(new, old_spec, start=start, limit=limit)]


# store ---------------------------------------------------------------------------------------


class FsckBody(BaseModel):
    fast: bool = False
    fix: bool = False


class GcBody(BaseModel):
    grace_s: float = 600.0
    orphan_grace_s: float = 3600.0


@router.post("/fsck", tags=["store"])
def fsck(api: ApiDep, body: Annotated[FsckBody, Body()] = FsckBody()) -> list[Json]:
    return [p.to_dict() for p in api.fsck(fast=body.fast, fix=body.fix)]


@router.post("/gc", tags=["store"])
def gc(api: ApiDep, body: Annotated[GcBody, Body()] = GcBody()) -> dict[str, int]:
    return api.gc(grace_s=body.grace_s, orphan_grace_s=body.orphan_grace_s)


@router.get("/store", tags=["store"])
def store_info(api: ApiDep, request: Request) -> Json:
    """The store's configuration, and where this server's S3 gateway listens
    (``s3_gateway``; null without one)."""
    return {**api.store_info(), "s3_gateway": request.app.state.s3_endpoint}
