"""Access control of the Api: who the caller is, what each operation needs, and the ``auth``
operations (activate, tokens, role bindings).

An Api with ``caller`` None is unrestricted: the embedded client (who can open the store's
files can read them anyway) and a server while auth is off. A server with auth on serves
each request through :meth:`AccessApi.for_token`, a view whose operations check the
caller's roles (Pachyderm's, on the cluster, a project or a repo: see
:mod:`haathi.models.auth`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from typing import Any, Protocol, Self

from haathi.auth import activation, bindings, tokens
from haathi.errors import InvalidArgument, Unauthenticated
from haathi.models.auth import (
    ALL_CLUSTER_USERS,
    ROOT,
    Access,
    Caller,
    Permission,
    ProjectAccess,
    Resource,
    Role,
    RoleBindings,
    Scope,
    parse_roles,
    parse_subject,
    pipeline_subject,
)
from haathi.models.ids import split_key, validate_project_name
from haathi.models.info import ProjectInfo
from haathi.pfs import projects
from haathi.pfs.context import PfsContext
from haathi.pfs.repos import exists as repo_exists
from haathi.pfs.repos import repo_row
from haathi.pps import pipelines, records
from haathi.pps.context import PpsContext
from haathi.pps.spec import PipelineSpec

AUTH_OFF_TRUSTED_S = 1.0  # how long a server trusts that auth is off before reading it again


class SharedCounter(Protocol):
    """A number that every process of one server sees (e.g. ``multiprocessing.RawValue``)."""

    value: int


class AuthOffMemo:
    """When this process last read that auth is off. A server trusts it for
    :data:`AUTH_OFF_TRUSTED_S`, so that a request while auth is off reads nothing to learn
    it: auth activated by another process on the same database is enforced here within that
    time; activated through this process, or through another worker of the same server (they
    share ``epoch``, bumped on activation), at once."""

    def __init__(self, epoch: SharedCounter | None = None) -> None:
        self._lock = threading.Lock()
        self._seen_at = -math.inf
        self._epoch = epoch
        self._generation = 0  # bumped by activation here: older reads may no longer be true
        self._seen_generation = (0, 0)

    def trusted(self) -> bool:
        return (
            time.monotonic() - self._seen_at < AUTH_OFF_TRUSTED_S
            and self._seen_generation == self.generation()
        )

    def generation(self) -> tuple[int, int]:
        """Bumped by every activation here (and by the server's other workers)."""
        return self._generation, 0 if self._epoch is None else self._epoch.value

    def seen_off(self, generation: tuple[int, int]) -> None:
        """Auth read as off by a read that began at ``generation``."""
        with self._lock:
            if generation == self.generation():
                self._seen_at = time.monotonic()
                self._seen_generation = generation

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            if self._epoch is not None:  # the other workers' trust ends at their next request
                self._epoch.value += 1
            self._seen_at = -math.inf


class AccessApi:
    """Mixed into :class:`haathi.api.service.Api`."""

    pfs: PfsContext
    pps: PpsContext
    caller: Caller | None = None
    auth_off: AuthOffMemo  # one per Api, shared by its callers' views

    # the caller -----------------------------------------------------------------------------
    def auth_active(self) -> bool:
        """Whether auth is activated (servers then check every request)."""
        if self.auth_known_off():
            return False
        generation = self.auth_off.generation()
        with self.pfs.db.read() as conn:
            active = activation.is_active(conn)
        if not active:
            self.auth_off.seen_off(generation)
        return active

    def auth_known_off(self) -> bool:
        """Whether auth was read to be off less than :data:`AUTH_OFF_TRUSTED_S` ago (reads
        nothing; see :class:`AuthOffMemo`)."""
        return self.auth_off.trusted()

    def caller_for_token(self, token: str) -> Caller:
        """The holder of ``token``; Unauthenticated if it is unknown, revoked or expired."""
        with self.pfs.db.read() as conn:
            return Caller(tokens.subject_of(conn, token))

    def for_token(self, token: str | None) -> Self:
        """The Api as the token's holder sees it (itself while auth is off)."""
        if self.auth_known_off():
            return self
        generation = self.auth_off.generation()
        with self.pfs.db.read() as conn:
            if not activation.is_active(conn):
                self.auth_off.seen_off(generation)
                return self
            if not token:
                raise Unauthenticated("auth is on: log in (haathi auth login) or pass a token")
            subject = tokens.subject_of(conn, token)
        return self.as_caller(Caller(subject))

    def as_caller(self, caller: Caller) -> Self:
        """A view of this Api acting as ``caller``: its commits name the caller as author, and
        every operation checks the caller's roles."""
        self._share_runner()
        view = copy.copy(self)
        view.caller = caller
        view.pfs = dataclasses.replace(self.pfs, author=caller.subject)
        view.pps = dataclasses.replace(self.pps, pfs=view.pfs)
        return view

    def _share_runner(self) -> None:
        """Views run jobs with the Api's one runner (made here, before any view is)."""

    def authorize(self, permission: Permission, *repos: str) -> None:
        """Raise PermissionDenied unless the caller has ``permission`` on every repo (on the
        cluster, for a cluster permission)."""
        if self.caller is None:
            return
        with self.pfs.db.read() as conn:
            bindings.require(conn, self.caller.subject, permission, repos)

    def _authorize_project(self, permission: Permission, project: str) -> None:
        """NotFound unless ``project`` exists; then PermissionDenied unless the caller has
        ``permission`` on it."""
        validate_project_name(project)
        if self.caller is None:
            return
        with self.pfs.db.read() as conn:
            projects.require(conn, project)
            bindings.require_project(conn, self.caller.subject, permission, project)

    def _is_admin(self) -> bool:
        """Whether the caller is a cluster admin (the embedded client and a server while auth
        is off act as root)."""
        if self.caller is None:
            return True
        with self.pfs.db.read() as conn:
            return Permission.ADMIN in bindings.permissions(conn, self.caller.subject, None)

    def _readable(self) -> Scope | None:
        """The repos the caller may read; None: all of them."""
        return self._scope(Permission.READ)

    def _visible(self) -> Scope | None:
        """The repos (and pipelines, by their output repo) lists show the caller: those of
        the projects it may list (projectViewer) and those it may read; None: all of them."""
        return self._scope(Permission.READ, Permission.LIST_REPO)

    def _scope(self, *wanted: Permission) -> Scope | None:
        if self.caller is None:
            return None
        with self.pfs.db.read() as conn:
            return bindings.scope(conn, self.caller.subject, *wanted)

    def _subject(self) -> str:
        """The caller's subject (the embedded client acts as root)."""
        return ROOT if self.caller is None else self.caller.subject

    def _owner(self) -> str | None:
        """Who owns what the caller creates (None: the embedded client, acting as root)."""
        return None if self.caller is None else self.caller.subject

    # hooks for the operations that create and delete repos and pipelines -------------------
    def _owned_by_caller(self, repo: str) -> None:
        """A new repo: its creator owns it (stale bindings of an earlier repo of that name
        go)."""
        with self.pfs.db.write() as conn:
            bindings.make_owner(conn, bindings.repo_resource(repo), self._owner())

    def _forget_repo(self, repo: str) -> None:
        with self.pfs.db.write() as conn:
            bindings.drop(conn, resource=bindings.repo_resource(repo))

    def _forget_pipeline(self, name: str, *, keep_repo: bool) -> None:
        with self.pfs.db.write() as conn:
            bindings.drop(conn, subject=pipeline_subject(name))
            if not keep_repo:
                bindings.drop(conn, resource=bindings.repo_resource(name))

    def _check_pipeline(self, spec: PipelineSpec) -> bool:
        """Before creating or updating ``spec``: the caller needs, to create it, to create
        repos in its project (projectWriter) and, to update it, write on its output; and read
        on its inputs. Whether the pipeline is new."""
        with self.pfs.db.read() as conn:
            new = records.find_pipeline(conn, spec.name) is None
            if self.caller is not None:
                who = self.caller.subject
                if new:
                    project = split_key(spec.name)[0]
                    projects.require(conn, project)
                    bindings.require_project(conn, who, Permission.CREATE_REPO, project)
                inputs = [r for r, _ in pipelines.input_branches(spec) if repo_exists(conn, r)]
                bindings.require(conn, who, Permission.READ, inputs)
                if not new:
                    bindings.require(conn, who, Permission.WRITE, [spec.name])
        return new

    # auth operations ------------------------------------------------------------------------
    def auth_activate(self) -> str:
        """Turn auth on; the root token (shown once). Existing pipelines keep running: each
        gets read on its inputs and write on its output."""
        with self.pfs.db.write() as conn:
            token = activation.activate(conn)
            pipelines.grant_all_roles(conn)
        self.auth_off.forget()
        return token

    def auth_deactivate(self) -> None:
        """Turn auth off: every token and role binding is dropped."""
        self.authorize(Permission.ADMIN)
        with self.pfs.db.write() as conn:
            activation.require_active(conn)
            activation.deactivate(conn)

    def whoami(self) -> dict[str, Any]:
        """The caller's subject (the embedded client acts as root)."""
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
            admin = Permission.ADMIN in bindings.permissions(conn, self._subject(), None)
        return {"subject": self._subject(), "cluster_admin": admin}

    def get_auth_token(self, subject: str, ttl_s: float | None = None) -> str:
        """A new token for ``subject`` (a cluster admin's operation, or the caller's own)."""
        subject = parse_subject(subject)
        if subject == ALL_CLUSTER_USERS:
            raise InvalidArgument(f"{subject} names every caller: a token is for one subject")
        if subject != self._subject():
            self.authorize(Permission.ADMIN)
        with self.pfs.db.write() as conn:
            activation.require_active(conn)
            return tokens.issue(conn, subject, ttl_s)

    def get_robot_token(self, robot: str, ttl_s: float | None = None) -> str:
        """A new token for ``robot:NAME`` (cluster admins only)."""
        subject = parse_subject(robot if robot.startswith("robot:") else f"robot:{robot}")
        if not subject.startswith("robot:"):
            raise InvalidArgument(f"{robot!r} is not a robot name")
        self.authorize(Permission.ADMIN)
        with self.pfs.db.write() as conn:
            activation.require_active(conn)
            return tokens.issue(conn, subject, ttl_s)

    def revoke_auth_token(self, token: str | None = None, subject: str | None = None) -> int:
        """Revoke one token (anyone holding it may), or every token of ``subject`` (cluster
        admins, or the caller's own); how many were revoked."""
        if (token is None) == (subject is None):
            raise InvalidArgument("revoke a token or a subject's tokens (exactly one)")
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
        if subject is not None:
            subject = parse_subject(subject)
            if subject != self._subject():
                self.authorize(Permission.ADMIN)
        with self.pfs.db.write() as conn:
            if token is not None:
                return tokens.revoke_token(conn, token)
            assert subject is not None
            return tokens.revoke_subject(conn, subject)

    def set_repo_roles(self, repo: str, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` (comma-separated, or ``none``) what ``subject`` holds on ``repo``."""
        wanted = parse_roles(roles, on=Resource.REPO)
        subject = parse_subject(subject)
        self.authorize(Permission.OWN, repo)
        resource = bindings.repo_resource(repo)
        with self.pfs.db.write() as conn:
            activation.require_active(conn)
            repo_row(conn, repo)
            bindings.set_roles(conn, resource, subject, wanted)
            return RoleBindings(repo, bindings.bindings(conn, resource))

    def get_repo_roles(self, repo: str) -> RoleBindings:
        """Who holds which roles on ``repo``."""
        self.authorize(Permission.READ, repo)
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
            repo_row(conn, repo)
            return RoleBindings(repo, bindings.bindings(conn, bindings.repo_resource(repo)))

    def check_repo(self, repo: str, subject: str | None = None) -> Access:
        """The roles and permissions of the caller (or, for a repo's owner, of ``subject``)
        on ``repo``."""
        who = self._subject() if subject is None else parse_subject(subject)
        if who != self._subject():
            self.authorize(Permission.OWN, repo)
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
            repo_row(conn, repo)
            roles = bindings.roles_of(conn, who, bindings.resources_of(repo))
            perms = bindings.permissions(conn, who, repo)
        return Access(who, repo, *_shown(roles, perms, Resource.REPO))

    def set_project_roles(self, project: str, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` (comma-separated, or ``none``) what ``subject`` holds on ``project``
        (its owners): project roles, and repo roles that hold for every repo of it."""
        wanted = parse_roles(roles, on=Resource.PROJECT)
        subject = parse_subject(subject)
        self._authorize_project(Permission.OWN_PROJECT, project)
        resource = bindings.project_resource(project)
        with self.pfs.db.write() as conn:
            activation.require_active(conn)
            projects.require(conn, project)
            bindings.set_roles(conn, resource, subject, wanted)
            return RoleBindings(project, bindings.bindings(conn, resource))

    def get_project_roles(self, project: str) -> RoleBindings:
        """Who holds which roles on ``project`` (for those who may list its repos)."""
        self._authorize_project(Permission.LIST_REPO, project)
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
            projects.require(conn, project)
            resource = bindings.project_resource(project)
            return RoleBindings(project, bindings.bindings(conn, resource))

    def check_project(self, project: str, subject: str | None = None) -> ProjectAccess:
        """The roles and permissions of the caller (or, for the project's owners, of
        ``subject``) on ``project`` and, by those roles, on each of its repos."""
        who = self._subject() if subject is None else parse_subject(subject)
        validate_project_name(project)
        if who != self._subject():
            self._authorize_project(Permission.OWN_PROJECT, project)
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
            projects.require(conn, project)
            roles = bindings.roles_of(conn, who, bindings.resources_of(project=project))
            perms = bindings.permissions(conn, who, None, project=project)
        return ProjectAccess(who, project, *_shown(roles, perms, Resource.PROJECT))

    def _with_access(self, infos: list[ProjectInfo]) -> list[ProjectInfo]:
        """With auth on, each project with the caller's roles and permissions on it (as
        Pachyderm's ``list project`` shows them), read in one query."""
        if self.caller is None and not self.auth_active():
            return infos
        who = self._subject()
        with self.pfs.db.read() as conn:
            held = {} if who == ROOT else bindings.held_on_projects(conn, who)
        on_cluster = {Role.CLUSTER_ADMIN} if who == ROOT else held.get(bindings.CLUSTER, set())
        out = []
        for info in infos:
            roles = on_cluster | held.get(bindings.project_resource(info.name), set())
            perms = set(Permission) if who == ROOT else {p for r in roles for p in r.permissions}
            shown, permitted = _shown(roles, perms, Resource.PROJECT)
            out.append(dataclasses.replace(info, roles=tuple(shown), permissions=tuple(permitted)))
        return out

    def set_cluster_roles(self, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` (``clusterAdmin``, ``projectCreator``, and project or repo roles
        that then hold everywhere; or ``none``) what ``subject`` holds on the cluster."""
        wanted = parse_roles(roles, on=Resource.CLUSTER)
        subject = parse_subject(subject)
        self.authorize(Permission.ADMIN)
        with self.pfs.db.write() as conn:
            activation.require_active(conn)
            bindings.set_roles(conn, bindings.CLUSTER, subject, wanted)
            return RoleBindings(bindings.CLUSTER, bindings.bindings(conn, bindings.CLUSTER))

    def get_cluster_roles(self) -> RoleBindings:
        self.authorize(Permission.ADMIN)
        with self.pfs.db.read() as conn:
            activation.require_active(conn)
            return RoleBindings(bindings.CLUSTER, bindings.bindings(conn, bindings.CLUSTER))


def _shown(
    roles: set[Role], permitted: set[Permission], on: Resource
) -> tuple[list[str], list[str]]:
    """What ``auth check`` of a resource of kind ``on`` shows: the roles that grant something
    there, and the permissions (on a project: its own, and those on each of its repos)."""
    kinds = {on, Resource.REPO}
    return (
        sorted(r.value for r in roles if r.shown_for(on)),
        [p.value for p in Permission if p in permitted and p.on in kinds],
    )
