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
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from haathi.client import session, sources
from haathi.client.auth import AuthMethods
from haathi.client.lineage import LineageMethods
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
    PipelineInfo,
    Problem,
    RepoInfo,
)
from haathi.models.ops import CopyOp, DeleteOp, Op, Ops, ProgressFn, PutOp
from haathi.models.refspec import CommitSpec, parse_commit, parse_file

if TYPE_CHECKING:
    from haathi.api import Api
    from haathi.client.dirput import PutResult
    from haathi.client.remote import RemoteApi
    from haathi.client.sources import DirScan
    from haathi.models.info import RunSummary

T = TypeVar("T")
SpecSource = dict[str, Any] | str | os.PathLike[str]

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

    def delete_file(self, path: str, *, recursive: bool = False) -> None:
        self._client._api.modify_file(self.spec, [DeleteOp(paths.normalize(path), recursive)])

    def copy_file(self, source: str, path: str, *, append: bool = False) -> None:
        op = CopyOp(parse_file(source), paths.normalize_for_write(path), append)
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


class Client(AuthMethods, LineageMethods):
    """The haathi client. Every method takes the CLI's refspec strings.

    Embedded, a call that starts pipeline jobs (a write to an input repo, creating or
    updating a pipeline, ...) runs them to completion before it returns, unless the client was
    made with ``run_jobs=False`` (then call :meth:`run_jobs`, or run ``haathi run worker``).
    """

    def __init__(
        self,
        api: ApiContract,
        *,
        run_jobs: bool = True,
        progress: JobProgressFn | None = None,
        stat_cache_dir: Path | None = None,
    ) -> None:
        self._api = api
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
        info = self._api.create_branch(spec, head)
        self._ran_writes()
        return info

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
        info = self._api.finish_commit(parse_commit(commit), description)
        self._ran_writes()
        return info

    def inspect_commit(self, commit: str) -> CommitInfo:
        return self._api.inspect_commit(parse_commit(commit))

    def list_commit(self, target: str, number: int | None = None) -> list[CommitInfo]:
        """Commits of ``repo`` or ``repo@branch`` (newest first), or the set of a commit ID."""
        if is_commit_id(target):
            return self._api.list_commit_set(target)
        spec = parse_commit(target)
        return self._api.list_commit(spec.repo, spec.ref, number)

    def wait_commit(self, commit: str, timeout: float | None = None) -> list[CommitInfo]:
        """Block until the commit (or, given a bare ID, its whole commit set) is finished."""
        self._ran_writes()
        if is_commit_id(commit):
            return self._api.wait_commit(commit, timeout)
        return self._api.wait_commit(parse_commit(commit), timeout)

    def delete_commit(self, commit: str) -> str:
        return self._api.delete_commit(parse_commit(commit))

    def squash_commit(self, commit: str) -> str:
        return self._api.squash_commit(parse_commit(commit))

    def find_commit(self, target: str, limit: int | None = None) -> list[CommitInfo]:
        """The commits in the history of ``repo@branch-or-commit:/path`` (newest first) that
        changed the path: the file, or for a directory anything below it (added, removed or
        modified). At most ``limit`` of them; open commits are not searched."""
        spec = parse_file(target)
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
        spec = parse_commit(target)
        return self._api.edit_metadata(kind_, spec, action_, metadata_items(action_, items))

    # files: writing
    def put_file(
        self, target: str, source: Source, *, append: bool = False, description: str = ""
    ) -> str:
        """Write one file (bytes, a local path, or a binary file object) as one atomic change."""
        spec = parse_file(target, for_write=True)
        if not spec.has_path:
            raise InvalidArgument(f"{target}: give the file's path (repo@branch:/path)")
        return self._ran_writes(
            self._api.modify_file(
                spec.commit, [_put_op(spec.path, source, append)], description=description
            )
        )

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
                parse_commit(target),
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
        spec = parse_commit(target)
        put = dirput.plan(self._api, spec, sources, cache_dir, rehash=rehash)
        if progress is not None:
            put.report_unchanged(progress)
        commit = self._api.modify_file(
            spec, put.ops(), parallelism=parallelism, progress=progress, description=description
        )
        return self._ran_writes(put.remember(self._api, commit))

    def delete_file(self, target: str, *, recursive: bool = False) -> str:
        spec = parse_file(target)
        if spec.path == "/" and not recursive:
            raise InvalidArgument("deleting / needs recursive=True")
        return self._ran_writes(
            self._api.modify_file(spec.commit, [DeleteOp(spec.path, recursive)])
        )

    def copy_file(self, source: str, dest: str, *, append: bool = False) -> str:
        """Copy a file or directory between commits or repos without copying bytes."""
        src = parse_file(source)
        dst = parse_file(dest, for_write=True)
        return self._ran_writes(self._api.modify_file(dst.commit, [CopyOp(src, dst.path, append)]))

    # files: reading
    def get_file(self, target: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """The file's bytes (from ``offset``, at most ``length``: only the chunks holding them
        are read)."""
        _, chunks = self._api.read_file(parse_file(target), offset=offset, length=length)
        return b"".join(chunks)

    def read_file(
        self, target: str, *, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes]]:
        """The file's info and its bytes as they are read, chunk by chunk (verified; from
        ``offset``, at most ``length``): to copy a file out without a reader's buffers. A file
        whose data is missing or cut short fails here, before any byte."""
        return self._api.read_file(parse_file(target), offset=offset, length=length)

    def open_file(self, target: str, *, offset: int = 0) -> BinaryIO:
        """A streaming reader over the file's bytes from ``offset`` (verified chunk by
        chunk)."""
        from haathi.client.reader import ChunkReader

        info, chunks = self._api.read_file(parse_file(target), offset=offset)
        start, end = info.span(offset)
        return io.BufferedReader(ChunkReader(chunks, end - start))

    def read_files(self, target: str) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
        """Every file at or below the path, in path order, each with its bytes (verified):
        for a restore. A file's bytes can be read only until the next file is taken."""
        spec = parse_file(target)
        return _below(spec.path, self._api.read_files(spec))

    def inspect_file(self, target: str) -> FileInfo:
        return self._api.inspect_file(parse_file(target))

    def list_file(self, target: str) -> list[FileInfo]:
        return self._api.list_file(parse_file(target))

    def walk_file(
        self, target: str, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """Every file at or below the path, in path order (from the path ``start`` on, at
        most ``limit``: a page of a large directory)."""
        return self._api.walk_file(parse_file(target), start=start, limit=limit)

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

    # pipelines
    def create_pipeline(
        self,
        spec: SpecSource,
        *,
        update: bool = False,
        reprocess: bool = False,
    ) -> list[str]:
        """Create (``update``: replace) the pipelines of a spec (a dict, a JSON/YAML text or a
        file path; several documents allowed). Returns the IDs of the jobs they start."""
        ids = [
            self._api.create_pipeline(doc, update=update, reprocess=reprocess)
            for doc in load_specs(spec)
        ]
        return self._ran_writes(ids)

    def update_pipeline(self, spec: SpecSource, *, reprocess: bool = False) -> list[str]:
        """Update pipelines; datums are re-run only if their inputs changed, or ``reprocess``."""
        return self.create_pipeline(spec, update=True, reprocess=reprocess)

    def validate_pipeline(self, spec: SpecSource) -> list[dict[str, Any]]:
        """The effective specs (defaults applied) and notes; InvalidArgument if one is bad."""
        return [self._api.validate_pipeline(doc) for doc in load_specs(spec)]

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self._api.inspect_pipeline(name)

    def list_pipeline(self) -> list[PipelineInfo]:
        return self._api.list_pipeline()

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        self._api.delete_pipeline(name, keep_repo=keep_repo)

    def stop_pipeline(self, name: str) -> None:
        self._api.stop_pipeline(name)

    def start_pipeline(self, name: str) -> str | None:
        return self._ran_writes(self._api.start_pipeline(name))

    def run_cron(self, name: str) -> list[str]:
        """Tick the pipeline's cron inputs now."""
        return self._ran_writes(self._api.run_cron(name))

    def preview_datums(self, spec: SpecSource) -> list[DatumInfo]:
        """The datums a spec's input would have now (``list datum -f``); nothing is created."""
        docs = load_specs(spec)
        if len(docs) != 1:
            raise InvalidArgument("list datum -f takes one spec")
        return self._api.preview_datums(docs[0])

    # jobs and datums
    def list_job(self, pipeline: str | None = None, job: str | None = None) -> list[JobInfo]:
        """Jobs, newest first: of one pipeline, of one job set (ID), or all."""
        return self._api.list_job(pipeline, job)

    def inspect_job(self, job: str) -> JobInfo:
        pipeline, job_id = parse_job(job)
        return self._api.inspect_job(pipeline, job_id)

    def wait_job(self, job: str, timeout: float | None = None) -> list[JobInfo]:
        """Block until ``pipeline@id`` (or every job of set ``id``) has ended."""
        self._ran_writes()
        if "@" in job:
            return self._api.wait_job(*parse_job(job), timeout)
        return self._api.wait_job(None, job, timeout)

    def stop_job(self, job: str) -> JobInfo:
        return self._api.stop_job(*parse_job(job))

    def list_datum(
        self, job: str, number: int | None = None, marker: str | None = None
    ) -> list[DatumInfo]:
        """The datums of ``pipeline@id`` in datum ID order; a page of them with ``number`` (at
        most that many; None or 0: all) and ``marker`` (start after that datum ID: the last
        one of the previous page)."""
        return self._api.list_datum(*parse_job(job), number, marker)

    def inspect_datum(self, job: str, datum: str) -> DatumInfo:
        return self._api.inspect_datum(*parse_job(job), datum)

    def logs(
        self, pipeline: str, job: str | None = None, datum: str | None = None
    ) -> tuple[JobInfo, list[tuple[str, str]]]:
        """The user code's output per datum, of ``job`` (default: the pipeline's newest)."""
        return self._api.logs(pipeline, job, datum)

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
    **overrides: Any,
) -> Client:
    """Open the store at ``address`` (else ``$HAATHI_ADDRESS``, else ``~/.haathi``), or
    connect to the ``haathi serve`` server at an ``http(s)://`` address (with ``token``, else
    ``$HAATHI_TOKEN``, else the token ``haathi auth login`` saved for that address).

    ``overrides`` replace settings of the store's config file (``db_url``, ``objects_url``,
    ``s3_endpoint``, ``executor``, ``sandbox``, ...). ``run_jobs``: see :class:`Client`.
    """
    resolved = resolve_address(address)
    if is_server_address(resolved):
        from haathi.client.remote import RemoteApi

        given = sorted(k for k, v in overrides.items() if v is not None)
        if given:
            raise InvalidArgument(
                f"{', '.join(given)}: store settings apply to a store directory; the server "
                f"at {resolved} uses its own"
            )
        remote = RemoteApi(resolved, token=token or session.token_for(resolved))
        return Client(remote, run_jobs=run_jobs, progress=progress)

    from haathi.api import Api
    from haathi.runtime import open_store

    config = store_config(resolved, overrides)
    api = Api(open_store(config))
    return Client(api, run_jobs=run_jobs, progress=progress, stat_cache_dir=config.stat_cache_dir)


def is_server_address(address: str) -> bool:
    """Whether ``address`` names a haathi server (``http(s)://``) rather than a directory."""
    return address.startswith(("http://", "https://"))


def parse_job(job: str) -> tuple[str, str]:
    """``pipeline@id`` as (pipeline, id)."""
    pipeline, sep, job_id = job.partition("@")
    if not sep or not pipeline or not job_id:
        raise InvalidArgument(f"{job!r}: name a job as pipeline@id")
    return pipeline, job_id


def load_specs(spec: SpecSource) -> list[dict[str, Any]]:
    """Spec documents from a dict, a JSON/YAML text, or a file path (``-``: stdin)."""
    from haathi.pps.spec import load_documents

    if isinstance(spec, dict):
        return [spec]
    text = str(spec)
    if isinstance(spec, os.PathLike) or (
        text and not text.lstrip().startswith(("{", "[")) and "\n" not in text
    ):
        if text == "-":
            return load_documents(sys.stdin.read(), "stdin")
        try:
            return load_documents(Path(text).read_text(), text)
        except OSError as exc:
            raise InvalidArgument(f"cannot read {text}: {exc.strerror or exc}") from exc
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
    return Client(Api(init_store(config)), stat_cache_dir=config.stat_cache_dir)


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
