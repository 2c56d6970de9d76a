"""Branch provenance and commit propagation: how one new commit becomes a commit set.

A branch may be *provenant on* other branches (a pipeline's output branch on its inputs).
When a branch's head moves to a new commit, every branch downstream of it (transitively) gets
a new open AUTO commit with the **same ID**, whose direct provenance is the heads of that
branch's provenance branches (as in Pachyderm 2.x ``propagateBranches``). Whoever owns the
downstream branch (the pipeline's job) fills and finishes that commit.

The owner of the ``branch_provenance`` and ``commit_provenance`` tables. ``commit_provenance``
holds the direct edges (an output commit -> the input commits it was made from). Full
provenance follows them upstream back to user commits; subvenance follows them downstream to
every commit made, directly or not, from a commit. Each walk is one ``WITH RECURSIVE`` query
(SQLite and PostgreSQL alike), so it costs one round trip whatever the depth of the DAG.
``UNION`` (not ``UNION ALL``) keeps one row per (commit, depth): diamonds in the DAG cannot
multiply rows.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
)

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.meta.schema import branch_provenance, commit_provenance
from haathi.models.ids import new_commit_id
from haathi.models.info import CommitState, Origin
from haathi.pfs import branches, commits, repos

BranchKey = tuple[int, str]  # (repo id, branch name)


def set_provenance(conn: Connection, branch: BranchKey, upstream: Sequence[BranchKey]) -> None:
    """Make ``branch`` provenant on exactly ``upstream`` (no cycles, not within one repo)."""
    repo_id, name = branch
    for up in upstream:
        if up[0] == repo_id:
            raise InvalidArgument("a branch cannot be provenant on a branch of its own repo")
        if branch in upstream_closure(conn, up) or up == branch:
            raise InvalidArgument("branch provenance would form a cycle")
    conn.execute(
        delete(branch_provenance).where(
            branch_provenance.c.repo_id == repo_id, branch_provenance.c.branch == name
        )
    )
    for up_repo, up_branch in dict.fromkeys(upstream):
        conn.execute(
            insert(branch_provenance).values(
                repo_id=repo_id, branch=name, from_repo_id=up_repo, from_branch=up_branch
            )
        )


def provenance_of(conn: Connection, branch: BranchKey) -> list[BranchKey]:
    """The branches ``branch`` is directly provenant on."""
    rows = conn.execute(
        select(branch_provenance.c.from_repo_id, branch_provenance.c.from_branch)
        .where(branch_provenance.c.repo_id == branch[0], branch_provenance.c.branch == branch[1])
        .order_by(branch_provenance.c.from_repo_id, branch_provenance.c.from_branch)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def downstream_branches(conn: Connection, branch: BranchKey) -> list[BranchKey]:
    """Branches directly provenant on ``branch``."""
    rows = conn.execute(
        select(branch_provenance.c.repo_id, branch_provenance.c.branch).where(
            branch_provenance.c.from_repo_id == branch[0],
            branch_provenance.c.from_branch == branch[1],
        )
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def upstream_closure(conn: Connection, branch: BranchKey) -> set[BranchKey]:
    """Every branch ``branch`` is transitively provenant on."""
    seen: set[BranchKey] = set()
    todo = [branch]
    while todo:
        for up in provenance_of(conn, todo.pop()):
            if up not in seen:
                seen.add(up)
                todo.append(up)
    return seen


def downstream_order(
    conn: Connection, *origins: BranchKey, include: Iterable[BranchKey] = ()
) -> list[BranchKey]:
    """Branches downstream of ``origins`` (and those of ``include``), each after all of its
    affected upstream branches."""
    affected: set[BranchKey] = set(include)
    todo = list(origins)
    while todo:
        for down in downstream_branches(conn, todo.pop()):
            if down not in affected:
                affected.add(down)
                todo.append(down)
    order: list[BranchKey] = []
    done: set[BranchKey] = set()  # (an origin that is affected too comes before its own)
    pending = sorted(affected)
    while pending:
        ready = [
            b
            for b in pending
            if all(up in done or up not in affected for up in provenance_of(conn, b))
        ]
        if not ready:  # cannot happen: set_provenance refuses cycles
            raise FailedPrecondition("branch provenance has a cycle")
        order.extend(ready)
        done.update(ready)
        pending = [b for b in pending if b not in done]
    return order


def downstream_repos(conn: Connection, repo_id: int) -> list[str]:
    """The names of the repos with a branch provenant on a branch of repo ``repo_id``."""
    names = repos.names()
    rows = conn.execute(
        select(names.c.name)
        .join(branch_provenance, branch_provenance.c.repo_id == names.c.id)
        .where(branch_provenance.c.from_repo_id == repo_id)
        .distinct()
    )
    return sorted(str(r[0]) for r in rows)


def reading(conn: Connection, repo_id: int, branch: str | None) -> list[BranchKey]:
    """Branches directly provenant on ``branch`` of the repo (None: on any of its branches)."""
    q = select(branch_provenance.c.repo_id, branch_provenance.c.branch).where(
        branch_provenance.c.from_repo_id == repo_id
    )
    if branch is not None:
        q = q.where(branch_provenance.c.from_branch == branch)
    return [(int(r[0]), str(r[1])) for r in conn.execute(q)]


def forget_repo(conn: Connection, repo_id: int) -> None:
    """Drop the provenance of a repo being deleted: of its branches, on its branches, and of
    its commits (commits made from its commits keep their edges: they were made from them)."""
    conn.execute(delete(branch_provenance).where(branch_provenance.c.from_repo_id == repo_id))
    conn.execute(delete(branch_provenance).where(branch_provenance.c.repo_id == repo_id))
    conn.execute(delete(commit_provenance).where(commit_provenance.c.repo_id == repo_id))


def start_auto_commit(conn: Connection, branch: BranchKey, cid: str) -> bool:
    """Open an AUTO commit ``cid`` on ``branch`` provenant on its provenance branches' heads.

    False (nothing done) if the repo already has a commit with that ID.
    """
    repo_id, name = branch
    repos.lock_id(conn, repo_id)
    if commits.has_commit(conn, repo_id, cid):
        return False
    head = branches.ensure_branch(conn, repo_id, name)
    commits.insert_commit(
        conn, repo_id, cid, branch=name, parent=head, state=CommitState.STARTED,
        description="", origin=Origin.AUTO,
    )  # fmt: skip
    heads: dict[tuple[int, str], list[str]] = {}  # (repo, commit) -> the branches it heads
    for up_repo, up_branch in provenance_of(conn, branch):
        up_head = branches.branch_head(conn, up_repo, up_branch)[1]
        if up_head is not None:
            heads.setdefault((up_repo, up_head), []).append(up_branch)
    for (up_repo, up_head), names in heads.items():
        conn.execute(
            insert(commit_provenance).values(
                repo_id=repo_id,
                commit_id=cid,
                from_repo_id=up_repo,
                from_commit_id=up_head,
                from_branches=json.dumps(sorted(names)),
            )
        )
    if not branches.cas_head(conn, repo_id, name, head, cid):
        raise FailedPrecondition(f"branch {name} moved while propagating commit {cid}")
    return True


def propagate(conn: Connection, origin: BranchKey, cid: str) -> list[BranchKey]:
    """Give every branch downstream of ``origin`` an open AUTO commit ``cid`` (same txn)."""
    return propagate_set(conn, [origin], cid)


def propagate_set(conn: Connection, origins: Sequence[BranchKey], cid: str) -> list[BranchKey]:
    """Give every branch downstream of ``origins`` (whose heads moved together) an open AUTO
    commit ``cid`` (same txn): a branch downstream of several of them gets one commit."""
    started = []
    for branch in downstream_order(conn, *origins):
        if start_auto_commit(conn, branch, cid):
            started.append(branch)
    return started


def propagate_move(conn: Connection, origins: Sequence[BranchKey], head: str) -> list[BranchKey]:
    """After ``origins`` moved to an existing commit ``head``: their downstream branches get
    commit set ``head`` (extending it, as Pachyderm's), or a new set if none could (each
    already has that one: a branch moved back to it)."""
    if not downstream_order(conn, *origins):
        return []
    return propagate_set(conn, origins, head) or propagate_set(conn, origins, new_commit_id())


_NAMES = repos.names()
_DIRECT = (  # built once: inspect commit runs it every time
    select(_NAMES.c.name, commit_provenance.c.from_commit_id)
    .join(_NAMES, _NAMES.c.id == commit_provenance.c.from_repo_id)
    .where(
        commit_provenance.c.repo_id == bindparam("repo_id"),
        commit_provenance.c.commit_id == bindparam("cid"),
    )
    .order_by(_NAMES.c.name)
)


def direct_provenance(conn: Connection, repo_id: int, cid: str) -> list[tuple[str, str]]:
    """(repo, commit) pairs a commit is directly provenant on."""
    rows = conn.execute(_DIRECT, {"repo_id": repo_id, "cid": cid})
    return [(str(r[0]), str(r[1])) for r in rows]


def input_heads(
    conn: Connection, repo_id: int, cid: str
) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(repo, commit, branches) a commit is directly provenant on: ``branches`` are its
    provenance branches whose head that commit was when it was made (None for a commit made
    before haathi recorded them)."""
    rows = conn.execute(
        select(_NAMES.c.name, commit_provenance.c.from_commit_id, commit_provenance.c.from_branches)
        .join(_NAMES, _NAMES.c.id == commit_provenance.c.from_repo_id)
        .where(commit_provenance.c.repo_id == repo_id, commit_provenance.c.commit_id == cid)
        .order_by(_NAMES.c.name)
    )
    return [(str(r[0]), str(r[1]), None if r[2] is None else tuple(json.loads(r[2]))) for r in rows]


