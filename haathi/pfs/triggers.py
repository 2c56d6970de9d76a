"""Branch triggers, as Pachyderm's (``master_trigger.go``): setting one, and firing them.

A triggered branch follows another branch of its repo. When a commit finishes without error
(a finished ``start commit``, a one-off ``put file`` commit, a job's output commit), every
branch of its repo whose trigger follows the commit's branch, directly or down a chain of
triggers, is checked in the same transaction: one whose condition holds moves its head to
that commit, and the branches downstream of it get the commit's set (a job each). A chain
fires in order: ``b`` follows ``a`` and ``c`` follows ``b``, so a commit on ``a`` may move
``b`` and then ``c``. Moving a branch by hand (``create branch --head``) fires nothing.

A ``cron_spec`` trigger fires on its schedule instead (:class:`CronTriggers`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from haathi.errors import HaathiError, InvalidArgument, NotFound
from haathi.models.schedule import CronSchedule
from haathi.models.trigger import Trigger
from haathi.pfs import branches, commits, provenance, repos
from haathi.pfs.commits import CommitRow
from haathi.pfs.context import PfsContext
from haathi.pfs.propagation import Deferred

log = logging.getLogger(__name__)
BranchKey = provenance.BranchKey
CATCH_UP = 10_000  # ticks skipped at most, one by one, after a pause (then: from now)


def set_trigger(conn: Connection, repo_id: int, repo: str, branch: str, trigger: Trigger) -> None:
    """Give ``branch`` (which exists) ``trigger``, checked as Pachyderm's ``validateTrigger``:
    valid fields, an existing branch to follow, no loop, no provenance."""
    trigger.check()
    if not branches.branch_head(conn, repo_id, trigger.branch)[0]:
        raise NotFound(
            f"branch {trigger.branch} not found in repo {repo}", repo=repo, branch=trigger.branch
        )
    follows, seen = trigger.branch, set()
    while follows not in seen:
        if follows == branch:
            raise InvalidArgument("triggers cannot form a loop")
        seen.add(follows)
        upstream = branches.trigger_of(conn, repo_id, follows)
        if upstream is None:
            break
        follows = upstream.branch
    if provenance.provenance_of(conn, (repo_id, branch)):
        raise InvalidArgument(
            f"a branch cannot have both provenance and a trigger: {repo}@{branch} is a "
            "pipeline's output branch"
        )
    row_id = branches.branch_id(conn, repo_id, branch)
    assert row_id is not None
    branches.set_trigger(conn, row_id, trigger)


def on_finish(
    conn: Connection,
    repo_id: int,
    repo: str,
    cid: str,
    *,
    new_head_of: BranchKey | None = None,
    prop: Deferred | None = None,
) -> list[BranchKey]:
    """Fire the triggers commit ``cid`` (just finished, in this transaction) sets off, and
    give the branches downstream of those that moved its commit set; the moved branches.

    ``new_head_of``: the branch ``cid`` was just made on (a one-off commit, a new set), whose
    downstream branches are given it together with the moved ones' (a branch downstream of
    both gets one commit, over both new heads). In a transaction (``prop``), the branches
    downstream follow at its end."""
    moved = fire(conn, repo_id, repo, cid)
    if prop is not None:
        prop.move(*([] if new_head_of is None else [new_head_of]), *moved)
    elif new_head_of is not None:
        provenance.propagate_set(conn, [new_head_of, *moved], cid)
    elif moved:
        provenance.propagate_move(conn, moved, cid)
    return moved


@dataclass
class _Branch:
    row_id: int
    head: str | None
    created: datetime
    trigger: Trigger | None


def fire(conn: Connection, repo_id: int, repo: str, cid: str) -> list[BranchKey]:
    """Move every branch of the repo whose trigger chain leads to the branch of commit
    ``cid`` (just finished) and whose condition holds to ``cid``; the branches moved (their
    downstream branches are the caller's to propagate). A commit that failed sets nothing off
    (as Pachyderm's)."""
    rows = branches.triggered(conn, repo_id)
    if not rows:
        return []  # (the common case: one query)
    finished = commits.find_commit(conn, repo_id, repo, cid)
    if finished is None or not finished.finished or finished.error or not finished.branch:
        return []
    known = {name: _Branch(rid, head, created, t) for rid, _, name, head, created, t in rows}
    new_heads: dict[str, CommitRow | None] = {finished.branch: finished}
    moved: list[BranchKey] = []

    def visit(name: str) -> CommitRow | None:
        """The commit ``name`` moved to (None: it did not move)."""
        if name in new_heads:
            return new_heads[name]
        new_heads[name] = None
        b = known.get(name)
        if b is None or b.trigger is None or b.trigger.cron_spec:
            return None
        new = visit(b.trigger.branch)
        if new is None or b.head == new.id:
            return None
        old = commits.find_commit(conn, repo_id, finished.repo, b.head) if b.head else None
        if not is_triggered(conn, b.trigger, old, new, b.created):
            return None
        branches.set_head(conn, b.row_id, new.id)
        new_heads[name] = new
        moved.append((repo_id, name))
        return new

    for name in known:
        visit(name)
    return moved


def is_triggered(
    conn: Connection, t: Trigger, old: CommitRow | None, new: CommitRow, created: datetime
) -> bool:
    """Whether a branch at ``old`` (None: no head yet, since ``created``) triggered by ``t``
    moves to ``new``: its conditions or'ed (and'ed with ``all``; no condition: never, or
    always with ``all``), as Pachyderm's ``isTriggered``."""
    result = t.all

    def merge(cond: bool) -> None:
        nonlocal result
        result = (result and cond) if t.all else (result or cond)

    if t.size:
        merge(new.size_bytes - (old.size_bytes if old else 0) >= t.size_bytes)
    if t.rate_limit_spec:
        assert t.rate_limit is not None
        since = (old.finished_at or old.started_at) if old else created
        nxt = t.rate_limit.next_after(since)
        merge(nxt is not None and new.finished_at is not None and nxt < new.finished_at)
    if t.commits:
        merge(_commits_since(conn, new, old, t.commits) >= t.commits)
    return result


def _commits_since(conn: Connection, new: CommitRow, old: CommitRow | None, most: int) -> int:
    """Commits from ``new`` back to ``old`` (not counted) or to the root (counted), counting
    no further than ``most``."""
    count, c = 0, new
    while count < most:
        if old is not None and c.id == old.id:
            break
        count += 1
        if c.parent is None:
            break
        parent = commits.find_commit(conn, c.repo_id, c.repo, c.parent)
        if parent is None:
            break
        c = parent
    return count


# ---- cron triggers ---------------------------------------------------------------------------


@dataclass
class _Clock:
    spec: str
    last: datetime  # the tick the next one follows


@dataclass
class CronTriggers:
    """The cron triggers' clock, kept by a job runner (as Pachyderm's PFS master keeps a timer
    per triggered branch). A branch's first tick follows its head commit's start (its creation
    if it has none), so the schedule survives a restart; then each tick follows the last. A
    tick moves the branch to the head of the branch it follows: nothing happens when that is
    already its head (no new commit, no job). Several runners on one store tick alike."""

    clocks: dict[tuple[int, str], _Clock] = field(default_factory=dict)

    def due(self, ctx: PfsContext, now: datetime) -> list[BranchKey]:
        """Fire the cron triggers whose tick has come by ``now``; the branches moved."""
        with ctx.db.read() as conn:
            rows = [r for r in branches.triggered(conn) if r[5].cron_spec]
            starts = {
                (repo_id, name): _start(conn, repo_id, head, created)
                for _, repo_id, name, head, created, _ in rows
            }
        moved: list[BranchKey] = []
        live = set()
        for _, repo_id, name, _, _, trigger in rows:
            key = (repo_id, name)
            live.add(key)
            clock = self.clocks.get(key)
            if clock is None or clock.spec != trigger.cron_spec:
                clock = self.clocks[key] = _Clock(trigger.cron_spec, starts[key])
            schedule = trigger.cron
            assert schedule is not None
            tick = schedule.next_after(clock.last)
            if tick is None or tick > now:
                continue
            try:
                if _move_to_followed(ctx, repo_id, name, trigger):
                    moved.append(key)
            except HaathiError as exc:  # (the database busy, ...): again at the next poll
                log.warning("cron trigger of branch %s not fired yet: %s", name, exc)
                continue
            clock.last = _last_tick(schedule, tick, now)
        for gone in set(self.clocks) - live:
            del self.clocks[gone]
        return moved


def _start(conn: Connection, repo_id: int, head: str | None, created: datetime) -> datetime:
    if head is None:
        return created
    c = commits.find_commit(conn, repo_id, "", head)
    return created if c is None else c.started_at


def _last_tick(schedule: CronSchedule, tick: datetime, now: datetime) -> datetime:
    """The last tick at or before ``now`` from ``tick`` on (the ones missed while no runner
    ran would each move the branch to the same head: one move stands for them all)."""
    for _ in range(CATCH_UP):
        nxt = schedule.next_after(tick)
        if nxt is None or nxt > now:
            return tick
        tick = nxt
    return now


def _move_to_followed(ctx: PfsContext, repo_id: int, name: str, trigger: Trigger) -> bool:
    """Move branch ``name`` to the newest finished commit of the branch its trigger follows
    (in one transaction with its propagation); False if it is there already, or either branch
    is gone. (Pachyderm's moves it to an open head too; here writes to the branch would then
    go into that open commit.)"""
    with ctx.db.write() as conn:
        repos.lock_id(conn, repo_id)
        row_id = branches.branch_id(conn, repo_id, name)
        if row_id is None or branches.trigger_of(conn, repo_id, name) != trigger:
            return False
        target = branches.branch_head(conn, repo_id, trigger.branch)[1]
        c = commits.find_commit(conn, repo_id, "", target) if target else None
        while c is not None and not c.finished:
            c = commits.find_commit(conn, repo_id, "", c.parent) if c.parent else None
        if c is None or c.id == branches.branch_head(conn, repo_id, name)[1]:
            return False
        branches.set_head(conn, row_id, c.id)
        provenance.propagate_move(conn, [(repo_id, name)], c.id)
    return True
