"""The jobs of a service pipeline, taken by the worker that runs its server.

A service's jobs queue as any pipeline's (one per output commit), but no job runner runs
them: the worker that holds the service (:mod:`haathi.pps.daemons`) takes each ready one in
turn, forms its datums (a service has exactly one: more or fewer fails the job with
Pachyderm's ``services must have a single datum``), and ends it SUCCESS with that datum
recorded; its output commit holds what the previous one does (a service writes nothing). The
server then serves the newest such datum.

Pachyderm keeps a service's job RUNNING until the next one replaces it; haathi ends it once
its datum is being served, so that ``wait commit`` and the pipelines downstream never wait on
a server that is not meant to exit.
"""

from __future__ import annotations

from dataclasses import dataclass

from haathi.errors import FailedPrecondition, HaathiError
from haathi.models.info import DatumState, JobState
from haathi.pfs.context import now
from haathi.pps import datum_records, job_queue, jobs, records
from haathi.pps.context import PpsContext
from haathi.pps.datums import Datum, form_datums
from haathi.pps.inputs import glob_fn
from haathi.pps.isolation import Isolation
from haathi.pps.spec import parse_spec
from haathi.pps.worker import DatumTask

SINGLE_DATUM = "services must have a single datum"


@dataclass(frozen=True)
class Served:
    """A job whose datum the service serves."""

    job: records.JobRow
    datum: DatumTask


def ready(ctx: PpsContext, pipeline: str) -> bool:
    """Whether the service has a job ready to be taken (or to be ended as unrunnable)."""
    with ctx.pfs.db.read() as conn:
        queued = records.list_jobs(conn, pipeline=pipeline, states=(JobState.CREATED,))
        if not queued:
            return False
        r = job_queue.readiness(conn, min(queued, key=lambda j: j.id))
    return r.ready or r.unrunnable


def take(ctx: PpsContext, pipeline: str, isolation: Isolation) -> Served | None:
    """End every ready job of the service, oldest first (each makes the next one ready); the
    newest of them whose datum can be served, if any."""
    served = None
    while True:
        with ctx.pfs.db.read() as conn:
            queued = records.list_jobs(conn, pipeline=pipeline, states=(JobState.CREATED,))
            if not queued:
                return served
            job = min(queued, key=lambda j: j.id)
            r = job_queue.readiness(conn, job)
        if r.unrunnable:
            base = job_queue.base_root(ctx, job)
            job_queue.end_job(
                ctx, job, JobState.UNRUNNABLE, r.why, root=base, only_if_running=False
            )
            continue
        if not r.ready or not job_queue.claim(ctx, job):
            return served
        try:
            served = _serve(ctx, job, isolation)
        except HaathiError as exc:
            job_queue.end_job(
                ctx, job, JobState.FAILURE, str(exc), root=job_queue.base_root(ctx, job)
            )


def last(ctx: PpsContext, pipeline: str) -> Served | None:
    """The newest job the service served (a worker that starts it serves that datum until a
    new one comes), if any."""
    with ctx.pfs.db.read() as conn:
        done = records.list_jobs(conn, pipeline=pipeline, states=(JobState.SUCCESS,), limit=1)
    if not done:
        return None
    try:
        return Served(done[0], _datum_of(ctx, done[0])[1])
    except HaathiError:  # its input commits were deleted since
        return None


def _datum_of(ctx: PpsContext, job: records.JobRow) -> tuple[Datum, DatumTask]:
    """The job's one datum; FailedPrecondition if it has more or fewer."""
    with ctx.pfs.db.read() as conn:
        version = records.version_row(conn, job.pipeline_id, job.version)
        spec = parse_spec(version.spec, stored=True)
        index = jobs.input_commits(conn, job, spec)
    found = form_datums(spec.input, glob_fn(ctx.pfs, index))
    if len(found) != 1:
        raise FailedPrecondition(f"{SINGLE_DATUM} (its input has {len(found)})")
    d = found[0]
    return d, DatumTask(d.id, jobs.task_inputs(index, d, frozenset()))


def _serve(ctx: PpsContext, job: records.JobRow, isolation: Isolation) -> Served:
    """The job's one datum, recorded; the job ended SUCCESS (or raising, the reason it
    fails)."""
    d, task = _datum_of(ctx, job)
    with ctx.pfs.db.read() as conn:
        version = records.version_row(conn, job.pipeline_id, job.version)
    spec = parse_spec(version.spec, stored=True)
    context = jobs.job_context(ctx, spec, version, isolation)
    with ctx.pfs.db.write() as conn:
        datum_records.insert_datums(conn, job.id, [_record(job, d, d.hash(version.salt))])
        records.record_plan(conn, job.id, 1, 0, context)
        records.record_progress(conn, job.id, processed=1, failed=0, recovered=0)
    if not job_queue.end_job(ctx, job, JobState.SUCCESS, None, root=job_queue.base_root(ctx, job)):
        raise FailedPrecondition(f"job {job.pipeline}@{job.commit_id} was stopped")
    return Served(job, task)


def _record(job: records.JobRow, d: Datum, h: str) -> datum_records.DatumRecord:
    return datum_records.DatumRecord(
        d.id, h, DatumState.SUCCESS.value, [i.to_dict() for i in d.inputs],
        attempts=1, source_job=job.id, started_at=now(), duration=0.0,
        log="haathi: served by the pipeline's service (its output is not recorded here)\n",
    )  # fmt: skip
