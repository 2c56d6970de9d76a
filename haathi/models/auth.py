"""Auth value types: subjects, roles and what each role permits.

A *subject* names who acts: ``user:NAME``, ``robot:NAME``, ``pipeline:NAME`` (a pipeline's
own identity, used by its jobs) or ``haathi:root`` (the root token made by ``auth activate``).
Roles are Pachyderm's: ``repoReader`` < ``repoWriter`` < ``repoOwner`` on a repo, and
``clusterAdmin`` on the cluster (every permission on every repo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from haathi.errors import InvalidArgument

ROOT = "haathi:root"
SUBJECT_KINDS = ("user", "robot", "pipeline")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


class Permission(Enum):
    READ = "read"  # read a repo's branches, commits, files, jobs and lineage
    WRITE = "write"  # commit to it, change branches, run its pipeline
    OWN = "own"  # delete it, change who may use it
    ADMIN = "admin"  # cluster: tokens, cluster roles, fsck, gc


class Role(Enum):
    REPO_READER = "repoReader"
    REPO_WRITER = "repoWriter"
    REPO_OWNER = "repoOwner"
    CLUSTER_ADMIN = "clusterAdmin"

    @property
    def permissions(self) -> frozenset[Permission]:
        return _PERMITS[self]

    @property
    def on_cluster(self) -> bool:
        return self is Role.CLUSTER_ADMIN


_PERMITS = {
    Role.REPO_READER: frozenset({Permission.READ}),
    Role.REPO_WRITER: frozenset({Permission.READ, Permission.WRITE}),
    Role.REPO_OWNER: frozenset({Permission.READ, Permission.WRITE, Permission.OWN}),
    Role.CLUSTER_ADMIN: frozenset(Permission),
}


def parse_role(text: str) -> Role:
    """A role by its name (``repoReader``, ``repoWriter``, ``repoOwner``, ``clusterAdmin``)."""
    for role in Role:
        if role.value.lower() == text.strip().lower():
            return role
    names = ", ".join(r.value for r in Role)
    raise InvalidArgument(f"unknown role {text!r}: expected one of {names}")


def parse_roles(text: str, *, on_cluster: bool) -> list[Role]:
    """A comma-separated role list (``none``: no roles) for a repo or the cluster."""
    if text.strip().lower() == "none":
        return []
    roles = [parse_role(part) for part in text.split(",") if part.strip()]
    if not roles:
        raise InvalidArgument("no role given: name one or more roles, or none")
    for role in roles:
        if role.on_cluster != on_cluster:
            where = "the cluster" if on_cluster else "a repo"
            raise InvalidArgument(f"role {role.value} cannot be bound on {where}")
    return list(dict.fromkeys(roles))


def parse_subject(text: str) -> str:
    """``user:NAME``, ``robot:NAME`` or ``pipeline:NAME`` (a bare NAME is ``user:NAME``)."""
    kind, sep, name = text.partition(":")
    if not sep:
        kind, name = "user", text
    if text == ROOT:
        return ROOT
    if kind not in SUBJECT_KINDS:
        raise InvalidArgument(f"subject {text!r}: expected user:NAME, robot:NAME or pipeline:NAME")
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
class RoleBindings:
    """The role bindings of one resource (``cluster`` or a repo): subject -> role names."""

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
