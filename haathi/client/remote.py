"""``RemoteApi``: the operations of :class:`~haathi.models.contract.ApiContract` over HTTP
(httpx), for a ``haathi serve`` server.

``Client(RemoteApi(url))`` behaves as the embedded client: the same methods, value types and
error classes (decoded from the server's JSON envelope). It satisfies the same contract as the
in-process Api, checked by mypy. Uploads and downloads stream. Writes that start jobs:
:meth:`run_jobs` asks the server to run them and waits until they have ended, so a remote
write returns, as an embedded one does, with its jobs done. The server runs jobs itself:
:meth:`run_worker` is an error here.

Requests go over TCP by default; any httpx transport can carry them instead (the tests serve
them with the server's ASGI app in process). Imports nothing of the server, the Api or the
database; httpx is imported only here (and in :mod:`~haathi.client.transport`).
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from haathi.client.reader import ChunkReader
from haathi.client.transport import httpx, tcp_transport

if TYPE_CHECKING:
    from haathi.client.download import Downloads, Response
from haathi.errors import (
    FailedPrecondition,
    HaathiError,
    InvalidArgument,
    StorageError,
    from_dict,
)
from haathi.models.auth import Access, ProjectAccess, RoleBindings
from haathi.models.contract import JobProgressFn
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
    ProjectInfo,
    RepoInfo,
    RunSummary,
)
from haathi.models.lineage import LineageNode
from haathi.models.ops import CopyOp, DeleteOp, Op, Ops, ProgressFn, PutOp
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.models.reproduce import ReproduceReport
from haathi.models.secret import SecretInfo
from haathi.models.text import check_text, not_unicode
from haathi.models.transaction import TransactionInfo, TxnOp, TxnResponse, op_to_dict
from haathi.models.trigger import Trigger
from haathi.models.wire import (
    API_PREFIX,
    FILE_INFO_HEADER,
    FRAME,
    FRAME_BYTES,
    commit_path,
    file_path,
    file_spec_text,
    keyed_path,
    ref_segment,
)

Json = Any


def _q(name: str) -> str:
    return quote(check_text(name, repr(name)), safe="")


def _repo(key: str, suffix: str = "") -> str:
    """The path of repo ``key`` (its project in the query: see :mod:`haathi.models.wire`)."""
    return keyed_path("repos", check_text(key, repr(key)), suffix)


def _pipeline(key: str, suffix: str = "") -> str:
    return keyed_path("pipelines", check_text(key, repr(key)), suffix)


def _split_query(path: str, params: Any) -> tuple[str, Any]:
    """A path's own query (``?project=``) merged into the request's ``params``."""
    path, sep, query = path.partition("?")
    if not sep:
        return path, params
    return path, {**dict(parse_qsl(query)), **(params or {})}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        _raise_envelope(response.status_code, response.content)


def _raise_envelope(status: int, body: bytes) -> None:
    """Raise the error an error response's body (the JSON envelope) names."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and "code" in envelope:
        raise from_dict(envelope)
    raise HaathiError(f"server answered {status}: {body[:200].decode(errors='replace')}")


def _frames(ops: Sequence[Op], description: str, progress: ProgressFn | None) -> Iterator[bytes]:
    header: list[dict[str, Any]] = []
    for op in ops:
        if isinstance(op, PutOp):
            header.append({"op": "put", "path": op.path, "append": op.append})
        elif isinstance(op, DeleteOp):
            header.append({"op": "delete", "path": op.path, "recursive": op.recursive})
        elif isinstance(op, CopyOp):
            header.append({"op": "copy", "source": file_spec_text(op.source),
                           "path": op.path, "append": op.append})  # fmt: skip
    raw = json.dumps({"description": description, "ops": header}).encode()
    yield b"%d\n" % len(raw) + raw
    for op in ops:
        if not isinstance(op, PutOp):
            continue
        with op.open() as fh:
            while True:
                try:
                    chunk = fh.read(FRAME_BYTES)
                except OSError as exc:  # as the embedded ingest says it (the body stays
                    raise InvalidArgument(  # truncated: the server commits nothing)
                        f"cannot read {op.label or op.path}: {exc.strerror or exc}; "
                        "nothing was written"
                    ) from exc
                if not chunk:
                    break
                yield FRAME.pack(len(chunk)) + chunk
                if progress is not None:
                    progress(len(chunk), 0)
        yield FRAME.pack(0)
        if progress is not None:
            progress(0, 1)


