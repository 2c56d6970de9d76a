"""The job queue: a job per open output commit, and its way through the queue: whether it can
run now, claimed by a runner (under a lease), given back, ended, stopped.

Running a claimed job is :mod:`haathi.pps.jobs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from haathi.auth import activation, bindings
from haathi.errors import HaathiError
from haathi.meta.blob_index import keep_reused
from haathi.models.auth import Permission, pipeline_subject
from haathi.models.info import JobInfo, JobState
from haathi.pfs import commits, provenance, triggers
from haathi.pfs.commits import find_commit
from haathi.pfs.context import now
from haathi.pfs.repos import repo_id_of
from haathi.pps import datum_records, openlineage, records
from haathi.pps.context import PpsContext
from haathi.pps.pipelines import RUNNING, input_branches, spec_of
from haathi.pps.worker import cancel_event
from haathi.tree import prolly


def ensure_jobs(ctx: PpsContext) -> int:
    """Queue a job for every open output commit that has none (e.g. after a crash)."""
    made = 0
    with ctx.pfs.db.write() as conn:
        for p in records.all_pipelines(conn):
            spec, _ = spec_of(conn, p)
            try:
                repo_id = repo_id_of(conn, p.name)
            except HaathiError:
                continue
            for cid in commits.open_auto_on_branch(conn, repo_id, spec.output_branch):
                made += records.queue_missing_job(conn, p.id, p.version, cid)
    return made


@dataclass(frozen=True)
class Readiness:
    ready: bool
    why: str = ""  # what it waits for, or why it cannot run
    unrunnable: bool = False


def readiness(conn: Connection, job: records.JobRow) -> Readiness:
    """Whether a queued job can run now: its inputs and its previous output are finished."""
    repo_id = repo_id_of(conn, job.pipeline)
    out = find_commit(conn, repo_id, job.pipeline, job.commit_id)
    if out is None:
        return Readiness(False, "its output commit was deleted", unrunnable=True)
    p = records.pipeline_row(conn, job.pipeline)
    if p.state != RUNNING:
        return Readiness(False, f"pipeline {job.pipeline} is stopped")
    failed = []
    for repo, cid in provenance.direct_provenance(conn, repo_id, job.commit_id):
        c = find_commit(conn, repo_id_of(conn, repo), repo, cid)
        if c is None:
            return Readiness(False, f"input commit {repo}@{cid} was deleted", unrunnable=True)
        if not c.finished:
            return Readiness(False, f"waits for input commit {repo}@{cid} to finish")
        if c.error:
            failed.append(repo)
    if out.parent is not None:
        parent = find_commit(conn, repo_id, job.pipeline, out.parent)
        if parent is not None and not parent.finished:
            return Readiness(False, f"waits for the previous job {job.pipeline}@{out.parent}")
        previous = records.job_of_commit(conn, job.pipeline, out.parent)
        if previous is not None and previous.state == JobState.EGRESSING:
            return Readiness(
                False, f"waits for the previous job {job.pipeline}@{out.parent} to egress"
            )
    if failed:
        return Readiness(
            False,
            "unrunnable because the following upstream pipelines failed: " + ", ".join(failed),
            unrunnable=True,
        )
    denied = _unreadable_inputs(conn, job.pipeline)
    if denied:
        return Readiness(
            False,
            f"{pipeline_subject(job.pipeline)} is not authorized to read input repo "
            f"{', '.join(denied)}: needs repoReader",
            unrunnable=True,
        )
    return Readiness(True)


def _unreadable_inputs(conn: Connection, pipeline: str) -> list[str]:
    """With auth on: the input repos the pipeline's own identity may not read."""
    if not activation.is_active(conn):
        return []
    spec, _ = spec_of(conn, records.pipeline_row(conn, pipeline))
    who = pipeline_subject(pipeline)
    return [
        repo
        for repo, _ in input_branches(spec)
        if Permission.READ not in bindings.permissions(conn, who, repo)
    ]


def claim(ctx: PpsContext, job: records.JobRow) -> bool:
    """Take the job for this runner (queued, or running under an expired lease; or, as
    ``job`` was read, egressing with no runner or an expired lease: then only its egress is
    left to do)."""
    t = now()
    with ctx.pfs.db.write() as conn:
        lease = t + timedelta(seconds=ctx.job_lease_s)
        if job.state == JobState.EGRESSING:
            return records.claim_egress(conn, job.id, ctx.runner_id, t, lease)
        if not records.claim(conn, job.id, ctx.runner_id, t, lease):
            return False
        datum_records.forget_jobs(conn, [job.id])  # a restarted job
    return True


