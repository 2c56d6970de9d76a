"""Reproduction: re-run recorded datums and compare their outputs, file by file, with the
stored ones.

Which datum: an output file names the datum that wrote it; the output commit's job (its own if
it succeeded, else the last successful one before it, as in :mod:`haathi.pps.lineage`) holds
that datum's record, and the record names the job that actually ran it (``source_job``: a
SKIPPED datum points at an earlier job). The re-run uses that job's record and nothing newer:
its input files at the recorded input commits (checked against the recorded content hashes),
its pipeline spec version (transform, ``datum_tries``, ``datum_timeout``, parallelism) and its
job ID, so ``PACH_JOB_ID``, ``<input>_COMMIT`` and ``PACH_DATUM_ID`` are what the recorded run
saw. Datums run exactly as a job runs them (:func:`haathi.pps.worker.run_datum_set`, through
the store's executor and sandbox) in a scratch directory.

What is compared: every file the datum's record says it wrote (its stored output) against
every file the re-run wrote, by content hash. A file the re-run did not write, or wrote but
the datum did not, is a mismatch, as is every file of a datum whose re-run failed.

What changes: nothing in the metadata that names data: no branch, commit, job or datum row is
written. The re-run's output bytes are stored as blobs (that is how the worker hashes them);
nothing refers to them, so ``gc`` removes them like any other unreferenced blob.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from haathi.errors import FailedPrecondition, HaathiError, InvalidArgument, NotFound
from haathi.models.info import DatumState, Origin
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.models.reproduce import (
    UNRUNNABLE,
    DatumReproduction,
    EnvChange,
    FileCheck,
    ReproduceReport,
)
from haathi.pfs.commits import CommitRow, resolve
from haathi.pps import datum_records, records, secrets
from haathi.pps.context import PpsContext
from haathi.pps.executors import Executor
from haathi.pps.inputs import dir_hash
from haathi.pps.isolation import isolation_for
from haathi.pps.jobs import MAX_SET
from haathi.pps.lineage import WROTE, LineageWalk
from haathi.pps.sidecars import NO_GATEWAY
from haathi.pps.spec import PipelineSpec, parse_spec, s3_input_names
from haathi.pps.worker import (
    DatumResult,
    DatumSetTask,
    DatumTask,
    TaskInput,
    cancel_event,
    run_datum_set,
)
from haathi.tree.entry import FileEntry

_LOG_TAIL_LINES = 40
_LOG_TAIL_CHARS = 4000


@dataclass
class _Planned:
    """A datum to re-run: its record in the job that ran it, and the task that re-runs it."""

    datum: str
    source: records.JobRow
    inputs: list[dict[str, Any]] = field(default_factory=list)
    stored: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (hash, size)
    env: dict[str, str] = field(default_factory=dict)
    task: DatumTask | None = None
    problem: str | None = None  # why it cannot be re-run
    sandbox: str = ""  # where it was re-run (the sandbox, or the container's runtime)
    tag_now: str = ""  # the digest the image's tag names now, when not the recorded one


# ---- entry points --------------------------------------------------------------------------


def reproduce_files(ctx: PpsContext, target: FileSpec, executor: Executor) -> ReproduceReport:
    """Re-run the datums that wrote the files at ``target`` (a file, directory or glob of a
    pipeline's output commit) and compare every file those datums wrote."""
    with ctx.pfs.db.read() as conn:
        walk = LineageWalk(ctx, conn)
        _output_commit(conn, target.commit, str(target))
        commit, entries = walk.target(target)
        ids = sorted({e.datum for e in entries if e.datum is not None})
        if not ids:
            raise InvalidArgument(f"{target} is not a pipeline output (no datum wrote it)")
        job = _output_job(walk, commit)
        planned = _plan(ctx, conn, walk, job, ids)
    return _report(ctx, executor, str(target), commit, planned, len(ids))


def reproduce_commit(
    ctx: PpsContext,
    target: CommitSpec,
    executor: Executor,
    *,
    sample: int | None = None,
    seed: int | None = None,
) -> ReproduceReport:
    """Re-run every datum that wrote files in output commit ``target`` (or ``sample`` of them
    chosen at random, reproducibly with ``seed``) and compare their files."""
    if sample is not None and sample < 1:
        raise InvalidArgument(f"sample must be at least 1, not {sample}")
    with ctx.pfs.db.read() as conn:
        walk = LineageWalk(ctx, conn)
        commit = _output_commit(conn, target, str(target))
        job = _output_job(walk, commit)
        written = datum_records.outputs_by_state(conn, job.id, WROTE)
        ids = sorted(did for did, outs in written if json.loads(outs))
        total = len(ids)
        if sample is not None and sample < total:
            ids = sorted(random.Random(seed).sample(ids, sample))
        planned = _plan(ctx, conn, walk, job, ids)
    return _report(ctx, executor, str(target), commit, planned, total, sample, seed)


# ---- planning ------------------------------------------------------------------------------


def _output_commit(conn: Connection, spec: CommitSpec, what: str) -> CommitRow:
    commit = resolve(conn, spec)
    ref = f"{commit.repo}@{commit.id}"
    if commit.origin != Origin.AUTO.value:
        raise InvalidArgument(f"{what} is not a pipeline output ({ref} is a user commit)")
    if not commit.finished:
        raise FailedPrecondition(f"{ref} is not finished: its job has not ended yet")
    return commit


def _output_job(walk: LineageWalk, commit: CommitRow) -> records.JobRow:
    job = walk.job(commit.repo, commit.id)
    if job is None:
        raise FailedPrecondition(
            f"{commit.repo}@{commit.id} has no successful job behind it: nothing to reproduce"
        )
    return job


def _plan(
    ctx: PpsContext, conn: Connection, walk: LineageWalk, job: records.JobRow, ids: list[str]
) -> list[_Planned]:
    """The record of each datum in the job that ran it, with the task to re-run it."""
    sources = {
        did: source or job.id for did, source in datum_records.sources(conn, job.id, ids).items()
    }
    planned: list[_Planned] = []
    by_source: dict[int, list[str]] = {}
    for did in ids:
        if did in sources:
            by_source.setdefault(sources[did], []).append(did)
        else:
            p = _Planned(did, job, problem=f"job {_ref(job)} has no record of datum {did}")
            planned.append(p)
    for pk, dids in by_source.items():
        source = walk.job_by_pk(pk)
        rows = datum_records.runs(conn, source.id, dids)
        for did in dids:
            p = _Planned(did, source)
            planned.append(p)
            rec = rows.get(did)
            if rec is None:
                p.problem = f"job {_ref(source)} has no record of datum {did}"
                continue
            p.inputs = json.loads(rec["inputs"])
            p.stored = {path: (h, int(size)) for path, h, size in json.loads(rec["outputs"])}
            p.env = json.loads(rec["env"] or "{}")
            try:
                p.task = DatumTask(did, tuple(_task_input(ctx, walk, i) for i in p.inputs))
            except HaathiError as exc:
                p.problem = str(exc)
    return planned


def _task_input(ctx: PpsContext, walk: LineageWalk, i: dict[str, Any]) -> TaskInput:
    """One recorded input, with the files it held at the recorded commit."""
    where = f"{i['repo']}@{i['commit']}:{i['path']}"
    try:
        c = walk.commit(i["repo"], i["commit"])
    except NotFound:
        c = None
    if c is None:
        raise FailedPrecondition(f"input {where} is gone: its commit or repo was deleted")
    entries = list(walk.entries(c.root, i["path"], i["is_dir"]))
    if not entries and not i["is_dir"]:
        raise FailedPrecondition(f"input {where} is gone from its commit")
    if _content_hash(i["path"], i["is_dir"], entries) != i["hash"]:
        raise FailedPrecondition(f"input {where} no longer has the recorded content")
    return TaskInput(
        name=i["name"],
        path=i["path"],
        commit=i["commit"],
        is_dir=i["is_dir"],
        files=tuple((e.path, e.chunks) for e in entries),
        join_on=i.get("join_on"),
        group_by=i.get("group_by"),
        empty_files=bool(i.get("empty_files")),
    )


def _content_hash(path: str, is_dir: bool, entries: Sequence[FileEntry]) -> str | None:
    """The content hash a glob match records (:func:`haathi.pps.inputs.glob_commit`)."""
    if not is_dir:
        return entries[0].hash.hex() if len(entries) == 1 else None
    return dir_hash(path, entries)


# ---- running and comparing -----------------------------------------------------------------


def _report(
    ctx: PpsContext,
    executor: Executor,
    target: str,
    commit: CommitRow,
    planned: list[_Planned],
    total: int,
    sample: int | None = None,
    seed: int | None = None,
) -> ReproduceReport:
    results = _run(ctx, executor, planned)
    done = [_compare(p, results.get(p.datum)) for p in planned]
    done.sort(key=lambda d: (min((f.path for f in d.files), default=""), d.datum))
    return ReproduceReport(target, f"{commit.repo}@{commit.id}", tuple(done), total, sample, seed)


def _run(ctx: PpsContext, executor: Executor, planned: list[_Planned]) -> dict[str, DatumResult]:
    """Run the runnable datums, each with the spec version, job ID and image (by its recorded
    digest) of the job that ran it."""
    by_source: dict[int, list[_Planned]] = {}
    for p in planned:
        if p.task is not None:
            by_source.setdefault(p.source.id, []).append(p)
    out: dict[str, DatumResult] = {}
    specs: dict[tuple[int, int], PipelineSpec] = {}
    for group in by_source.values():
        job = group[0].source
        key = (job.pipeline_id, job.version)
        if key not in specs:
            with ctx.pfs.db.read() as conn:
                specs[key] = parse_spec(records.version_row(conn, *key).spec, stored=True)
        spec = specs[key]
        try:
            isolation = isolation_for(ctx, spec, ran=job.context)
        except FailedPrecondition as exc:
            if spec.transform.image is None:
                raise
            for p in group:  # its image is gone: these datums cannot be re-run
                p.task, p.problem = None, str(exc)
            continue
        if spec.uses_s3_gateway and ctx.gateways is None:
            for p in group:
                p.task, p.problem = None, NO_GATEWAY
            continue
        for p in group:
            p.sandbox, p.tag_now = isolation.sandbox, isolation.tag_now
        job_secrets = secrets.for_job(ctx, spec.transform.secrets, isolation)
        s3 = s3_input_names(spec)
        todo = [_reading_s3(p.task, s3) for p in group if p.task is not None]
        size = max(1, min(MAX_SET, math.ceil(len(todo) / max(1, spec.parallelism * 4))))
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
                datums=tuple(todo[i : i + size]),
                secrets=job_secrets,
                gateways=ctx.gateways,
                s3_out=spec.s3_out,
            )
            for i in range(0, len(todo), size)
        ]
        results = executor.map(run_datum_set, tasks, parallelism=spec.parallelism)
        try:
            for batch in results:
                out.update((r.datum_id, r) for r in batch)
        except KeyboardInterrupt:
            cancel_event(job.commit_id).set()  # stop the datums running in this process
            raise
        finally:
            if isinstance(results, Generator):
                results.close()  # tasks not started yet are dropped
    return out


