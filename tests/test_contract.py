"""One API contract: ``ApiContract`` declares every operation the Client calls on its
transport; the in-process ``Api`` and the HTTP ``RemoteApi`` both provide exactly those.

mypy checks the types (``Client`` takes an ``ApiContract``; ``connect()`` and the checks at the
end of ``haathi/client/client.py`` pass it both implementations). These tests check what mypy
does not: that neither implementation has a public operation the contract lacks, and that
parameter names, kinds, default values and types are the same everywhere (mypy accepts an
implementation whose default differs, that has an extra optional parameter, or takes ``Any``).
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

import haathi.client
from haathi.api import Api
from haathi.client.remote import RemoteApi
from haathi.models.contract import ApiContract

# What an implementation may have beyond the contract, and why.
API_EXTRAS = {
    # the server serves each request through a view of the Api acting as its caller
    "for_token",
    "as_caller",
    "caller_for_token",
    "authorize",
    "auth_active",
    "auth_known_off",
}
REMOTE_EXTRAS: set[str] = set()


def operations(cls: type) -> set[str]:
    """The public methods of ``cls`` (properties and attributes are not operations)."""
    return {
        name
        for name, value in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


CONTRACT = operations(ApiContract)


def test_the_contract_declares_the_operations_with_a_docstring_each() -> None:
    assert {"create_repo", "modify_file", "read_file", "run_jobs", "close"} <= CONTRACT
    for name in CONTRACT:
        doc = getattr(ApiContract, name).__doc__
        assert doc and "\n" not in doc.strip(), f"{name}: one line of docstring"


@pytest.mark.parametrize(
    ("implementation", "extras"), [(Api, API_EXTRAS), (RemoteApi, REMOTE_EXTRAS)]
)
def test_an_implementation_has_exactly_the_contracts_operations(
    implementation: type, extras: set[str]
) -> None:
    assert extras <= operations(implementation), "an extra that is gone: drop it from the list"
    assert operations(implementation) - extras == CONTRACT


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_both_implementations_take_the_contracts_parameters_and_types(name: str) -> None:
    """Names, kinds (keyword-only or not) and defaults, and the resolved annotations: mypy
    would let an implementation take ``Any``, which checks nothing."""

    def shape(cls: type) -> list[tuple[str, object, object]]:
        params = inspect.signature(getattr(cls, name)).parameters.values()
        return [(p.name, p.kind, p.default) for p in params]

    def types(cls: type) -> dict[str, object]:
        return typing.get_type_hints(getattr(cls, name))

    for implementation in (Api, RemoteApi):
        assert shape(implementation) == shape(ApiContract), implementation.__name__
        assert types(implementation) == types(ApiContract), implementation.__name__


def test_the_client_reaches_its_transport_only_through_the_contract() -> None:
    """Every ``..._api.NAME`` in the Client's modules names a contract operation (mypy checks
    the calls; this also catches a ``getattr`` or a ``cast`` around it)."""
    package = Path(haathi.client.__file__).parent
    used: dict[str, set[str]] = {}
    for module in ("client.py", "auth.py", "lineage.py"):
        tree = ast.parse((package / module).read_text())
        for node in ast.walk(tree):
            inner = getattr(node, "value", None)
            if isinstance(node, ast.Attribute) and getattr(inner, "attr", None) == "_api":
                used.setdefault(module, set()).add(node.attr)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "cast"):
                assert "_api" not in ast.unparse(node), f"{module}: {ast.unparse(node)}"
    assert used["client.py"] and used["auth.py"] and used["lineage.py"]
    for module, names in used.items():
        assert names <= CONTRACT, f"{module} calls {sorted(names - CONTRACT)}"
