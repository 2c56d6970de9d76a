"""Role bindings: which subject has which roles on the cluster, on each project and on each
repo.

A subject's roles on a repo are those bound to it, or to ``allClusterUsers``, on the cluster,
on the repo's project and on the repo itself (Pachyderm's evaluation order: cluster, project,
repo), read in one query.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, delete, insert, or_, select

from haathi.errors import PermissionDenied
from haathi.meta.schema import role_bindings
from haathi.models.auth import (
    ALL_CLUSTER_USERS,
    NEEDS,
    ROOT,
    Permission,
    Resource,
    Role,
    Scope,
)
from haathi.models.ids import DEFAULT_PROJECT, split_key

CLUSTER = "cluster"


def project_resource(project: str) -> str:
    return f"project:{project}"


def repo_resource(repo: str) -> str:
    return f"repo:{repo}"


_ROLES = select(role_bindings.c.role).where(  # built once: every authorized request runs it
    role_bindings.c.subject.in_(bindparam("subjects", expanding=True)),
    role_bindings.c.resource.in_(bindparam("resources", expanding=True)),
)
_HELD = select(role_bindings.c.resource, role_bindings.c.role).where(
    role_bindings.c.subject.in_(bindparam("subjects", expanding=True))
)


def _as(subject: str) -> list[str]:
    """Whose bindings count for ``subject``: its own and every authenticated caller's."""
    return [subject, ALL_CLUSTER_USERS]


def resources_of(repo: str | None = None, *, project: str | None = None) -> list[str]:
    """What a check of ``repo`` (or of ``project``; neither: of the cluster) reads the bindings
    of: the cluster, the project, the repo."""
    if repo is not None:
        project = split_key(repo)[0]
    out = [CLUSTER]
    if project is not None:
        out.append(project_resource(project))
    if repo is not None:
        out.append(repo_resource(repo))
    return out


def roles_of(conn: Connection, subject: str, resources: Iterable[str]) -> set[Role]:
    """The roles ``subject`` (or ``allClusterUsers``) holds on any of ``resources``."""
    rows = conn.execute(_ROLES, {"subjects": _as(subject), "resources": list(resources)}).all()
    return {Role(r.role) for r in rows if r.role in _ROLE_NAMES}


def _granted(roles: Iterable[Role]) -> set[Permission]:
    out: set[Permission] = set()
    for role in roles:
        out |= role.permissions
    return out


def permissions(
    conn: Connection, subject: str, repo: str | None, *, project: str | None = None
) -> set[Permission]:
    """What ``subject`` may do on ``repo`` (or on ``project``; neither: on the cluster). Root
    may do all."""
    if subject == ROOT:
        return set(Permission)
    return _granted(roles_of(conn, subject, resources_of(repo, project=project)))


_ACTS = {  # what a refused permission would have done, on what
    Permission.READ: "read repo {}",
    Permission.WRITE: "write repo {}",
    Permission.OWN: "own repo {}",
    Permission.LIST_REPO: "list the repos of project {}",
    Permission.CREATE_REPO: "create repos and pipelines in project {}",
    Permission.OWN_PROJECT: "own project {}",
    Permission.CREATE_PROJECT: "create projects",
    Permission.ADMIN: "admin the cluster",
}


def _denied(
    subject: str, permission: Permission, name: str = "", **details: str
) -> PermissionDenied:
    return PermissionDenied(
        f"{subject} is not authorized to {_ACTS[permission].format(name)}: needs "
        f"{NEEDS[permission].value}",
        subject=subject,
        **details,
    )


def require(conn: Connection, subject: str, permission: Permission, repos: Iterable[str]) -> None:
    """Raise PermissionDenied unless ``subject`` has ``permission`` on every repo (on the
    cluster, for a cluster permission)."""
    if permission.on is Resource.CLUSTER:
        if permission not in permissions(conn, subject, None):
            raise _denied(subject, permission)
        return
    for repo in dict.fromkeys(repos):
        if permission not in permissions(conn, subject, repo):
            raise _denied(subject, permission, repo, repo=repo)


def require_project(conn: Connection, subject: str, permission: Permission, project: str) -> None:
    """Raise PermissionDenied unless ``subject`` has ``permission`` on ``project``."""
    if permission not in permissions(conn, subject, None, project=project):
        raise _denied(subject, permission, project, project=project)


