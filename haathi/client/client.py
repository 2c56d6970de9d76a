"""``Client``: the Python API, with refspec strings as in the CLI.

The client talks to a transport with the :class:`haathi.api.Api` surface: in-process for an
embedded store. It imports no database, server or executor code itself.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from haathi.client import sources
from haathi.config import resolve_address, store_config
from haathi.errors import InvalidArgument
from haathi.models import paths
from haathi.models.ids import is_commit_id
from haathi.models.info import BranchInfo, CommitInfo, DiffEntry, FileInfo, Problem, RepoInfo
from haathi.models.ops import CopyOp, DeleteOp, Op, ProgressFn, PutOp
from haathi.models.refspec import CommitSpec, parse_commit, parse_file

if TYPE_CHECKING:
    from haathi.api import Api

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


def _put_op(path: str, source: Source, append: bool) -> PutOp:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return sources.bytes_op(bytes(source), path, append)
    if isinstance(source, (str, os.PathLike)):
        return sources.file_op(Path(source), path, append)
    if hasattr(source, "read"):
        return sources.stream_op(source, path, append)
    raise InvalidArgument(f"cannot put a {type(source).__name__}: give bytes, a path or a file")


class CommitHandle:
    """An open commit; as a context manager it is finished on exit, or dropped on an error."""

    def __init__(self, client: Client, info: CommitInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.id
        self.repo = info.repo
        self.spec = CommitSpec(info.repo, info.id)

    def put_file(self, path: str, source: Source, *, append: bool = False) -> None:
        self._client._api.modify_file(self.spec, [_put_op(path, source, append)])

    def delete_file(self, path: str, *, recursive: bool = False) -> None:
        self._client._api.modify_file(self.spec, [DeleteOp(paths.normalize(path), recursive)])

    def copy_file(self, source: str, path: str, *, append: bool = False) -> None:
        op = CopyOp(parse_file(source), paths.normalize_for_write(path), append)
        self._client._api.modify_file(self.spec, [op])

    def finish(self, description: str | None = None) -> CommitInfo:
        self.info = self._client._api.finish_commit(self.spec, description)
        return self.info

    def __enter__(self) -> CommitHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._client._api.delete_commit(self.spec)


class Client:
    """The haathi client. Every method takes the CLI's refspec strings."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # repos
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        return self._api.create_repo(name, description)

    def inspect_repo(self, name: str) -> RepoInfo:
        return self._api.inspect_repo(name)

    def list_repo(self) -> list[RepoInfo]:
        return self._api.list_repo()

    def update_repo(self, name: str, description: str) -> RepoInfo:
        return self._api.update_repo(name, description)

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        self._api.delete_repo(name, force)

    # branches
    def create_branch(self, branch: str, head: str | None = None) -> BranchInfo:
        spec = parse_commit(branch)
        if spec.ref is None:
            raise InvalidArgument("create branch needs repo@branch")
        return self._api.create_branch(spec, head)

    def inspect_branch(self, branch: str) -> BranchInfo:
        return self._api.inspect_branch(parse_commit(branch))

    def list_branch(self, repo: str) -> list[BranchInfo]:
        return self._api.list_branch(parse_commit(repo).repo)

    def delete_branch(self, branch: str) -> None:
        self._api.delete_branch(parse_commit(branch))

    # commits
    def start_commit(
        self, branch: str, *, parent: str | None = None, description: str = ""
    ) -> CommitHandle:
        info = self._api.start_commit(parse_commit(branch), parent, description)
        return CommitHandle(self, info)

    def finish_commit(self, commit: str, description: str | None = None) -> CommitInfo:
        return self._api.finish_commit(parse_commit(commit), description)

    def inspect_commit(self, commit: str) -> CommitInfo:
        return self._api.inspect_commit(parse_commit(commit))

    def list_commit(self, target: str, number: int | None = None) -> list[CommitInfo]:
        """Commits of ``repo`` or ``repo@branch`` (newest first), or the set of a commit ID."""
        if is_commit_id(target):
            return self._api.list_commit_set(target)
        spec = parse_commit(target)
        return self._api.list_commit(spec.repo, spec.ref, number)

    def wait_commit(self, commit: str, timeout: float | None = None) -> list[CommitInfo]:
        if is_commit_id(commit):
            return self._api.wait_commit(commit, timeout)
        return self._api.wait_commit(parse_commit(commit), timeout)

    def delete_commit(self, commit: str) -> str:
        return self._api.delete_commit(parse_commit(commit))

    def squash_commit(self, commit: str) -> str:
        return self._api.squash_commit(parse_commit(commit))

    # files: writing
    def put_file(
        self, target: str, source: Source, *, append: bool = False, description: str = ""
    ) -> str:
        """Write one file (bytes, a local path, or a binary file object) as one atomic change."""
        spec = parse_file(target, for_write=True)
        if not spec.has_path:
            raise InvalidArgument(f"{target}: give the file's path (repo@branch:/path)")
        return self._api.modify_file(
            spec.commit, [_put_op(spec.path, source, append)], description=description
        )

    def modify_file(
        self,
        target: str,
        ops: Sequence[Op],
        *,
        parallelism: int = 1,
        progress: ProgressFn | None = None,
        description: str = "",
    ) -> str:
        """Apply several operations (see :mod:`haathi.models.ops`) as one atomic change."""
        return self._api.modify_file(
            parse_commit(target), ops, parallelism=parallelism, progress=progress,
            description=description,
        )

    def delete_file(self, target: str, *, recursive: bool = False) -> str:
        spec = parse_file(target)
        if spec.path == "/" and not recursive:
            raise InvalidArgument("deleting / needs recursive=True")
        return self._api.modify_file(spec.commit, [DeleteOp(spec.path, recursive)])

    def copy_file(self, source: str, dest: str, *, append: bool = False) -> str:
        """Copy a file or directory between commits or repos without copying bytes."""
        src = parse_file(source)
        dst = parse_file(dest, for_write=True)
        return self._api.modify_file(dst.commit, [CopyOp(src, dst.path, append)])

    # files: reading
    def get_file(self, target: str) -> bytes:
        _, chunks = self._api.read_file(parse_file(target))
        return b"".join(chunks)

    def open_file(self, target: str) -> BinaryIO:
        """A streaming reader over the file's bytes (verified chunk by chunk)."""
        from haathi.client.reader import ChunkReader

        info, chunks = self._api.read_file(parse_file(target))
        return io.BufferedReader(ChunkReader(chunks, info.size_bytes))

    def inspect_file(self, target: str) -> FileInfo:
        return self._api.inspect_file(parse_file(target))

    def list_file(self, target: str) -> list[FileInfo]:
        return self._api.list_file(parse_file(target))

    def walk_file(self, target: str) -> list[FileInfo]:
        return self._api.walk_file(parse_file(target))

    def glob_file(self, target: str) -> list[FileInfo]:
        """Files and directories matching ``repo@ref:pattern``."""
        head, sep, pattern = target.partition(":")
        if not sep:
            raise InvalidArgument("glob file needs repo@ref:pattern")
        return self._api.glob_file(parse_commit(head), pattern)

    def diff_file(self, new: str, old: str | None = None) -> list[DiffEntry]:
        return self._api.diff_file(parse_file(new), parse_file(old) if old else None)

    def fsck(self, *, fast: bool = False, fix: bool = False) -> list[Problem]:
        """Problems found in the store; with ``fix``, safely repairable ones are repaired."""
        return self._api.fsck(fast=fast, fix=fix)

    def gc(self, *, grace_s: float = 600.0) -> dict[str, int]:
        """Delete stored data no commit, open commit or running write can reach.

        Unreachable packs are condemned first and deleted by the first gc run at least
        ``grace_s`` seconds later (0: in this run). Returns counts of what was done.
        """
        return self._api.gc(grace_s=grace_s)

    def store_info(self) -> dict[str, Any]:
        """The store's configuration (passwords and secret keys are never included)."""
        return self._api.store_info()