def subvenance(conn: Connection, repo_id: int, cid: str) -> list[str]:
    """``repo@commit`` of the commits made directly from this one."""
    names = repos.names()
    rows = conn.execute(
        select(names.c.name, commit_provenance.c.commit_id)
        .join(names, names.c.id == commit_provenance.c.repo_id)
        .where(
            commit_provenance.c.from_repo_id == repo_id,
            commit_provenance.c.from_commit_id == cid,
        )
        .order_by(names.c.name)
    )
    return [f"{r[0]}@{r[1]}" for r in rows]


def finish_auto_commit(
    conn: Connection,
    repo_id: int,
    cid: str,
    *,
    root: bytes | None,
    totals: tuple[int, int],
    error: str | None,
) -> None:
    """Finish an open (AUTO) commit with a tree built elsewhere, and an error if it failed."""
    repos.lock_id(conn, repo_id)
    if not commits.finish_open(conn, repo_id, cid, root=root, totals=totals, error=error):
        raise FailedPrecondition(f"commit {cid} is not open: it was finished or deleted")


def drop_open_auto_commits(conn: Connection, cid: str) -> int:
    """Remove the open AUTO commits of set ``cid`` that nothing builds on (their origin went)."""
    dropped = 0
    for repo_id, parent in commits.open_auto_in_set(conn, cid):
        if commits.children_of(conn, repo_id, cid):
            continue
        branches.move_heads(conn, repo_id, cid, parent)
        forget_commit(conn, repo_id, cid)
        commits.delete_commit_row(conn, repo_id, cid)
        dropped += 1
    return dropped


