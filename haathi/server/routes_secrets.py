"""Routes of secrets (``/v1/secrets``): the body of a create is the Kubernetes Secret document,
never echoed back or logged; no route returns a value."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body

from haathi.models.wire import API_PREFIX
from haathi.server.deps import ApiDep
from haathi.server.offload import OffloadingRouter

router = OffloadingRouter(prefix=API_PREFIX, tags=["secrets"])
Json = dict[str, Any]


@router.get("/secrets")
def list_secret(api: ApiDep) -> list[Json]:
    return [s.to_dict() for s in api.list_secret()]


@router.post("/secrets", status_code=201)
def create_secret(
    api: ApiDep,
    doc: Annotated[dict[str, Any], Body(description="a Kubernetes Secret (JSON)")],
) -> Json:
    """Store a secret (cluster admins); its name, type, key names and creation time."""
    return api.create_secret(doc).to_dict()


@router.get("/secrets/{name}")
def inspect_secret(api: ApiDep, name: str) -> Json:
    return api.inspect_secret(name).to_dict()


@router.delete("/secrets/{name}")
def delete_secret(api: ApiDep, name: str) -> Json:
    api.delete_secret(name)
    return {}
