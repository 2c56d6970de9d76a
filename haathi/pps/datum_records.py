"""The record of every datum of every job, and the index of the input paths each one read: the
owner of the ``datums``, ``datum_inputs`` and ``kept_datums`` tables.

A job's datum set is its rows in ``datums`` (skipped datums too, naming the job that ran
them); or, for a job that *keeps* the datums of an earlier job (a ``kept_datums`` row), that
job's rows, each read as SKIPPED with this job's input commits, under this job's own rows
(the datums it ran, or skipped with an outcome the kept job does not hold). A no-change job
of 100,000 datums then writes one row, not 100,000. A kept job keeps no other's, so a datum
is found in at most two places. ``datum_inputs`` says which datums of a job read a path (a
file, or a directory as itself), the index behind downstream lineage; a keeping job indexes
its own rows, the kept job's rows index the rest.

Every reader below sees a job's whole datum set, whichever way it is stored.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, distinct, func, insert, literal, select

from haathi.errors import InvalidArgument, NotFound
from haathi.meta.database import batches, param_marks
from haathi.meta.schema import datum_inputs, datums, kept_datums
from haathi.models.info import DatumInfo, DatumState
from haathi.models.limits import check_limit
from haathi.pfs.context import as_utc
from haathi.pps.records import JobRow

_SKIPPED = DatumState.SKIPPED.value
_DATUM_ID = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class DatumRecord:
    """One datum of one job, as recorded."""

    datum_id: str
    hash: str
    state: str
    inputs: list[dict[str, Any]]  # what the datum read: name, repo, branch, commit, path, ...
    outputs: str = "[]"  # JSON: [[path, hash, size], ...]
    env: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    started_at: datetime | None = None
    duration: float | None = None
    log: str = ""
    attempts: int = 0
    source_job: int | None = None  # the job that ran it (an earlier one if SKIPPED)
    exit_code: int | None = None


def insert_datums(conn: Connection, job_id: int, records: Sequence[DatumRecord]) -> None:
    """Record datums of the job."""
    if not records:
        return
    conn.execute(
        insert(datums),
        [
            {
                "job_id": job_id,
                "datum_id": r.datum_id,
                "hash": r.hash,
                "state": r.state,
                "inputs": json.dumps(r.inputs),
                "outputs": r.outputs,
                "env": json.dumps(r.env),
                "reason": r.reason,
                "started_at": r.started_at,
                "duration": r.duration,
                "log": r.log,
                "attempts": r.attempts,
                "source_job": r.source_job,
                "exit_code": r.exit_code,
            }
            for r in records
        ],
    )


class Skipped(NamedTuple):
    """A datum a job skips: its record carries the outcome of the job that ran it (a tuple:
    a job may make 100,000 of these at once)."""

    datum_id: str
    hash: str
    inputs: str  # JSON, as DatumRecord.inputs
    outputs: str  # JSON: [[path, hash, size], ...] (the earlier run's)
    source_job: int  # the job that ran it


_SKIPPED_COLUMNS = ("job_id", "datum_id", "hash", "state", "inputs", "outputs", "source_job")


def insert_skipped(conn: Connection, job_id: int, skipped: Iterable[Skipped]) -> None:
    """Record datums the job skips (state SKIPPED, no attempts, env or log of their own).

    A no-change job of 100,000 datums writes 100,000 of these: as one driver-level
    ``executemany`` of tuples (SQLAlchemy's per-row parameter processing of the same insert
    was a fifth of such a job's time)."""
    rows = sorted(
        (job_id, k.datum_id, k.hash, _SKIPPED, k.inputs, k.outputs, k.source_job, 0, "{}", "")
        for k in skipped
    )  # in key order: each index insert appends (SQLite's quick path), none splits a page
    if rows:
        columns = ", ".join((*_SKIPPED_COLUMNS, "attempts", "env", "log"))
        marks = param_marks(conn, len(_SKIPPED_COLUMNS) + 3)
        conn.exec_driver_sql(f"INSERT INTO {datums.name} ({columns}) VALUES ({marks})", rows)


def insert_inputs(conn: Connection, job_id: int, read: Collection[tuple[int, str, str]]) -> None:
    """Index which input paths the job's datums read: (repo ID, path, datum ID); one row per
    datum and input of the job, so as plain tuples (see :func:`insert_skipped`)."""
    if read:
        sql = (
            f"INSERT INTO {datum_inputs.name} (job_id, repo_id, path, datum_id) "
            f"VALUES ({param_marks(conn, 4)})"
        )
        conn.exec_driver_sql(sql, sorted((job_id, r, p, d) for r, p, d in read))  # key order


def copy_skipped_inputs(conn: Connection, job_id: int, base_id: int, repo_ids: set[int]) -> bool:
    """Index the input paths of the job's SKIPPED datums (recorded already) by copying the
    base job's rows for them, in SQL: a datum ID names its inputs' repos and paths, so a
    datum skipped now read what it read then. Only when that holds for the base job's rows:
    each names a repo among ``repo_ids`` (the job's inputs now; a repo made again under its
    old name has a new ID) and every datum of the base job has rows (jobs recorded before
    this index existed have none). Whether it copied."""
    di = datum_inputs
    base_repos = conn.execute(select(di.c.repo_id).where(di.c.job_id == base_id).distinct())
    if not {int(r) for (r,) in base_repos} <= repo_ids:
        return False
    indexed = conn.execute(
        select(func.count(distinct(di.c.datum_id))).where(di.c.job_id == base_id)
    ).scalar()
    recorded = conn.execute(select(func.count()).where(datums.c.job_id == base_id)).scalar()
    if indexed != recorded:
        return False
    skipped_now = select(datums.c.datum_id).where(
        datums.c.job_id == job_id, datums.c.state == _SKIPPED
    )
    rows = select(literal(job_id), di.c.repo_id, di.c.path, di.c.datum_id).where(
        di.c.job_id == base_id, di.c.datum_id.in_(skipped_now)
    )
    conn.execute(insert(di).from_select(["job_id", "repo_id", "path", "datum_id"], rows))
    return True


def forget_jobs(conn: Connection, job_ids: Sequence[int]) -> None:
    """Drop the datum records and input index of the jobs ``job_ids`` (restarted or deleted:
    a job is kept by later ones only once it succeeded, and then goes only with its
    pipeline)."""
    for part in batches(job_ids):
        conn.execute(delete(datums).where(datums.c.job_id.in_(part)))
        conn.execute(delete(datum_inputs).where(datum_inputs.c.job_id.in_(part)))
        conn.execute(delete(kept_datums).where(kept_datums.c.job_id.in_(part)))


# ---- kept datums ----------------------------------------------------------------------------


class Kept(NamedTuple):
    """The job whose datum rows a job keeps, and the keeping job's input commits."""

    job_id: int
    commits: dict[tuple[str, str], str]  # (repo, branch) -> the keeping job's input commit


def keep_datums_of(
    conn: Connection, job_id: int, from_job_id: int, commits: Mapping[tuple[str, str], str]
) -> None:
    """Record that the job keeps the datums of job ``from_job_id`` (one that keeps none) it
    has no row of its own for; ``commits``: its input commit of each (repo, branch)."""
    listed = json.dumps(sorted([r, b, c] for (r, b), c in commits.items()))
    conn.execute(insert(kept_datums).values(job_id=job_id, from_job_id=from_job_id, commits=listed))


def kept_of(conn: Connection, job_id: int) -> Kept | None:
    """The job whose datums the job keeps (None: its own rows are all of them)."""
    row = conn.execute(
        select(kept_datums.c.from_job_id, kept_datums.c.commits).where(
            kept_datums.c.job_id == job_id
        )
    ).first()
    if row is None:
        return None
    return Kept(int(row[0]), {(r, b): c for r, b, c in json.loads(row[1])})


class OwnRow(NamedTuple):
    """A datum row of a job's own (of one that keeps another's: the few that differ)."""

    datum_id: str
    hash: str
    inputs: str  # JSON, as DatumRecord.inputs
    outputs: str  # JSON: [[path, hash, size], ...]
    source_job: int  # the job that ran it


def own_rows(conn: Connection, job_id: int) -> list[OwnRow]:
    """The job's own datum rows (not those it keeps of another job), by datum ID."""
    rows = conn.execute(
        select(
            datums.c.datum_id, datums.c.hash, datums.c.inputs, datums.c.outputs, datums.c.source_job
        )
        .where(datums.c.job_id == job_id)
        .order_by(datums.c.datum_id)
    )
    return [OwnRow(d, h, i, o, s or job_id) for d, h, i, o, s in rows]


_KEPT = {
    "state": _SKIPPED,
    "attempts": 0,
    "env": "{}",
    "reason": None,
    "started_at": None,
    "duration": None,
    "log": "",
    "exit_code": None,
}


def _as_kept(m: Mapping[str, Any], job_id: int, kept: Kept) -> dict[str, Any]:
    """A kept job's datum row as the keeping job's: SKIPPED, with the keeping job's input
    commits (the rest of its inputs follows from the datum's ID and hash, which are equal)."""
    inputs = json.loads(m["inputs"])
    for i in inputs:
        i["commit"] = kept.commits.get((i["repo"], i["branch"]), i["commit"])
    return {
        **m,
        **_KEPT,
        "job_id": job_id,
        "inputs": json.dumps(inputs),
        "source_job": m["source_job"] or kept.job_id,
    }


def _view(
    conn: Connection,
    job_id: int,
    *where: Any,
    limit: int | None = None,
    states: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The job's datum rows (``where``: conditions on the datum ID only), kept ones included,
    in datum ID order; at most ``limit``; only those in ``states`` (none: in any; kept rows
    are SKIPPED). Each part is one seek on the (job, datum ID) key (and, with ``states``, a
    scan along it until ``limit`` rows are found)."""
    q = select(datums).where(datums.c.job_id == job_id, *where).order_by(datums.c.datum_id)
    if states:
        q = q.where(datums.c.state.in_(sorted(states)))
    own = [dict(r._mapping) for r in conn.execute(q.limit(limit) if limit else q)]
    keeps = kept_of(conn, job_id)
    if keeps is None or (states and _SKIPPED not in states):
        return own
    mine = select(datums.c.datum_id).where(datums.c.job_id == job_id)
    q = (
        select(datums)
        .where(datums.c.job_id == keeps.job_id, datums.c.datum_id.not_in(mine), *where)
        .order_by(datums.c.datum_id)
    )
    rows = conn.execute(q.limit(limit) if limit else q)
    kept = [_as_kept(dict(r._mapping), job_id, keeps) for r in rows]
    merged = list(heapq.merge(own, kept, key=lambda m: str(m["datum_id"])))
    return merged[:limit] if limit else merged


# ---- reading --------------------------------------------------------------------------------


def datum_info(job: JobRow, m: Mapping[str, Any]) -> DatumInfo:
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


def job_datums(
    conn: Connection,
    job: JobRow,
    *,
    number: int | None = None,
    marker: str | None = None,
    states: Collection[DatumState] = (),
) -> list[DatumInfo]:
    """The job's datums in datum ID order: those after the datum ``marker`` (the last one of
    the previous page, as Pachyderm's ``pagination_marker``), at most ``number`` of them (None
    or 0: all), in one of ``states`` (none: in any, as Pachyderm's ListDatum filter). A page
    is a seek or two on the (job, datum ID) key, however deep it lies."""
    check_limit(number, "--number")
    where = []
    if marker is not None:
        if not _DATUM_ID.fullmatch(marker):
            raise InvalidArgument(
                f"bad --marker {marker!r}: expected a datum ID (64 hex digits)", marker=marker
            )
        if not _view(conn, job.id, datums.c.datum_id == marker):
            raise NotFound(
                f"--marker {marker} is not a datum of job {job.pipeline}@{job.commit_id}",
                datum=marker,
            )
        where.append(datums.c.datum_id > marker)
    wanted = {s.value for s in states}
    rows = _view(conn, job.id, *where, limit=number or None, states=wanted)
    return [datum_info(job, m) for m in rows]


def find_datum(conn: Connection, job: JobRow, datum: str) -> DatumInfo | None:
    """The job's datum ``datum``: its ID, or (4 characters or more) the first ID starting
    with it; a seek or two, not a listing of the job's datums."""
    if len(datum) >= 4:  # an ID is lowercase hex: those starting with it lie below it + "g"
        rows = _view(
            conn, job.id, datums.c.datum_id >= datum, datums.c.datum_id < datum + "g", limit=1
        )
    else:
        rows = _view(conn, job.id, datums.c.datum_id == datum, limit=1)
    return datum_info(job, rows[0]) if rows else None


def job_logs(conn: Connection, job: JobRow, datum: str | None) -> list[tuple[str, str]]:
    """(datum id, user output) of the job's datums that ran (one datum, given its ID)."""
    q = select(datums.c.datum_id, datums.c.log).where(datums.c.job_id == job.id)
    if datum is not None:
        q = q.where(datums.c.datum_id.like(datum + "%"))
    rows = conn.execute(q.order_by(datums.c.started_at, datums.c.datum_id)).all()
    if (
        datum is not None
        and not rows
        and not _view(conn, job.id, datums.c.datum_id.like(datum + "%"), limit=1)
    ):
        raise NotFound(f"datum {datum} not found in job {job.pipeline}@{job.commit_id}")
    return [(str(d), str(log)) for d, log in rows if log]


class Outcome(NamedTuple):
    """What a datum came to in a job: what incremental processing compares (a tuple: a job
    reads 100,000 of these at once)."""

    hash: str
    state: str
    outputs: str  # JSON: [[path, hash, size], ...]
    source_job: int  # the job that ran it


class Outcomes(NamedTuple):
    """The outcome of every datum of a job, and where they are kept."""

    of: dict[str, Outcome]  # by datum ID
    kept: int  # the job whose rows hold those not in ``own`` (the job itself, if it keeps none)
    own: frozenset[str]  # datums with a row of the job's own, if it keeps another's


def outcomes(conn: Connection, job_id: int) -> Outcomes:
    """datum ID -> outcome, of every datum of the job."""
    keeps = kept_of(conn, job_id)
    kept = job_id if keeps is None else keeps.job_id
    rows = conn.execute(
        select(
            datums.c.datum_id, datums.c.hash, datums.c.state, datums.c.outputs, datums.c.source_job
        ).where(datums.c.job_id == kept)
    ).all()  # fetched at once: row by row costs a third more on 100,000 rows
    if keeps is None:
        return Outcomes(
            {did: Outcome(h, st, outs, src or job_id) for did, h, st, outs, src in rows},
            job_id,
            frozenset(),
        )
    of = {did: Outcome(h, _SKIPPED, outs, src or kept) for did, h, _st, outs, src in rows}
    own = conn.execute(
        select(
            datums.c.datum_id, datums.c.hash, datums.c.state, datums.c.outputs, datums.c.source_job
        ).where(datums.c.job_id == job_id)
    ).all()
    of.update((did, Outcome(h, st, outs, src or job_id)) for did, h, st, outs, src in own)
    return Outcomes(of, kept, frozenset(did for did, *_ in own))


def datum_record(conn: Connection, job_id: int, datum_id: str) -> dict[str, Any] | None:
    """The datum's inputs, outputs (JSON), state and source job."""
    rows = _view(conn, job_id, datums.c.datum_id == datum_id)
    if not rows:
        return None
    return {k: rows[0][k] for k in ("inputs", "outputs", "state", "source_job")}


def datums_reading(conn: Connection, job_id: int, repo_id: int, paths: Sequence[str]) -> list[str]:
    """The job's datums that read any of ``paths`` of the repo, sorted."""
    di = datum_inputs
    found = {
        str(d)
        for (d,) in conn.execute(
            select(di.c.datum_id).where(
                di.c.job_id == job_id, di.c.repo_id == repo_id, di.c.path.in_(paths)
            )
        )
    }
    keeps = kept_of(conn, job_id)
    if keeps is not None:
        mine = select(datums.c.datum_id).where(datums.c.job_id == job_id)
        kept = conn.execute(
            select(di.c.datum_id).where(
                di.c.job_id == keeps.job_id,
                di.c.repo_id == repo_id,
                di.c.path.in_(paths),
                di.c.datum_id.not_in(mine),
            )
        )
        found.update(str(d) for (d,) in kept)
    return sorted(found)


def outputs_by_state(
    conn: Connection, job_id: int, states: Collection[str]
) -> list[tuple[str, str]]:
    """(datum ID, outputs JSON) of the job's datums in one of ``states``."""
    q = select(datums.c.datum_id, datums.c.outputs)
    out = [
        (str(d), str(o))
        for d, o in conn.execute(q.where(datums.c.job_id == job_id, datums.c.state.in_(states)))
    ]
    keeps = kept_of(conn, job_id)
    if keeps is not None and _SKIPPED in states:  # the kept datums, each SKIPPED here
        mine = select(datums.c.datum_id).where(datums.c.job_id == job_id)
        kept = q.where(datums.c.job_id == keeps.job_id, datums.c.datum_id.not_in(mine))
        out += [(str(d), str(o)) for d, o in conn.execute(kept)]
    return out


def sources(conn: Connection, job_id: int, ids: Sequence[str]) -> dict[str, int | None]:
    """datum ID -> the job that ran it (None: this one), of those of ``ids`` the job has."""
    out: dict[str, int | None] = {}
    for part in batches(ids):
        for m in _view(conn, job_id, datums.c.datum_id.in_(part)):
            s = m["source_job"]
            out[str(m["datum_id"])] = None if s is None else int(s)
    return out


def runs(conn: Connection, job_id: int, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """datum ID -> its inputs, outputs and env as recorded (JSON), of those of ``ids`` the job
    ran (its own rows: a job keeps only datums it skipped)."""
    out: dict[str, Mapping[str, Any]] = {}
    for part in batches(ids):
        rows = conn.execute(
            select(datums.c.datum_id, datums.c.inputs, datums.c.outputs, datums.c.env).where(
                datums.c.job_id == job_id, datums.c.datum_id.in_(part)
            )
        )
        out.update((str(r.datum_id), dict(r._mapping)) for r in rows)
    return out
