"""Cron inputs: each tick commits one file named by its time to the input's tick repo.

With ``overwrite`` the tick replaces the previous ones (one file in the repo); otherwise ticks
accumulate. Ticks happen while a runner runs (``haathi run worker`` / ``haathi serve``), or on
demand with ``run cron``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from haathi.errors import FailedPrecondition
from haathi.models.ops import DeleteOp, Op, PutOp
from haathi.models.refspec import CommitSpec
from haathi.models.schedule import parse_cron
from haathi.pfs import modify
from haathi.pfs.branches import branch_head
from haathi.pfs.commits import find_commit
from haathi.pfs.repos import repo_id_of
from haathi.pps import records
from haathi.pps.context import PpsContext
from haathi.pps.input_spec import CronInput, walk_inputs
from haathi.pps.pipelines import RUNNING, spec_of


def _empty() -> object:
    import io

    return io.BytesIO(b"")


def tick(ctx: PpsContext, leaf: CronInput, at: datetime) -> str:
    """Commit one tick of ``leaf`` at time ``at``; the commit ID."""
    name = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ops: list[Op] = []
    if leaf.overwrite:
        ops.append(DeleteOp("/", recursive=True))
    ops.append(PutOp("/" + name, _empty))  # type: ignore[arg-type]
    return modify.modify(ctx.pfs, CommitSpec(leaf.repo, "master"), ops)


def _last_tick(ctx: PpsContext, repo: str) -> datetime | None:
    with ctx.pfs.db.read() as conn:
        rid = repo_id_of(conn, repo)
        head = branch_head(conn, rid, "master")[1]
        c = find_commit(conn, rid, repo, head) if head is not None else None
    return None if c is None else c.started_at


def run_cron(ctx: PpsContext, pipeline: str) -> list[str]:
    """Tick every cron input of ``pipeline`` now; the commit IDs."""
    with ctx.pfs.db.read() as conn:
        spec, _ = spec_of(conn, records.pipeline_row(conn, pipeline))
    leaves = [leaf for leaf in walk_inputs(spec.input) if isinstance(leaf, CronInput)]
    if not leaves:
        raise FailedPrecondition(f"pipeline {pipeline} has no cron input", pipeline=pipeline)
    t = datetime.now(UTC)
    return [tick(ctx, leaf, t) for leaf in leaves]


def tick_due(ctx: PpsContext) -> list[str]:
    """Tick every cron input of every running pipeline whose next tick time has come."""
    made = []
    with ctx.pfs.db.read() as conn:
        specs = [
            (p, spec_of(conn, p)[0]) for p in records.all_pipelines(conn) if p.state == RUNNING
        ]
    t = datetime.now(UTC)
    for p, spec in specs:
        for leaf in walk_inputs(spec.input):
            if not isinstance(leaf, CronInput):
                continue
            since = _last_tick(ctx, leaf.repo) or p.created_at
            due = parse_cron(leaf.spec, bounded=False).next_after(since)
            if due is not None and due <= t:
                made.append(tick(ctx, leaf, t))
    return made
