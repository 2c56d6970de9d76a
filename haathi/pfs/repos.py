"""Repo rows: the owner of the ``repos`` table.

Every write that changes a repo's branches or commits first locks the repo's row (``lock``),
so it reads what it depends on only after earlier writers have committed. Queries of other
tables that name repos join :func:`names` instead of the table.
"""

from __future__ import annotations

import functools

from sqlalchemy import Connection, Row, Subquery, bindparam, delete, select, update

from haathi.errors import AlreadyExists, NotFound
from haathi.meta.database import insert_ignore, lock_rows
from haathi.meta.schema import repos
from haathi.models.bounds import check_description
from haathi.models.ids import split_key, validate_repo_key
from haathi.models.text import check_text
from haathi.pfs.context import now

# built once: every resolve of a ref runs it
_ID = select(repos.c.id).where(repos.c.name == bindparam("name"))
_ROW = select(repos).where(repos.c.name == bindparam("name"))  # and every write, locked
_ROW_LOCKED = _ROW.with_for_update()


@functools.cache
def names() -> Subquery:
    """``(id, name, created_at)`` of every repo, for other tables' queries to join on by repo
    ID. (SQLite gives a new repo the ID of the newest one deleted: the three tell them apart.)"""
    return select(repos.c.id, repos.c.name, repos.c.created_at).subquery("repo_names")


def insert_repo(conn: Connection, name: str, description: str = "") -> int:
    """Create a repo (``name`` is its key: ``project/name``) in this transaction; its ID. The
    caller checks that its project exists."""
    validate_repo_key(name)
    check_text(description, f"the description of repo {name}")
    check_description(description, f"the description of repo {name}")
    values = {"description": description, "created_at": now(), "metadata": "{}",
              "project": split_key(name)[0]}  # fmt: skip
    if not insert_ignore(conn, repos, ["name"], name=name, **values):
        raise AlreadyExists(f"repo {name} already exists", repo=name)
    return int(repo_row(conn, name).id)


def repo_row(conn: Connection, name: str, *, lock: bool = False) -> Row[tuple[object, ...]]:
    """The repo's row. With ``lock`` (in a write transaction) the row stays locked until the
    transaction ends: every write that changes a repo's branches or commits takes this lock
    first, so it reads what it depends on only after earlier writers have committed."""
    rows = conn.execute(_ROW_LOCKED if lock else _ROW, {"name": name}).all()
    if not rows:
        raise NotFound(f"repo {name} not found", repo=name)
    return rows[0]


def lock(conn: Connection, name: str) -> int:
    """Lock the repo's row for this write transaction (see ``repo_row``); its ID."""
    return int(repo_row(conn, name, lock=True).id)


def lock_id(conn: Connection, repo_id: int) -> None:
    """Lock the row of the repo with ID ``repo_id`` (see ``repo_row``)."""
    lock_rows(conn, select(repos.c.id).where(repos.c.id == repo_id))


def repo_id_of(conn: Connection, name: str) -> int:
    r = conn.execute(_ID, {"name": name}).first()
    if r is None:
        raise NotFound(f"repo {name} not found", repo=name)
    return int(r[0])


def exists(conn: Connection, name: str) -> bool:
    return conn.execute(_ID, {"name": name}).first() is not None


def repo_name(conn: Connection, repo_id: int) -> str:
    """The name of the repo with ID ``repo_id``."""
    return str(conn.execute(select(repos.c.name).where(repos.c.id == repo_id)).scalar_one())


def repo_names(conn: Connection, project: str | None = None) -> list[str]:
    """Every repo's key (of ``project``; None: of every project), sorted."""
    stmt = select(repos.c.name).order_by(repos.c.name)
    if project is not None:
        stmt = stmt.where(repos.c.project == project)
    return [str(r[0]) for r in conn.execute(stmt)]


def set_description(conn: Connection, repo_id: int, description: str) -> None:
    conn.execute(update(repos).where(repos.c.id == repo_id).values(description=description))


def set_metadata(conn: Connection, repo_id: int, metadata: str) -> None:
    """Store the repo's metadata (a JSON object, encoded)."""
    conn.execute(update(repos).where(repos.c.id == repo_id).values(metadata=metadata))


def delete_repo_row(conn: Connection, repo_id: int) -> None:
    """Remove the repo's row (its branches, commits and the rest go first: see
    :func:`haathi.pfs.catalog.delete_repo_rows`)."""
    conn.execute(delete(repos).where(repos.c.id == repo_id))
