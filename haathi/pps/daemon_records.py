"""The ``daemons`` table: one row per spout or service pipeline, made and deleted with it;
and ``daemon_logs``: what its program prints, the newest :data:`LOG_KEEP` lines.

A worker runs a daemon under a lease, as a runner runs a job: it claims the row (no runner,
or one whose lease has expired), renews the lease while the program runs, and gives it back
when it stops. A worker killed outright leaves its lease to expire; the next worker to look
then claims it (:mod:`haathi.pps.daemons`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from haathi.meta.schema import daemon_logs, daemons
from haathi.models.info import LogLine
from haathi.pfs.context import as_utc, now

STARTING, RUNNING, CRASHING, PAUSED = "STARTING", "RUNNING", "CRASHING", "PAUSED"
LOG_KEEP = 10_000
"""How many of its newest lines of output a daemon keeps (``haathi logs`` shows them)."""


@dataclass(frozen=True, slots=True)
class DaemonRow:
    pipeline_id: int
    kind: str
    state: str
    reason: str | None
    runner: str | None
    lease_until: datetime | None
    version: int | None
    job_commit: str | None
    port: int | None
    restarts: int
    started_at: datetime | None

    def held(self, at: datetime | None = None) -> bool:
        """Whether a worker holds it now (its lease has not expired)."""
        return (
            self.runner is not None
            and self.lease_until is not None
            and self.lease_until >= (at or now())
        )


def _row(r: Any) -> DaemonRow:
    return DaemonRow(
        pipeline_id=int(r.pipeline_id), kind=r.kind, state=r.state, reason=r.reason,
        runner=r.runner, lease_until=as_utc(r.lease_until), version=r.version,
        job_commit=r.job_commit, port=r.port, restarts=int(r.restarts or 0),
        started_at=as_utc(r.started_at),
    )  # fmt: skip


def ensure(conn: Connection, pipeline_id: int, kind: str) -> None:
    """The pipeline's row (made STARTING, with no runner, if it has none)."""
    found = conn.execute(select(daemons.c.kind).where(daemons.c.pipeline_id == pipeline_id)).first()
    if found is None:
        conn.execute(
            insert(daemons).values(pipeline_id=pipeline_id, kind=kind, state=STARTING, restarts=0)
        )
    elif found.kind != kind:
        conn.execute(update(daemons).where(daemons.c.pipeline_id == pipeline_id).values(kind=kind))


def forget(conn: Connection, pipeline_id: int) -> None:
    """The pipeline is deleted (or no longer a spout or service): its row and its output."""
    conn.execute(delete(daemons).where(daemons.c.pipeline_id == pipeline_id))
    conn.execute(delete(daemon_logs).where(daemon_logs.c.pipeline_id == pipeline_id))


def find(conn: Connection, pipeline_id: int) -> DaemonRow | None:
    r = conn.execute(select(daemons).where(daemons.c.pipeline_id == pipeline_id)).first()
    return None if r is None else _row(r)


def all_daemons(conn: Connection) -> list[DaemonRow]:
    return [_row(r) for r in conn.execute(select(daemons).order_by(daemons.c.pipeline_id))]


def pipeline_ids(conn: Connection) -> set[int]:
    """The pipelines that are spouts or services."""
    return {int(r[0]) for r in conn.execute(select(daemons.c.pipeline_id))}


def claim(
    conn: Connection, pipeline_id: int, runner: str, at: datetime, lease_until: datetime
) -> bool:
    """Take the daemon for ``runner``: nobody holds it, or its holder's lease expired at
    ``at``."""
    free = or_(daemons.c.runner.is_(None), daemons.c.lease_until.is_(None))
    res = conn.execute(
        update(daemons)
        .where(daemons.c.pipeline_id == pipeline_id, or_(free, daemons.c.lease_until < at))
        .values(runner=runner, lease_until=lease_until, state=STARTING, reason=None)
    )
    return res.rowcount == 1


def renew(conn: Connection, pipeline_id: int, runner: str, lease_until: datetime) -> bool:
    """Extend ``runner``'s lease; False if it no longer holds the daemon."""
    res = conn.execute(
        update(daemons).where(_held_by(pipeline_id, runner)).values(lease_until=lease_until)
    )
    return res.rowcount == 1


def record(conn: Connection, pipeline_id: int, runner: str, **values: Any) -> bool:
    """Record how the daemon ``runner`` holds is going (``state``, ``reason``, ``port``,
    ``restarts``, ...); False if it no longer holds it."""
    res = conn.execute(update(daemons).where(_held_by(pipeline_id, runner)).values(**values))
    return res.rowcount == 1


def release(conn: Connection, pipeline_id: int, runner: str, **values: Any) -> bool:
    """Give the daemon back (no lease left to expire), recording ``values``."""
    free = {"runner": None, "lease_until": None}
    res = conn.execute(
        update(daemons).where(_held_by(pipeline_id, runner)).values(**values, **free)
    )
    return res.rowcount == 1


def mark(conn: Connection, pipeline_id: int, **values: Any) -> None:
    """Record ``values`` whoever holds the daemon (a paused pipeline's, which nobody runs)."""
    conn.execute(update(daemons).where(daemons.c.pipeline_id == pipeline_id).values(**values))


def _held_by(pipeline_id: int, runner: str) -> Any:
    return and_(daemons.c.pipeline_id == pipeline_id, daemons.c.runner == runner)


def append_logs(
    conn: Connection, pipeline_id: int, runner: str, lines: list[tuple[datetime, int, str]],
    keep: int = LOG_KEEP,
) -> bool:  # fmt: skip
    """Add ``lines`` ((when, run, text), oldest first) after the daemon's newest, and drop
    what falls beyond its newest ``keep``; False (nothing added) if ``runner`` no longer
    holds the daemon. (The check locks the daemon's row: its writers take turns.)"""
    if not lines:
        return True
    held = conn.execute(
        update(daemons).where(_held_by(pipeline_id, runner)).values(runner=runner)
    ).rowcount
    if held != 1:
        return False
    mine = daemon_logs.c.pipeline_id == pipeline_id
    last = conn.execute(select(func.max(daemon_logs.c.seq)).where(mine)).scalar()
    first = int(last or 0) + 1
    conn.execute(
        insert(daemon_logs),
        [
            {"pipeline_id": pipeline_id, "seq": first + i, "at": at, "run": run, "text": text}
            for i, (at, run, text) in enumerate(lines)
        ],
    )
    newest = first + len(lines) - 1
    if newest > keep:
        conn.execute(delete(daemon_logs).where(mine, daemon_logs.c.seq <= newest - keep))
    return True


def read_logs(conn: Connection, pipeline_id: int, since: int | None, limit: int) -> list[LogLine]:
    """The daemon's lines after ``since`` (oldest first, at most ``limit``); with ``since``
    None, its newest ``limit``."""
    mine = daemon_logs.c.pipeline_id == pipeline_id
    q = select(daemon_logs).where(mine)
    if since is not None:
        q = q.where(daemon_logs.c.seq > since).order_by(daemon_logs.c.seq).limit(limit)
        rows = list(conn.execute(q))
    else:
        rows = list(conn.execute(q.order_by(daemon_logs.c.seq.desc()).limit(limit)))[::-1]
    return [LogLine(int(r.seq), as_utc(r.at) or now(), int(r.run), r.text) for r in rows]
