"""``haathi serve``'s buckets: the branches (read-write) and commits (read-only) of every repo
the caller may read, through the Api (as that caller: its operations check the roles). Each
write is one atomic commit on the bucket's branch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

from haathi.api import Api
from haathi.errors import NotFound
from haathi.models.auth import Permission
from haathi.models.info import FileInfo, FileType
from haathi.models.ops import CopyOp, DeleteOp, Op, Opener, PutOp
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.server.s3.backend import BucketRef, View
from haathi.server.s3.body import temporary_dir
from haathi.server.s3.buckets import (
    Bucket,
    Snapshot,
    create_bucket,
    list_buckets,
    open_bucket,
    parse_bucket,
)
from haathi.server.s3.errors import s3_error
from haathi.server.s3.multipart import Concatenated


def _bucket(bucket: BucketRef) -> Bucket:
    assert isinstance(bucket, Bucket)
    return bucket


def _snapshot(view: View) -> Snapshot:
    assert isinstance(view, Snapshot)
    return view


def _opener(parts: Sequence[Path]) -> Opener:
    files = list(parts)

    def open_parts() -> BinaryIO:
        if len(files) == 1:
            return open(files[0], "rb")
        return cast(BinaryIO, Concatenated(files))

    return open_parts


class RepoBuckets:
    """The buckets of ``api`` (a caller's view of it, with auth on)."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def bucket(self, name: str) -> Bucket:
        return parse_bucket(name)

    def list_buckets(self) -> list[tuple[str, datetime]]:
        return list_buckets(self.api)

    def create_bucket(self, bucket: BucketRef) -> None:
        create_bucket(self.api, _bucket(bucket))

    def open(self, bucket: BucketRef) -> Snapshot:
        return open_bucket(self.api, _bucket(bucket))

    def find(self, view: View, key: str, path: str | None) -> FileInfo:
        snapshot = _snapshot(view)
        info = None
        if path is not None and snapshot.commit is not None:
            try:
                info = self.api.inspect_file(snapshot.spec(path))
            except NotFound:
                info = None
        if info is None or info.type != FileType.FILE:
            raise s3_error("NoSuchKey", f"no key {key!r} in bucket {snapshot.bucket.name}", key=key)
        return info

    def read(self, view: View, path: str, offset: int, length: int | None) -> Iterator[bytes]:
        # only the chunks holding the range are read
        return self.api.read_file(_snapshot(view).spec(path), offset=offset, length=length)[1]

    def walk(self, view: View, directory: str, start: str, limit: int) -> list[FileInfo]:
        snapshot = _snapshot(view)
        if snapshot.commit is None:
            return []
        try:
            return self.api.walk_file(snapshot.spec(directory), start=start, limit=limit)
        except NotFound:
            return []  # no such directory

    def authorize_write(self, bucket: BucketRef) -> None:
        """Refuse (PermissionDenied) unless the caller may write the repo (the write itself
        checks again)."""
        self.api.authorize(Permission.WRITE, _bucket(bucket).repo)

    def spool(self) -> AbstractContextManager[Path]:
        return temporary_dir()

    def _modify(self, bucket: Bucket, ops: Sequence[Op], path: str, what: str) -> FileInfo:
        """Apply ``ops`` to the bucket's branch as one commit; the file at ``path`` after it."""
        commit = self.api.modify_file(bucket.branch_spec, ops, description=f"S3 {what}")
        return self.api.inspect_file(FileSpec(CommitSpec(bucket.repo, commit), path, has_path=True))

    def write(
        self, bucket: BucketRef, path: str, parts: Sequence[Path], size: int, md5: str | None,
        what: str,
    ) -> FileInfo:  # fmt: skip
        op = PutOp(path, _opener(parts), size_hint=size)
        return self._modify(_bucket(bucket), [op], path, what)

    def copy(
        self, bucket: BucketRef, path: str, source: View, source_path: str, what: str
    ) -> tuple[FileInfo, datetime]:
        """A metadata-only copy (no bytes move), from any bucket the caller reads."""
        target = _bucket(bucket)
        op = CopyOp(_snapshot(source).spec(source_path), path)
        info = self._modify(target, [op], path, what)
        commit = self.api.inspect_commit(CommitSpec(target.repo, info.commit))
        return info, commit.finished or commit.started

    def _is_file(self, snapshot: Snapshot, path: str) -> bool:
        try:
            self.find(snapshot, path, path)
        except NotFound:
            return False
        return True

    def delete(self, bucket: BucketRef, paths: Sequence[str], what: str) -> None:
        """One commit deleting the files among ``paths`` that exist (none: no commit)."""
        target = _bucket(bucket)
        for attempt in range(2):
            snapshot = open_bucket(self.api, target)
            present = sorted({p for p in paths if self._is_file(snapshot, p)})
            if not present:
                return
            try:
                self.api.modify_file(
                    target.branch_spec, [DeleteOp(p) for p in present], description=f"S3 {what}"
                )
                return
            except NotFound:
                if attempt:
                    raise  # deleted meanwhile: look again once