def forget_commit(conn: Connection, repo_id: int, cid: str) -> None:
    """Drop the commit's direct provenance (it is being deleted)."""
    conn.execute(
        delete(commit_provenance).where(
            commit_provenance.c.repo_id == repo_id, commit_provenance.c.commit_id == cid
        )
    )


# ---- transitive provenance and subvenance ---------------------------------------------------

Pair = tuple[ColumnElement[Any], ColumnElement[Any]]


def _ends(table: FromClause, upstream: bool) -> tuple[Pair, Pair]:
    """((repo, commit) an edge is followed from, (repo, commit) it leads to)."""
    here: Pair = (table.c.repo_id, table.c.commit_id)
    there: Pair = (table.c.from_repo_id, table.c.from_commit_id)
    return (here, there) if upstream else (there, here)


@functools.cache
def _walk_statement(upstream: bool) -> Select[Any]:
    """The walk's query, built once per direction (building it costs ~20x running it on an
    empty table): ``repo@commit`` rows reachable from the bound (repo_id, cid)."""
    (src_repo, src_commit), (dst_repo, dst_commit) = _ends(commit_provenance, upstream)
    seed = (
        select(dst_repo.label("repo_id"), dst_commit.label("commit_id"), literal(1).label("depth"))
        .where(src_repo == bindparam("repo_id"), src_commit == bindparam("cid"))
        .cte("reach", recursive=True)
    )
    edge = commit_provenance.alias("edge")
    (e_src_repo, e_src_commit), (e_dst_repo, e_dst_commit) = _ends(edge, upstream)
    reach = seed.union(
        select(e_dst_repo, e_dst_commit, seed.c.depth + 1).join(
            seed, and_(e_src_repo == seed.c.repo_id, e_src_commit == seed.c.commit_id)
        )
    )
    depth = func.min(reach.c.depth).label("depth")
    names = repos.names()
    return (
        select(names.c.name, reach.c.commit_id, depth)
        .join(names, names.c.id == reach.c.repo_id)
        .group_by(names.c.name, reach.c.commit_id)
        .order_by(depth, names.c.name, reach.c.commit_id)
    )


def _walk(conn: Connection, repo_id: int, cid: str, *, upstream: bool) -> list[str]:
    """``repo@commit`` of every commit reachable from (repo_id, cid), nearest first."""
    rows = conn.execute(_walk_statement(upstream), {"repo_id": repo_id, "cid": cid})
    return [f"{r[0]}@{r[1]}" for r in rows]


def full_provenance(conn: Connection, repo_id: int, cid: str) -> list[str]:
    """Every commit this one was made from, transitively (back to user commits)."""
    return _walk(conn, repo_id, cid, upstream=True)


def full_subvenance(conn: Connection, repo_id: int, cid: str) -> list[str]:
    """Every commit made from this one, transitively."""
    return _walk(conn, repo_id, cid, upstream=False)