def _reading_s3(task: DatumTask, s3: frozenset[str]) -> DatumTask:
    """``task`` with its s3 inputs (by name) read through the job's gateway."""
    inputs = tuple(dataclasses.replace(i, s3=i.name in s3) for i in task.inputs)
    return dataclasses.replace(task, inputs=inputs)


def _compare(p: _Planned, r: DatumResult | None) -> DatumReproduction:
    job, version = _ref(p.source), p.source.version
    inputs = tuple(f"{i['repo']}@{i['commit']}:{i['path']}" for i in p.inputs)
    if r is None:
        state, reason = UNRUNNABLE, p.problem or "the re-run was cancelled"
        files = tuple(FileCheck(path, h, None, n) for path, (h, n) in sorted(p.stored.items()))
        return DatumReproduction(p.datum, job, version, inputs, state, files, reason=reason)
    made = {e.path: (e.hash.hex(), e.size) for e in r.outputs}
    files = tuple(
        FileCheck(
            path,
            p.stored[path][0] if path in p.stored else None,
            made[path][0] if path in made else None,
            p.stored[path][1] if path in p.stored else None,
            made[path][1] if path in made else None,
        )
        for path in sorted(p.stored.keys() | made.keys())
    )
    ok = r.state == DatumState.SUCCESS
    return DatumReproduction(
        p.datum,
        job,
        version,
        inputs,
        r.state.value,
        files,
        attempts=r.attempts,
        reason=r.reason,
        log_tail="" if ok else _tail(r.log),
        duration_s=r.duration,
        sandbox=p.sandbox,
        env_changes=_env_changes(p, r.env, p.sandbox),
    )