class RemoteApi:
    """The operations of the :class:`~haathi.models.contract.ApiContract`, each one HTTP
    request to ``url``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport``: how requests reach the server (default: HTTP over TCP, with no
        Nagle delay between a request's head and its streamed body); tests pass one that
        serves them with the server's ASGI app in process. Without one, files' contents come
        over connections of :mod:`haathi.client.download` where it can (plain HTTP)."""
        self.url = url.rstrip("/")
        self._may_download = transport is None
        self._downloads: Downloads | None = None
        if transport is None:
            transport = tcp_transport(self.url)
        self._headers = {} if not token else {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, read=None),
            follow_redirects=False,
            transport=transport,
            headers=self._headers,
        )

    def close(self) -> None:
        self._http.close()
        if self._downloads is not None:
            self._downloads.close()

    def _call(self, method: str, path: str, **kw: Any) -> Json:
        path, kw["params"] = _split_query(path, kw.get("params"))
        if "json" in kw:  # escaped (ASCII): the server names a field that is not Unicode
            kw["content"] = json.dumps(kw.pop("json")).encode()
            kw["headers"] = {**kw.get("headers", {}), "Content-Type": "application/json"}
        try:
            try:
                response = self._http.request(method, path, **kw)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                response = self._http.request(method, path, **kw)  # a pooled connection died
        except httpx.HTTPError as exc:
            raise StorageError(
                f"cannot reach the haathi server at {self.url}: {exc}", retryable=True
            ) from exc
        except UnicodeEncodeError as exc:  # a query parameter
            raise not_unicode(exc, "a name or value of the request") from exc
        _raise_for(response)
        return None if response.status_code == 204 else response.json()

    @staticmethod
    def _params(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v is not None and v is not False}

    # projects
    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        d = self._call("POST", f"{API_PREFIX}/projects",
                       json={"name": name, "description": description})  # fmt: skip
        return ProjectInfo.from_dict(d)

    def inspect_project(self, name: str) -> ProjectInfo:
        return ProjectInfo.from_dict(self._call("GET", f"{API_PREFIX}/projects/{_q(name)}"))

    def list_project(self) -> list[ProjectInfo]:
        return [ProjectInfo.from_dict(d) for d in self._call("GET", f"{API_PREFIX}/projects")]

    def update_project(self, name: str, description: str) -> ProjectInfo:
        d = self._call("PATCH", f"{API_PREFIX}/projects/{_q(name)}",
                       json={"description": description})  # fmt: skip
        return ProjectInfo.from_dict(d)

    def delete_project(self, name: str, force: bool = False) -> None:
        self._call("DELETE", f"{API_PREFIX}/projects/{_q(name)}",
                   params=self._params(force=force))  # fmt: skip

    # repos
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        d = self._call("POST", f"{API_PREFIX}/repos",
                       json={"name": name, "description": description})  # fmt: skip
        return RepoInfo.from_dict(d)

    def inspect_repo(self, name: str) -> RepoInfo:
        return RepoInfo.from_dict(self._call("GET", _repo(name)))

    def list_repo(self, project: str | None = None) -> list[RepoInfo]:
        ds = self._call("GET", f"{API_PREFIX}/repos", params=self._params(project=project))
        return [RepoInfo.from_dict(d) for d in ds]

    def update_repo(self, name: str, description: str) -> RepoInfo:
        d = self._call("PATCH", _repo(name), json={"description": description})
        return RepoInfo.from_dict(d)

    def delete_repo(self, name: str, force: bool = False) -> None:
        self._call("DELETE", _repo(name), params=self._params(force=force))

    # branches
    def create_branch(
        self, spec: CommitSpec, head: str | None = None, trigger: Trigger | None = None
    ) -> BranchInfo:
        body: dict[str, Any] = {"branch": spec.ref, "head": head}
        if trigger is not None:
            body["trigger"] = trigger.to_dict()
        d = self._call("POST", _repo(spec.repo, "/branches"), json=body)
        return BranchInfo.from_dict(d)

    def inspect_branch(self, spec: CommitSpec) -> BranchInfo:
        d = self._call("GET", _repo(spec.repo, f"/branches/{ref_segment(spec)}"))
        return BranchInfo.from_dict(d)

    def list_branch(self, repo: str) -> list[BranchInfo]:
        return [BranchInfo.from_dict(d) for d in self._call("GET", _repo(repo, "/branches"))]

    def delete_branch(self, spec: CommitSpec) -> None:
        self._call("DELETE", _repo(spec.repo, f"/branches/{ref_segment(spec)}"))

    # commits
    def start_commit(
        self, spec: CommitSpec, parent: str | None = None, description: str = ""
    ) -> CommitInfo:
        d = self._call("POST", commit_path(spec, "/start"),
                       json={"parent": parent, "description": description})  # fmt: skip
        return CommitInfo.from_dict(d)

    def finish_commit(self, spec: CommitSpec, description: str | None = None) -> CommitInfo:
        d = self._call("POST", commit_path(spec, "/finish"), json={"description": description})
        return CommitInfo.from_dict(d)

    def inspect_commit(self, spec: CommitSpec) -> CommitInfo:
        return CommitInfo.from_dict(self._call("GET", commit_path(spec)))

    def list_commit(
        self, repo: str, branch: str | None = None, number: int | None = None
    ) -> list[CommitInfo]:
        ds = self._call("GET", _repo(repo, "/commits"),
                        params=self._params(branch=branch, number=number))  # fmt: skip
        return [CommitInfo.from_dict(d) for d in ds]

    def list_commit_set(self, commit_id: str) -> list[CommitInfo]:
        ds = self._call("GET", f"{API_PREFIX}/commitsets/{_q(commit_id)}")
        return [CommitInfo.from_dict(d) for d in ds]

    def wait_commit(self, spec: CommitSpec | str, timeout: float | None = None) -> list[CommitInfo]:
        path = (f"{API_PREFIX}/commitsets/{_q(spec)}/wait" if isinstance(spec, str)
                else commit_path(spec, "/wait"))  # fmt: skip
        ds = self._call("POST", path, params=self._params(timeout=timeout))
        return [CommitInfo.from_dict(d) for d in ds]

    def delete_commit(self, spec: CommitSpec) -> str:
        return str(self._call("DELETE", commit_path(spec))["id"])

    def squash_commit(self, spec: CommitSpec) -> str:
        return str(self._call("POST", commit_path(spec, "/squash"))["id"])

    def find_commit(self, spec: FileSpec, limit: int | None = None) -> list[CommitInfo]:
        ds = self._call("GET", file_path("history", spec), params=self._params(limit=limit))
        return [CommitInfo.from_dict(d) for d in ds]

    # metadata
    def edit_metadata(
        self,
        kind: str,
        spec: CommitSpec,
        action: str,
        items: Mapping[str, str] | Sequence[str],
    ) -> dict[str, str]:
        body = {"action": action, "items": dict(items) if isinstance(items, Mapping)
                else list(items)}  # fmt: skip
        path = _repo(spec.repo, f"/metadata/{_q(kind)}/{ref_segment(spec)}")
        return dict(self._call("POST", path, json=body))

    # files
    def modify_file(
        self,
        spec: CommitSpec,
        ops: Ops,
        *,
        parallelism: int = 1,
        progress: ProgressFn | None = None,
        description: str = "",
    ) -> str:
        body = _frames(list(ops), description, progress)
        d = self._call("POST", commit_path(spec, "/modify"), content=body,
                       headers={"Content-Type": "application/x-haathi-modify"})  # fmt: skip
        return str(d["commit"])

    def read_file(
        self, spec: FileSpec, *, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes]]:
        params: dict[str, int] = {} if offset == 0 else {"offset": offset}
        if length is not None:
            params["length"] = length
        path, params = _split_query(file_path("files", spec), params)
        downloads = self._direct()
        if downloads is not None:
            direct = self._download(downloads, path, params)
            info = _file_info(direct.header(FILE_INFO_HEADER))
            start, end = info.span(offset, length)
            return info, _DirectBody(direct, info, end - start)
        response = self._stream("GET", path, params=params)
        info = _file_info(response.headers[FILE_INFO_HEADER])
        start, end = info.span(offset, length)
        return info, _Body(self._raw_pieces(response), info, end - start)

    def _direct(self) -> Downloads | None:
        """The pool of :mod:`haathi.client.download`, where it can be used."""
        if self._may_download and self._downloads is None:
            from haathi.client.download import Downloads, direct

            self._may_download = direct(self.url)
            if self._may_download:
                self._downloads = Downloads(self.url, self._headers, self._timeout)
        return self._downloads

    def _download(self, downloads: Downloads, path: str, params: dict[str, int]) -> Response:
        """``GET path`` over a connection of ``downloads`` (an error status raises, as
        _call)."""
        import http.client

        try:
            response = downloads.get(path, params)
        except (OSError, http.client.HTTPException) as exc:
            raise StorageError(
                f"cannot reach the haathi server at {self.url}: {exc}", retryable=True
            ) from exc
        if response.status >= 400:
            _raise_envelope(response.status, response.read())
        return response

    @staticmethod
    def _raw_pieces(response: httpx.Response) -> Generator[bytes, None, None]:
        try:
            yield from response.iter_raw()
        finally:
            response.close()

    def _stream(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A response whose body is still to be read (an error status raises, as _call)."""
        path, kw["params"] = _split_query(path, kw.get("params"))
        request = self._http.build_request(method, path, **kw)
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise StorageError(f"cannot reach the haathi server at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            response.read()
            response.close()
            _raise_for(response)
        return response

    def _raw(self, response: httpx.Response, what: str) -> Iterator[bytes]:
        try:
            yield from response.iter_raw()
        except httpx.HTTPError as exc:
            raise StorageError(f"reading {what} from the server failed: {exc}") from exc
        finally:
            response.close()

    def read_files(self, spec: FileSpec) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
        from haathi.models.tar_stream import files_of  # tarfile: for `get file -r` only

        response = self._stream("GET", file_path("tar", spec))
        what = file_spec_text(spec)
        raw = io.BufferedReader(ChunkReader(self._raw(response, what), 0), 1 << 20)
        return files_of(raw, what)

    def inspect_file(self, spec: FileSpec) -> FileInfo:
        return FileInfo.from_dict(self._call("GET", file_path("info", spec)))

    def list_file(
        self, spec: FileSpec, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        params = {k: v for k, v in (("start", start), ("limit", limit)) if v is not None}
        ds = self._call("GET", file_path("list", spec), params=params)
        return [FileInfo.from_dict(d) for d in ds]

    def walk_file(
        self, spec: FileSpec, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        params = {k: v for k, v in (("start", start), ("limit", limit)) if v is not None}
        ds = self._call("GET", file_path("walk", spec), params=params)
        return [FileInfo.from_dict(d) for d in ds]

    def glob_file(self, spec: CommitSpec, pattern: str) -> list[FileInfo]:
        check_text(pattern, f"glob pattern {pattern!r}")  # a URL cannot carry it to the server
        ds = self._call("GET", commit_path(spec, "/glob"), params={"pattern": pattern})
        return [FileInfo.from_dict(d) for d in ds]

    def diff_file(
        self,
        new: FileSpec,
        old: FileSpec | None = None,
        *,
        start: str | None = None,
        limit: int | None = None,
    ) -> list[DiffEntry]:
        given = (("old", None if old is None else file_spec_text(old)), ("start", start),
                 ("limit", limit))  # fmt: skip
        params = {k: v for k, v in given if v is not None}
        ds = self._call("GET", file_path("diff", new), params=params)
        return [DiffEntry.from_dict(d) for d in ds]

    # checks
    def fsck(self, *, fast: bool = False, fix: bool = False) -> list[Problem]:
        ds = self._call("POST", f"{API_PREFIX}/fsck", json={"fast": fast, "fix": fix})
        return [Problem.from_dict(d) for d in ds]

    def gc(self, *, grace_s: float = 600.0, orphan_grace_s: float = 3600.0) -> dict[str, int]:
        return dict(
            self._call(
                "POST",
                f"{API_PREFIX}/gc",
                json={"grace_s": grace_s, "orphan_grace_s": orphan_grace_s},
            )
        )

    def store_info(self) -> dict[str, Any]:
        info = dict(self._call("GET", f"{API_PREFIX}/store"))
        info["server"] = self.url
        return info

    # pipelines
    def create_pipeline(
        self, spec: dict[str, Any], *, update: bool = False, reprocess: bool = False
    ) -> str:
        d = self._call(
            "POST",
            f"{API_PREFIX}/pipelines",
            json={"spec": spec, "update": update, "reprocess": reprocess},
        )
        return str(d["job"])

    def validate_pipeline(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"{API_PREFIX}/pipelines/validate", json={"spec": spec}))

    def inspect_pipeline(
        self, name: str, *, version: int | None = None, back: int = 0
    ) -> PipelineInfo:
        d = self._call("GET", _pipeline(name),
                       params=self._params(version=version, back=back or None))  # fmt: skip
        return PipelineInfo.from_dict(d)

    def list_pipeline(
        self, *, name: str | None = None, history: int = 0, project: str | None = None
    ) -> list[PipelineInfo]:
        params = self._params(name=name, history=history or None, project=project)
        ds = self._call("GET", f"{API_PREFIX}/pipelines", params=params)
        return [PipelineInfo.from_dict(d) for d in ds]

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        self._call("DELETE", _pipeline(name), params=self._params(keep_repo=keep_repo))

    def stop_pipeline(self, name: str) -> None:
        self._call("POST", _pipeline(name, "/stop"))

    def start_pipeline(self, name: str) -> str | None:
        job = self._call("POST", _pipeline(name, "/start"))["job"]
        return None if job is None else str(job)

    def run_cron(self, name: str) -> list[str]:
        return [str(x) for x in self._call("POST", _pipeline(name, "/cron"))]

    def rerun_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        d = self._call("POST", _pipeline(name, "/rerun"), json={"reprocess": reprocess})
        return str(d["job"])

    def rollback_pipeline(
        self,
        name: str,
        *,
        version: int | None = None,
        back: int = 0,
        reprocess: bool = False,
    ) -> str:
        body = {"version": version, "back": back, "reprocess": reprocess}
        d = self._call("POST", _pipeline(name, "/rollback"), json=body)
        return str(d["job"])

    def preview_datums(self, spec: dict[str, Any]) -> list[DatumInfo]:
        ds = self._call("POST", f"{API_PREFIX}/pipelines/preview", json={"spec": spec})
        return [DatumInfo.from_dict(d) for d in ds]

    # jobs and datums
    def list_job(
        self,
        pipeline: str | None = None,
        job: str | None = None,
        limit: int | None = None,
        *,
        history: int = -1,
        states: tuple[str, ...] = (),
        project: str | None = None,
    ) -> list[JobInfo]:
        ds = self._call(
            "GET",
            f"{API_PREFIX}/jobs",
            params=self._params(
                pipeline=pipeline,
                job=job,
                limit=limit,
                history=history,
                state=list(states) or None,
                project=project,
            ),
        )
        return [JobInfo.from_dict(d) for d in ds]

    def _job_path(self, pipeline: str, job: str, suffix: str = "") -> str:
        return _pipeline(pipeline, f"/jobs/{_q(job)}{suffix}")

    def inspect_job(self, pipeline: str, job: str) -> JobInfo:
        return JobInfo.from_dict(self._call("GET", self._job_path(pipeline, job)))

    def wait_job(
        self, pipeline: str | None, job: str, timeout: float | None = None
    ) -> list[JobInfo]:
        path = (f"{API_PREFIX}/jobs/{_q(job)}/wait" if pipeline is None
                else self._job_path(pipeline, job, "/wait"))  # fmt: skip
        ds = self._call("POST", path, params=self._params(timeout=timeout))
        return [JobInfo.from_dict(d) for d in ds]

    def stop_job(self, pipeline: str, job: str) -> JobInfo:
        return JobInfo.from_dict(self._call("POST", self._job_path(pipeline, job, "/stop")))

    def list_datum(
        self,
        pipeline: str,
        job: str,
        number: int | None = None,
        marker: str | None = None,
        *,
        states: tuple[str, ...] = (),
    ) -> list[DatumInfo]:
        params = self._params(number=number, marker=marker, state=list(states) or None)
        ds = self._call("GET", self._job_path(pipeline, job, "/datums"), params=params)
        return [DatumInfo.from_dict(d) for d in ds]

    def inspect_datum(self, pipeline: str, job: str, datum: str) -> DatumInfo:
        d = self._call("GET", self._job_path(pipeline, job, f"/datums/{_q(datum)}"))
        return DatumInfo.from_dict(d)

    def logs(
        self, pipeline: str, job: str | None = None, datum: str | None = None
    ) -> tuple[JobInfo, list[tuple[str, str]]]:
        d = self._call("GET", _pipeline(pipeline, "/logs"),
                       params=self._params(job=job, datum=datum))  # fmt: skip
        return JobInfo.from_dict(d["job"]), [(x["datum"], x["output"]) for x in d["logs"]]

    def daemon_logs(
        self, pipeline: str, since: int | None = None, limit: int | None = 1000
    ) -> list[LogLine]:
        params = self._params(since=since, limit=limit)
        lines = self._call("GET", _pipeline(pipeline, "/daemon-logs"), params=params)
        return [LogLine.from_dict(x) for x in lines]

    # running jobs
    def queue_jobs(self) -> int:
        return int(self._call("POST", f"{API_PREFIX}/jobs/queue")["queued"])

    def run_jobs(self, progress: JobProgressFn | None = None) -> RunSummary:
        """Have the server run the queued jobs, and wait until they have ended (no progress
        is reported over HTTP)."""
        return RunSummary.from_dict(self._call("POST", f"{API_PREFIX}/jobs/run"))

    def run_worker(self, stop: threading.Event, progress: JobProgressFn | None = None) -> None:
        raise FailedPrecondition(
            f"the server at {self.url} runs jobs itself: `run worker` needs a store directory"
        )

    # lineage
    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        ds = self._call(
            "GET",
            f"{API_PREFIX}/lineage",
            params=self._params(target=target, downstream=downstream, at=at),
        )
        return [LineageNode.from_dict(d) for d in ds]

    def reproduce(self, target: str) -> ReproduceReport:
        d = self._call("POST", f"{API_PREFIX}/reproduce", json={"target": target})
        return ReproduceReport.from_dict(d)

    def reproduce_commit(
        self, commit: str, *, sample: int | None = None, seed: int | None = None
    ) -> ReproduceReport:
        d = self._call(
            "POST",
            f"{API_PREFIX}/reproduce/commit",
            json={"commit": commit, "sample": sample, "seed": seed},
        )
        return ReproduceReport.from_dict(d)

    # auth
    def auth_activate(self) -> str:
        return str(self._call("POST", f"{API_PREFIX}/auth/activate")["root_token"])

    def auth_deactivate(self) -> None:
        self._call("POST", f"{API_PREFIX}/auth/deactivate")

    def whoami(self) -> dict[str, Any]:
        return dict(self._call("GET", f"{API_PREFIX}/auth/whoami"))

    def _auth(self, method: str, path: str, **body: Any) -> Json:
        return self._call(method, f"{API_PREFIX}/auth/{path}", json=body)

    def get_auth_token(self, subject: str, ttl_s: float | None = None) -> str:
        return str(self._auth("POST", "tokens", subject=subject, ttl_s=ttl_s)["token"])

    def get_robot_token(self, robot: str, ttl_s: float | None = None) -> str:
        return str(self._auth("POST", "robot-tokens", robot=robot, ttl_s=ttl_s)["token"])

    def revoke_auth_token(self, token: str | None = None, subject: str | None = None) -> int:
        return int(self._auth("POST", "revoke", token=token, subject=subject)["revoked"])

    def set_repo_roles(self, repo: str, roles: str, subject: str) -> RoleBindings:
        d = self._call("PUT", keyed_path("auth/repos", repo),
                       json={"roles": roles, "subject": subject})  # fmt: skip
        return RoleBindings.from_dict(d)

    def get_repo_roles(self, repo: str) -> RoleBindings:
        return RoleBindings.from_dict(self._call("GET", keyed_path("auth/repos", repo)))

    def check_repo(self, repo: str, subject: str | None = None) -> Access:
        params = {} if subject is None else {"subject": subject}
        d = self._call("GET", keyed_path("auth/repos", repo, "/check"), params=params)
        return Access.from_dict(d)

    def set_project_roles(self, project: str, roles: str, subject: str) -> RoleBindings:
        d = self._auth("PUT", f"projects/{_q(project)}", roles=roles, subject=subject)
        return RoleBindings.from_dict(d)

    def get_project_roles(self, project: str) -> RoleBindings:
        return RoleBindings.from_dict(
            self._call("GET", f"{API_PREFIX}/auth/projects/{_q(project)}")
        )

    def check_project(self, project: str, subject: str | None = None) -> ProjectAccess:
        d = self._call("GET", f"{API_PREFIX}/auth/projects/{_q(project)}/check",
                       params=self._params(subject=subject))  # fmt: skip
        return ProjectAccess.from_dict(d)

    def set_cluster_roles(self, roles: str, subject: str) -> RoleBindings:
        return RoleBindings.from_dict(self._auth("PUT", "cluster", roles=roles, subject=subject))

    def get_cluster_roles(self) -> RoleBindings:
        return RoleBindings.from_dict(self._call("GET", f"{API_PREFIX}/auth/cluster"))

    # secrets
    def create_secret(self, doc: dict[str, Any]) -> SecretInfo:
        return SecretInfo.from_dict(self._call("POST", f"{API_PREFIX}/secrets", json=doc))

    def inspect_secret(self, name: str) -> SecretInfo:
        return SecretInfo.from_dict(self._call("GET", f"{API_PREFIX}/secrets/{_q(name)}"))

    def list_secret(self) -> list[SecretInfo]:
        return [SecretInfo.from_dict(d) for d in self._call("GET", f"{API_PREFIX}/secrets")]

    def delete_secret(self, name: str) -> None:
        self._call("DELETE", f"{API_PREFIX}/secrets/{_q(name)}")

    # transactions
    def start_transaction(self) -> TransactionInfo:
        return TransactionInfo.from_dict(self._call("POST", f"{API_PREFIX}/transactions"))

    def append_transaction(self, transaction: str, op: TxnOp) -> TxnResponse:
        path = f"{API_PREFIX}/transactions/{_q(transaction)}/requests"
        return TxnResponse.from_dict(self._call("POST", path, json=op_to_dict(op)))

    def finish_transaction(self, transaction: str) -> TransactionInfo:
        path = f"{API_PREFIX}/transactions/{_q(transaction)}/finish"
        return TransactionInfo.from_dict(self._call("POST", path))

    def delete_transaction(self, transaction: str) -> None:
        self._call("DELETE", f"{API_PREFIX}/transactions/{_q(transaction)}")

    def inspect_transaction(self, transaction: str) -> TransactionInfo:
        path = f"{API_PREFIX}/transactions/{_q(transaction)}"
        return TransactionInfo.from_dict(self._call("GET", path))

    def list_transaction(self) -> list[TransactionInfo]:
        found = self._call("GET", f"{API_PREFIX}/transactions")
        return [TransactionInfo.from_dict(d) for d in found]


def _file_info(header: str | None) -> FileInfo:
    return FileInfo.from_dict(json.loads(header or "{}"))


class _Body(Iterator[bytes]):
    """A file's bytes as they come from the server, ``expected`` of them, in pieces. An error
    reading them, or fewer bytes than expected, is a StorageError naming the file."""

    def __init__(self, pieces: Generator[bytes, None, None], info: FileInfo, expected: int):
        self.pieces, self.info, self.expected = pieces, info, expected
        self.got = 0

    def __next__(self) -> bytes:
        with self._errors():
            chunk = next(self.pieces, None)
        if chunk is None:
            self._check_end()
            raise StopIteration
        self.got += len(chunk)
        return chunk

    def close(self) -> None:
        self.pieces.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        import http.client

        try:
            yield
        except (httpx.HTTPError, OSError, http.client.HTTPException) as exc:
            self.close()
            raise StorageError(
                f"reading {self._what()} from the server failed after {self.got} bytes: {exc}"
            ) from exc

    def _check_end(self) -> None:
        if self.got != self.expected:
            raise StorageError(
                f"reading {self._what()} from the server stopped after {self.got} of "
                f"{self.expected} bytes"
            )

    def _what(self) -> str:
        return f"{self.info.repo}@{self.info.commit}:{self.info.path}"


class _DirectBody(_Body):
    """The body of a response over a connection of :mod:`haathi.client.download`: read in
    pieces, or from the socket straight into a caller's buffer (:meth:`readinto`)."""

    def __init__(self, response: Response, info: FileInfo, expected: int):
        super().__init__(response.pieces(), info, expected)
        self.response = response

    def readinto(self, b: memoryview) -> int:
        with self._errors():
            n = self.response.readinto(b)
        self.got += n
        if not n and len(b):
            self._check_end()
        return n

    def close(self) -> None:
        super().close()
        self.response.close()
