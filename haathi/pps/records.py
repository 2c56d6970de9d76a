"""Rows of pipelines, pipeline versions, jobs and datums, and the infos built from them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select

from haathi.errors import NotFound
from haathi.meta.schema import datums, jobs, pipeline_versions, pipelines
from haathi.models.info import DatumInfo, DatumState, JobInfo, JobState
from haathi.models.limits import check_limit
from haathi.pfs.context import as_utc


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


def job_from_row(r: Row[Any]) -> JobRow:
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


def job_query() -> Any:
    return select(*_JOB_COLUMNS).join(pipelines, pipelines.c.id == jobs.c.pipeline_id)


def job_by_pk(conn: Connection, pk: int) -> JobRow:
    r = conn.execute(job_query().where(jobs.c.id == pk)).first()
    if r is None:
        raise NotFound(f"job {pk} not found")
    return job_from_row(r)


def last_success_before(conn: Connection, job: JobRow) -> JobRow | None:
    """The pipeline's last successful job before ``job`` (whose output it builds on)."""
    r = conn.execute(
        job_query()
        .where(
            jobs.c.pipeline_id == job.pipeline_id,
            jobs.c.id < job.id,
            jobs.c.state == JobState.SUCCESS.value,
        )
        .order_by(jobs.c.id.desc())
        .limit(1)
    ).first()
    return job_from_row(r) if r is not None else None


def find_job(conn: Connection, pipeline: str, commit_id: str) -> JobRow:
    """The job of ``pipeline`` for commit set ``commit_id`` (a unique prefix is enough)."""
    q = job_query().where(pipelines.c.name == pipeline)
    if len(commit_id) == 32:
        q = q.where(jobs.c.commit_id == commit_id)
    else:
        q = q.where(jobs.c.commit_id.like(commit_id + "%"))
    rows = conn.execute(q.limit(2)).all()
    if len(rows) != 1:
        pipeline_row(conn, pipeline)
        raise NotFound(f"job {pipeline}@{commit_id} not found", pipeline=pipeline, job=commit_id)
    return job_from_row(rows[0])


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
    q = job_query()
    if pipeline is not None:
        q = q.where(pipelines.c.name == pipeline)
    if commit_id is not None:
        q = q.where(jobs.c.commit_id == commit_id)
    if states:
        q = q.where(jobs.c.state.in_([s.value for s in states]))
    q = q.order_by(jobs.c.id.desc())
    if limit:
        q = q.limit(limit)
    return [job_from_row(r) for r in conn.execute(q)]


def datum_info(job: JobRow, r: Row[Any]) -> DatumInfo:
    m = r._mapping
    return DatumInfo(
        job=f"{job.pipeline}@{job.commit_id}",
        id=str(m["datum_id"]),
        state=DatumState(m["state"]),
        hash=str(m["hash"]),
        attempts=int(m["attempts"]),
        inputs=tuple(json.loads(m["inputs"])),
        outputs=tuple(
            {"path": p, "hash": h, "size_bytes": n} for p, h, n in json.loads(m["outputs"])
        ),
        env=json.loads(m["env"] or "{}"),
        reason=m["reason"],
        started=as_utc(m["started_at"]),
        duration_s=m["duration"],
        exit_code=m["exit_code"],
    )


def job_datums(conn: Connection, job: JobRow) -> list[DatumInfo]:
    rows = conn.execute(select(datums).where(datums.c.job_id == job.id).order_by(datums.c.datum_id))
    return [datum_info(job, r) for r in rows]


def job_logs(conn: Connection, job: JobRow, datum: str | None) -> list[tuple[str, str]]:
    """(datum id, user output) of the job's datums that ran (one datum, given its ID)."""
    q = select(datums.c.datum_id, datums.c.log).where(datums.c.job_id == job.id)
    if datum is not None:
        q = q.where(datums.c.datum_id.like(datum + "%"))
    rows = conn.execute(q.order_by(datums.c.started_at, datums.c.datum_id)).all()
    if datum is not None and not rows:
        raise NotFound(f"datum {datum} not found in job {job.pipeline}@{job.commit_id}")
    return [(str(d), str(log)) for d, log in rows if log]


_OUTPUT_VERSION = (  # built once: inspect commit runs it every time
    select(jobs.c.version)
    .join(pipelines, pipelines.c.id == jobs.c.pipeline_id)
    .where(pipelines.c.name == bindparam("repo"), jobs.c.commit_id == bindparam("cid"))
)


def output_version(conn: Connection, repo: str, commit_id: str) -> int | None:
    """The pipeline spec version that made output commit ``repo@commit_id`` (None: not one)."""
    row = conn.execute(_OUTPUT_VERSION, {"repo": repo, "cid": commit_id}).first()
    return None if row is None else int(row[0])
