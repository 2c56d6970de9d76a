"""Row-level writes of commits and branches, shared by every commit-creating operation."""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, select, update

from haathi.meta.schema import branches, commits
from haathi.models.ids import validate_branch_name
from haathi.models.info import CommitState, Origin
from haathi.pfs.context import AUTHOR_MAX, now, repo_row


def lock(conn: Connection, repo: str) -> int:
    """Lock the repo's row for this write transaction (see ``repo_row``); its ID."""
    return int(repo_row(conn, repo, lock=True).id)


def next_seq(conn: Connection, repo_id: int) -> int:
    cur = conn.execute(
        select(func.coalesce(func.max(commits.c.seq), 0)).where(commits.c.repo_id == repo_id)
    ).scalar_one()
    return int(cur) + 1


def branch_head(conn: Connection, repo_id: int, name: str) -> tuple[bool, str | None]:
    """(whether the branch exists, its head commit)."""
    row = conn.execute(
        select(branches.c.head).where(branches.c.repo_id == repo_id, branches.c.name == name)
    ).first()
    return row is not None, None if row is None or row[0] is None else str(row[0])


def branches_at(conn: Connection, repo_id: int, cid: str) -> tuple[str, ...]:
    """The branches whose head is commit ``cid``, by name."""
    rows = conn.execute(
        select(branches.c.name)
        .where(branches.c.repo_id == repo_id, branches.c.head == cid)
        .order_by(branches.c.name)
    )
    return tuple(str(r[0]) for r in rows)


def ensure_branch(conn: Connection, repo_id: int, name: str) -> str | None:
    """The branch's head (creating the branch if needed)."""
    exists, head = branch_head(conn, repo_id, name)
    if exists:
        return head
    validate_branch_name(name)
    conn.execute(
        insert(branches).values(
            repo_id=repo_id, name=name, head=None, created_at=now(), metadata="{}"
        )
    )
    return None


def cas_head(conn: Connection, repo_id: int, branch: str, expected: str | None, new: str) -> bool:
    cond = branches.c.head == expected if expected is not None else branches.c.head.is_(None)
    res = conn.execute(
        update(branches)
        .where(branches.c.repo_id == repo_id, branches.c.name == branch, cond)
        .values(head=new)
    )
    return res.rowcount == 1


def insert_commit(
    conn: Connection,
    repo_id: int,
    cid: str,
    *,
    branch: str | None,
    parent: str | None,
    state: CommitState,
    description: str,
    root: bytes | None = None,
    totals: tuple[int, int] = (0, 0),
    origin: Origin = Origin.USER,
    author: str | None = None,
) -> None:
    """Insert a commit row (``author``: who made a user commit; None for pipeline output)."""
    t = now()
    conn.execute(
        insert(commits).values(
            repo_id=repo_id,
            id=cid,
            seq=next_seq(conn, repo_id),
            branch=branch,
            parent=parent,
            origin=origin.value,
            state=state.value,
            error=None,
            root=root,
            file_count=totals[0],
            size_bytes=totals[1],
            description=description,
            started_at=t,
            finished_at=t if state == CommitState.FINISHED else None,
            metadata="{}",
            author=None if author is None else author[:AUTHOR_MAX],
        )
    )
