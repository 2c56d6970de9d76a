"""Routes of projects (``/v1/projects/...``)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel

from haathi.models.wire import API_PREFIX
from haathi.server.deps import ApiDep
from haathi.server.offload import OffloadingRouter

router = OffloadingRouter(prefix=f"{API_PREFIX}/projects", tags=["projects"])
Json = dict[str, Any]


class ProjectBody(BaseModel):
    name: str
    description: str = ""


class DescriptionBody(BaseModel):
    description: str


@router.get("")
def list_project(api: ApiDep) -> list[Json]:
    return [p.to_dict() for p in api.list_project()]


@router.post("", status_code=201)
def create_project(api: ApiDep, body: ProjectBody) -> Json:
    return api.create_project(body.name, body.description).to_dict()


@router.get("/{project}")
def inspect_project(api: ApiDep, project: str) -> Json:
    return api.inspect_project(project).to_dict()


@router.patch("/{project}")
def update_project(api: ApiDep, project: str, body: DescriptionBody) -> Json:
    return api.update_project(project, body.description).to_dict()


@router.delete("/{project}", status_code=204)
def delete_project(api: ApiDep, project: str, force: bool = False) -> Response:
    """Delete a project (``force``: with the pipelines and repos it holds)."""
    api.delete_project(project, force)
    return Response(status_code=204)
