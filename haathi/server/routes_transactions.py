"""Routes of transactions (``/v1/transactions/...``): a request added to one is the JSON of
a :mod:`haathi.models.transaction` op (``{"op": "create_branch", ...}``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body

from haathi.models.transaction import op_from_dict
from haathi.models.wire import API_PREFIX
from haathi.server.deps import ApiDep
from haathi.server.offload import OffloadingRouter

router = OffloadingRouter(prefix=f"{API_PREFIX}/transactions", tags=["transactions"])
Json = dict[str, Any]


@router.get("")
def list_transaction(api: ApiDep) -> list[Json]:
    return [t.to_dict() for t in api.list_transaction()]


@router.post("", status_code=201)
def start_transaction(api: ApiDep) -> Json:
    return api.start_transaction().to_dict()


@router.get("/{transaction}")
def inspect_transaction(api: ApiDep, transaction: str) -> Json:
    return api.inspect_transaction(transaction).to_dict()


@router.delete("/{transaction}")
def delete_transaction(api: ApiDep, transaction: str) -> Json:
    api.delete_transaction(transaction)
    return {}


@router.post("/{transaction}/requests")
def append_transaction(
    api: ApiDep,
    transaction: str,
    request: Annotated[Any, Body(description='a request: {"op": "create_repo", ...}')],
) -> Json:
    """Add a request if a dry run of the transaction with it succeeds; its response."""
    return api.append_transaction(transaction, op_from_dict(request)).to_dict()


@router.post("/{transaction}/finish")
def finish_transaction(api: ApiDep, transaction: str) -> Json:
    """Apply every request at once (or none: the error names the one that failed)."""
    return api.finish_transaction(transaction).to_dict()
