"""Project operations of the Api (Pachyderm's ``pachctl create|inspect|list|update|delete
project``).

With auth on, as in Pachyderm: creating a project needs ``projectCreator`` on the cluster
(every authenticated caller holds it from activation: ``allClusterUsers``), and makes its
creator ``projectOwner``; updating or deleting one needs ``projectOwner``. Every caller may
list and inspect every project, each shown with the caller's roles and permissions on it.
"""

from __future__ import annotations

from haathi.api.access import AccessApi
from haathi.auth import bindings
from haathi.models.auth import Permission, Role
from haathi.models.ids import validate_project_name
from haathi.models.info import ProjectInfo
from haathi.pfs import project_catalog
from haathi.pps import project_lifecycle


class ProjectApi(AccessApi):
    """Mixed into :class:`haathi.api.service.Api`."""

    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        validate_project_name(name)
        self.authorize(Permission.CREATE_PROJECT)
        resource, owner = bindings.project_resource(name), self._owner()
        info = project_catalog.create_project(
            self.pfs,
            name,
            description,
            owner,
            then=lambda conn: bindings.make_owner(conn, resource, owner, Role.PROJECT_OWNER),
        )
        return self._with_access([info])[0]

    def inspect_project(self, name: str) -> ProjectInfo:
        return self._with_access([project_catalog.inspect_project(self.pfs, name)])[0]

    def list_project(self) -> list[ProjectInfo]:
        return self._with_access(project_catalog.list_project(self.pfs))

    def update_project(self, name: str, description: str) -> ProjectInfo:
        self._authorize_project(Permission.OWN_PROJECT, name)
        return self._with_access([project_catalog.update_project(self.pfs, name, description)])[0]

    def delete_project(self, name: str, force: bool = False) -> None:
        """Delete a project (``force``: with the pipelines and repos it holds)."""
        self._authorize_project(Permission.OWN_PROJECT, name)
        project_lifecycle.delete_project(self.pps, name, force=force)
