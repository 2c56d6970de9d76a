"""``Api``: every haathi operation over typed arguments (specs, ops), returning value types."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar

from haathi.api.access import AuthOffMemo, SharedCounter
from haathi.api.confined import ConfinedAccess, ServesSpouts
from haathi.api.lineage import LineageApi
from haathi.api.projects import ProjectApi
from haathi.api.secrets import SecretApi
from haathi.api.transactions import TransactionApi
from haathi.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from haathi.models.auth import Permission
from haathi.models.ids import is_commit_id, split_key, validate_repo_key
from haathi.models.info import (
    BranchInfo,
    CommitInfo,
    DatumInfo,
    DatumState,
    DiffEntry,
    FileInfo,
    JobInfo,
    JobState,
    LogLine,
    PipelineInfo,
    Problem,
    RepoInfo,
)
from haathi.models.limits import MAX_LIMIT, check_limit
from haathi.models.ops import CopyOp, Ops, ProgressFn
from haathi.models.pipeline_ref import check_history
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.models.trigger import Trigger
from haathi.pfs import (
    catalog,
    commits,
    files,
    fsck,
    gc,
    history,
    lifecycle,
    metadata,
    modify,
    provenance,
)
from haathi.pps import (
    cron_ticks,
    daemon_records,
    datum_records,
    isolation,
    job_queue,
    jobs,
    pipeline_versions,
    pipelines,
    preview,
    records,
)
from haathi.pps.runner import JobRunner, RunSummary
from haathi.pps.sidecars import JobGateways
from haathi.pps.spec import parse_spec
from haathi.runtime import Runtime
from haathi.storage.blobs import StoredRange
from haathi.tree.entry import FileEntry

Item = TypeVar("Item")


def _wait(
    look: Callable[[], list[Item]], done: Callable[[Item], bool], timeout: float | None, what: str
) -> list[Item]:
    """Poll ``look`` (backing off to 0.5 s) until ``done`` holds for everything it returns."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.02
    while True:
        items = look()
        if all(done(i) for i in items):
            return items
        if deadline is not None and time.monotonic() >= deadline:
            raise Conflict(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _check_page(limit: int | None, what: str) -> None:
    """InvalidArgument unless ``limit`` (of a page of ``what``) is None or 0 up to MAX_LIMIT."""
    if limit is not None and not 0 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"{what}'s limit must be between 0 and {MAX_LIMIT}, got {limit}")