def _env_changes(p: _Planned, env: dict[str, str], sandbox: str) -> tuple[EnvChange, ...]:
    """The variables whose value differs between the recorded run and the re-run, and the
    sandbox if it differs. An input's variable (``$<input>``, its path under ``/pfs``) is
    compared as user code's ``/pfs`` view: without bwrap, ``/pfs`` is a scratch directory
    that differs from run to run."""
    was, now = _pfs_view(p.inputs, p.env), _pfs_view(p.inputs, env)
    out = [
        EnvChange(k, was.get(k), now.get(k))
        for k in sorted(was.keys() | now.keys())
        if was.get(k) != now.get(k)
    ]
    recorded = p.source.context.get("sandbox")
    if recorded and recorded != sandbox:
        out.append(EnvChange("sandbox", str(recorded), sandbox, variable=False))
    if p.tag_now:  # re-ran the recorded image; say that its tag has moved on
        ctx = p.source.context
        out.append(
            EnvChange(
                f"image {ctx.get('image')}", ctx.get("image_digest"), p.tag_now, variable=False
            )
        )
    return tuple(out)


def _pfs_view(inputs: list[dict[str, Any]], env: dict[str, str]) -> dict[str, str]:
    """``env`` with each input's variable as ``/pfs/<input>/<path>`` wherever ``/pfs`` was."""
    out = dict(env)
    for i in inputs:
        name = i["name"]
        view = f"/pfs/{name}" + ("" if i["path"] == "/" else i["path"])
        value = env.get(name)
        if value is not None and value != view and value.endswith(view):
            out[name] = view
    return out


def _tail(log: str) -> str:
    lines = log.rstrip("\n").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines)[-_LOG_TAIL_CHARS:]


def _ref(job: records.JobRow) -> str:
    return f"{job.pipeline}@{job.commit_id}"
