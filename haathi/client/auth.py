"""Auth methods of the Client: activation, tokens and role bindings (Pachyderm's
``pachctl auth ...``). Auth governs clients of a server; an embedded client acts as root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from haathi.models.auth import Access, ProjectAccess, RoleBindings
from haathi.models.contract import ApiContract


class AuthMethods:
    """Mixed into :class:`haathi.client.client.Client`."""

    _api: ApiContract
    _key: Callable[[str], str]  # a repo's key in the current project (ProjectMethods)

    def auth_activate(self) -> str:
        """Turn auth on; the root token (``haathi:root``, a cluster admin). It is shown only
        this once: keep it safe."""
        return self._api.auth_activate()

    def auth_deactivate(self) -> None:
        """Turn auth off (cluster admins): every token and role binding is dropped."""
        self._api.auth_deactivate()

    def whoami(self) -> dict[str, Any]:
        """``{"subject", "cluster_admin"}`` of the caller."""
        return self._api.whoami()

    def get_auth_token(self, subject: str, *, ttl_s: float | None = None) -> str:
        """A new token for ``subject`` (``user:NAME``; cluster admins, or for yourself)."""
        return self._api.get_auth_token(subject, ttl_s)

    def get_robot_token(self, robot: str, *, ttl_s: float | None = None) -> str:
        """A new token for ``robot:NAME`` (cluster admins)."""
        return self._api.get_robot_token(robot, ttl_s)

    def revoke_token(self, token: str | None = None, *, subject: str | None = None) -> int:
        """Revoke ``token``, or every token of ``subject``; how many were revoked."""
        return self._api.revoke_auth_token(token, subject)

    def set_repo_roles(self, repo: str, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` (``repoReader``, ``repoWriter``, ``repoOwner``, comma-separated, or
        ``none``) what ``subject`` holds on ``repo`` (the repo's owners)."""
        return self._api.set_repo_roles(self._key(repo), roles, subject)

    def get_repo_roles(self, repo: str) -> RoleBindings:
        """Who holds which roles on ``repo``."""
        return self._api.get_repo_roles(self._key(repo))

    def check_repo(self, repo: str, subject: str | None = None) -> Access:
        """Your roles and permissions on ``repo`` (or ``subject``'s, for its owners)."""
        return self._api.check_repo(self._key(repo), subject)

    def set_project_roles(self, project: str, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` (``projectViewer``, ``projectWriter``, ``projectOwner``, or repo
        roles that then hold on every repo of the project; comma-separated, or ``none``)
        what ``subject`` holds on ``project`` (the project's owners)."""
        return self._api.set_project_roles(project, roles, subject)

    def get_project_roles(self, project: str) -> RoleBindings:
        """Who holds which roles on ``project``."""
        return self._api.get_project_roles(project)

    def check_project(self, project: str, subject: str | None = None) -> ProjectAccess:
        """Your roles and permissions on ``project`` and its repos (or ``subject``'s, for
        its owners)."""
        return self._api.check_project(project, subject)

    def set_cluster_roles(self, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` (``clusterAdmin``, ``projectCreator``, project or repo roles that
        then hold everywhere, or ``none``) what ``subject`` holds on the cluster."""
        return self._api.set_cluster_roles(roles, subject)

    def get_cluster_roles(self) -> RoleBindings:
        return self._api.get_cluster_roles()
