"""Project methods of the Client (Pachyderm's ``pachctl create|inspect|list|update|delete
project``), and how the Client names repos and pipelines in its current project."""

from __future__ import annotations

from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.contract import ApiContract
from haathi.models.ids import DEFAULT_PROJECT, qualify, validate_project_name
from haathi.models.info import ProjectInfo
from haathi.models.refspec import CommitSpec, FileSpec, parse_commit, parse_file, qualify_text
from haathi.models.text import check_text


def in_project(doc: dict[str, Any], project: str) -> dict[str, Any]:
    """A spec document in ``project``: ``pipeline.project`` filled in when the spec names none
    (as pachctl does with ``--project``)."""
    if project == DEFAULT_PROJECT or not isinstance(doc, dict):
        return doc
    pipeline = doc.get("pipeline")
    if not isinstance(pipeline, dict) or "project" in pipeline:
        return doc
    return {**doc, "pipeline": {**pipeline, "project": {"name": project}}}


class ProjectMethods:
    """Mixed into :class:`haathi.client.client.Client`.

    ``project`` is the current project: a bare repo or pipeline name given to any method is
    in it; ``project/name`` names another project's explicitly.
    """

    _api: ApiContract
    _project: str = DEFAULT_PROJECT

    @property
    def project(self) -> str:
        """The current project (bare names are in it)."""
        return self._project

    @project.setter
    def project(self, name: str) -> None:
        self._project = validate_project_name(name)

    # naming --------------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        """The key of repo or pipeline ``name`` (bare: in the current project)."""
        if not isinstance(name, str):
            raise InvalidArgument(f"expected a repo or pipeline name, got {name!r}")
        return qualify(check_text(name, repr(name)), self._project)

    def _commit(self, text: str) -> CommitSpec:
        return parse_commit(text, self._project)

    def _file(self, text: str, *, for_write: bool = False) -> FileSpec:
        return parse_file(text, for_write=for_write, project=self._project)

    def _target(self, text: str) -> str:
        """A ``repo@ref:/path`` text (lineage, reproduce) with its repo as a key."""
        return qualify_text(text, self._project) if isinstance(text, str) else text

    def _filter(self, all_projects: bool, project: str | None = None) -> str | None:
        """A list's project filter: None (every project), ``project`` or the current one."""
        if all_projects:
            return None
        return self._project if project is None else validate_project_name(project)

    def _in_project(self, doc: dict[str, Any]) -> dict[str, Any]:
        return in_project(doc, self._project)

    def _preview_doc(self, doc: dict[str, Any]) -> dict[str, Any]:
        """What ``list datum -f`` sends: a bare input or ``{"input"}`` in the current
        project too (a spec with ``pipeline``: as :meth:`_in_project`)."""
        if self._project == DEFAULT_PROJECT or not isinstance(doc, dict) or "pipeline" in doc:
            return self._in_project(doc)
        return {"pipeline": {"project": {"name": self._project}}, "input": doc.get("input", doc)}

    # projects ------------------------------------------------------------------------------
    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        """Create a project (``project/name`` then names its repos and pipelines)."""
        return self._api.create_project(name, description)

    def inspect_project(self, name: str) -> ProjectInfo:
        return self._api.inspect_project(name)

    def list_project(self) -> list[ProjectInfo]:
        return self._api.list_project()

    def update_project(self, name: str, description: str) -> ProjectInfo:
        """Replace a project's description."""
        return self._api.update_project(name, description)

    def delete_project(self, name: str, *, force: bool = False) -> None:
        """Delete a project; one that holds repos or pipelines only with ``force`` (they are
        deleted with it). ``default`` is never deleted."""
        self._api.delete_project(name, force)

    # every repo or pipeline of a project -------------------------------------------------
    def delete_all_repos(self, *, force: bool = False, all_projects: bool = False) -> list[str]:
        """Delete every repo of the current project (``all_projects``: of every project) but
        the pipelines' outputs (delete those pipelines), as ``pachctl delete repo --all``;
        the keys deleted."""
        project = self._filter(all_projects)
        outputs = {p.name for p in self._api.list_pipeline(project=project)}
        deleted = []
        for repo in self._api.list_repo(project):
            if repo.name not in outputs:
                self._api.delete_repo(repo.name, force)
                deleted.append(repo.name)
        return deleted

    def delete_all_pipelines(
        self, *, keep_repo: bool = False, all_projects: bool = False
    ) -> list[str]:
        """Delete every pipeline of the current project (``all_projects``: of every project),
        each before the pipelines it reads from; the keys deleted."""
        found = self._api.list_pipeline(project=self._filter(all_projects))
        remaining = {p.name: {i.rpartition("@")[0] for i in p.inputs} for p in found}
        deleted: list[str] = []
        while remaining:
            read = set().union(*remaining.values())
            ready = sorted(n for n in remaining if n not in read) or sorted(remaining)[:1]
            for name in ready:
                self._api.delete_pipeline(name, keep_repo=keep_repo)
                deleted.append(name)
                del remaining[name]
        return deleted
