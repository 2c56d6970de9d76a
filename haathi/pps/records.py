"""Rows of pipelines, pipeline versions and jobs, and the infos built from them: the owner of
the ``pipelines``, ``pipeline_versions`` and ``jobs`` tables (datums: ``datum_records``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, insert, or_, select, update

from haathi.errors import NotFound
from haathi.meta.schema import jobs, pipeline_versions, pipelines
from haathi.models.info import JobInfo, JobState
from haathi.models.limits import check_limit
from haathi.pfs.context import as_utc, now


@dataclass(frozen=True, slots=True)
class PipelineRow:
    id: int
    name: str
    version: int
    state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VersionRow:
    pipeline_id: int
    version: int
    spec: dict[str, Any]
    spec_hash: str
    salt: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    pipeline_id: int
    pipeline: str
    commit_id: str
    version: int
    state: JobState
    reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: tuple[int, int, int, int, int]  # total, processed, skipped, failed, recovered
    context: dict[str, Any]

    def info(self, inputs: tuple[str, ...] = ()) -> JobInfo:
        total, processed, skipped, failed, recovered = self.counts
        return JobInfo(
            pipeline=self.pipeline,
            id=self.commit_id,
            state=self.state,
            version=self.version,
            created=self.created_at,
            started=self.started_at,
            finished=self.finished_at,
            data_total=total,
            data_processed=processed,
            data_skipped=skipped,
            data_failed=failed,
            data_recovered=recovered,
            reason=self.reason,
            inputs=inputs,
            output_commit=f"{self.pipeline}@{self.commit_id}",
            context=self.context,
        )


def _utc(t: Any) -> datetime:
    out = as_utc(t)
    assert out is not None
    return out


def pipeline_row(conn: Connection, name: str) -> PipelineRow:
    r = conn.execute(select(pipelines).where(pipelines.c.name == name)).first()
    if r is None:
        raise NotFound(f"pipeline {name} not found", pipeline=name)
    return _pipeline(r)


def find_pipeline(conn: Connection, name: str) -> PipelineRow | None:
    r = conn.execute(select(pipelines).where(pipelines.c.name == name)).first()
    return None if r is None else _pipeline(r)


def _pipeline(r: Row[Any]) -> PipelineRow:
    m = r._mapping
    return PipelineRow(
        int(m["id"]),
        str(m["name"]),
        int(m["version"]),
        str(m["state"]),
        _utc(m["created_at"]),
        _utc(m["updated_at"]),
    )


def all_pipelines(conn: Connection) -> list[PipelineRow]:
    return [_pipeline(r) for r in conn.execute(select(pipelines).order_by(pipelines.c.name))]


def version_row(conn: Connection, pipeline_id: int, version: int) -> VersionRow:
    r = conn.execute(
        select(pipeline_versions).where(
            pipeline_versions.c.pipeline_id == pipeline_id,
            pipeline_versions.c.version == version,
        )
    ).first()
    if r is None:
        raise NotFound(f"pipeline version {version} not found")
    m = r._mapping
    return VersionRow(
        int(m["pipeline_id"]),
        int(m["version"]),
        json.loads(m["spec"]),
        str(m["spec_hash"]),
        str(m["salt"]),
        _utc(m["created_at"]),
    )


_JOB_COLUMNS = (jobs, pipelines.c.name.label("pipeline_name"))


def _job_from_row(r: Row[Any]) -> JobRow:
    m = r._mapping
    return JobRow(
        id=int(m["id"]),
        pipeline_id=int(m["pipeline_id"]),
        pipeline=str(m["pipeline_name"]),
        commit_id=str(m["commit_id"]),
        version=int(m["version"]),
        state=JobState(m["state"]),
        reason=m["reason"],
        created_at=_utc(m["created_at"]),
        started_at=as_utc(m["started_at"]),
        finished_at=as_utc(m["finished_at"]),
        counts=(
            int(m["data_total"]),
            int(m["data_processed"]),
            int(m["data_skipped"]),
            int(m["data_failed"]),
            int(m["data_recovered"]),
        ),
        context=json.loads(m["context"] or "{}"),
    )


def _job_query() -> Any:
    return select(*_JOB_COLUMNS).join(pipelines, pipelines.c.id == jobs.c.pipeline_id)


def job_by_pk(conn: Connection, pk: int) -> JobRow:
    r = conn.execute(_job_query().where(jobs.c.id == pk)).first()
    if r is None:
        raise NotFound(f"job {pk} not found")
    return _job_from_row(r)


def last_success_before(conn: Connection, job: JobRow) -> JobRow | None:
    """The pipeline's last successful job before ``job`` (whose output it builds on)."""
    r = conn.execute(
        _job_query()
        .where(
            jobs.c.pipeline_id == job.pipeline_id,
            jobs.c.id < job.id,
            jobs.c.state == JobState.SUCCESS.value,
        )
        .order_by(jobs.c.id.desc())
        .limit(1)
    ).first()
    return _job_from_row(r) if r is not None else None