def scope(conn: Connection, subject: str, *wanted: Permission) -> Scope | None:
    """The repos on which ``subject`` has any of the ``wanted`` permissions (READ, LIST_REPO:
    a role on a project that grants one holds for every repo of the project); None: every
    repo (root, or a role on the cluster that grants one)."""
    if subject == ROOT:
        return None
    projects: set[str] = set()
    repos: set[str] = set()
    for r in conn.execute(_HELD, {"subjects": _as(subject)}):
        if r.role not in _ROLE_NAMES or not Role(r.role).permissions & set(wanted):
            continue
        kind, _, name = r.resource.partition(":")
        if r.resource == CLUSTER:
            return None
        if kind == "project":
            projects.add(name)
        elif kind == "repo":
            repos.add(name)
    return Scope(frozenset(projects), frozenset(repos))


def held_on_projects(conn: Connection, subject: str) -> dict[str, set[Role]]:
    """The roles ``subject`` (or ``allClusterUsers``) holds on each project, and on the
    cluster (key ``cluster``)."""
    out: dict[str, set[Role]] = {}
    for r in conn.execute(_HELD, {"subjects": _as(subject)}):
        if r.role in _ROLE_NAMES and (r.resource == CLUSTER or r.resource.startswith("project:")):
            out.setdefault(r.resource, set()).add(Role(r.role))
    return out


def bindings(conn: Connection, resource: str) -> dict[str, list[str]]:
    """subject -> role names bound on ``resource``, sorted."""
    out: dict[str, list[str]] = {}
    rows = conn.execute(
        select(role_bindings.c.subject, role_bindings.c.role)
        .where(role_bindings.c.resource == resource)
        .order_by(role_bindings.c.subject, role_bindings.c.role)
    ).all()
    for r in rows:
        out.setdefault(r.subject, []).append(r.role)
    return out


def set_roles(conn: Connection, resource: str, subject: str, roles: Iterable[Role]) -> None:
    """Make ``roles`` exactly what ``subject`` holds on ``resource`` (empty: none)."""
    conn.execute(
        delete(role_bindings).where(
            role_bindings.c.resource == resource, role_bindings.c.subject == subject
        )
    )
    values = [{"resource": resource, "subject": subject, "role": r.value} for r in roles]
    if values:
        conn.execute(insert(role_bindings), values)


def grant(conn: Connection, resource: str, subject: str, role: Role) -> None:
    """Add ``role`` to what ``subject`` itself holds on ``resource`` (kept if already held)."""
    held = conn.execute(
        select(role_bindings.c.role).where(
            role_bindings.c.resource == resource,
            role_bindings.c.subject == subject,
            role_bindings.c.role == role.value,
        )
    ).first()
    if held is None:
        conn.execute(
            insert(role_bindings).values(resource=resource, subject=subject, role=role.value)
        )


def make_owner(
    conn: Connection, resource: str, owner: str | None, role: Role = Role.REPO_OWNER
) -> None:
    """A new repo or project (``resource``): ``owner`` holds ``role`` on it (None: only
    cluster admins own it), and bindings left from an earlier one of that name go."""
    drop(conn, resource=resource)
    if owner is not None:
        grant(conn, resource, owner, role)


def seed(conn: Connection) -> None:
    """What every authenticated caller may do when auth is turned on, as Pachyderm: create
    projects, and create repos and pipelines in (and see the lists of) ``default``."""
    grant(conn, CLUSTER, ALL_CLUSTER_USERS, Role.PROJECT_CREATOR)
    grant(conn, project_resource(DEFAULT_PROJECT), ALL_CLUSTER_USERS, Role.PROJECT_WRITER)


def drop(conn: Connection, *, resource: str | None = None, subject: str | None = None) -> None:
    """Remove every binding on ``resource`` and/or of ``subject``."""
    conds = []
    if resource is not None:
        conds.append(role_bindings.c.resource == resource)
    if subject is not None:
        conds.append(role_bindings.c.subject == subject)
    if conds:
        conn.execute(delete(role_bindings).where(or_(*conds) if len(conds) > 1 else conds[0]))


def drop_all(conn: Connection) -> None:
    """Remove every binding."""
    conn.execute(delete(role_bindings))


_ROLE_NAMES = {r.value for r in Role}