def connect(address: str | None = None, **overrides: Any) -> Client:
    """Open the store at ``address`` (else ``$HAATHI_ADDRESS``, else ``~/.haathi``).

    ``overrides`` replace settings of the store's config file (``db_url``, ``objects_url``,
    ``s3_endpoint``, ``s3_region``, ...).
    """
    from haathi.api import Api
    from haathi.runtime import open_store

    return Client(Api(open_store(store_config(resolve_address(address), overrides))))


def init(
    address: str | None = None,
    *,
    db: str | None = None,
    objects: str | None = None,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    cache_bytes: int | None = None,
    save_credentials: bool = False,
) -> Client:
    """Create a store at ``address`` and connect to it.

    ``db`` is a PostgreSQL URL (default: SQLite in the store directory); ``objects`` is
    ``s3://bucket/prefix`` (default: packs in the store directory). With ``save_credentials``
    the ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` now set are written to the store's
    config (mode 0600); otherwise they are read from the environment each time.
    """
    from haathi.api import Api
    from haathi.runtime import init_store

    settings: dict[str, Any] = {
        "db_url": db, "objects_url": objects, "s3_endpoint": s3_endpoint,
        "s3_region": s3_region, "cache_bytes": cache_bytes,
    }  # fmt: skip
    if save_credentials:
        settings["s3_access_key_id"] = os.environ.get("AWS_ACCESS_KEY_ID")
        settings["s3_secret_access_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not (settings["s3_access_key_id"] and settings["s3_secret_access_key"]):
            raise InvalidArgument(
                "--save-credentials needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set"
            )
    config = store_config(resolve_address(address), settings)
    return Client(Api(init_store(config)))