def find_job(conn: Connection, pipeline: str, commit_id: str) -> JobRow:
    """The job of ``pipeline`` for commit set ``commit_id`` (a unique prefix is enough)."""
    q = _job_query().where(pipelines.c.name == pipeline)
    if len(commit_id) == 32:
        q = q.where(jobs.c.commit_id == commit_id)
    else:
        q = q.where(jobs.c.commit_id.like(commit_id + "%"))
    rows = conn.execute(q.limit(2)).all()
    if len(rows) != 1:
        pipeline_row(conn, pipeline)
        raise NotFound(f"job {pipeline}@{commit_id} not found", pipeline=pipeline, job=commit_id)
    return _job_from_row(rows[0])


def job_of_commit(conn: Connection, pipeline: str, commit_id: str) -> JobRow | None:
    """The job of ``pipeline`` that made output commit ``commit_id``, if any."""
    q = _job_query().where(jobs.c.commit_id == commit_id, pipelines.c.name == pipeline)
    row = conn.execute(q).first()
    return _job_from_row(row) if row is not None else None


def list_jobs(
    conn: Connection,
    *,
    pipeline: str | None = None,
    commit_id: str | None = None,
    states: tuple[JobState, ...] = (),
    limit: int | None = None,
) -> list[JobRow]:
    """Jobs, newest first; at most ``limit`` of them (None or 0: all)."""
    check_limit(limit)
    q = _job_query()
    if pipeline is not None:
        q = q.where(pipelines.c.name == pipeline)
    if commit_id is not None:
        q = q.where(jobs.c.commit_id == commit_id)
    if states:
        q = q.where(jobs.c.state.in_([s.value for s in states]))
    q = q.order_by(jobs.c.id.desc())
    if limit:
        q = q.limit(limit)
    return [_job_from_row(r) for r in conn.execute(q)]


_OUTPUT_VERSION = (  # built once: inspect commit runs it every time
    select(jobs.c.version)
    .join(pipelines, pipelines.c.id == jobs.c.pipeline_id)
    .where(pipelines.c.name == bindparam("repo"), jobs.c.commit_id == bindparam("cid"))
)


def output_version(conn: Connection, repo: str, commit_id: str) -> int | None:
    """The pipeline spec version that made output commit ``repo@commit_id`` (None: not one)."""
    row = conn.execute(_OUTPUT_VERSION, {"repo": repo, "cid": commit_id}).first()
    return None if row is None else int(row[0])


# ---- pipelines and their versions -----------------------------------------------------------


def any_pipeline(conn: Connection) -> bool:
    return conn.execute(select(pipelines.c.id).limit(1)).first() is not None


def insert_pipeline(conn: Connection, name: str, state: str, at: datetime) -> PipelineRow:
    """A new pipeline at version 1."""
    conn.execute(
        insert(pipelines).values(name=name, version=1, state=state, created_at=at, updated_at=at)
    )
    return pipeline_row(conn, name)


def set_version(conn: Connection, pipeline_id: int, version: int, state: str, at: datetime) -> None:
    """Make ``version`` the pipeline's current one (updated at ``at``), in ``state``."""
    conn.execute(
        update(pipelines)
        .where(pipelines.c.id == pipeline_id)
        .values(version=version, state=state, updated_at=at)
    )


def set_state(conn: Connection, pipeline_id: int, state: str) -> None:
    conn.execute(update(pipelines).where(pipelines.c.id == pipeline_id).values(state=state))


def insert_version(
    conn: Connection, pipeline_id: int, version: int, spec: dict[str, Any], salt: str
) -> None:
    """Store ``version`` of the pipeline's effective spec (as canonical JSON) with its salt."""
    text = json.dumps(spec, sort_keys=True)
    conn.execute(
        insert(pipeline_versions).values(
            pipeline_id=pipeline_id,
            version=version,
            spec=text,
            spec_hash=hashlib.sha256(text.encode()).hexdigest(),
            salt=salt,
            created_at=now(),
        )
    )


