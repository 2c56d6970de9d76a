"""Auth value types: subjects, roles and what each role permits.

A *subject* names who acts: ``user:NAME``, ``robot:NAME``, ``pipeline:NAME`` (a pipeline's
own identity, used by its jobs), ``haathi:root`` (the root token made by ``auth activate``), or
``allClusterUsers`` (Pachyderm's name for every authenticated caller: a role bound to it is
everyone's). Roles are Pachyderm's (``src/server/auth/server/roles.go``), each bindable on the
resources its ``bindable_to`` names:

- ``repoReader`` < ``repoWriter`` < ``repoOwner``: read, write, own a repo; bound on a project
  (or the cluster) they hold for every repo in it, also those made later;
- ``projectViewer`` < ``projectWriter`` < ``projectOwner`` on a project (or the cluster): see
  its repos and pipelines listed; also create them; also own all of them and the project;
- ``projectCreator`` on the cluster: create projects;
- ``clusterAdmin`` on the cluster: everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.ids import split_key

ROOT = "haathi:root"
ALL_CLUSTER_USERS = "allClusterUsers"
SUBJECT_KINDS = ("user", "robot", "pipeline")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


class Resource(Enum):
    """What a role is bound on."""

    CLUSTER = "the cluster"
    PROJECT = "a project"
    REPO = "a repo"


class Permission(Enum):
    READ = "read"  # read a repo's branches, commits, files, jobs and lineage
    WRITE = "write"  # commit to it, change branches, run its pipeline
    OWN = "own"  # delete it, change who may use it
    LIST_REPO = "list_repo"  # project: see its repos and pipelines in lists
    CREATE_REPO = "create_repo"  # project: create repos and pipelines in it
    OWN_PROJECT = "own_project"  # project: update or delete it, change who may use it
    CREATE_PROJECT = "create_project"  # cluster: create projects
    ADMIN = "admin"  # cluster: tokens, cluster roles, fsck, gc

    @property
    def on(self) -> Resource:
        """The resource this permission is about."""
        if self in _REPO_PERMISSIONS:
            return Resource.REPO
        if self in _PROJECT_PERMISSIONS:
            return Resource.PROJECT
        return Resource.CLUSTER


_REPO_PERMISSIONS = frozenset({Permission.READ, Permission.WRITE, Permission.OWN})
_PROJECT_PERMISSIONS = frozenset(
    {Permission.LIST_REPO, Permission.CREATE_REPO, Permission.OWN_PROJECT}
)


class Role(Enum):
    REPO_READER = "repoReader"
    REPO_WRITER = "repoWriter"
    REPO_OWNER = "repoOwner"
    PROJECT_VIEWER = "projectViewer"
    PROJECT_WRITER = "projectWriter"
    PROJECT_OWNER = "projectOwner"
    PROJECT_CREATOR = "projectCreator"
    CLUSTER_ADMIN = "clusterAdmin"

    @property
    def permissions(self) -> frozenset[Permission]:
        return _PERMITS[self]

    @property
    def bindable_to(self) -> frozenset[Resource]:
        """Where the role may be bound (Pachyderm's ``CanBeBoundTo``)."""
        if self in (Role.PROJECT_CREATOR, Role.CLUSTER_ADMIN):
            return frozenset({Resource.CLUSTER})
        if self.value.startswith("project"):
            return frozenset({Resource.CLUSTER, Resource.PROJECT})
        return frozenset(Resource)

    def shown_for(self, resource: Resource) -> bool:
        """Whether ``auth check`` of ``resource`` names this role: it grants a permission
        there (Pachyderm's ``ReturnedFor``; a project's check also names repo roles bound on
        it, which hold for its repos)."""
        kinds = {p.on for p in self.permissions}
        if resource is Resource.PROJECT:
            return bool(kinds & {Resource.PROJECT, Resource.REPO})
        return resource in kinds


_VIEW = frozenset({Permission.LIST_REPO})
_PERMITS = {
    Role.REPO_READER: frozenset({Permission.READ}),
    Role.REPO_WRITER: frozenset({Permission.READ, Permission.WRITE}),
    Role.REPO_OWNER: _REPO_PERMISSIONS,
    Role.PROJECT_VIEWER: _VIEW,
    Role.PROJECT_WRITER: _VIEW | {Permission.CREATE_REPO},
    Role.PROJECT_OWNER: _REPO_PERMISSIONS | _PROJECT_PERMISSIONS,
    Role.PROJECT_CREATOR: frozenset({Permission.CREATE_PROJECT}),
    Role.CLUSTER_ADMIN: frozenset(Permission),
}
# the least role that grants each permission, for error messages
NEEDS = {
    Permission.READ: Role.REPO_READER,
    Permission.WRITE: Role.REPO_WRITER,
    Permission.OWN: Role.REPO_OWNER,
    Permission.LIST_REPO: Role.PROJECT_VIEWER,
    Permission.CREATE_REPO: Role.PROJECT_WRITER,
    Permission.OWN_PROJECT: Role.PROJECT_OWNER,
    Permission.CREATE_PROJECT: Role.PROJECT_CREATOR,
    Permission.ADMIN: Role.CLUSTER_ADMIN,
}


def parse_role(text: str) -> Role:
    """A role by its name (``repoReader``, ``projectViewer``, ``clusterAdmin``, ...)."""
    for role in Role:
        if role.value.lower() == text.strip().lower():
            return role
    names = ", ".join(r.value for r in Role)
    raise InvalidArgument(f"unknown role {text!r}: expected one of {names}")


def parse_roles(text: str, *, on: Resource) -> list[Role]:
    """A comma-separated role list (``none``: no roles) to bind on a resource of kind ``on``."""
    if text.strip().lower() == "none":
        return []
    roles = [parse_role(part) for part in text.split(",") if part.strip()]
    if not roles:
        raise InvalidArgument("no role given: name one or more roles, or none")
    for role in roles:
        if on not in role.bindable_to:
            where = " or ".join(r.value for r in Resource if r in role.bindable_to)
            raise InvalidArgument(
                f"role {role.value} cannot be bound on {on.value} (only on {where})"
            )
    return list(dict.fromkeys(roles))


def parse_subject(text: str) -> str:
    """``user:NAME``, ``robot:NAME``, ``pipeline:NAME`` (a bare NAME is ``user:NAME``) or
    ``allClusterUsers``."""
    if text in (ROOT, ALL_CLUSTER_USERS):
        return text
    kind, sep, name = text.partition(":")
    if not sep:
        kind, name = "user", text
    if kind not in SUBJECT_KINDS:
        raise InvalidArgument(
            f"subject {text!r}: expected user:NAME, robot:NAME, pipeline:NAME or allClusterUsers"
        )
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"subject {text!r}: a name is 1-128 letters, digits and . _ @ + - "
            "(starting with a letter or digit)"
        )
    return f"{kind}:{name}"


