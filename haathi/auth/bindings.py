"""Role bindings: which subject has which roles on the cluster and on each repo."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, delete, insert, or_, select

from haathi.errors import PermissionDenied
from haathi.meta.schema import role_bindings
from haathi.models.auth import ROOT, Permission, Role

CLUSTER = "cluster"

_NEEDS = {  # the least role that grants each permission, for error messages
    Permission.READ: Role.REPO_READER,
    Permission.WRITE: Role.REPO_WRITER,
    Permission.OWN: Role.REPO_OWNER,
    Permission.ADMIN: Role.CLUSTER_ADMIN,
}


def repo_resource(repo: str) -> str:
    return f"repo:{repo}"


_ROLES = select(role_bindings.c.role).where(  # built once: every authorized request runs it
    role_bindings.c.subject == bindparam("subject"),
    role_bindings.c.resource.in_(bindparam("resources", expanding=True)),
)


def roles_of(conn: Connection, subject: str, resources: Iterable[str]) -> set[Role]:
    """The roles ``subject`` holds on any of ``resources``."""
    rows = conn.execute(_ROLES, {"subject": subject, "resources": list(resources)}).all()
    return {Role(r.role) for r in rows if r.role in _ROLE_NAMES}


def permissions(conn: Connection, subject: str, repo: str | None) -> set[Permission]:
    """What ``subject`` may do on ``repo`` (None: on the cluster). Cluster admins may do all."""
    if subject == ROOT:
        return set(Permission)
    resources = [CLUSTER] if repo is None else [CLUSTER, repo_resource(repo)]
    out: set[Permission] = set()
    for role in roles_of(conn, subject, resources):
        out |= role.permissions
    return out


def require(conn: Connection, subject: str, permission: Permission, repos: Iterable[str]) -> None:
    """Raise PermissionDenied unless ``subject`` has ``permission`` on every repo (on the
    cluster, for ADMIN)."""
    targets: list[str | None] = [None] if permission is Permission.ADMIN else list(repos)
    for repo in dict.fromkeys(targets):
        if permission not in permissions(conn, subject, repo):
            where = "the cluster" if repo is None else f"repo {repo}"
            raise PermissionDenied(
                f"{subject} is not authorized to {permission.value} {where}: needs "
                f"{_NEEDS[permission].value}",
                subject=subject,
                **({} if repo is None else {"repo": repo}),
            )


def readable_repos(conn: Connection, subject: str) -> set[str] | None:
    """The repos ``subject`` may read; None: every repo (root or a cluster admin)."""
    if subject == ROOT or Role.CLUSTER_ADMIN in roles_of(conn, subject, [CLUSTER]):
        return None
    rows = conn.execute(
        select(role_bindings.c.resource).where(
            role_bindings.c.subject == subject, role_bindings.c.resource.like("repo:%")
        )
    ).all()
    return {r.resource.removeprefix("repo:") for r in rows}


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
    """Add ``role`` to what ``subject`` holds on ``resource`` (kept if already held)."""
    if role not in roles_of(conn, subject, [resource]):
        conn.execute(
            insert(role_bindings).values(resource=resource, subject=subject, role=role.value)
        )


def make_owner(conn: Connection, resource: str, owner: str | None) -> None:
    """A new repo (``resource``): ``owner`` owns it (None: only cluster admins), and bindings
    left from an earlier repo of that name go."""
    drop(conn, resource=resource)
    if owner is not None:
        grant(conn, resource, owner, Role.REPO_OWNER)


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
