"""``Client``: the Python API, with refspec strings as in the CLI.

The client parses the CLI's strings into typed values and calls one transport, an
:class:`~haathi.models.contract.ApiContract`: the in-process :class:`haathi.api.Api` for a
store directory, or :class:`~haathi.client.remote.RemoteApi` (HTTP) for a ``haathi serve``
server. Both satisfy the contract, checked by mypy (:func:`connect` passes either, and the
checks at the end of this module name both). It imports no database, server or executor code
itself.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from haathi.client import context, session, sources
from haathi.client.auth import AuthMethods
from haathi.client.lineage import LineageMethods
from haathi.client.projects import ProjectMethods
from haathi.client.secrets import SecretMethods
from haathi.client.transactions import TransactionMethods
from haathi.config import resolve_address, store_config, user_cache_dir
from haathi.errors import InvalidArgument, StorageError
from haathi.models import paths
from haathi.models.contract import ApiContract, JobProgressFn
from haathi.models.ids import is_commit_id
from haathi.models.info import (
    BranchInfo,
    CommitInfo,
    DatumInfo,
    DiffEntry,
    FileInfo,
    JobInfo,
    LogLine,
    PipelineInfo,
    Problem,
    RepoInfo,
)
from haathi.models.ops import CopyOp, DeleteOp, Op, Ops, ProgressFn, PutOp
from haathi.models.pipeline_ref import check_history, parse_history, parse_pipeline_ref
from haathi.models.refspec import CommitSpec
from haathi.models.transaction import (
    CreateBranchOp,
    CreatePipelineOp,
    CreateRepoOp,
    DeleteBranchOp,
    DeleteRepoOp,
    FinishCommitOp,
    StartCommitOp,
)
from haathi.models.trigger import Trigger

if TYPE_CHECKING:
    from haathi.api import Api
    from haathi.client.dirput import PutResult
    from haathi.client.remote import RemoteApi
    from haathi.client.sources import DirScan
    from haathi.models.info import RunSummary
    from haathi.pps.sidecars import JobGateways

T = TypeVar("T")
SpecSource = dict[str, Any] | list[dict[str, Any]] | str | os.PathLike[str]

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


def _put_op(path: str, source: Source, append: bool) -> PutOp:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return sources.bytes_op(bytes(source), path, append)
    if isinstance(source, (str, os.PathLike)):
        return sources.file_op(Path(source), path, append)
    if hasattr(source, "read"):
        return sources.stream_op(source, path, append)
    raise InvalidArgument(f"cannot put a {type(source).__name__}: give bytes, a path or a file")


METADATA_KINDS = ("repo", "branch", "commit")
METADATA_ACTIONS = ("add", "edit", "delete", "replace")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidArgument(f"malformed metadata {text!r}: expected key=value")
    if not key.strip():
        raise InvalidArgument(f"malformed metadata {text!r}: empty key")
    return key, value


def _pairs(text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (or ``;``-separated), or a JSON object of strings; '' is empty."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"malformed metadata JSON: {exc}") from exc
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise InvalidArgument("metadata JSON must be an object of strings")
        return value
    out: dict[str, str] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        key, value = _pair(part)
        if key in out:
            raise InvalidArgument(f"metadata key {key!r} given twice")
        out[key] = value
    return out


def metadata_items(
    action: str, items: str | Mapping[str, str] | Sequence[str]
) -> Mapping[str, str] | Sequence[str]:
    """What ``edit_metadata`` sends: keys for ``delete``, a mapping for the other actions."""
    if isinstance(items, Mapping):
        return list(items) if action == "delete" else dict(items)
    texts = [items] if isinstance(items, str) else list(items)
    if not all(isinstance(t, str) for t in texts):
        raise InvalidArgument("metadata items must be strings, or a mapping of strings")
    if action == "delete":
        return texts
    out: dict[str, str] = {}
    for text in texts:
        new = _pairs(text) if action == "replace" else dict([_pair(text)])
        for key in new:
            if key in out:
                raise InvalidArgument(f"metadata key {key!r} given twice")
        out.update(new)
    return out


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

    def put_file_url(
        self, path: str, url: str, *, recursive: bool = False, append: bool = False
    ) -> None:
        """Download ``url`` (``http(s)://``, ``s3://``; with ``recursive``, every object under
        an ``s3://`` prefix) into ``path``, as :meth:`Client.put_file_url`."""
        from haathi.client import urls

        with urls.Fetcher() as fetcher:
            ops = urls.url_ops(fetcher, url, paths.normalize_for_write(path),
                               recursive=recursive, append=append)  # fmt: skip
            self._client._api.modify_file(self.spec, ops)

    def delete_file(self, path: str, *, recursive: bool = False) -> None:
        self._client._api.modify_file(self.spec, [DeleteOp(paths.normalize(path), recursive)])

    def copy_file(self, source: str, path: str, *, append: bool = False) -> None:
        op = CopyOp(self._client._file(source), paths.normalize_for_write(path), append)
        self._client._api.modify_file(self.spec, [op])

    def finish(self, description: str | None = None) -> CommitInfo:
        self.info = self._client._api.finish_commit(self.spec, description)
        self._client._ran_writes()
        return self.info

    def __enter__(self) -> CommitHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._client._api.delete_commit(self.spec)


class Client(ProjectMethods, AuthMethods, LineageMethods, SecretMethods, TransactionMethods):
    """The haathi client. Every method takes the CLI's refspec strings.

    Repos and pipelines named bare are in the client's current ``project`` (``default``
    unless given); ``project/name`` names another project's. Lists are of the current
    project unless ``all_projects``.

    Embedded, a call that starts pipeline jobs (a write to an input repo, creating or
    updating a pipeline, ...) runs them to completion before it returns, unless the client was
    made with ``run_jobs=False`` (then call :meth:`run_jobs`, or run ``haathi run worker``).

    Inside ``with client.transaction():`` the transactional methods add requests to the
    transaction instead (see :mod:`haathi.client.transactions`).
    """

    def __init__(
        self,
        api: ApiContract,
        *,
        run_jobs: bool = True,
        progress: JobProgressFn | None = None,
        stat_cache_dir: Path | None = None,
        project: str | None = None,
    ) -> None:
        self._api = api
        if project is not None:
            self.project = project
        self.auto_run = run_jobs
        self.progress = progress
        self.last_run: RunSummary | None = None
        # the stat cache of put_files (None: the user's, for any store)
        self.stat_cache_dir = stat_cache_dir

    def _ran_writes(self, result: T = None) -> T:  # type: ignore[assignment]
        """Queue the jobs a write started and (when the client runs jobs) run them; then pass
        ``result`` on."""
        if self.auto_run:
            self.run_jobs()
        else:
            self._api.queue_jobs()
        return result

    def run_worker(self, stop: threading.Event) -> None:
        """Run queued jobs and cron ticks until ``stop`` is set (``haathi run worker``).
        A server runs jobs itself: on a remote client this is a FailedPrecondition."""
        self._api.run_worker(stop, self.progress)

    def run_jobs(self) -> RunSummary:
        """Run every runnable queued job now; what ran, and what waits for what. On a remote
        client the server runs them (and this waits until they have ended)."""
        self.last_run = self._api.run_jobs(self.progress)
        return self.last_run

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # repos
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        if self.transaction_id is not None:
            info = self._added(CreateRepoOp(self._key(name), description)).info
            return RepoInfo.from_dict(info or {})
        return self._api.create_repo(self._key(name), description)

    def inspect_repo(self, name: str) -> RepoInfo:
        return self._api.inspect_repo(self._key(name))

    def list_repo(
        self, *, project: str | None = None, all_projects: bool = False
    ) -> list[RepoInfo]:
        """The repos of ``project`` (default: the current one; ``all_projects``: of every
        project)."""
        return self._api.list_repo(self._filter(all_projects, project))

    def update_repo(self, name: str, description: str) -> RepoInfo:
        return self._api.update_repo(self._key(name), description)

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        if self.transaction_id is not None:
            self._added(DeleteRepoOp(self._key(name), force))
            return
        self._api.delete_repo(self._key(name), force)

    # branches
    def create_branch(
        self,
        branch: str,
        head: str | None = None,
        *,
        trigger: Trigger | Mapping[str, Any] | None = None,
    ) -> BranchInfo:
        """Create ``repo@branch`` (or move it to ``head``). ``trigger``: the branch follows
        another branch of the repo, as Pachyderm's (a :class:`Trigger`, or its JSON shape:
        ``{"branch": "staging", "size": "1MB"}``); an existing branch keeps its head."""
        spec = self._commit(branch)
        if spec.ref is None:
            raise InvalidArgument("create branch needs repo@branch")
        if trigger is not None and not isinstance(trigger, Trigger):
            trigger = Trigger.from_dict(trigger)
        trigger = None if trigger is None else trigger.check()
        if self.transaction_id is not None:
            added = self._added(CreateBranchOp(spec, head, trigger)).info
            return BranchInfo.from_dict(added or {})
        info = self._api.create_branch(spec, head, trigger)
        self._ran_writes()
        return info

    def inspect_branch(self, branch: str) -> BranchInfo:
        return self._api.inspect_branch(self._commit(branch))

    def list_branch(self, repo: str) -> list[BranchInfo]:
        return self._api.list_branch(self._commit(repo).repo)

    def delete_branch(self, branch: str) -> None:
        if self.transaction_id is not None:
            self._added(DeleteBranchOp(self._commit(branch)))
            return
        self._api.delete_branch(self._commit(branch))

    # commits
    def start_commit(
        self, branch: str, *, parent: str | None = None, description: str = ""
    ) -> CommitHandle:
        """Open a commit on ``repo@branch`` (in a transaction: the commit it will start, whose
        ID is the transaction's)."""
        if self.transaction_id is not None:
            op = StartCommitOp(self._commit(branch), parent, description)
            return CommitHandle(self, CommitInfo.from_dict(self._added(op).info or {}))
        info = self._api.start_commit(self._commit(branch), parent, description)
        return CommitHandle(self, info)

    def finish_commit(self, commit: str, description: str | None = None) -> CommitInfo:
        if self.transaction_id is not None:
            added = self._added(FinishCommitOp(self._commit(commit), description)).info
            return CommitInfo.from_dict(added or {})
        info = self._api.finish_commit(self._commit(commit), description)
        self._ran_writes()
        return info

    def inspect_commit(self, commit: str) -> CommitInfo:
        return self._api.inspect_commit(self._commit(commit))

    def list_commit(self, target: str, number: int | None = None) -> list[CommitInfo]:
        """Commits of ``repo`` or ``repo@branch`` (newest first), or the set of a commit ID."""
        if is_commit_id(target):
            return self._api.list_commit_set(target)
        spec = self._commit(target)
        return self._api.list_commit(spec.repo, spec.ref, number)

    def wait_commit(self, commit: str, timeout: float | None = None) -> list[CommitInfo]:
        """Block until the commit (or, given a bare ID, its whole commit set) is finished."""
        self._ran_writes()
        if is_commit_id(commit):
            return self._api.wait_commit(commit, timeout)
        return self._api.wait_commit(self._commit(commit), timeout)

    def delete_commit(self, commit: str) -> str:
        return self._api.delete_commit(self._commit(commit))

    def squash_commit(self, commit: str) -> str:
        return self._api.squash_commit(self._commit(commit))

    def find_commit(self, target: str, limit: int | None = None) -> list[CommitInfo]:
        """The commits in the history of ``repo@branch-or-commit:/path`` (newest first) that
        changed the path: the file, or for a directory anything below it (added, removed or
        modified). At most ``limit`` of them; open commits are not searched."""
        spec = self._file(target)
        if not spec.has_path:
            raise InvalidArgument(f"{target}: find commit needs repo@branch-or-commit:/path")
        return self._api.find_commit(spec, limit)

    # metadata
    def edit_metadata(
        self,
        kind: str,
        target: str,
        action: str,
        items: str | Mapping[str, str] | Sequence[str] = (),
    ) -> dict[str, str]:
        """Edit the key/value metadata of a ``repo``, ``branch`` (repo@branch) or ``commit``
        (repo@branch-or-commit); returns the new metadata.

        ``action`` is ``add`` (new keys), ``edit`` (existing keys), ``delete`` (keys) or
        ``replace`` (the whole map; nothing clears it). ``items`` is a mapping, or the CLI's
        text: ``k=v`` (add/edit), a key (delete), ``k1=v1,k2=v2`` or a JSON object (replace),
        or a sequence of those.
        """
        kind_, action_ = str(kind).lower(), str(action).lower()
        if kind_ not in METADATA_KINDS:
            raise InvalidArgument(
                f"unknown metadata target {kind!r}: use {', '.join(METADATA_KINDS)}"
            )
        if action_ not in METADATA_ACTIONS:
            raise InvalidArgument(
                f"unknown metadata action {action!r}: use {', '.join(METADATA_ACTIONS)}"
            )
        spec = self._commit(target)
        return self._api.edit_metadata(kind_, spec, action_, metadata_items(action_, items))

    # files: writing
    def put_file(
        self, target: str, source: Source, *, append: bool = False, description: str = ""
    ) -> str:
        """Write one file (bytes, a local path, or a binary file object) as one atomic change."""
        spec = self._file(target, for_write=True)
        if not spec.has_path:
            raise InvalidArgument(f"{target}: give the file's path (repo@branch:/path)")
        return self._ran_writes(
            self._api.modify_file(
                spec.commit, [_put_op(spec.path, source, append)], description=description
            )
        )

    def put_file_url(
        self,
        target: str,
        url: str,
        *,
        recursive: bool = False,
        append: bool = False,
        description: str = "",
    ) -> str:
        """Download ``url`` into the commit as one atomic change: ``http(s)://...`` or
        ``s3://bucket/key`` (endpoint and credentials from the ``AWS_*`` variables), or with
        ``recursive`` every object under ``s3://bucket/prefix``. This client downloads, as a
        stream (the server never fetches a URL); a failed download commits nothing. The file
        goes to the target's path (below it if the path ends in ``/``; no path: ``/`` and the
        URL's last segment), as ``put file -f URL``."""
        from haathi.client import urls

        spec = self._file(target)
        dest = spec.path if spec.has_path else None
        with urls.Fetcher() as fetcher:
            ops = urls.url_ops(fetcher, url, dest, recursive=recursive, append=append,
                               dest_is_dir=target.endswith("/"))  # fmt: skip
            commit = self._api.modify_file(spec.commit, ops, description=description)
        return self._ran_writes(commit)

    def modify_file(
        self,
        target: str,
        ops: Ops,
        *,
        parallelism: int = 1,
        progress: ProgressFn | None = None,
        description: str = "",
    ) -> str:
        """Apply several operations (see :mod:`haathi.models.ops`) as one atomic change: a
        sequence, or an iterator of puts (streamed, for directories of millions of files)."""
        return self._ran_writes(
            self._api.modify_file(
                self._commit(target),
                ops,
                parallelism=parallelism,
                progress=progress,
                description=description,
            )
        )

    def put_files(
        self,
        target: str,
        sources: Sequence[Op | DirScan],
        *,
        rehash: bool = False,
        parallelism: int = 1,
        progress: ProgressFn | None = None,
        description: str = "",
    ) -> PutResult:
        """Apply ``sources`` as one atomic change, as :meth:`modify_file`; the files of each
        local directory (a :func:`~haathi.client.sources.scan_dir`) that are unchanged since
        they were last put (the stat cache), and that the destination still holds, are not
        read again (``rehash``: read them all). Made with no change at all, the commit holds
        the files of its parent, as when every file is read and put again."""
        from haathi.client import dirput

        cache_dir = self.stat_cache_dir or user_cache_dir() / "statcache"
        spec = self._commit(target)
        put = dirput.plan(self._api, spec, sources, cache_dir, rehash=rehash)
        if progress is not None:
            put.report_unchanged(progress)
        commit = self._api.modify_file(
            spec, put.ops(), parallelism=parallelism, progress=progress, description=description
        )
        return self._ran_writes(put.remember(self._api, commit))

    def delete_file(self, target: str, *, recursive: bool = False) -> str:
        spec = self._file(target)
        if spec.path == "/" and not recursive:
            raise InvalidArgument("deleting / needs recursive=True")
        return self._ran_writes(
            self._api.modify_file(spec.commit, [DeleteOp(spec.path, recursive)])
        )

    def copy_file(self, source: str, dest: str, *, append: bool = False) -> str:
        """Copy a file or directory between commits or repos without copying bytes."""
        src = self._file(source)
        dst = self._file(dest, for_write=True)
        return self._ran_writes(self._api.modify_file(dst.commit, [CopyOp(src, dst.path, append)]))

    # files: reading
    def get_file(self, target: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """The file's bytes (from ``offset``, at most ``length``: only the chunks holding them
        are read)."""
        _, chunks = self._api.read_file(self._file(target), offset=offset, length=length)
        return b"".join(chunks)

    def read_file(
        self, target: str, *, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes]]:
        """The file's info and its bytes as they are read, chunk by chunk (verified; from
        ``offset``, at most ``length``): to copy a file out without a reader's buffers. A file
        whose data is missing or cut short fails here, before any byte."""
        return self._api.read_file(self._file(target), offset=offset, length=length)

    def open_file(self, target: str, *, offset: int = 0) -> BinaryIO:
        """A streaming reader over the file's bytes from ``offset`` (verified chunk by
        chunk)."""
        from haathi.client.reader import ChunkReader

        info, chunks = self._api.read_file(self._file(target), offset=offset)
        start, end = info.span(offset)
        return io.BufferedReader(ChunkReader(chunks, end - start))

    def read_files(self, target: str) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
        """Every file at or below the path, in path order, each with its bytes (verified):
        for a restore. A file's bytes can be read only until the next file is taken."""
        spec = self._file(target)
        return _below(spec.path, self._api.read_files(spec))

    def inspect_file(self, target: str) -> FileInfo:
        return self._api.inspect_file(self._file(target))

    def list_file(
        self, target: str, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """A directory's entries in path order (from ``start`` on, where a directory sorts as
        its path followed by ``/`` (:attr:`FileInfo.list_key`), at most ``limit``: a page of
        a huge directory; the next page starts at the ``list_key`` of the entry after it)."""
        return self._api.list_file(self._file(target), start=start, limit=limit)

    def walk_file(
        self, target: str, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """Every file at or below the path, in path order (from the path ``start`` on, at
        most ``limit``: a page of a large directory)."""
        return self._api.walk_file(self._file(target), start=start, limit=limit)

    def glob_file(self, target: str) -> list[FileInfo]:
        """Files and directories matching ``repo@ref:pattern``."""
        head, sep, pattern = target.partition(":")
        if not sep:
            raise InvalidArgument("glob file needs repo@ref:pattern")
        return self._api.glob_file(self._commit(head), pattern)

    def diff_file(
        self,
        new: str,
        old: str | None = None,
        *,
        start: str | None = None,
        limit: int | None = None,
    ) -> list[DiffEntry]:
        """What changed from ``old`` (default: ``new``'s parent) to ``new``, in path order
        (from the path ``start`` on, at most ``limit`` changes: a page of a huge change)."""
        old_spec = self._file(old) if old else None
        return self._api.diff_file(self._file(new), old_spec, start=start, limit=limit)

    def fsck(self, *, fast: bool = False, fix: bool = False) -> list[Problem]:
        """Problems found in the store; with ``fix``, safely repairable ones are repaired."""
        return self._api.fsck(fast=fast, fix=fix)

    def gc(self, *, grace_s: float = 600.0) -> dict[str, int]:
        """Delete stored data no commit, open commit or running write can reach.

        Unreachable packs are condemned first and deleted by the first gc run at least
        ``grace_s`` seconds later (0: in this run). Returns counts of what was done.
        """
        return self._api.gc(grace_s=grace_s)

    # pipelines
    def create_pipeline(
        self,
        spec: SpecSource,
        *,
        update: bool = False,
        reprocess: bool = False,
    ) -> list[str]:
        """Create (``update``: replace) the pipelines of a spec (a dict, a JSON/YAML text or a
        file path; several documents allowed), in the current project unless a spec names its
        ``pipeline.project``. Returns the IDs of the jobs they start."""
        if self.transaction_id is not None:
            ops = [
                CreatePipelineOp(self._in_project(d), update, reprocess) for d in load_specs(spec)
            ]
            return [str(self._added(op).commit) for op in ops]
        ids = [
            self._api.create_pipeline(self._in_project(doc), update=update, reprocess=reprocess)
            for doc in load_specs(spec)
        ]
        return self._ran_writes(ids)

    def update_pipeline(self, spec: SpecSource, *, reprocess: bool = False) -> list[str]:
        """Update pipelines; datums are re-run only if their inputs changed, or ``reprocess``."""
        return self.create_pipeline(spec, update=True, reprocess=reprocess)

    def render_template(
        self, template: str, args: Mapping[str, str] | Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The pipeline specs a Jsonnet template makes (``template``: a path, an
        ``http(s)://`` URL or ``-``; ``args``: its top-level arguments, a mapping or
        ``key=value`` texts), rendered here: pass them to :meth:`create_pipeline`."""
        from haathi.client import templates

        return templates.render(template, args)

    def validate_pipeline(self, spec: SpecSource) -> list[dict[str, Any]]:
        """The effective specs (defaults applied) and notes; InvalidArgument if one is bad."""
        return [self._api.validate_pipeline(self._in_project(doc)) for doc in load_specs(spec)]

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        """A pipeline at its current version, or at an earlier one: ``NAME@vN`` (version N),
        ``NAME^`` / ``NAME^k`` / ``NAME~k`` (k versions before the current one)."""
        ref = parse_pipeline_ref(name)
        return self._api.inspect_pipeline(self._key(ref.name), version=ref.version, back=ref.back)

    def list_pipeline(
        self,
        name: str | None = None,
        *,
        history: int | str = 0,
        project: str | None = None,
        all_projects: bool = False,
    ) -> list[PipelineInfo]:
        """The pipelines of ``project`` (default: the current one; ``all_projects``: of every
        project), or the one ``name``, each followed by its ``history`` earlier versions,
        newest first (an int, or ``"all"`` / ``"none"`` as pachctl's ``--history``; -1:
        all)."""
        if name is not None:
            return self._api.list_pipeline(name=self._key(name), history=_history(history))
        return self._api.list_pipeline(
            history=_history(history), project=self._filter(all_projects, project)
        )

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        self._api.delete_pipeline(self._key(name), keep_repo=keep_repo)

    def stop_pipeline(self, name: str) -> None:
        self._api.stop_pipeline(self._key(name))

    def start_pipeline(self, name: str) -> str | None:
        return self._ran_writes(self._api.start_pipeline(self._key(name)))

    def run_cron(self, name: str) -> list[str]:
        """Tick the pipeline's cron inputs now."""
        return self._ran_writes(self._api.run_cron(self._key(name)))

    def rerun_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        """Make the pipeline's current spec a new version and run a job with it: datums that
        succeeded before are skipped (failed ones retried) unless ``reprocess``, which gives
        the version a new salt. The job's ID."""
        ref = parse_pipeline_ref(name)
        if ref.version is not None or ref.back:
            raise InvalidArgument(
                f"rerun pipeline takes a pipeline's name, not a version ({name}): to run an "
                "earlier version's spec, use rollback pipeline"
            )
        return self._ran_writes(self._api.rerun_pipeline(self._key(ref.name), reprocess=reprocess))

    def rollback_pipeline(
        self, name: str, *, version: int | None = None, reprocess: bool = False
    ) -> str:
        """Make an earlier version's spec and salt the pipeline's new version and run a job
        with it: ``NAME@vN`` or ``version=N`` (version N), ``NAME^k`` (k versions back), or
        ``NAME`` (the previous version). Datums whose hash is unchanged are skipped unless
        ``reprocess`` (see the README's pipeline history). The job's ID."""
        ref = parse_pipeline_ref(name)
        if version is not None and (ref.version is not None or ref.back):
            raise InvalidArgument(f"name the version once: {name}, or version {version}")
        job = self._api.rollback_pipeline(
            self._key(ref.name),
            version=ref.version if version is None else version,
            back=ref.back,
            reprocess=reprocess,
        )
        return self._ran_writes(job)

    def preview_datums(self, spec: SpecSource) -> list[DatumInfo]:
        """The datums a spec's input would have now (``list datum -f``); nothing is created."""
        docs = load_specs(spec)
        if len(docs) != 1:
            raise InvalidArgument("list datum -f takes one spec")
        return self._api.preview_datums(self._preview_doc(docs[0]))

    # jobs and datums
    def list_job(
        self,
        pipeline: str | None = None,
        job: str | None = None,
        *,
        history: int | str = -1,
        state: str | Sequence[str] = (),
        project: str | None = None,
        all_projects: bool = False,
    ) -> list[JobInfo]:
        """Jobs, newest first: of one pipeline, of one job set (ID: in every project), or all
        of ``project`` (default: the current one; ``all_projects``: of every project); of each
        pipeline's current version and the ``history`` versions before it (default -1 or
        ``"all"``: of every version; 0 or ``"none"``: of the current one only); in one of
        the states ``state`` names (``"egressing"``, ``["failure", "killed"]``; pachctl's
        names, ``JOB_`` or not, in any case), or in any."""
        back = _history(history)
        states = (state,) if isinstance(state, str) else tuple(state)
        if pipeline is not None:
            return self._api.list_job(self._key(pipeline), job, history=back, states=states)
        if job is not None:
            return self._api.list_job(None, job, history=back, states=states)
        return self._api.list_job(
            history=back, states=states, project=self._filter(all_projects, project)
        )

    def _job(self, job: str) -> tuple[str, str]:
        pipeline, job_id = parse_job(job)
        return self._key(pipeline), job_id

    def inspect_job(self, job: str) -> JobInfo:
        return self._api.inspect_job(*self._job(job))

    def wait_job(self, job: str, timeout: float | None = None) -> list[JobInfo]:
        """Block until ``pipeline@id`` (or every job of set ``id``) has ended."""
        self._ran_writes()
        if "@" in job:
            return self._api.wait_job(*self._job(job), timeout)
        return self._api.wait_job(None, job, timeout)

    def stop_job(self, job: str) -> JobInfo:
        return self._api.stop_job(*self._job(job))

    def list_datum(
        self,
        job: str,
        number: int | None = None,
        marker: str | None = None,
        *,
        state: str | Sequence[str] = (),
    ) -> list[DatumInfo]:
        """The datums of ``pipeline@id`` in datum ID order; a page of them with ``number`` (at
        most that many; None or 0: all) and ``marker`` (start after that datum ID: the last
        one of the previous page); only those in the states ``state`` names (``"failed"``,
        ``["success", "skipped"]``, in any case), or in any."""
        states = (state,) if isinstance(state, str) else tuple(state)
        return self._api.list_datum(*self._job(job), number, marker, states=states)

    def inspect_datum(self, job: str, datum: str) -> DatumInfo:
        return self._api.inspect_datum(*self._job(job), datum)

    def logs(
        self, pipeline: str, job: str | None = None, datum: str | None = None
    ) -> tuple[JobInfo, list[tuple[str, str]]]:
        """The user code's output per datum, of ``job`` (default: the pipeline's newest)."""
        return self._api.logs(self._key(pipeline), job, datum)

    def daemon_logs(
        self, pipeline: str, since: int | None = None, limit: int | None = 1000
    ) -> list[LogLine]:
        """What a spout's or service's program printed (stdout and stderr, its secrets
        masked), oldest first: its newest ``limit`` lines (0 or None: all it keeps, 10,000),
        or with ``since`` (a :attr:`LogLine.seq`) the first ``limit`` after that line."""
        return self._api.daemon_logs(self._key(pipeline), since, limit)

    def store_info(self) -> dict[str, Any]:
        """The store's configuration (passwords and secret keys are never included)."""
        return self._api.store_info()

    def inspect_cluster(self) -> dict[str, Any]:
        """``server`` (its URL), ``s3_endpoint`` (where its S3 gateway listens) and ``store``
        (:meth:`store_info`); the first two are None for a store directory, and
        ``s3_endpoint`` for a server without a gateway."""
        store = self._api.store_info()
        server, gateway = store.pop("server", None), store.pop("s3_gateway", None)
        return {"server": server, "s3_endpoint": gateway, "store": store}


def connect(
    address: str | None = None,
    *,
    run_jobs: bool = True,
    progress: JobProgressFn | None = None,
    token: str | None = None,
    gateways: JobGateways | None = None,
    project: str | None = None,
    **overrides: Any,
) -> Client:
    """Open the store at ``address`` (else ``$HAATHI_ADDRESS``, else ``~/.haathi``), or
    connect to the ``haathi serve`` server at an ``http(s)://`` address (with ``token``, else
    ``$HAATHI_TOKEN``, else the token ``haathi auth login`` saved for that address).

    ``project`` is the client's current project (else ``$HAATHI_PROJECT``, else the one
    ``haathi config update context --project`` saved for the address, else ``default``).
    ``overrides`` replace settings of the store's config file (``db_url``, ``objects_url``,
    ``s3_endpoint``, ``executor``, ``sandbox``, ...). ``run_jobs``: see :class:`Client`.
    ``gateways``: serves the S3 gateways of the jobs a store directory's client runs (s3
    inputs, ``s3_out``; :func:`haathi.connect` gives it; a server runs its jobs itself).
    """
    resolved = resolve_address(address)
    project = project or context.project_for(resolved)
    if is_server_address(resolved):
        from haathi.client.remote import RemoteApi

        given = sorted(k for k, v in overrides.items() if v is not None)
        if given:
            raise InvalidArgument(
                f"{', '.join(given)}: store settings apply to a store directory; the server "
                f"at {resolved} uses its own"
            )
        remote = RemoteApi(resolved, token=token or session.token_for(resolved))
        return Client(remote, run_jobs=run_jobs, progress=progress, project=project)

    from haathi.api import Api
    from haathi.runtime import open_store

    config = store_config(resolved, overrides)
    api = Api(open_store(config), gateways=gateways)
    return Client(
        api,
        run_jobs=run_jobs,
        progress=progress,
        stat_cache_dir=config.stat_cache_dir,
        project=project,
    )


def is_server_address(address: str) -> bool:
    """Whether ``address`` names a haathi server (``http(s)://``) rather than a directory."""
    return address.startswith(("http://", "https://"))


def _history(value: int | str) -> int:
    """``history`` as a count of versions: pachctl's ``all`` / ``none`` or a number."""
    return parse_history(value) if isinstance(value, str) else check_history(value)


def parse_job(job: str) -> tuple[str, str]:
    """``pipeline@id`` as (pipeline, id)."""
    pipeline, sep, job_id = job.partition("@")
    if not sep or not pipeline or not job_id:
        raise InvalidArgument(f"{job!r}: name a job as pipeline@id")
    return pipeline, job_id


def load_specs(spec: SpecSource) -> list[dict[str, Any]]:
    """Spec documents from a dict (or a list of them), a JSON/YAML text, a file path, a URL
    (``http(s)://``, ``s3://``) or ``-`` (stdin)."""
    from haathi.pps.spec import load_documents

    if isinstance(spec, dict):
        return [spec]
    if isinstance(spec, list):
        if not spec or not all(isinstance(d, dict) for d in spec):
            raise InvalidArgument("give pipeline specs as a list of objects")
        return list(spec)
    text = str(spec)
    if isinstance(spec, os.PathLike) or (
        text and not text.lstrip().startswith(("{", "[")) and "\n" not in text
    ):
        from haathi.client.urls import read_text

        return load_documents(read_text(text), "stdin" if text == "-" else text)
    return load_documents(text)


def init(
    address: str | None = None,
    *,
    db: str | None = None,
    objects: str | None = None,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    cache_bytes: int | None = None,
    save_credentials: bool = False,
    gateways: JobGateways | None = None,
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
    api = Api(init_store(config), gateways=gateways)
    return Client(api, stat_cache_dir=config.stat_cache_dir)


if TYPE_CHECKING:  # mypy checks that both transports satisfy the contract

    def _embedded(api: Api) -> ApiContract:
        return api

    def _remote(api: RemoteApi) -> ApiContract:
        return api


def _below(
    path: str, files: Iterator[tuple[FileInfo, Iterator[bytes]]]
) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
    """``files`` (FileInfo first), refusing one a server named outside ``path``: a restore
    writes each where its path says."""
    prefix = paths.dir_prefix(path)
    for item in files:
        got = item[0].path
        try:
            inside = got == path or (got.startswith(prefix) and paths.normalize(got) == got)
        except InvalidArgument:  # `..`, a control character
            inside = False
        if not inside:
            raise StorageError(f"the server sent {got!r}, which is not at or below {path}")
        yield item
