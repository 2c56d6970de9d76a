"""Routes of auth: activation, tokens and role bindings (``/v1/auth/...``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from haathi.models.wire import API_PREFIX
from haathi.server.deps import ApiDep
from haathi.server.keys import RepoKey
from haathi.server.offload import OffloadingRouter

router = OffloadingRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])
Json = dict[str, Any]


class TokenBody(BaseModel):
    subject: str
    ttl_s: float | None = Field(default=None, gt=0)


class RobotBody(BaseModel):
    robot: str
    ttl_s: float | None = Field(default=None, gt=0)


class RevokeBody(BaseModel):
    token: str | None = None
    subject: str | None = None


class RolesBody(BaseModel):
    roles: str  # comma-separated role names, or "none"
    subject: str


@router.post("/activate")
def auth_activate(api: ApiDep) -> Json:
    """Turn auth on; the root token, shown this once."""
    return {"root_token": api.auth_activate()}


@router.post("/deactivate")
def auth_deactivate(api: ApiDep) -> Json:
    api.auth_deactivate()
    return {}


@router.get("/whoami")
def whoami(api: ApiDep) -> Json:
    return api.whoami()


@router.post("/tokens")
def get_auth_token(api: ApiDep, body: TokenBody) -> Json:
    return {"token": api.get_auth_token(body.subject, body.ttl_s)}


@router.post("/robot-tokens")
def get_robot_token(api: ApiDep, body: RobotBody) -> Json:
    return {"token": api.get_robot_token(body.robot, body.ttl_s)}


@router.post("/revoke")
def revoke_auth_token(api: ApiDep, body: RevokeBody) -> Json:
    return {"revoked": api.revoke_auth_token(body.token, body.subject)}


@router.get("/repos/{repo}")
def get_repo_roles(api: ApiDep, repo: RepoKey) -> Json:
    return api.get_repo_roles(repo).to_dict()


@router.put("/repos/{repo}")
def set_repo_roles(api: ApiDep, repo: RepoKey, body: RolesBody) -> Json:
    return api.set_repo_roles(repo, body.roles, body.subject).to_dict()


@router.get("/repos/{repo}/check")
def check_repo(api: ApiDep, repo: RepoKey, subject: str | None = None) -> Json:
    return api.check_repo(repo, subject).to_dict()


@router.get("/projects/{project}")
def get_project_roles(api: ApiDep, project: str) -> Json:
    return api.get_project_roles(project).to_dict()


@router.put("/projects/{project}")
def set_project_roles(api: ApiDep, project: str, body: RolesBody) -> Json:
    return api.set_project_roles(project, body.roles, body.subject).to_dict()


@router.get("/projects/{project}/check")
def check_project(api: ApiDep, project: str, subject: str | None = None) -> Json:
    return api.check_project(project, subject).to_dict()


@router.get("/cluster")
def get_cluster_roles(api: ApiDep) -> Json:
    return api.get_cluster_roles().to_dict()


@router.put("/cluster")
def set_cluster_roles(api: ApiDep, body: RolesBody) -> Json:
    return api.set_cluster_roles(body.roles, body.subject).to_dict()
