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
from haathi.models.ids import split_key
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
    egress: dict[str, Any] | None = None  # set once the job reached its egress

    @property
    def made_output(self) -> bool:
        """Whether the job's output commit holds its complete output: it succeeded, or its
        datums did and only its egress did not (or has not yet)."""
        return self.state == JobState.SUCCESS or self.egress is not None

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
            egress=self.egress,
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


def all_pipelines(conn: Connection, project: str | None = None) -> list[PipelineRow]:
    """Every pipeline (of ``project``; None: of every project), by key."""
    stmt = select(pipelines).order_by(pipelines.c.name)
    if project is not None:
        stmt = stmt.where(pipelines.c.project == project)
    return [_pipeline(r) for r in conn.execute(stmt)]


def version_row(conn: Connection, pipeline_id: int, version: int) -> VersionRow:
    r = conn.execute(
        select(pipeline_versions).where(
            pipeline_versions.c.pipeline_id == pipeline_id,
            pipeline_versions.c.version == version,
        )
    ).first()
    if r is None:
        raise NotFound(f"pipeline version {version} not found")
    return _version(r)


def _version(r: Row[Any]) -> VersionRow:
    m = r._mapping
    return VersionRow(
        int(m["pipeline_id"]),
        int(m["version"]),
        json.loads(m["spec"]),
        str(m["spec_hash"]),
        str(m["salt"]),
        _utc(m["created_at"]),
    )


def versions(conn: Connection, pipeline_id: int, since: int = 1) -> list[VersionRow]:
    """The pipeline's versions from ``since`` on, newest first."""
    rows = conn.execute(
        select(pipeline_versions)
        .where(
            pipeline_versions.c.pipeline_id == pipeline_id,
            pipeline_versions.c.version >= since,
        )
        .order_by(pipeline_versions.c.version.desc())
    )
    return [_version(r) for r in rows]


def last_job_state(conn: Connection, pipeline_id: int, version: int) -> JobState | None:
    """The state of the newest job that version ``version`` of the pipeline ran, if any."""
    state = conn.execute(
        select(jobs.c.state)
        .where(jobs.c.pipeline_id == pipeline_id, jobs.c.version == version)
        .order_by(jobs.c.id.desc())
        .limit(1)
    ).scalar()
    return None if state is None else JobState(state)


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
        egress=json.loads(m["egress"]) if m["egress"] else None,
    )


def _job_query() -> Any:
    return select(*_JOB_COLUMNS).join(pipelines, pipelines.c.id == jobs.c.pipeline_id)


def job_by_pk(conn: Connection, pk: int) -> JobRow:
    r = conn.execute(_job_query().where(jobs.c.id == pk)).first()
    if r is None:
        raise NotFound(f"job {pk} not found")
    return _job_from_row(r)


def last_success_before(conn: Connection, job: JobRow) -> JobRow | None:
    """The pipeline's last job before ``job`` that made its output (whose output it builds
    on): a successful one, or one whose datums succeeded and only its egress failed (see
    :attr:`JobRow.made_output`)."""
    r = conn.execute(
        _job_query()
        .where(
            jobs.c.pipeline_id == job.pipeline_id,
            jobs.c.id < job.id,
            or_(jobs.c.state == JobState.SUCCESS.value, jobs.c.egress.is_not(None)),
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
    history: int = -1,
    project: str | None = None,
) -> list[JobRow]:
    """Jobs, newest first (of the pipelines of ``project``, if given); at most ``limit`` of
    them (None or 0: all); of each pipeline's current version and the ``history`` versions
    before it (-1: of every version)."""
    check_limit(limit)
    q = _job_query()
    if history >= 0:
        q = q.where(jobs.c.version >= pipelines.c.version - history)
    if pipeline is not None:
        q = q.where(pipelines.c.name == pipeline)
    if project is not None:
        q = q.where(pipelines.c.project == project)
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
        insert(pipelines).values(
            name=name,
            version=1,
            state=state,
            created_at=at,
            updated_at=at,
            project=split_key(name)[0],
        )
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


def claim_egress(
    conn: Connection, job_id: int, runner: str, at: datetime, lease_until: datetime
) -> bool:
    """Take over the egress of a job whose runner stopped or went silent (no lease, or an
    expired one); it stays EGRESSING."""
    res = conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.state == JobState.EGRESSING.value,
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < at),
        )
        .values(runner=runner, lease_until=lease_until)
    )
    return res.rowcount == 1


_ACTIVE = (JobState.RUNNING.value, JobState.EGRESSING.value)  # what a runner holds


def release(conn: Connection, job_id: int, runner: str) -> bool:
    """Give the job ``runner`` is running back to the queue (an egressing job stays so, for
    the next runner to egress); False if it runs no such job."""
    mine = (jobs.c.id == job_id, jobs.c.runner == runner)
    res = conn.execute(
        update(jobs)
        .where(*mine, jobs.c.state == JobState.RUNNING.value)
        .values(state=JobState.CREATED.value, runner=None, lease_until=None)
    )
    if res.rowcount == 1:
        return True
    res = conn.execute(
        update(jobs)
        .where(*mine, jobs.c.state == JobState.EGRESSING.value)
        .values(runner=None, lease_until=None)
    )
    return res.rowcount == 1


def start_egress(conn: Connection, job_id: int, runner: str, egress: dict[str, Any]) -> bool:
    """The job ``runner`` runs has made its output and egresses it now."""
    res = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value, jobs.c.runner == runner)
        .values(state=JobState.EGRESSING.value, egress=json.dumps(egress))
    )
    return res.rowcount == 1


def record_egress(conn: Connection, job_id: int, egress: dict[str, Any]) -> None:
    """How the job's egress went so far (attempts, counts, error)."""
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(egress=json.dumps(egress)))


def end(
    conn: Connection,
    job_id: int,
    state: JobState,
    reason: str | None,
    runner: str | None,
    egress: dict[str, Any] | None = None,
) -> bool:
    """Record the job's end in ``state`` (with how its ``egress`` went, if it had one); with
    ``runner``, only if that runner is running it. Whether it did."""
    cond = [jobs.c.id == job_id]
    if runner is not None:
        cond += [jobs.c.state.in_(_ACTIVE), jobs.c.runner == runner]
    values: dict[str, Any] = {
        "state": state.value, "reason": reason, "finished_at": now(), "lease_until": None,
    }  # fmt: skip
    if egress is not None:
        values["egress"] = json.dumps(egress)
    res = conn.execute(update(jobs).where(*cond).values(**values))
    return res.rowcount == 1


def kill(conn: Connection, job_id: int, reason: str) -> None:
    """Mark a running (or egressing) job KILLED; its runner notices and stops it."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state.in_(_ACTIVE))
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