def release(ctx: PpsContext, job: records.JobRow) -> bool:
    """Give a job this runner holds back to the queue at once (no lease left to expire) and
    cancel its datums running in this process; False if it holds no such job (it ended)."""
    with ctx.pfs.db.write() as conn:
        released = records.release(conn, job.id, ctx.runner_id)
    if not released:
        return False
    cancel_event(job.commit_id).set()
    return True


def end_job(
    ctx: PpsContext,
    job: records.JobRow,
    state: JobState,
    reason: str | None,
    *,
    root: bytes | None = None,
    keep: Sequence[bytes] = (),
    since_epoch: int | None = None,
    only_if_running: bool = True,
    egress: dict[str, Any] | None = None,
) -> bool:
    """Record the job's end and finish its output commit (with ``reason`` as its error).

    With ``state`` EGRESSING (and ``egress``, its record), the job has not ended: its output
    commit is finished as a successful one's, and :func:`end_egress` ends the job."""
    with ctx.pfs.db.write() as conn:
        runner = ctx.runner_id if only_if_running else None
        if state == JobState.EGRESSING:
            assert runner is not None and egress is not None
            if not records.start_egress(conn, job.id, runner, egress):
                return False
        elif not records.end(conn, job.id, state, reason, runner):
            return False
        repo_id = repo_id_of(conn, job.pipeline)
        if since_epoch is not None:
            keep_reused(conn, since_epoch, keep)
        out = find_commit(conn, repo_id, job.pipeline, job.commit_id)
        if out is not None and not out.finished:
            made = state in (JobState.SUCCESS, JobState.EGRESSING)
            error = None if made else (reason or state.value.lower())
            provenance.finish_auto_commit(
                conn,
                repo_id,
                job.commit_id,
                root=root,
                totals=prolly.totals(root, ctx.pfs.nodes),
                error=error,
            )
            triggers.on_finish(conn, repo_id, job.pipeline, job.commit_id)
    if state != JobState.EGRESSING:
        openlineage.job_ended(ctx, job, state, reason)
    return True


def end_egress(
    ctx: PpsContext,
    job: records.JobRow,
    state: JobState,
    reason: str | None,
    egress: dict[str, Any],
) -> bool:
    """End an egressing job this runner holds (its output commit is finished already) with
    how its egress went; False if it no longer holds it (the job was stopped: then only the
    egress record is written)."""
    with ctx.pfs.db.write() as conn:
        ended = records.end(conn, job.id, state, reason, ctx.runner_id, egress)
        if not ended:
            records.record_egress(conn, job.id, egress)
    if ended:
        openlineage.job_ended(ctx, job, state, reason)
    return ended


def stop_job(ctx: PpsContext, pipeline: str, commit_id: str) -> records.JobRow:
    """Kill a job: queued ones end at once, a running one when its runner notices."""
    with ctx.pfs.db.read() as conn:
        job = records.find_job(conn, pipeline, commit_id)
    if job.state == JobState.CREATED:
        end_job(
            ctx,
            job,
            JobState.KILLED,
            "job stopped",
            root=base_root(ctx, job),
            only_if_running=False,
        )
    elif job.state in (JobState.RUNNING, JobState.EGRESSING):
        with ctx.pfs.db.write() as conn:
            records.kill(conn, job.id, "job stopped")
    with ctx.pfs.db.read() as conn:
        return records.job_by_pk(conn, job.id)


def base_job(ctx: PpsContext, job: records.JobRow) -> tuple[records.JobRow | None, bytes | None]:
    """The pipeline's last job before this one that made its output (it succeeded, or only
    its egress failed), and its output tree."""
    with ctx.pfs.db.read() as conn:
        base = records.last_success_before(conn, job)
        if base is None:
            return None, None
        c = find_commit(conn, repo_id_of(conn, job.pipeline), job.pipeline, base.commit_id)
    return base, c.root if c is not None else None


def base_root(ctx: PpsContext, job: records.JobRow) -> bytes | None:
    """The output tree the job builds on (its last successful predecessor's)."""
    return base_job(ctx, job)[1]


def job_info(ctx: PpsContext, job: records.JobRow) -> JobInfo:
    """The job with the input commits it reads."""
    with ctx.pfs.db.read() as conn:
        rid = repo_id_of(conn, job.pipeline)
        inputs = provenance.direct_provenance(conn, rid, job.commit_id)
    return job.info(tuple(f"{r}@{c}" for r, c in inputs))


def any_pipelines(ctx: PpsContext) -> bool:
    with ctx.pfs.db.read() as conn:
        return records.any_pipeline(conn)