def delete_pipeline(conn: Connection, pipeline_id: int) -> None:
    """Remove the pipeline with its versions and jobs (their datums go first: see
    :func:`haathi.pps.datum_records.forget_jobs`)."""
    conn.execute(delete(jobs).where(jobs.c.pipeline_id == pipeline_id))
    conn.execute(delete(pipeline_versions).where(pipeline_versions.c.pipeline_id == pipeline_id))
    conn.execute(delete(pipelines).where(pipelines.c.id == pipeline_id))


# ---- the job queue ---------------------------------------------------------------------------


def _job_values(pipeline_id: int, version: int, cid: str) -> dict[str, Any]:
    return {
        "pipeline_id": pipeline_id, "commit_id": cid, "version": version,
        "state": JobState.CREATED.value, "created_at": now(), "context": "{}",
    }  # fmt: skip


def queue_job(conn: Connection, pipeline_id: int, version: int, cid: str) -> None:
    """Queue the job that fills output commit ``cid``."""
    conn.execute(insert(jobs).values(**_job_values(pipeline_id, version, cid)))


def queue_missing_job(conn: Connection, pipeline_id: int, version: int, cid: str) -> int:
    """Queue the job of output commit ``cid`` unless it has one (a concurrent runner,
    ``haathi serve``'s background runner or a ``run worker``, may queue it first); 1 if this
    call queued it."""
    have = conn.execute(
        select(jobs.c.id).where(jobs.c.pipeline_id == pipeline_id, jobs.c.commit_id == cid)
    ).first()
    if have is not None:
        return 0
    values = _job_values(pipeline_id, version, cid)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return conn.execute(pg_insert(jobs).values(**values).on_conflict_do_nothing()).rowcount
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(jobs).values(**values).on_conflict_do_nothing()
        return conn.execute(stmt).rowcount
    conn.execute(insert(jobs).values(**values))
    return 1


def job_ids(conn: Connection, pipeline_id: int) -> list[int]:
    """The row IDs of the pipeline's jobs."""
    rows = conn.execute(select(jobs.c.id).where(jobs.c.pipeline_id == pipeline_id))
    return [int(r[0]) for r in rows]


def claim(conn: Connection, job_id: int, runner: str, at: datetime, lease_until: datetime) -> bool:
    """Take the job for ``runner`` (queued, or running under a lease expired at ``at``)."""
    res = conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            or_(
                jobs.c.state == JobState.CREATED.value,
                and_(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_until < at),
            ),
        )
        .values(
            state=JobState.RUNNING.value,
            runner=runner,
            started_at=at,
            reason=None,
            lease_until=lease_until,
        )
    )
    return res.rowcount == 1


def release(conn: Connection, job_id: int, runner: str) -> bool:
    """Give the job ``runner`` is running back to the queue; False if it runs no such job."""
    res = conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.runner == runner,
        )
        .values(state=JobState.CREATED.value, runner=None, lease_until=None)
    )
    return res.rowcount == 1


def end(
    conn: Connection, job_id: int, state: JobState, reason: str | None, runner: str | None
) -> bool:
    """Record the job's end in ``state``; with ``runner``, only if that runner is running it.
    Whether it did."""
    cond = [jobs.c.id == job_id]
    if runner is not None:
        cond += [jobs.c.state == JobState.RUNNING.value, jobs.c.runner == runner]
    res = conn.execute(
        update(jobs)
        .where(*cond)
        .values(state=state.value, reason=reason, finished_at=now(), lease_until=None)
    )
    return res.rowcount == 1


def kill(conn: Connection, job_id: int, reason: str) -> None:
    """Mark a running job KILLED; its runner notices and stops it."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value)
        .values(state=JobState.KILLED.value, reason=reason, finished_at=now())
    )


def job_state(conn: Connection, job_id: int) -> str | None:
    return conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).scalar()


def renew_lease(conn: Connection, job_id: int, until: datetime) -> None:
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(lease_until=until))


def record_plan(conn: Connection, job_id: int, total: int, skipped: int, context: str) -> None:
    """The job's datum count, how many it skips, and its context (JSON)."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(data_total=total, data_skipped=skipped, context=context)
    )


def record_progress(
    conn: Connection, job_id: int, *, processed: int, failed: int, recovered: int
) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(data_processed=processed, data_failed=failed, data_recovered=recovered)
    )
