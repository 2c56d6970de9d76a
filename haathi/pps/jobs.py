"""Jobs: one per output commit. Running one claimed job incrementally (the queue, and how a
job is claimed and ended, is :mod:`haathi.pps.job_queue`).

A job compares its datums with those of the pipeline's last successful job (the *base*):
a datum with the same ID and hash that succeeded there is SKIPPED and keeps its outputs; one
whose inputs vanished has its outputs removed; every other datum runs, replacing its old
outputs. The output commit is the base job's output minus removed outputs plus new ones.

A job that skips most of its datums records only those that differ and keeps the records of
the job that holds the rest (:mod:`haathi.pps.datum_records`); a job whose input trees, input
spec and salt are its base's skips them all without forming them (:func:`_unchanged`).
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from haathi.errors import Conflict, FailedPrecondition, HaathiError
from haathi.models.info import DatumState, JobProgress, JobState
from haathi.models.secret import JobSecrets
from haathi.pfs import lifecycle, provenance
from haathi.pfs.collisions import ChangeView, find_clashes
from haathi.pfs.commits import CommitRow, find_commit
from haathi.pfs.context import now
from haathi.pfs.repos import repo_id_of
from haathi.pfs.staging import DELETE, PUT, Change
from haathi.pps import datum_records, openlineage, records, secrets
from haathi.pps.context import PpsContext
from haathi.pps.datums import Datum, DatumInput, form_datums
from haathi.pps.egress import EgressRecord, run_egress
from haathi.pps.egress_spec import Egress
from haathi.pps.executors import Executor
from haathi.pps.inputs import GlobIndex, InputCommit, glob_fn
from haathi.pps.isolation import Isolation, isolation_for
from haathi.pps.job_queue import base_job, base_root, end_egress, end_job, release
from haathi.pps.pipelines import input_branches
from haathi.pps.sidecars import NO_GATEWAY
from haathi.pps.spec import PipelineSpec, parse_spec, s3_input_names
from haathi.pps.worker import (
    DatumResult,
    DatumSetTask,
    DatumTask,
    TaskInput,
    cancel_event,
    forget_job,
    run_datum_set,
)
from haathi.tree import prolly
from haathi.tree.entry import FileEntry

MAX_SET = 50  # datums per task at most (a task is the unit of output upload)
MAX_CONTAINER_SET = 500  # under podman or docker, whose container takes ~0.2 s to start and
# ~0.1 s to stop: at 50 per set that alone was ~4 ms per datum (measured in issue 15)
SKIPPABLE = (DatumState.SUCCESS.value, DatumState.SKIPPED.value)


ProgressFn = Callable[[JobProgress], None]


# ---- the incremental plan ----------------------------------------------------------------


@dataclass
class Plan:
    hashes: dict[str, str]
    run: list[Datum] = field(default_factory=list)
    # (datum, outputs JSON, the job that ran it)
    skipped: list[tuple[Datum, str, int]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # output paths to remove
    base_root: bytes | None = None
    base_id: int | None = None  # the base job's row ID
    input_repos: list[str] = field(default_factory=list)
    # the job whose datum records this one keeps (see :mod:`datum_records`), if it does; then
    # ``kept`` of the skipped datums (by index) are read from there and not recorded again,
    # nor are ``unlisted`` more skipped ones, not in ``skipped`` at all
    keeps: int | None = None
    kept: set[int] = field(default_factory=set)
    unlisted: int = 0
    base_records: int | None = None  # the job whose records hold the base's datums
    commits: dict[tuple[str, str], str] = field(default_factory=dict)  # the input commits

    @property
    def total(self) -> int:
        return len(self.run) + self.skipped_count

    @property
    def skipped_count(self) -> int:
        return len(self.skipped) + self.unlisted


def input_commits(conn: Connection, job: records.JobRow, spec: PipelineSpec) -> GlobIndex:
    """The job's input commits, by (repo, branch) of the spec's inputs."""
    repo_id = repo_id_of(conn, job.pipeline)
    index = GlobIndex({})
    found: dict[str, list[CommitRow]] = {}
    heads: dict[tuple[str, str], CommitRow] = {}  # (repo, branch) -> its head then
    recorded = True
    for repo, cid, names in provenance.input_heads(conn, repo_id, job.commit_id):
        c = find_commit(conn, repo_id_of(conn, repo), repo, cid)
        assert c is not None
        found.setdefault(repo, []).append(c)
        recorded = recorded and names is not None
        heads.update({(repo, name): c for name in names or ()})
    for repo, branch in input_branches(spec):
        # the input branch's head when the job was made; a commit made before haathi recorded
        # them: the one made on that branch (a commit keeps the branch it was first made on,
        # which differs after `create branch --head` and for triggered branches), else any
        pick = heads.get((repo, branch))
        if not recorded and pick is None:
            candidates = found.get(repo, [])
            pick = next((c for c in candidates if c.branch == branch), None)
            if pick is None and candidates:
                pick = candidates[0]
        if pick is not None:
            index.commits[(repo, branch)] = InputCommit(repo, branch, pick.id, pick.root)
    return index


def plan_job(
    ctx: PpsContext, job: records.JobRow, spec: PipelineSpec, salt: str
) -> tuple[Plan, GlobIndex]:
    """Form the job's datums and decide which to skip, run and remove."""
    with ctx.pfs.db.read() as conn:
        index = input_commits(conn, job, spec)
    base, base_root = base_job(ctx, job)
    if base is not None and not spec.reprocesses_all:
        unchanged = _unchanged(ctx, base, spec, salt, index)
        if unchanged is not None:
            unchanged.base_root = base_root
            return unchanged, index
    current = form_datums(spec.input, glob_fn(ctx.pfs, index))
    plan = Plan({d.id: d.hash(salt) for d in current}, base_root=base_root)
    plan.commits = {key: ic.commit for key, ic in index.commits.items()}
    plan.input_repos = sorted({repo for repo, _ in index.commits})
    previous = datum_records.Outcomes({}, 0, frozenset())
    if base is not None:
        plan.base_id = base.id
        with ctx.pfs.db.read() as conn:
            previous = datum_records.outcomes(conn, base.id)
        plan.base_records = previous.kept
    every_job = spec.reprocesses_all
    hashes = plan.hashes  # of the current datums (form_datums made their IDs unique)
    of, own = previous.of, previous.own
    kept: set[int] = set()  # skipped datums whose outcome is the kept job's row
    for d in current:
        old = of.get(d.id)
        if old and not every_job and old.hash == hashes[d.id] and old.state in SKIPPABLE:
            if d.id not in own:
                kept.add(len(plan.skipped))
            plan.skipped.append((d, old.outputs, old.source_job))
            continue
        plan.run.append(d)
        if old:
            plan.stale.extend(p for p, _, _ in json.loads(old.outputs))
    removed = 0
    for did, old in of.items():
        if did not in hashes:
            plan.stale.extend(p for p, _, _ in json.loads(old.outputs))
            removed += did not in own
    if base is not None and not removed and _may_keep(ctx, spec, previous.kept, len(kept), hashes):
        plan.keeps, plan.kept = previous.kept, kept
    return plan, index


