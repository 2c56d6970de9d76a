"""Branch provenance and commit propagation: how one new commit becomes a commit set.

A branch may be *provenant on* other branches (a pipeline's output branch on its inputs).
When a branch's head moves to a new commit, every branch downstream of it (transitively) gets
a new open AUTO commit with the **same ID**, whose direct provenance is the heads of that
branch's provenance branches (as in Pachyderm 2.x ``propagateBranches``). Whoever owns the
downstream branch (the pipeline's job) fills and finishes that commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.meta.database import lock_rows
from haathi.meta.schema import branch_provenance, branches, commit_provenance, commits, repos
from haathi.models.info import CommitState, Origin
from haathi.pfs.context import now
from haathi.pfs.rows import branch_head, cas_head, ensure_branch, insert_commit

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


def downstream_order(conn: Connection, origin: BranchKey) -> list[BranchKey]:
    """Branches downstream of ``origin``, each after all of its affected upstream branches."""
    affected: set[BranchKey] = set()
    todo = [origin]
    while todo:
        for down in downstream_branches(conn, todo.pop()):
            if down not in affected:
                affected.add(down)
                todo.append(down)
    order: list[BranchKey] = []
    done = {origin}
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


def _lock_repo(conn: Connection, repo_id: int) -> None:
    lock_rows(conn, select(repos.c.id).where(repos.c.id == repo_id))


def start_auto_commit(conn: Connection, branch: BranchKey, cid: str) -> bool:
    """Open an AUTO commit ``cid`` on ``branch`` provenant on its provenance branches' heads.

    False (nothing done) if the repo already has a commit with that ID.
    """
    repo_id, name = branch
    _lock_repo(conn, repo_id)
    if conn.execute(
        select(commits.c.id).where(commits.c.repo_id == repo_id, commits.c.id == cid)
    ).first():
        return False
    head = ensure_branch(conn, repo_id, name)
    insert_commit(
        conn, repo_id, cid, branch=name, parent=head, state=CommitState.STARTED,
        description="", origin=Origin.AUTO,
    )  # fmt: skip
    for up_repo, up_branch in provenance_of(conn, branch):
        up_head = branch_head(conn, up_repo, up_branch)[1]
        if up_head is not None:
            conn.execute(
                insert(commit_provenance).values(
                    repo_id=repo_id, commit_id=cid, from_repo_id=up_repo, from_commit_id=up_head
                )
            )
    if not cas_head(conn, repo_id, name, head, cid):
        raise FailedPrecondition(f"branch {name} moved while propagating commit {cid}")
    return True


def propagate(conn: Connection, origin: BranchKey, cid: str) -> list[BranchKey]:
    """Give every branch downstream of ``origin`` an open AUTO commit ``cid`` (same txn)."""
    started = []
    for branch in downstream_order(conn, origin):
        if start_auto_commit(conn, branch, cid):
            started.append(branch)
    return started


_DIRECT = (  # built once: inspect commit runs it every time
    select(repos.c.name, commit_provenance.c.from_commit_id)
    .join(repos, repos.c.id == commit_provenance.c.from_repo_id)
    .where(
        commit_provenance.c.repo_id == bindparam("repo_id"),
        commit_provenance.c.commit_id == bindparam("cid"),
    )
    .order_by(repos.c.name)
)


def direct_provenance(conn: Connection, repo_id: int, cid: str) -> list[tuple[str, str]]:
    """(repo, commit) pairs a commit is directly provenant on."""
    rows = conn.execute(_DIRECT, {"repo_id": repo_id, "cid": cid})
    return [(str(r[0]), str(r[1])) for r in rows]


def subvenance(conn: Connection, repo_id: int, cid: str) -> list[str]:
    """``repo@commit`` of the commits made directly from this one."""
    rows = conn.execute(
        select(repos.c.name, commit_provenance.c.commit_id)
        .join(repos, repos.c.id == commit_provenance.c.repo_id)
        .where(
            commit_provenance.c.from_repo_id == repo_id,
            commit_provenance.c.from_commit_id == cid,
        )
        .order_by(repos.c.name)
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
    _lock_repo(conn, repo_id)
    res = conn.execute(
        update(commits)
        .where(
            commits.c.repo_id == repo_id,
            commits.c.id == cid,
            commits.c.state == CommitState.STARTED.value,
        )
        .values(
            state=CommitState.FINISHED.value,
            root=root,
            file_count=totals[0],
            size_bytes=totals[1],
            error=error,
            finished_at=now(),
        )
    )
    if res.rowcount != 1:
        raise FailedPrecondition(f"commit {cid} is not open: it was finished or deleted")


def drop_open_auto_commits(conn: Connection, cid: str) -> int:
    """Remove the open AUTO commits of set ``cid`` that nothing builds on (their origin went)."""
    rows = conn.execute(
        select(commits.c.repo_id, commits.c.parent).where(
            commits.c.id == cid,
            commits.c.origin == Origin.AUTO.value,
            commits.c.state == CommitState.STARTED.value,
        )
    ).all()
    dropped = 0
    for repo_id, parent in rows:
        if conn.execute(
            select(commits.c.id).where(commits.c.repo_id == repo_id, commits.c.parent == cid)
        ).first():
            continue
        conn.execute(
            update(branches)
            .where(branches.c.repo_id == repo_id, branches.c.head == cid)
            .values(head=parent)
        )
        conn.execute(
            delete(commit_provenance).where(
                commit_provenance.c.repo_id == repo_id, commit_provenance.c.commit_id == cid
            )
        )
        conn.execute(delete(commits).where(commits.c.repo_id == repo_id, commits.c.id == cid))
        dropped += 1
    return dropped
