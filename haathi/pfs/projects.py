"""Project rows: the owner of the ``projects`` table.

A project groups repos and pipelines (Pachyderm 2.5+). Its repos and pipelines are found by
the ``project`` column of their own tables (owned by :mod:`haathi.pfs.repos` and
:mod:`haathi.pps.records`); this module knows only the projects themselves. ``default``
exists in every store (migration 0016 made it) and is never deleted.
"""

from __future__ import annotations

from sqlalchemy import Connection, Row, delete, select, update

from haathi.errors import AlreadyExists, NotFound
from haathi.meta.database import insert_ignore
from haathi.meta.schema import projects
from haathi.models.info import ProjectInfo
from haathi.pfs.context import as_utc, metadata_of, now


def insert_project(
    conn: Connection, name: str, description: str = "", created_by: str | None = None
) -> None:
    """Create a project in this transaction (AlreadyExists if there is one of that name)."""
    values = {"description": description, "created_at": now(), "created_by": created_by,
              "metadata": "{}"}  # fmt: skip
    if not insert_ignore(conn, projects, ["name"], name=name, **values):
        raise AlreadyExists(f"project {name} already exists", project=name)


def project_row(conn: Connection, name: str) -> Row[tuple[object, ...]]:
    row = conn.execute(select(projects).where(projects.c.name == name)).first()
    if row is None:
        raise NotFound(f"project {name} not found", project=name)
    return row


def exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(projects.c.name).where(projects.c.name == name)).first() is not None


def require(conn: Connection, name: str) -> None:
    """NotFound unless project ``name`` exists."""
    if not exists(conn, name):
        raise NotFound(f"project {name} not found", project=name)


def info(row: Row[tuple[object, ...]]) -> ProjectInfo:
    m = row._mapping
    created = m["created_at"]
    return ProjectInfo(
        name=str(m["name"]),
        description=str(m["description"] or ""),
        created=as_utc(created) or created,
        created_by=None if m["created_by"] is None else str(m["created_by"]),
        metadata=metadata_of(m["metadata"]),
    )


def all_projects(conn: Connection) -> list[ProjectInfo]:
    """Every project, by name."""
    return [info(r) for r in conn.execute(select(projects).order_by(projects.c.name))]


def set_description(conn: Connection, name: str, description: str) -> None:
    """Replace the description (the metadata is kept)."""
    project_row(conn, name)
    conn.execute(update(projects).where(projects.c.name == name).values(description=description))


def delete_project_row(conn: Connection, name: str) -> None:
    """Remove the project's row (its repos and pipelines go first: see
    :mod:`haathi.pps.project_lifecycle`)."""
    conn.execute(delete(projects).where(projects.c.name == name))
