"""One API contract: ``ApiContract`` declares every operation the Client calls on its
transport; the in-process ``Api`` and the HTTP ``RemoteApi`` both provide exactly those.

mypy checks the types (``Client`` takes an ``ApiContract``; ``connect()`` and the checks at the
end of ``haathi/client/client.py`` pass it both implementations). These tests check what mypy
does not: that neither implementation has a public operation the contract lacks, and that
parameter names, kinds, default values and types are the same everywhere (mypy accepts an
implementation whose default differs, that has an extra optional parameter, or takes ``Any``).

Then the in-process transport (``tests/in_process.py``) that the remote shape of the
``client`` fixture runs on: it streams both ways, and answers as the real server does.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import haathi.client
from haathi.api import Api
from haathi.client.remote import RemoteApi
from haathi.errors import AlreadyExists, Unauthenticated
from haathi.models.auth import ROOT
from haathi.models.contract import ApiContract
from tests.in_process import AppTransport, InProcessServer

# What an implementation may have beyond the contract, and why.
API_EXTRAS = {
    # the server serves each request through a view of the Api acting as its caller
    "for_token",
    "as_caller",
    "caller_for_token",
    "authorize",
    "auth_active",
    "auth_known_off",
    # the server's read_file: a local store's raw chunks as ranges of their packs (sendfile)
    "read_file_stored",
    # a spout's API serves a view of the Api confined to the spout's output repo
    "confined_view",
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
    for module in ("client.py", "auth.py", "lineage.py", "secrets.py", "transactions.py"):
        tree = ast.parse((package / module).read_text())
        for node in ast.walk(tree):
            inner = getattr(node, "value", None)
            if isinstance(node, ast.Attribute) and getattr(inner, "attr", None) == "_api":
                used.setdefault(module, set()).add(node.attr)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "cast"):
                assert "_api" not in ast.unparse(node), f"{module}: {ast.unparse(node)}"
    assert used["client.py"] and used["auth.py"] and used["lineage.py"] and used["secrets.py"]
    assert used["transactions.py"]
    for module, names in used.items():
        assert names <= CONTRACT, f"{module} calls {sorted(names - CONTRACT)}"


# the in-process transport the remote shape of the ``client`` fixture runs on -----------------


class EchoApp:
    """A small ASGI app: its lifespan is recorded; ``/upload`` records each piece of the body
    as it arrives; ``/download`` sends ``a``, then ``b`` once the client has said it got ``a``
    (or after 5 s); ``/fail`` raises before answering."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.got_a = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rpartition(".")[2]
                self.events.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        path = scope["path"]
        if path == "/fail":
            raise RuntimeError("the app broke")
        if path == "/upload":
            more = True
            while more:
                message = await receive()
                self.events.append(message["body"].decode())
                more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/download":
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            told = await asyncio.to_thread(self.got_a.wait, 5)
            await send({"type": "http.response.body", "body": b"b" if told else b"late"})
        else:
            await send({"type": "http.response.body", "body": b"done"})


@pytest.fixture
def backend() -> str:
    """The in-process server test is about HTTP: one backend pair."""
    return "local"


@pytest.fixture
def echo() -> Iterator[tuple[EchoApp, httpx.Client]]:
    app = EchoApp()
    transport = AppTransport(app).start()
    with httpx.Client(base_url="http://app", transport=transport) as http:
        yield app, http
    transport.stop()
    assert app.events[0] == "startup" and app.events[-1] == "shutdown"


def test_the_in_process_transport_streams_a_request_body_as_the_app_reads_it(
    echo: tuple[EchoApp, httpx.Client],
) -> None:
    app, http = echo

    def body() -> Iterator[bytes]:
        yield b"one"
        assert app.events[-1] == "one", "the app reads a piece before the next is made"
        yield b"two"

    assert http.post("/upload", content=body()).text == "done"
    assert app.events[1:] == ["one", "two", ""]


def test_the_in_process_transport_streams_a_response_as_the_app_sends_it(
    echo: tuple[EchoApp, httpx.Client],
) -> None:
    app, http = echo
    with http.stream("GET", "/download") as response:
        pieces = response.iter_raw()
        assert next(pieces) == b"a"  # before the app has finished
        app.got_a.set()
        assert b"".join(pieces) == b"b"


def test_an_app_that_fails_before_answering_is_a_500_as_from_uvicorn(
    echo: tuple[EchoApp, httpx.Client],
) -> None:
    _, http = echo
    response = http.get("/fail")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_the_in_process_server_sends_the_token_and_answers_with_envelopes(
    app_server: InProcessServer,
) -> None:
    with app_server.connect() as anonymous:
        root_token = anonymous.auth_activate()
        with pytest.raises(Unauthenticated):
            anonymous.list_repo()
    with app_server.connect(token=root_token) as root:
        assert root.whoami()["subject"] == ROOT
        root.create_repo("r")
        with pytest.raises(AlreadyExists, match="r"):
            root.create_repo("r")
