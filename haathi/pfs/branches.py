"""Branch rows: the owner of the ``branches`` table. A branch names its head commit (None
until its first commit); writers move heads with a compare-and-swap (``cas_head``). A branch
may have a trigger (``pfs/triggers.py`` fires it)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from haathi.errors import NotFound
from haathi.meta.schema import branches
from haathi.models.ids import validate_branch_name
from haathi.models.trigger import Trigger
from haathi.pfs import repos
from haathi.pfs.context import as_utc, now

# built once: every resolve of a ref runs it (building a statement costs several times running
# it on SQLite)
_HEAD = select(branches.c.head).where(
    branches.c.repo_id == bindparam("repo_id"), branches.c.name == bindparam("name")
)
_ID = select(branches.c.id).where(
    branches.c.repo_id == bindparam("repo_id"), branches.c.name == bindparam("name")
)
_SET_HEAD = update(branches).where(branches.c.id == bindparam("branch_id"))


def branch_row(conn: Connection, repo_id: int, repo: str, name: str) -> Row[tuple[object, ...]]:
    """The branch's row; NotFound if the repo has no such branch."""
    row = conn.execute(
        select(branches).where(branches.c.repo_id == repo_id, branches.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"branch {name} not found in repo {repo}", repo=repo, branch=name)
    return row


def branch_rows(conn: Connection, repo_id: int) -> list[Row[tuple[object, ...]]]:
    """The repo's branches, by name."""
    rows = conn.execute(
        select(branches).where(branches.c.repo_id == repo_id).order_by(branches.c.name)
    )
    return list(rows)


def branch_names(conn: Connection, repo_id: int) -> tuple[str, ...]:
    """The names of the repo's branches, sorted."""
    rows = conn.execute(
        select(branches.c.name).where(branches.c.repo_id == repo_id).order_by(branches.c.name)
    )
    return tuple(str(r[0]) for r in rows)


def branch_head(conn: Connection, repo_id: int, name: str) -> tuple[bool, str | None]:
    """(whether the branch exists, its head commit)."""
    row = conn.execute(_HEAD, {"repo_id": repo_id, "name": name}).first()
    return row is not None, None if row is None or row[0] is None else str(row[0])


def branches_at(conn: Connection, repo_id: int, cid: str) -> tuple[str, ...]:
    """The branches whose head is commit ``cid``, by name."""
    rows = conn.execute(
        select(branches.c.name)
        .where(branches.c.repo_id == repo_id, branches.c.head == cid)
        .order_by(branches.c.name)
    )
    return tuple(str(r[0]) for r in rows)


def all_heads(conn: Connection) -> list[tuple[int, str, str, str | None]]:
    """(repo ID, repo, branch, head) of every branch of every repo."""
    names = repos.names()
    rows = conn.execute(
        select(branches.c.repo_id, names.c.name, branches.c.name, branches.c.head).join(
            names, names.c.id == branches.c.repo_id
        )
    )
    return [(int(r[0]), str(r[1]), str(r[2]), None if r[3] is None else str(r[3])) for r in rows]


def branch_id(conn: Connection, repo_id: int, name: str) -> int | None:
    """The branch's row ID, None if the repo has no such branch."""
    row = conn.execute(_ID, {"repo_id": repo_id, "name": name}).first()
    return None if row is None else int(row[0])


def insert_branch(conn: Connection, repo_id: int, name: str, head: str | None) -> None:
    """Add a branch (its name already checked) whose head is ``head``."""
    conn.execute(
        insert(branches).values(
            repo_id=repo_id, name=name, head=head, created_at=now(), metadata="{}"
        )
    )


def ensure_branch(conn: Connection, repo_id: int, name: str) -> str | None:
    """The branch's head (creating the branch if needed)."""
    exists, head = branch_head(conn, repo_id, name)
    if exists:
        return head
    validate_branch_name(name)
    insert_branch(conn, repo_id, name, None)
    return None


def set_head(conn: Connection, branch_id: int, head: str | None) -> None:
    """Point the branch with row ID ``branch_id`` at ``head``, whatever it pointed at."""
    conn.execute(_SET_HEAD, {"branch_id": branch_id, "head": head})


def cas_head(conn: Connection, repo_id: int, branch: str, expected: str | None, new: str) -> bool:
    """Move the branch's head from ``expected`` to ``new``; False if it was not ``expected``."""
    cond = branches.c.head == expected if expected is not None else branches.c.head.is_(None)
    res = conn.execute(
        update(branches)
        .where(branches.c.repo_id == repo_id, branches.c.name == branch, cond)
        .values(head=new)
    )
    return res.rowcount == 1


def move_heads(conn: Connection, repo_id: int, cid: str, to: str | None) -> None:
    """Point every branch of the repo whose head is ``cid`` at ``to`` instead."""
    conn.execute(
        update(branches)
        .where(branches.c.repo_id == repo_id, branches.c.head == cid)
        .values(head=to)
    )


def trigger_in(text: object) -> Trigger | None:
    """A ``trigger`` column's trigger (None: the branch has none)."""
    return None if not text else Trigger.from_dict(json.loads(str(text)))


def set_trigger(conn: Connection, branch_id: int, trigger: Trigger) -> None:
    """Give the branch with row ID ``branch_id`` a trigger (checked by the caller)."""
    text = json.dumps(trigger.to_dict(), sort_keys=True)
    conn.execute(update(branches).where(branches.c.id == branch_id).values(trigger=text))


def trigger_of(conn: Connection, repo_id: int, name: str) -> Trigger | None:
    """The branch's trigger; None if it has none or does not exist."""
    row = conn.execute(
        select(branches.c.trigger).where(branches.c.repo_id == repo_id, branches.c.name == name)
    ).first()
    return None if row is None else trigger_in(row[0])


def triggered(
    conn: Connection, repo_id: int | None = None
) -> list[tuple[int, int, str, str | None, datetime, Trigger]]:
    """(row ID, repo ID, branch, head, created, trigger) of every branch with a trigger (of
    repo ``repo_id``, or of every repo)."""
    q = select(
        branches.c.id,
        branches.c.repo_id,
        branches.c.name,
        branches.c.head,
        branches.c.created_at,
        branches.c.trigger,
    ).where(branches.c.trigger.is_not(None))
    if repo_id is not None:
        q = q.where(branches.c.repo_id == repo_id)
    out = []
    for r in conn.execute(q.order_by(branches.c.repo_id, branches.c.name)):
        trigger = trigger_in(r[5])
        if trigger is not None:
            out.append((int(r[0]), int(r[1]), str(r[2]), r[3], as_utc(r[4]) or r[4], trigger))
    return out


def set_metadata(conn: Connection, branch_id: int, metadata: str) -> None:
    """Store the branch's metadata (a JSON object, encoded)."""
    conn.execute(update(branches).where(branches.c.id == branch_id).values(metadata=metadata))


def delete_branch(conn: Connection, branch_id: int) -> None:
    conn.execute(delete(branches).where(branches.c.id == branch_id))


def delete_repo_branches(conn: Connection, repo_id: int) -> None:
    conn.execute(delete(branches).where(branches.c.repo_id == repo_id))