def pipeline_subject(pipeline: str) -> str:
    return f"pipeline:{pipeline}"


@dataclass(frozen=True)
class Caller:
    """Who an authenticated request acts as."""

    subject: str


@dataclass(frozen=True)
class Scope:
    """Some repos: every repo (keys) of ``projects``, also those made later, and ``repos``.
    ``key in scope`` asks whether a repo (or a pipeline, by its output repo) is one."""

    projects: frozenset[str]
    repos: frozenset[str]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.repos or split_key(key)[0] in self.projects)


@dataclass(frozen=True)
class RoleBindings:
    """The role bindings of one resource (``cluster``, a project or a repo): subject -> role
    names."""

    resource: str
    bindings: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "bindings": self.bindings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoleBindings:
        return cls(str(d["resource"]), {str(k): list(v) for k, v in d["bindings"].items()})


@dataclass(frozen=True)
class Access:
    """What a subject may do on a repo (``auth check repo``)."""

    subject: str
    repo: str
    roles: list[str]
    permissions: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "repo": self.repo,
            "roles": self.roles,
            "permissions": self.permissions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Access:
        return cls(str(d["subject"]), str(d["repo"]), list(d["roles"]), list(d["permissions"]))


@dataclass(frozen=True)
class ProjectAccess:
    """What a subject may do on a project and, by the roles held there, on all its repos
    (``auth check project``)."""

    subject: str
    project: str
    roles: list[str]
    permissions: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "project": self.project,
            "roles": self.roles,
            "permissions": self.permissions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProjectAccess:
        return cls(str(d["subject"]), str(d["project"]), list(d["roles"]), list(d["permissions"]))
