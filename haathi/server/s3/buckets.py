"""Buckets: ``branch.repo`` (read-write: a branch) and ``commit.branch.repo`` (read-only: one
commit), as in Pachyderm's S3 gateway; and object keys as haathi paths."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from haathi.api import Api
from haathi.errors import AlreadyExists, HaathiError, InvalidArgument, NotFound
from haathi.models import paths
from haathi.models.ids import is_commit_id, validate_branch_name, validate_repo_name
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.server.s3.errors import s3_error


@dataclass(frozen=True, slots=True)
class Bucket:
    repo: str
    branch: str
    commit: str | None = None  # a commit bucket: read-only

    @property
    def name(self) -> str:
        base = f"{self.branch}.{self.repo}"
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
                f"{self.branch}.{self.repo}",
            )  # fmt: skip


def parse_bucket(name: str) -> Bucket:
    """``branch.repo`` or ``commit.branch.repo`` (the commit: a full 32-hex-digit ID)."""
    parts = name.split(".")
    try:
        if len(parts) == 2:
            return Bucket(validate_repo_name(parts[1]), validate_branch_name(parts[0]))
        if len(parts) == 3 and is_commit_id(parts[0]):
            return Bucket(validate_repo_name(parts[2]), validate_branch_name(parts[1]), parts[0])
    except InvalidArgument as exc:
        raise s3_error("InvalidBucketName", f"invalid bucket {name!r}: {exc}") from exc
    raise s3_error(
        "InvalidBucketName", f"invalid bucket {name!r}: buckets are BRANCH.REPO (read-write) or "
        "COMMIT_ID.BRANCH.REPO (read-only)",
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
    """(name, created) of a bucket per branch of every repo the caller can read, by name."""
    out = []
    for repo in api.list_repo():
        try:
            out += [(f"{b.name}.{repo.name}", b.created) for b in api.list_branch(repo.name)]
        except NotFound:
            continue  # deleted meanwhile
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
