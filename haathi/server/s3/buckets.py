"""Buckets: ``[commit.][branch.]repo[.project]`` as in Pachyderm's S3 gateway (read-write: a
branch; read-only with a commit ID first: one commit); and object keys as haathi paths.

``repo`` alone is its ``master``; a repo of another project than ``default`` needs the branch
too (``branch.repo.project``): two parts are always ``branch.repo``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from haathi.api import Api
from haathi.errors import AlreadyExists, HaathiError, InvalidArgument, NotFound, PermissionDenied
from haathi.models import paths
from haathi.models.ids import (
    DEFAULT_PROJECT,
    is_commit_id,
    repo_key,
    split_key,
    validate_branch_name,
)
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.server.s3.errors import s3_error


@dataclass(frozen=True, slots=True)
class Bucket:
    repo: str  # the repo's key (project/name)
    branch: str
    commit: str | None = None  # a commit bucket: read-only

    @property
    def name(self) -> str:
        project, repo = split_key(self.repo)
        base = f"{self.branch}.{repo}"
        if project != DEFAULT_PROJECT:
            base = f"{base}.{project}"
        return base if self.commit is None else f"{self.commit}.{base}"

    @property
    def writable(self) -> bool:
        return self.commit is None

    @property
    def branch_spec(self) -> CommitSpec:
        return CommitSpec(self.repo, self.branch)

    def require_writable(self) -> None:
        if not self.writable:
            raise s3_error(
                "AccessDenied", f"bucket {self.name} is a commit and read-only: write to "
                f"{Bucket(self.repo, self.branch).name}",
            )  # fmt: skip


def parse_bucket(name: str) -> Bucket:
    """``[commit.][branch.]repo[.project]`` (Pachyderm's ``bucketNameToCommit``): a full
    32-hex-digit commit ID first makes a read-only commit bucket; then ``repo`` (its
    ``master``), ``branch.repo`` or ``branch.repo.project``."""
    parts = name.split(".")
    commit = parts.pop(0) if parts and is_commit_id(parts[0]) else None
    try:
        if len(parts) == 1:
            return Bucket(repo_key(DEFAULT_PROJECT, parts[0]), "master", commit)
        if len(parts) == 2:
            return Bucket(
                repo_key(DEFAULT_PROJECT, parts[1]), validate_branch_name(parts[0]), commit
            )
        if len(parts) == 3:
            return Bucket(repo_key(parts[2], parts[1]), validate_branch_name(parts[0]), commit)
    except InvalidArgument as exc:
        raise s3_error("InvalidBucketName", f"invalid bucket {name!r}: {exc}") from exc
    raise s3_error(
        "InvalidBucketName", f"invalid bucket {name!r}: buckets are [BRANCH.]REPO or "
        "BRANCH.REPO.PROJECT (read-write), or those after a commit ID (read-only)",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What reads of a bucket see: its commit (None: a branch without commits) and the time
    every object reports as LastModified (when that commit was made)."""

    bucket: Bucket
    commit: str | None
    time: datetime

    def spec(self, path: str = "/") -> FileSpec:
        assert self.commit is not None
        return FileSpec(CommitSpec(self.bucket.repo, self.commit), path, has_path=path != "/")


def _no_bucket(bucket: Bucket, exc: HaathiError) -> HaathiError:
    return s3_error("NoSuchBucket", f"no bucket {bucket.name}: {exc}", bucket=bucket.name)


def open_bucket(api: Api, bucket: Bucket) -> Snapshot:
    """The bucket's content now: the branch head, or the commit it names."""
    try:
        branch = api.inspect_branch(bucket.branch_spec)
        commit_id = bucket.commit or branch.head
        if commit_id is None:
            return Snapshot(bucket, None, branch.created)
        commit = api.inspect_commit(CommitSpec(bucket.repo, commit_id))
    except NotFound as exc:
        raise _no_bucket(bucket, exc) from exc
    return Snapshot(bucket, commit.id, commit.finished or commit.started)


def list_buckets(api: Api) -> list[tuple[str, datetime]]:
    """(name, created) of a bucket per branch of every repo the caller can read (in every
    project), by name."""
    out = []
    for repo in api.list_repo():
        try:
            out += [(Bucket(repo.name, b.name).name, b.created) for b in api.list_branch(repo.name)]
        except (NotFound, PermissionDenied):
            continue  # deleted meanwhile, or listed to a project's viewer who may not read it
    return sorted(out)


def create_bucket(api: Api, bucket: Bucket) -> None:
    """A new branch (and its repo, if there is none yet)."""
    bucket.require_writable()
    with contextlib.suppress(AlreadyExists):
        api.create_repo(bucket.repo)
    try:
        api.create_branch(bucket.branch_spec)
    except AlreadyExists as exc:
        raise s3_error(
            "BucketAlreadyOwnedByYou", f"bucket {bucket.name} already exists", bucket=bucket.name
        ) from exc


def _path(key: str) -> str:
    path = "/" + key
    if paths.normalize(path) != path:
        raise InvalidArgument(
            f"invalid key {key!r}: empty, '.' or trailing '/' segments do not name a file here"
        )
    return path


def read_path(key: str) -> str | None:
    """The file a key names, None for a key no file can have (``dir/``); bad keys (``..``,
    control characters) raise InvalidArgument."""
    paths.normalize("/" + key)  # '..' and control characters: a clear 400
    try:
        return _path(key)
    except InvalidArgument:
        return None


def write_path(key: str) -> str:
    """The file a written key names; InvalidArgument for a key that cannot be one."""
    if not key:
        raise InvalidArgument("an object needs a key")
    paths.normalize_for_write("/" + key)
    return _path(key)