def _unchanged(
    ctx: PpsContext, base: records.JobRow, spec: PipelineSpec, salt: str, index: GlobIndex
) -> Plan | None:
    """The plan of a job whose datums are its base job's, all skipped, without forming them:
    when the base read the same input trees (a tree is named by its content) with the same
    input spec and salt, so that it had the same datums with the same hashes, and all of them
    succeeded. Then the job keeps the records the base keeps (or the base's own) and records
    again only the base's own rows. None: the datums must be formed and compared."""
    _total, _processed, _skipped, failed, recovered = base.counts
    if not base.made_output or failed or recovered:
        return None
    with ctx.pfs.db.read() as conn:
        then = records.version_row(conn, base.pipeline_id, base.version)
        if then.salt != salt or then.spec.get("input") != spec.to_dict().get("input"):
            return None
        roots = {key: ic.root for key, ic in input_commits(conn, base, spec).commits.items()}
        if roots != {key: ic.root for key, ic in index.commits.items()}:
            return None
        kept = datum_records.kept_of(conn, base.id)
        own = datum_records.own_rows(conn, base.id) if kept is not None else []
    plan = Plan({}, base_id=base.id, keeps=base.id if kept is None else kept.job_id)
    plan.base_records = plan.keeps
    plan.commits = {key: ic.commit for key, ic in index.commits.items()}
    plan.input_repos = sorted({repo for repo, _ in index.commits})
    for row in own:
        try:
            d = Datum(
                tuple(
                    DatumInput(**{**i, "commit": plan.commits.get((i["repo"], i["branch"]), "")})
                    for i in json.loads(row.inputs)
                )
            )
        except TypeError:  # not the inputs this haathi records
            return None
        plan.hashes[d.id] = d.hash(salt)
        if d.id != row.datum_id or plan.hashes[d.id] != row.hash:
            return None  # not as this haathi forms it: form and compare them all
        plan.skipped.append((d, row.outputs, row.source_job))
    plan.unlisted = base.counts[0] - len(plan.skipped)
    return plan


