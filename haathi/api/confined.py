"""The Api as a spout's program uses it: confined to the spout's output repo.

A spout writes its commits through haathi's API (:mod:`haathi.pps.daemons`), with a token
that only its own worker knows. Whatever auth says (on or off), that caller reads and writes
one repo, the spout's output, and nothing else: no other repo, no repo of its own making, no
store-wide operation. Its commits name the pipeline (``pipeline:<name>``) as their author.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

from haathi.api.access import AccessApi
from haathi.errors import PermissionDenied
from haathi.models.auth import Caller, Permission, Resource, Scope, pipeline_subject
from haathi.pps.sidecars import SpoutApis

_CONFINED = (Permission.READ, Permission.WRITE)


class ConfinedAccess(AccessApi):
    """Mixed into :class:`haathi.api.service.Api` (in place of :class:`AccessApi`)."""

    confined_to: str | None = None
    """The one repo this view may read and write (None: not confined)."""

    def confined_view(self, pipeline: str) -> Self:
        """The Api as spout ``pipeline``'s program may use it."""
        view = self.as_caller(Caller(pipeline_subject(pipeline)))
        view.confined_to = pipeline
        return view

    def authorize(self, permission: Permission, *repos: str) -> None:
        if self.confined_to is None:
            return super().authorize(permission, *repos)
        outside = [r for r in repos if r != self.confined_to]
        if permission is Permission.ADMIN:
            raise self._denied("administer the cluster")
        if permission.on is not Resource.REPO:
            raise self._denied(f"{permission.value} on {permission.on.value}")
        if outside or permission not in _CONFINED:
            raise self._denied(f"{permission.value} repo {(outside or repos)[0]}")
        return None

    def _authorize_project(self, permission: Permission, project: str) -> None:
        if self.confined_to is None:
            return super()._authorize_project(permission, project)
        what = "create repos" if permission is Permission.CREATE_REPO else permission.value
        raise self._denied(f"{what} in project {project}")

    def _is_admin(self) -> bool:
        return self.confined_to is None and super()._is_admin()

    def _scope(self, *wanted: Permission) -> Scope | None:
        if self.confined_to is None:
            return super()._scope(*wanted)
        return Scope(frozenset(), frozenset({self.confined_to}))

    def _denied(self, what: str) -> PermissionDenied:
        return PermissionDenied(
            f"spout {self.confined_to}'s token may not {what}: it reads and writes its output "
            f"repo {self.confined_to} only",
            pipeline=self.confined_to,
        )


@runtime_checkable
class ServesSpouts(Protocol):
    """What serves spouts their API for an Api (the server layer's job gateways do)."""

    def spout_apis(self, api: Any) -> SpoutApis:
        """Spouts' APIs over ``api`` (a :class:`haathi.api.service.Api`)."""
