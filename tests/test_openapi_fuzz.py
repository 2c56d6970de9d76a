"""schemathesis against the server's OpenAPI spec: no request makes a 5xx response.

Every operation of the spec (routes added later are covered without changes here; the S3
gateway is not part of the spec) gets a few generated requests, valid and invalid,
derandomized so that CI runs the same bounded set each time. Each operation runs against a
real ``haathi serve`` of its own copy of a seeded store (a repo with files, two branches, a
pipeline with a finished job), and every generated request is sent a second time with its
names replaced by ones that exist there, so that requests also reach past the lookups.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

import haathi
from haathi.api import Api
from haathi.config import store_config
from haathi.runtime import open_store
from haathi.server.app import create_app
from haathi.server.serve import Server
from tests.conftest import put_all

pytestmark = pytest.mark.slow  # schemathesis sends hundreds of requests

# A few per operation in CI (the bugs found so far needed more: each has a regression test in
# tests/test_server.py). To explore: HAATHI_FUZZ_EXAMPLES=200 HAATHI_FUZZ_SEED=<n> (and
# HAATHI_FUZZ_COVERAGE=0 to skip schemathesis's coverage phase).
EXAMPLES_PER_OPERATION = int(os.environ.get("HAATHI_FUZZ_EXAMPLES", "4"))
SEED = int(os.environ.get("HAATHI_FUZZ_SEED", "6"))
COVERAGE = os.environ.get("HAATHI_FUZZ_COVERAGE", "1") == "1"


def _openapi() -> dict[str, Any]:
    """The app's OpenAPI document (it depends on the routes, not on a store's content)."""
    with tempfile.TemporaryDirectory() as d:
        haathi.init(d).close()
        api = Api(open_store(store_config(d, {})))
        try:
            return create_app(api, run_worker=False).openapi()
        finally:
            api.close()


CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": COVERAGE},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
})  # fmt: skip
schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG)


@dataclass(frozen=True)
class Seeded:
    """A store with something in it, and the names that exist there."""

    path: Path
    commit: str
    job: str
    datum: str

    def known(self) -> dict[str, tuple[str, ...]]:
        """Parameter name -> values that exist in the store."""
        return {
            "repo": ("data", "copy"), "branch": ("master", "dev"),
            "ref": ("master", self.commit, "dev", "master^"), "commit_id": (self.commit,),
            "path": ("/a/b.txt", "/a", "/", "/c.csv"), "name": ("copy",),
            "pipeline": ("copy",), "job": (self.job,), "datum": (self.datum,),
            "kind": ("repo", "branch", "commit"), "target": ("copy@master:/a/b.txt", "copy"),
        }  # fmt: skip


def _replace_names(case: schemathesis.Case, known: dict[str, tuple[str, ...]]) -> bool:
    """Put existing names in the case's path and query parameters (each choice derived from
    the generated value, so runs stay deterministic); whether any was replaced."""
    replaced = False
    for params, in_path in ((case.path_parameters, True), (case.query, False)):
        for key in list(params or {}):
            if key in known and params is not None:
                options = known[key]
                value = options[zlib.crc32(repr(params[key]).encode()) % len(options)]
                params[key] = value.lstrip("/") if in_path and key == "path" else value
                replaced = True
    return replaced


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("fuzz") / "store"
    with haathi.init(str(path)) as c:
        c.create_repo("data")
        first = put_all(c, "data", {"/a/b.txt": "bee\n", "/c.csv": "x,y\n1,2\n"})
        put_all(c, "data", {"/a/d.txt": "dee\n"})
        c.create_branch("data@dev", first)
        c.create_pipeline({
            "pipeline": {"name": "copy"},
            "transform": {"cmd": ["sh", "-c", "cp -r /pfs/data/* /pfs/out/"]},
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
        })  # fmt: skip
        job = c.list_job("copy")[0]
        datum = c.list_datum(f"copy@{job.id}")[0]
        return Seeded(path, first, job.id, datum.id)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Server]]:
    """The servers of the module's tests, stopped together at its end (a stop waits for
    uvicorn's next tick: one wait for all instead of one per operation)."""
    started: list[Server] = []
    yield started
    for s in started:
        s.uvicorn.should_exit = True
    for s in started:
        s.stop()


@pytest.fixture
def fuzz_server(seeded: Seeded, tmp_path: Path, servers: list[Server]) -> Server:
    """A server of a fresh copy of the seeded store (an operation cannot spoil the next)."""
    store = tmp_path / "store"
    shutil.copytree(seeded.path, store)
    s = Server.for_store(str(store), {}, "127.0.0.1:0", run_worker=False)
    servers.append(s)
    return s.start()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(
    case: schemathesis.Case, fuzz_server: Server, seeded: Seeded
) -> None:
    case.call_and_validate(base_url=fuzz_server.url, checks=[not_a_server_error], timeout=60)
    if _replace_names(case, seeded.known()):
        case.call_and_validate(base_url=fuzz_server.url, checks=[not_a_server_error], timeout=60)


LONE = "\ud800"  # what a JSON "\ud800" escape decodes to: no UTF-8 for it


def _with_lone_surrogates(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A value of ``schema`` with a lone surrogate in every string (and in the keys of
    free-form objects)."""
    if "$ref" in schema:
        return _with_lone_surrogates(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            option = next(s for s in schema[key] if s.get("type") != "null")
            return _with_lone_surrogates(option, components)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        if not props:
            return {f"k{LONE}": f"v{LONE}"}
        return {k: _with_lone_surrogates(v, components) for k, v in props.items()}
    if kind == "array":
        return [_with_lone_surrogates(schema.get("items", {}), components)]
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return f"x{LONE}"


def test_a_lone_surrogate_in_any_json_field_is_invalid_never_5xx(fuzz_server: Server) -> None:
    # Hypothesis generates no surrogates; JSON's "\ud800" escape sends one. Auth is on, so
    # the auth routes read their bodies too.
    with haathi.connect(fuzz_server.url) as c:
        token = c.auth_activate()
    doc = _openapi()
    components = doc["components"]["schemas"]
    params = {"repo": "data", "ref": "master", "kind": "repo", "project": "default",
              "transaction": "0" * 32}  # fmt: skip
    sent = 0
    with httpx.Client(base_url=fuzz_server.url, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as h:  # fmt: skip
        for path, operations in doc["paths"].items():
            for method, op in operations.items():
                schema = op.get("requestBody", {}).get("content", {}).get("application/json")
                if schema is None:
                    continue
                body = _with_lone_surrogates(schema["schema"], components)
                content = json.dumps(body).encode()  # escaped: "\ud800"
                if b"\\ud800" not in content:
                    continue  # no string field (fsck, gc)
                r = h.request(method.upper(), path.format(**params), content=content,
                              headers={"Content-Type": "application/json"})  # fmt: skip
                assert r.status_code == 400, (method, path, body, r.text)
                assert r.json()["code"] == "invalid_argument", r.text
                sent += 1
    assert sent >= 15