def _may_keep(
    ctx: PpsContext, spec: PipelineSpec, kept_job: int, kept: int, hashes: dict[str, str]
) -> bool:
    """Whether a job may keep the datum records of ``kept_job``, ``kept`` of its datums in
    ``hashes`` being read from there: when they are at least half of them (else the job
    records all, and later jobs keep its records), and the kept job's spec formed its datums'
    inputs the same way (``lazy``, ``join_on``, ... of a datum with the same ID and hash)."""
    if kept * 2 < len(hashes):
        return False
    with ctx.pfs.db.read() as conn:
        other = records.job_by_pk(conn, kept_job)
        spec_then = records.version_row(conn, other.pipeline_id, other.version).spec
    return bool(spec_then.get("input") == spec.to_dict().get("input"))


# ---- running -----------------------------------------------------------------------------


def task_inputs(index: GlobIndex, d: Datum, s3: frozenset[str]) -> tuple[TaskInput, ...]:
    """The datum's inputs as a task carries them; ``s3``: the names of the s3 inputs."""
    return tuple(
        TaskInput(
            name=i.name,
            path=i.path,
            commit=i.commit,
            is_dir=i.is_dir,
            files=tuple((e.path, e.chunks) for e in index.files_of(i.repo, i.commit, i.path)),
            join_on=i.join_on,
            group_by=i.group_by,
            empty_files=i.empty_files,
            s3=i.name in s3,
        )
        for i in d.inputs
    )