class Api(ProjectApi, ConfinedAccess, LineageApi, SecretApi, TransactionApi):
    """The embedded implementation of every operation (the server exposes the same).

    Each operation first checks that the caller may do it (a no-op without a caller: see
    :mod:`haathi.api.access`).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        auth_epoch: SharedCounter | None = None,
        gateways: JobGateways | None = None,
    ) -> None:
        """``auth_epoch``: shared by the processes of one server (``haathi serve --workers``),
        so that auth activated through one is enforced by all at once. ``gateways``: serves
        the S3 gateways of the jobs this process runs (s3 inputs, ``s3_out``; without it
        such jobs fail, saying so: :mod:`haathi.pps.sidecars`)."""
        self.runtime = runtime
        self.pfs = runtime.pfs
        self.pps = runtime.pps
        if gateways is not None:
            self.pps.gateways = gateways
        self._runner: JobRunner | None = None
        self.auth_off = AuthOffMemo(auth_epoch)

    def _share_runner(self) -> None:
        self.runner  # noqa: B018 - made once, shared by every caller's view

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self.runtime.close()

    # repos
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        """A new repo, owned by its creator (who needs projectWriter on its project)."""
        self._authorize_project(Permission.CREATE_REPO, split_key(validate_repo_key(name))[0])
        info = catalog.create_repo(self.pfs, name, description)
        self._owned_by_caller(name)
        return info

    def inspect_repo(self, name: str) -> RepoInfo:
        self.authorize(Permission.READ, name)
        return catalog.inspect_repo(self.pfs, name)

    def list_repo(self, project: str | None = None) -> list[RepoInfo]:
        """Every repo (of ``project``; None: of all) the caller may read, or see listed
        (projectViewer on its project)."""
        visible = self._visible()
        found = catalog.list_repo(self.pfs, project)
        return [r for r in found if visible is None or r.name in visible]

    def update_repo(self, name: str, description: str) -> RepoInfo:
        self.authorize(Permission.WRITE, name)
        return catalog.update_repo(self.pfs, name, description)

    def delete_repo(self, name: str, force: bool = False) -> None:
        self.authorize(Permission.OWN, name)
        with self.pfs.db.read() as conn:
            if records.find_pipeline(conn, name) is not None:
                raise FailedPrecondition(
                    f"repo {name} is the output of pipeline {name}: delete the pipeline instead",
                    repo=name,
                )
        catalog.delete_repo(self.pfs, name, force)
        self._forget_repo(name)

    # branches
    def create_branch(
        self, spec: CommitSpec, head: str | None = None, trigger: Trigger | None = None
    ) -> BranchInfo:
        self.authorize(Permission.WRITE, spec.repo)
        return catalog.create_branch(self.pfs, spec, head, trigger)

    def inspect_branch(self, spec: CommitSpec) -> BranchInfo:
        self.authorize(Permission.READ, spec.repo)
        return catalog.inspect_branch(self.pfs, spec)

    def list_branch(self, repo: str) -> list[BranchInfo]:
        self.authorize(Permission.READ, repo)
        return catalog.list_branch(self.pfs, repo)

    def delete_branch(self, spec: CommitSpec) -> None:
        self.authorize(Permission.WRITE, spec.repo)
        catalog.delete_branch(self.pfs, spec)

    # commits
    def start_commit(
        self, spec: CommitSpec, parent: str | None = None, description: str = ""
    ) -> CommitInfo:
        self.authorize(Permission.WRITE, spec.repo)
        cid = lifecycle.start_commit(self.pfs, spec, parent, description)
        return self.inspect_commit(CommitSpec(spec.repo, cid))

    def finish_commit(self, spec: CommitSpec, description: str | None = None) -> CommitInfo:
        self.authorize(Permission.WRITE, spec.repo)
        cid = lifecycle.finish_commit(self.pfs, spec, description)
        return self.inspect_commit(CommitSpec(spec.repo, cid))

    def inspect_commit(self, spec: CommitSpec) -> CommitInfo:
        """The commit with its children, direct and full provenance, subvenance and (output
        commits) spec version."""
        self.authorize(Permission.READ, spec.repo)
        with self.pfs.db.read() as conn:
            c = commits.resolve(conn, spec)
            info = c.info(commits.children_of(conn, c.repo_id, c.id))
            prov = tuple(f"{r}@{i}" for r, i in provenance.direct_provenance(conn, c.repo_id, c.id))
            full = tuple(provenance.full_provenance(conn, c.repo_id, c.id))
            sub = tuple(provenance.full_subvenance(conn, c.repo_id, c.id))
            version = records.output_version(conn, c.repo, c.id)
        return dataclasses.replace(
            info,
            provenance=prov,
            full_provenance=full,
            subvenance=sub,
            pipeline_version=None if version is None else f"{c.repo}@v{version}",
        )

    def list_commit(
        self, repo: str, branch: str | None = None, number: int | None = None
    ) -> list[CommitInfo]:
        self.authorize(Permission.READ, repo)
        with self.pfs.db.read() as conn:
            return [c.info() for c in commits.list_commits(conn, repo, branch, number)]

    def list_commit_set(self, commit_id: str) -> list[CommitInfo]:
        if not is_commit_id(commit_id):
            raise InvalidArgument(f"{commit_id!r} is not a commit ID")
        with self.pfs.db.read() as conn:
            found = [c.info() for c in commits.commit_set(conn, commit_id)]
        if not found:
            raise NotFound(f"no commit with ID {commit_id}", commit=commit_id)
        self.authorize(Permission.READ, *(c.repo for c in found))
        return found

    def wait_commit(self, spec: CommitSpec | str, timeout: float | None = None) -> list[CommitInfo]:
        """Block until the commit (or every commit of a commit set, given a bare ID) finishes."""

        def look() -> list[CommitInfo]:
            if isinstance(spec, str):
                return self.list_commit_set(spec)
            return [self.inspect_commit(spec)]

        return _wait(look, lambda i: i.finished is not None, timeout, f"{spec} to finish")

    def delete_commit(self, spec: CommitSpec) -> str:
        self.authorize(Permission.WRITE, spec.repo)
        return lifecycle.delete_commit(self.pfs, spec)

    def squash_commit(self, spec: CommitSpec) -> str:
        self.authorize(Permission.WRITE, spec.repo)
        return lifecycle.squash_commit(self.pfs, spec)

    def find_commit(self, spec: FileSpec, limit: int | None = None) -> list[CommitInfo]:
        """The commits in ``spec``'s history (newest first) that changed its path."""
        self.authorize(Permission.READ, spec.commit.repo)
        return [c.info() for c in history.find_commits(self.pfs, spec, limit)]

    # metadata
    def edit_metadata(
        self,
        kind: str,
        spec: CommitSpec,
        action: str,
        items: Mapping[str, str] | Sequence[str],
    ) -> dict[str, str]:
        """Edit the key/value metadata of a repo, branch or commit; the new metadata."""
        self.authorize(Permission.WRITE, spec.repo)
        return metadata.edit_metadata(self.pfs, kind, spec, action, items)

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
        self.authorize(Permission.WRITE, spec.repo)
        if isinstance(ops, Sequence):  # (an iterator only puts)
            sources = {op.source.commit.repo for op in ops if isinstance(op, CopyOp)}
            self.authorize(Permission.READ, *sources)
        return modify.modify(
            self.pfs,
            spec,
            ops,
            parallelism=parallelism,
            progress=progress,
            description=description,
        )

    def read_file(
        self, spec: FileSpec, *, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes]]:
        """The file's info and its bytes; from ``offset``, at most ``length`` of them
        (:meth:`FileInfo.span`), reading only the chunks that hold them."""
        info, entry = self._file_to_read(spec, offset, length)
        return info, files.read_content(self.pfs, entry, *info.span(offset, length))

    def read_file_stored(
        self, spec: FileSpec, *, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes | StoredRange]]:
        """As :meth:`read_file`, but the chunks a local store holds raw come as the verified
        :class:`StoredRange` of their bytes in their packs: for the server, to send them from
        the files (``os.sendfile``)."""
        info, entry = self._file_to_read(spec, offset, length)
        return info, files.read_stored_content(self.pfs, entry, *info.span(offset, length))

    def _file_to_read(
        self, spec: FileSpec, offset: int, length: int | None
    ) -> tuple[FileInfo, FileEntry]:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument("a read's offset and length cannot be negative")
        self.authorize(Permission.READ, spec.commit.repo)
        commit, entry = files.file_entry(self.pfs, spec)
        return files.file_info(commit, entry), entry

    def read_files(self, spec: FileSpec) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
        self.authorize(Permission.READ, spec.commit.repo)
        return files.read_files(self.pfs, spec)

    def inspect_file(self, spec: FileSpec) -> FileInfo:
        self.authorize(Permission.READ, spec.commit.repo)
        return files.inspect_file(self.pfs, spec)

    def list_file(
        self, spec: FileSpec, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """A directory's entries in path order: from ``start`` on (:attr:`FileInfo.list_key`;
        a seek), at most ``limit`` of them."""
        _check_page(limit, "a listing")
        self.authorize(Permission.READ, spec.commit.repo)
        return files.list_file(self.pfs, spec, start, limit)

    def walk_file(
        self, spec: FileSpec, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """Every file at or below the path, in path order: from the path ``start`` on (a
        seek), at most ``limit`` of them."""
        _check_page(limit, "a walk")
        self.authorize(Permission.READ, spec.commit.repo)
        commit, entries = files.walk_files(self.pfs, spec, start)
        return [files.file_info(commit, e) for e in islice(entries, limit)]

    def glob_file(self, spec: CommitSpec, pattern: str) -> list[FileInfo]:
        self.authorize(Permission.READ, spec.repo)
        return files.glob_file(self.pfs, spec, pattern)

    def diff_file(
        self,
        new: FileSpec,
        old: FileSpec | None = None,
        *,
        start: str | None = None,
        limit: int | None = None,
    ) -> list[DiffEntry]:
        """The changes from ``old`` (default: ``new``'s parent) to ``new`` in path order: from
        the path ``start`` on, at most ``limit`` of them."""
        _check_page(limit, "a diff")
        olds = () if old is None else (old.commit.repo,)
        self.authorize(Permission.READ, new.commit.repo, *olds)
        return files.diff_file(self.pfs, new, old, start, limit)

    # checks
    def fsck(self, *, fast: bool = False, fix: bool = False) -> list[Problem]:
        self.authorize(Permission.ADMIN)
        return fsck.fsck(self.pfs, fast=fast, fix=fix)

    def gc(self, *, grace_s: float = 600.0, orphan_grace_s: float = 3600.0) -> dict[str, int]:
        self.authorize(Permission.ADMIN)
        return gc.gc(self.pfs, grace_s=grace_s, orphan_grace_s=orphan_grace_s).to_dict()

    def store_info(self) -> dict[str, Any]:
        """The store's configuration. With auth on, only cluster admins see where the store
        lives (its directory, database and object store URLs, credentials' whereabouts); other
        callers see where their code runs (the sandbox) and a note saying so."""
        info = {
            **self.runtime.config.describe(),
            "store_id": self.runtime.store_id,
            "chunker": self.runtime.pfs.blobs.chunker,
        }
        if self._is_admin():
            return info
        return {
            "sandbox": info["sandbox"],
            "note": "only cluster admins see where the store lives (paths and URLs)",
        }

    # pipelines
    def create_pipeline(
        self, spec: dict[str, Any], *, update: bool = False, reprocess: bool = False
    ) -> str:
        """Create (or update) a pipeline from a Pachyderm spec; the ID of the job it starts.

        Everything is checked before anything is written: the spec, the caller's access, and
        that this store's jobs can run here (its sandbox and executor start); then the
        pipeline, its version, its job and its role bindings are written in one transaction.
        """
        parsed = parse_spec(spec)
        new = self._check_pipeline(parsed)
        self._check_secrets(parsed)
        self.runner.check()
        return pipelines.create_pipeline(
            self.pps,
            parsed,
            is_update=update,
            reprocess=reprocess,
            then=lambda conn: pipelines.secure(conn, parsed, new=new, owner=self._owner()),
        )

    def validate_pipeline(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The effective spec (defaults applied) and notes, or InvalidArgument."""
        parsed = parse_spec(spec)
        notes = [*parsed.notes, *isolation.preflight(self.pps, parsed)]
        return {"spec": parsed.to_dict(), "notes": notes}

    def inspect_pipeline(
        self, name: str, *, version: int | None = None, back: int = 0
    ) -> PipelineInfo:
        """The pipeline at its current version, at ``version``, or ``back`` versions before."""
        self.authorize(Permission.READ, name)
        if version is None and not back:
            return pipelines.inspect_pipeline(self.pps, name)
        return pipeline_versions.inspect_version(self.pps, name, version=version, back=back)

    def list_pipeline(
        self, *, name: str | None = None, history: int = 0, project: str | None = None
    ) -> list[PipelineInfo]:
        """Every pipeline (of ``project``; None: of all) whose output repo the caller may read
        or see listed (or the one ``name``), each followed by its ``history`` earlier versions
        (-1: all)."""
        check_history(history)
        if name is not None:
            self.authorize(Permission.READ, name)
            found = [pipelines.inspect_pipeline(self.pps, name)]
        else:
            visible = self._visible()
            found = pipelines.list_pipeline(self.pps, project)
            found = [p for p in found if visible is None or p.name in visible]
        return pipeline_versions.with_history(self.pps, found, history) if history else found

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        self.authorize(Permission.OWN, name)
        pipelines.delete_pipeline(self.pps, name, keep_repo=keep_repo)
        self._forget_pipeline(name, keep_repo=keep_repo)

    def stop_pipeline(self, name: str) -> None:
        self.authorize(Permission.WRITE, name)
        pipelines.stop_pipeline(self.pps, name)

    def start_pipeline(self, name: str) -> str | None:
        self.authorize(Permission.WRITE, name)
        return pipelines.start_pipeline(self.pps, name)

    def run_cron(self, name: str) -> list[str]:
        self.authorize(Permission.WRITE, name)
        return cron_ticks.run_cron(self.pps, name)

    def rerun_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        """Make the current spec a new version (salt kept unless ``reprocess``); its job's ID."""
        self.authorize(Permission.WRITE, name)
        return self._make_version(
            pipeline_versions.rerun_version(self.pps, name, reprocess=reprocess)
        )

    def rollback_pipeline(
        self,
        name: str,
        *,
        version: int | None = None,
        back: int = 0,
        reprocess: bool = False,
    ) -> str:
        """Make an earlier version's spec and salt (default: the previous version's) the new
        version; its job's ID. See :mod:`haathi.pps.pipeline_versions`."""
        self.authorize(Permission.WRITE, name)
        new = pipeline_versions.rollback_version(
            self.pps, name, version=version, back=back, reprocess=reprocess
        )
        return self._make_version(new)

    def _make_version(self, new: pipeline_versions.NewVersion) -> str:
        """As ``create_pipeline`` checks an update: the caller's access, that the secrets the
        spec names exist, that jobs run here."""
        self._check_pipeline(new.spec)
        self._check_secrets(new.spec)
        self.runner.check()
        return pipeline_versions.make_version(
            self.pps,
            new,
            then=lambda conn: pipelines.secure(conn, new.spec, new=False, owner=self._owner()),
        )

    def preview_datums(self, spec: dict[str, Any]) -> list[DatumInfo]:
        """The datums a spec's input has now, without creating anything."""
        if self.caller is not None:
            inputs = pipelines.input_branches(parse_spec(spec))
            self.authorize(Permission.READ, *(repo for repo, _ in inputs))
        return preview.preview_datums(self.pps, spec)

    # jobs and datums
    def _job(self, pipeline: str, job: str) -> records.JobRow:
        self.authorize(Permission.READ, pipeline)
        with self.pfs.db.read() as conn:
            return records.find_job(conn, pipeline, job)

    def _job_info(self, row: records.JobRow) -> JobInfo:
        return job_queue.job_info(self.pps, row)

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
        """Jobs, newest first: of ``pipeline``, of commit set ``job``, or every one the caller
        may read (of the pipelines of ``project``, if given); of each pipeline's current
        version and ``history`` versions before it (-1: of all); in one of ``states`` (none:
        in any)."""
        check_history(history)
        wanted = tuple(JobState.parse(s) for s in states)
        if pipeline is not None:
            self.authorize(Permission.READ, pipeline)
        with self.pfs.db.read() as conn:
            if pipeline is not None:
                records.pipeline_row(conn, pipeline)
            rows = records.list_jobs(
                conn,
                pipeline=pipeline,
                commit_id=job,
                limit=limit,
                history=history,
                states=wanted,
                project=project,
            )
        if job is not None:  # a commit set's jobs, as its commits: all readable or none
            self.authorize(Permission.READ, *(r.pipeline for r in rows))
        readable = self._readable()
        return [self._job_info(r) for r in rows if readable is None or r.pipeline in readable]

    def inspect_job(self, pipeline: str, job: str) -> JobInfo:
        return self._job_info(self._job(pipeline, job))

    def wait_job(
        self, pipeline: str | None, job: str, timeout: float | None = None
    ) -> list[JobInfo]:
        """Block until the job (or, without a pipeline, every job of the set) has ended."""

        def look() -> list[JobInfo]:
            if pipeline is not None:
                return [self.inspect_job(pipeline, job)]
            infos = self.list_job(job=job)
            if not infos:
                raise NotFound(f"no job with ID {job}", job=job)
            return infos

        return _wait(look, lambda i: i.state.terminal, timeout, f"job {job}")

    def stop_job(self, pipeline: str, job: str) -> JobInfo:
        self.authorize(Permission.WRITE, pipeline)
        return self._job_info(job_queue.stop_job(self.pps, pipeline, job))

    def list_datum(
        self,
        pipeline: str,
        job: str,
        number: int | None = None,
        marker: str | None = None,
        *,
        states: tuple[str, ...] = (),
    ) -> list[DatumInfo]:
        wanted = tuple(DatumState.parse(s) for s in states)
        row = self._job(pipeline, job)
        with self.pfs.db.read() as conn:
            return datum_records.job_datums(conn, row, number=number, marker=marker, states=wanted)

    def inspect_datum(self, pipeline: str, job: str, datum: str) -> DatumInfo:
        row = self._job(pipeline, job)
        with self.pfs.db.read() as conn:
            found = datum_records.find_datum(conn, row, datum)
        if found is None:
            raise NotFound(f"datum {datum} not found in job {pipeline}@{job}", datum=datum)
        return found

    def logs(
        self, pipeline: str, job: str | None = None, datum: str | None = None
    ) -> tuple[JobInfo, list[tuple[str, str]]]:
        """(the job, [(datum id, its user output)]) — by default of the pipeline's last job."""
        if job is None:
            last = self.list_job(pipeline, limit=1)
            if not last:
                raise NotFound(f"pipeline {pipeline} has no jobs", pipeline=pipeline)
            job = last[0].id
        row = self._job(pipeline, job)
        with self.pfs.db.read() as conn:
            out = datum_records.job_logs(conn, row, datum)
        return self._job_info(row), out

    def daemon_logs(
        self, pipeline: str, since: int | None = None, limit: int | None = 1000
    ) -> list[LogLine]:
        """What a spout's or service's program printed: the lines after ``since`` (oldest
        first, at most ``limit``), or with ``since`` None its newest ``limit`` (0 or None:
        all it keeps, its newest :data:`~haathi.pps.daemon_records.LOG_KEEP`)."""
        self.authorize(Permission.READ, pipeline)
        if since is not None and not 0 <= since <= MAX_LIMIT:
            raise InvalidArgument(f"since must be between 0 and {MAX_LIMIT}, got {since}")
        keep = daemon_records.LOG_KEEP
        wanted = min(check_limit(limit, "--tail") or keep, keep)
        with self.pfs.db.read() as conn:
            p = records.pipeline_row(conn, pipeline)
            if daemon_records.find(conn, p.id) is None:
                raise FailedPrecondition(
                    f"pipeline {pipeline} is neither a spout nor a service: its jobs' output is "
                    f"`haathi logs --pipeline {split_key(pipeline)[1]} [--job JOB]`",
                    pipeline=pipeline,
                )
            return daemon_records.read_logs(conn, p.id, since, wanted)

    # running jobs
    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            self._runner = JobRunner(self.pps)
        return self._runner

    def queue_jobs(self) -> int:
        """Record a job for every output commit a write started (none without pipelines)."""
        return job_queue.ensure_jobs(self.pps) if job_queue.any_pipelines(self.pps) else 0

    def run_jobs(self, progress: jobs.ProgressFn | None = None) -> RunSummary:
        """Run every runnable queued job in this process (embedded use), and say which wait
        and why. With auth on, a caller who is not a cluster admin runs, and hears of, only
        the jobs of pipelines whose output it may read: a remote write waits for the jobs it
        started that its writer can see, never runs or names anyone else's."""
        if not job_queue.any_pipelines(self.pps):
            return RunSummary()
        readable = self._readable()
        return self.runner.run_pending(
            progress, only=None if readable is None else readable.__contains__
        )

    def run_worker(self, stop: threading.Event, progress: jobs.ProgressFn | None = None) -> None:
        """Run jobs, cron ticks, spouts and services until ``stop`` is set."""
        gateways = self.pps.gateways
        apis = gateways.spout_apis(self) if isinstance(gateways, ServesSpouts) else None
        self.runner.run_forever(stop, progress, apis=apis)