def _sets(items: list[Datum], parallelism: int, sandbox: str) -> list[list[Datum]]:
    """Datum sets: about four per worker; under bwrap at least three datums each (a set
    starts one sandbox or container, 25-200 ms) unless that would leave a worker idle."""
    workers = max(1, parallelism)
    cap = MAX_CONTAINER_SET if sandbox in ("podman", "docker") else MAX_SET
    size = max(1, min(cap, math.ceil(len(items) / (workers * 4))))
    if sandbox != "none":
        size = max(size, min(3, math.ceil(len(items) / workers)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _datum_row(d: Datum, h: str, state: DatumState, **values: Any) -> datum_records.DatumRecord:
    inputs = [i.to_dict() for i in d.inputs]
    return datum_records.DatumRecord(d.id, h, state.value, inputs, **values)


def _inputs_json(d: Datum) -> str:
    """The datum's inputs as its record stores them (see :class:`datum_records.DatumRecord`)."""
    return "[" + ", ".join(i.to_json() for i in d.inputs) + "]"


def _record_datum_inputs(conn: Connection, job_id: int, ds: Sequence[Datum]) -> None:
    """Index which input paths each datum reads (for downstream lineage)."""
    repo_ids: dict[str, int] = {}
    rows = set()
    for d in ds:
        for i in d.inputs:
            if i.repo not in repo_ids:
                repo_ids[i.repo] = repo_id_of(conn, i.repo)
            rows.add((repo_ids[i.repo], i.path, d.id))
    datum_records.insert_inputs(conn, job_id, rows)


RECORD_EVERY_S = 1.0
"""Seconds between writes of a running job's datum records and progress (and at its end)."""
RECORD_LOG_BYTES = 16 << 20
"""...or sooner, once the datum logs waiting to be written pass this many bytes."""


class _PendingRecords:
    """Datum records of a running job not written yet, written together: one transaction per
    second or so, not one per datum set (2,000 commits, each with an fsync, in a job of
    100,000 datums). Nothing depends on them being written sooner: a job that is claimed
    again starts over and forgets its datum records (:func:`haathi.pps.job_queue.claim`)."""

    def __init__(self, ctx: PpsContext, job: records.JobRow, counts: dict[DatumState, int]) -> None:
        self.ctx, self.job, self.counts = ctx, job, counts  # counts: of the datums so far
        self.rows: list[datum_records.DatumRecord] = []
        self.log_bytes = 0
        self.written = time.monotonic()

    def add(self, row: datum_records.DatumRecord) -> None:
        self.rows.append(row)
        self.log_bytes += len(row.log)

    def due(self) -> bool:
        waited = time.monotonic() - self.written
        return waited >= RECORD_EVERY_S or self.log_bytes >= RECORD_LOG_BYTES

    def flush(self) -> None:
        """Write the pending records and the job's progress counts (if any were added)."""
        if not self.rows:
            return
        rows, self.rows, self.log_bytes = self.rows, [], 0
        counts = self.counts
        with self.ctx.pfs.db.write() as conn:
            datum_records.insert_datums(conn, self.job.id, rows)
            records.record_progress(
                conn,
                self.job.id,
                processed=counts.get(DatumState.SUCCESS, 0),
                failed=counts.get(DatumState.FAILED, 0),
                recovered=counts.get(DatumState.RECOVERED, 0),
            )
        self.written = time.monotonic()


def _outputs_json(entries: Sequence[FileEntry]) -> str:
    return json.dumps([[e.path, e.hash.hex(), e.size] for e in entries])


def job_context(
    ctx: PpsContext, spec: PipelineSpec, version: records.VersionRow, isolation: Isolation
) -> str:
    from importlib.metadata import version as pkg_version

    try:
        haathi_version = pkg_version("haathi")
    except Exception:  # pragma: no cover - running from a source tree
        haathi_version = "unknown"
    return json.dumps(
        {
            "executor": ctx.executor or "local",
            "spec_version": version.version,
            "spec_hash": version.spec_hash,
            "transform": spec.to_dict()["transform"],
            "image": spec.transform.image,
            **isolation.record(),
            "haathi": haathi_version,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "runner": ctx.runner_id,
        }
    )


RUNNER_STOPPED = "the runner stopped"
"""Why a job went back to the queue: its runner was asked to stop (it releases its jobs)."""


class _Watch:
    """Renews the job's lease; notices a stop request, the job timeout, or its runner
    stopping (``stop``); cancels datums."""

    def __init__(
        self, ctx: PpsContext, job: records.JobRow, stop: threading.Event | None = None
    ) -> None:
        self.ctx, self.job = ctx, job
        self.deadline: float | None = None
        self.reason: str | None = None
        self.stopped = threading.Event()
        self.runner_stop = stop
        self.cancel = cancel_event(job.commit_id)
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"haathi-job-watch-{job.commit_id}"
        )
        self.thread.start()

    def time_out_after(self, timeout: float | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def _end(self, reason: str) -> None:
        self.reason = reason
        self.cancel.set()

    def _run(self) -> None:
        last_renew = time.monotonic()
        while not self.stopped.wait(0.2):
            if self.runner_stop is not None and self.runner_stop.is_set():
                return self._end(RUNNER_STOPPED)
            if self.deadline is not None and time.monotonic() > self.deadline:
                return self._end("job timed out")
            try:
                with self.ctx.pfs.db.read() as conn:
                    state = records.job_state(conn, self.job.id)
                if state not in (JobState.RUNNING.value, JobState.EGRESSING.value):
                    return self._end("job stopped")
                if time.monotonic() - last_renew > self.ctx.job_lease_s / 4:
                    with self.ctx.pfs.db.write() as conn:
                        until = now() + timedelta(seconds=self.ctx.job_lease_s)
                        records.renew_lease(conn, self.job.id, until)
                    last_renew = time.monotonic()
            except HaathiError:
                continue

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        forget_job(self.job.commit_id)


def _collisions(ctx: PpsContext, plan: Plan, outputs: dict[str, FileEntry]) -> str | None:
    """Two datums writing one path, a file where another datum has a directory, or one name
    in two Unicode spellings (see :mod:`haathi.pfs.collisions`)."""
    stale = set(plan.stale)
    nodes = ctx.pfs.nodes

    def kept(path: str) -> FileEntry | None:
        return outputs.get(path) or (
            None if path in stale else prolly.get(plan.base_root, path, nodes)
        )

    for path, e in outputs.items():
        old = None if path in stale else prolly.get(plan.base_root, path, nodes)
        if old is not None and old.datum != e.datum:
            return f"datums {old.datum} and {e.datum} both wrote {path}"
    changes = [Change(DELETE, p) for p in plan.stale] + [Change(PUT, p) for p in outputs]
    view = ChangeView(plan.base_root, changes, nodes)
    clash = next(find_clashes(view, sorted(outputs)), None)
    if clash is None:
        return None
    upper, other = kept(clash.upper), kept(clash.other)
    if upper is None:  # a spelling of a directory: name a file below it
        below = view.file_below(clash.upper)
        upper = kept(below) if below is not None else None
    if other is None:
        below = view.file_below(clash.other)
        other = kept(below) if below is not None else None
    datums = sorted({e.datum for e in (upper, other) if e is not None and e.datum})
    return f"{clash.message} (written by datums {' and '.join(datums)})"


def _assemble(
    ctx: PpsContext, plan: Plan, outputs: dict[str, FileEntry]
) -> tuple[bytes | None, frozenset[bytes]]:
    """The output tree: base minus stale outputs plus new ones (nodes stored durably)."""
    edits: dict[str, FileEntry | None] = dict.fromkeys(plan.stale)
    edits.update(outputs)
    with ctx.pfs.blobs.writer() as writer:
        root = prolly.apply(plan.base_root, sorted(edits.items()), ctx.pfs.nodes, writer)
    return root, writer.referenced


def run_job(
    ctx: PpsContext,
    job: records.JobRow,
    executor: Executor,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> JobState:
    """Run a claimed job to its end; returns its final state.

    Whatever happens, the job does not stay claimed by a runner that no longer runs it: an
    error of haathi's (a corrupt blob, a store that went away) fails the job with the reason;
    anything else (a bug, KeyboardInterrupt, SIGTERM in the CLI) gives it back to the queue at
    once (lease cleared) and is re-raised, as does ``stop`` being set (the runner is stopping;
    then the state returned is CREATED). The lease watch ends in every case.
    """
    report = progress or (lambda _p: None)
    watch = _Watch(ctx, job, stop)
    run = _Run(ctx, job, report, watch)
    try:
        if job.state == JobState.EGRESSING:  # taken over from a runner that stopped
            return run.egress_only()
        return run.to_end(executor)
    except HaathiError as exc:
        try:
            end_job(ctx, job, JobState.FAILURE, f"job failed: {exc}", root=run.base_root())
        except BaseException:
            release(ctx, job)
            raise
        run.prog.state, run.prog.reason = JobState.FAILURE, str(exc)
        report(run.prog)
        return JobState.FAILURE
    except BaseException:
        watch.cancel.set()  # datums running in this process stop
        release(ctx, job)
        raise
    finally:
        watch.close()


class _Run:
    """One run of a claimed job (see :func:`run_job`)."""

    def __init__(
        self, ctx: PpsContext, job: records.JobRow, report: ProgressFn, watch: _Watch
    ) -> None:
        self.ctx, self.job, self.report, self.watch = ctx, job, report, watch
        self.plan: Plan | None = None
        self.egress: Egress | None = None
        self.secrets = JobSecrets()
        self.prog = JobProgress(job.pipeline, job.commit_id, JobState.RUNNING, 0, 0)

    def base_root(self) -> bytes | None:
        """The output tree the job builds on (a failed job's output commit keeps it)."""
        return self.plan.base_root if self.plan is not None else base_root(self.ctx, self.job)

    def to_end(self, executor: Executor) -> JobState:
        ctx, job, watch = self.ctx, self.job, self.watch
        with ctx.pfs.db.read() as conn:
            version = records.version_row(conn, job.pipeline_id, job.version)
        spec, salt = parse_spec(version.spec, stored=True), version.salt
        self.egress = spec.egress
        # fails the job when its image or a runtime is missing, or auth is on and no sandbox
        # can run
        isolation = isolation_for(ctx, spec)
        # fails the job when a secret it names was deleted, or cannot be shown as asked
        self.secrets = secrets.for_job(ctx, spec.transform.secrets, isolation)
        if spec.uses_s3_gateway and ctx.gateways is None:
            raise FailedPrecondition(NO_GATEWAY, pipeline=spec.name)
        watch.time_out_after(spec.job_timeout)
        since_epoch = lifecycle.gc_epoch_now(ctx.pfs)
        self.plan, index = plan_job(ctx, job, spec, salt)
        self._start(spec, version, isolation)
        outputs, keep, failed, collision = self._run_datums(executor, spec, isolation, index)
        if watch.reason == RUNNER_STOPPED:
            release(ctx, job)
            return JobState.CREATED
        return self._finish(outputs, keep, failed, collision, since_epoch)

    def _start(self, spec: PipelineSpec, version: records.VersionRow, isolation: Isolation) -> None:
        """Record the skipped datums (or which job's records the job keeps), the inputs every
        datum reads, and the job's context."""
        ctx, job, plan = self.ctx, self.job, self.plan
        assert plan is not None
        total = plan.total
        hashes = plan.hashes
        own = [s for k, s in enumerate(plan.skipped) if k not in plan.kept]
        skipped = (
            datum_records.Skipped(d.id, hashes[d.id], _inputs_json(d), outs, source)
            for d, outs, source in own
        )
        context = job_context(ctx, spec, version, isolation)
        with ctx.pfs.db.write() as conn:
            datum_records.insert_skipped(conn, job.id, skipped)
            indexed = plan.run
            if plan.keeps is not None:
                datum_records.keep_datums_of(conn, job.id, plan.keeps, plan.commits)
                indexed = [d for d, _, _ in own] + plan.run
            elif (
                plan.base_id is None
                or plan.base_records != plan.base_id  # the base keeps another's records
                or not plan.skipped
                or not datum_records.copy_skipped_inputs(
                    conn, job.id, plan.base_id, {repo_id_of(conn, r) for r in plan.input_repos}
                )
            ):
                indexed = [d for d, _, _ in plan.skipped] + plan.run
            _record_datum_inputs(conn, job.id, indexed)
            records.record_plan(conn, job.id, total, plan.skipped_count, context)
        openlineage.job_started(ctx, job)
        self.prog.total, self.prog.skipped = total, plan.skipped_count
        self.prog.sandbox = isolation.describe()
        self.report(self.prog)

    def _run_datums(
        self, executor: Executor, spec: PipelineSpec, isolation: Isolation, index: GlobIndex
    ) -> tuple[dict[str, FileEntry], set[bytes], list[str], str | None]:
        """Run the plan's datums; (outputs by path, blobs to keep, failed datums, the first
        collision between two datums' outputs)."""
        ctx, job, plan, prog = self.ctx, self.job, self.plan, self.prog
        assert plan is not None
        by_id = {d.id: d for d in plan.run}
        outputs: dict[str, FileEntry] = {}
        collision: str | None = None
        keep: set[bytes] = set()
        counts = {s: 0 for s in DatumState}
        failed: list[str] = []
        s3 = s3_input_names(spec)
        tasks = [
            DatumSetTask(
                store=ctx.remote_store or (lambda: ctx.pfs),
                store_key=ctx.store_key,
                pipeline=job.pipeline,
                job_id=job.commit_id,
                transform=spec.transform,
                datum_tries=spec.datum_tries,
                datum_timeout=spec.datum_timeout,
                sandbox=isolation.sandbox,
                view=isolation.view,
                container=isolation.container,
                scratch_root=None if ctx.executor else str(ctx.scratch_dir),
                datums=tuple(DatumTask(d.id, task_inputs(index, d, s3)) for d in group),
                secrets=self.secrets,
                gateways=ctx.gateways,
                s3_out=spec.s3_out,
            )
            for group in _sets(plan.run, spec.parallelism, isolation.sandbox)
        ]
        results_of_sets = executor.map(run_datum_set, tasks, parallelism=spec.parallelism)
        pending = _PendingRecords(ctx, job, counts)
        try:
            for results in results_of_sets:
                for r in results:
                    counts[r.state] += 1
                    if r.state == DatumState.FAILED:
                        failed.append(r.datum_id)
                    keep.update(r.digests)
                    for e in r.outputs:
                        other = outputs.get(e.path)
                        if other is not None and collision is None:
                            collision = f"datums {other.datum} and {e.datum} both wrote {e.path}"
                        outputs[e.path] = e
                    d = by_id[r.datum_id]
                    pending.add(_result_row(job.id, d, plan.hashes[d.id], r))
                if pending.due():
                    pending.flush()
                prog.done += len(results)
                prog.failed = counts[DatumState.FAILED]
                self.report(prog)
            pending.flush()
        except BaseException:
            with contextlib.suppress(HaathiError):
                pending.flush()  # what did run is recorded for the failed or given-back job
            raise
        finally:
            if isinstance(results_of_sets, Generator):
                results_of_sets.close()  # sets not started yet are dropped
        return outputs, keep, failed, collision

    def _finish(
        self,
        outputs: dict[str, FileEntry],
        keep: set[bytes],
        failed: list[str],
        collision: str | None,
        since_epoch: int,
    ) -> JobState:
        """End the job: its output commit is the base plus the new outputs, or an error."""
        ctx, job, plan, watch = self.ctx, self.job, self.plan, self.watch
        assert plan is not None
        if watch.reason is not None:
            state, reason, root = JobState.KILLED, watch.reason, plan.base_root
            end_job(ctx, job, state, reason, root=root, only_if_running=False)
        else:
            collision = collision or _collisions(ctx, plan, outputs)
            state, reason, root = JobState.SUCCESS, None, plan.base_root
            if collision is not None:
                state, reason = JobState.FAILURE, f"output path collision: {collision}"
            else:
                root, nodes = _assemble(ctx, plan, outputs)
                keep.update(nodes)
                if failed:
                    state = JobState.FAILURE
                    reason = f"{len(failed)} datum(s) failed: " + ", ".join(sorted(failed)[:3])
            egress = self.egress if state == JobState.SUCCESS else None
            if egress is not None:  # the output is made: egress it before the job ends
                state, started = JobState.EGRESSING, EgressRecord.start(egress).to_dict()
            else:
                started = None
            try:
                ended = end_job(
                    ctx, job, state, reason, root=root, keep=sorted(keep),
                    since_epoch=since_epoch, egress=started,
                )  # fmt: skip
            except Conflict as exc:
                state, reason = JobState.FAILURE, str(exc)
                end_job(ctx, job, state, reason, root=plan.base_root)
            else:
                if state == JobState.EGRESSING and ended:
                    assert egress is not None
                    return self._egress(egress)
                if state == JobState.EGRESSING:  # stopped as it ended: its output is made
                    state, reason = JobState.KILLED, "job stopped"
                    end_job(ctx, job, state, reason, root=root, only_if_running=False)
        self.prog.state, self.prog.reason = state, reason
        self.report(self.prog)
        return state

    def egress_only(self) -> JobState:
        """Egress a job whose runner stopped while it egressed (its output commit is made)."""
        with self.ctx.pfs.db.read() as conn:
            version = records.version_row(conn, self.job.pipeline_id, self.job.version)
        egress = parse_spec(version.spec, stored=True).egress
        assert egress is not None  # only a spec with egress makes an EGRESSING job
        return self._egress(egress)

    def _egress(self, egress: Egress) -> JobState:
        """Write the job's output commit to the egress target, then end the job: SUCCESS, or
        FAILURE with the reason (the output commit stays made: the next job retries)."""
        ctx, job, watch = self.ctx, self.job, self.watch
        self.prog.state, self.prog.reason = JobState.EGRESSING, None
        self.report(self.prog)

        def attempt(record: EgressRecord) -> None:
            with ctx.pfs.db.write() as conn:
                records.record_egress(conn, job.id, record.to_dict())

        record = run_egress(ctx, job.pipeline, job.commit_id, egress, watch.cancel, attempt)
        if watch.reason == RUNNER_STOPPED:  # the next runner egresses it
            release(ctx, job)
            return JobState.CREATED
        if watch.reason is not None:  # stopped, or timed out
            state, reason = JobState.KILLED, watch.reason
            record.state = JobState.KILLED.value
        elif record.state == "SUCCESS":
            state, reason = JobState.SUCCESS, None
        else:
            state, reason = JobState.FAILURE, record.error
        end_egress(ctx, job, state, reason, record.to_dict())
        self.prog.state, self.prog.reason = state, reason
        self.report(self.prog)
        return state


def _result_row(job_id: int, d: Datum, h: str, r: DatumResult) -> datum_records.DatumRecord:
    return _datum_row(
        d,
        h,
        r.state,
        attempts=r.attempts,
        outputs=_outputs_json(r.outputs),
        env=r.env,
        reason=r.reason,
        source_job=job_id,
        exit_code=r.exit_code,
        started_at=datetime.fromtimestamp(r.started_at, UTC),
        duration=r.duration,
        log=r.log[-(1 << 20) :],
    )
