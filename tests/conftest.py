"""Shared fixtures: a fresh store per test, a connected Client, and the real CLI.

A store-backed test can run in four shapes: two backend pairs, the embedded default
(``local``: packs in the store directory, SQLite) and ``s3pg`` (a real SeaweedFS S3 server and
a real PostgreSQL, started once per test worker on loopback ports; each test gets its own
database and key prefix), times two transports for the ``client`` fixture: ``embedded``
(in-process) and ``remote`` (``RemoteApi`` over HTTP to the server's app: through an
in-process transport, or a real uvicorn for the tests that need a socket).

Which shapes a test runs in:

- by default, the embedded default only (``local``, ``embedded``): the backends themselves are
  checked by their conformance suites;
- ``@pytest.mark.every_shape``: the representative end-to-end set, in all four shapes;
- ``@pytest.mark.every_backend``: both backend pairs, embedded transport (tests of what is
  stored: damage, identity, crashes);
- ``@pytest.mark.every_transport``: both transports, local backend (tests of what a request
  carries: bad paths);
- ``--every-shape`` on the command line: every test in every shape (the full matrix).

The fast loop, ``bash scripts/test -m "not slow"``, is the default shape with nothing started
beside the test: tests in another shape, tests that need a real server on a socket (the
``server`` fixture) or the session's PostgreSQL and SeaweedFS (``backends``), the conformance
suites' PostgreSQL, S3 and Dask implementations, and tests marked ``slow`` are left out of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.meta.database import Database
from haathi.server.serve import Server
from loopback.servers import Postgres, SeaweedS3
from tests.images import busybox_image, imagemagick_image, opencv_image, python_image  # noqa: F401
from tests.in_process import InProcessServer, run_cli

BUCKET = "haathi-tests"
SCHEMA_DB = "haathi_schema"
# No command of the suite hands itself to a preloader or starts one (a background process
# that would outlive the test); tests/test_preload.py turns it on for its own commands.
os.environ["HAATHI_PRELOAD"] = "0"


class Backends:
    """SeaweedFS and PostgreSQL for this test worker, started on first use. A store's database
    is a copy of :data:`SCHEMA_DB`, which holds haathi's schema and nothing else: the
    migrations run once per worker, not for every store (their own tests run them on empty
    databases)."""

    def __init__(self) -> None:
        self.s3: SeaweedS3 | None = None
        self.pg: Postgres | None = None

    def start(self) -> Backends:
        if self.s3 is None:
            self.s3 = SeaweedS3().start()
            self.s3.create_bucket(BUCKET)
        if self.pg is None:
            self.pg = Postgres(fsync=False).start()
            schema = Database(self.pg.create_database(SCHEMA_DB))
            schema.ensure_schema()
            schema.dispose()  # (nobody may be connected to a database copied)
        return self

    def stop(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
        if self.pg is not None:
            self.pg.stop()


def _run_temp(factory: pytest.TempPathFactory) -> Path:
    """The temporary directory of the whole run, which pytest-xdist's test processes share
    (each has its own directory in it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def shared_image_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The daemonless runtime's unpack cache (``HAATHI_IMAGE_CACHE``) for the whole run: one
    for all test processes (an unpack holds a lock: one process unpacks an image, the others
    wait for it), never the user's own (``~/.cache``), removed when the run ends
    (:func:`pytest_sessionfinish`). Tests that watch what is unpacked use their own."""
    path = _run_temp(tmp_path_factory) / "image-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAATHI_IMAGE_CACHE", str(path))
        yield path


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In the run's own process, once every test process has ended: the unpacked images go
    (the OpenCV image alone is 0.7 GB)."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None and not hasattr(session.config, "workerinput"):
        shutil.rmtree(_run_temp(factory) / "image-cache", ignore_errors=True)


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop()


@pytest.fixture
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The client's contexts (``config.json``: the default project, the active transaction)
    of this test only, and no ``HAATHI_PROJECT`` from outside."""
    config = tmp_path / "config"
    monkeypatch.setenv("HAATHI_CONFIG_DIR", str(config))
    monkeypatch.delenv("HAATHI_PROJECT", raising=False)
    return config


@pytest.fixture(params=["local", "s3pg"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend pair the test's store uses."""
    return str(request.param)


@pytest.fixture
def store(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A new store directory on the test's backend pair (created, empty)."""
    return new_store(tmp_path / "store", backend, request, monkeypatch)


def new_store(
    path: Path, backend: str, request: pytest.FixtureRequest, mp: pytest.MonkeyPatch
) -> Path:
    """A store at ``path`` on ``backend``: on ``s3pg`` created, with a database and a key
    prefix of its own, and the S3 credentials set in the environment through ``mp``; on
    ``local`` left to be created by its first user."""
    if backend == "s3pg":
        b = request.getfixturevalue("backends").start()
        for key, value in b.s3.env().items():
            mp.setenv(key, value)
        c = haathi.init(
            str(path), db=b.pg.create_database(template=SCHEMA_DB), s3_endpoint=b.s3.endpoint,
            objects=f"s3://{BUCKET}/{uuid.uuid4().hex}",
        )  # fmt: skip
        c.close()
    return path


@pytest.fixture(params=["embedded", "remote"])
def transport(request: pytest.FixtureRequest) -> str:
    """How the test's Client reaches its store: in-process, or over HTTP to the server's app."""
    return str(request.param)


DEFAULT_SHAPE = {"backend": "local", "transport": "embedded"}
STARTS_SERVERS = {"server", "backends"}  # uvicorn on a socket; PostgreSQL and SeaweedFS


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--every-shape",
        action="store_true",
        help="run every store-backed test in every shape (backend pair x transport)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "embedded_only(reason): the test needs the in-process Api (not over HTTP)",
        "every_shape: an end-to-end test of the representative set, run in all four shapes",
        "every_backend: run on both backend pairs (embedded transport)",
        "every_transport: run over both transports (local backend)",
        "slow: left out of the fast loop (-m 'not slow')",
    ):
        config.addinivalue_line("markers", marker)


def _shape(item: pytest.Item) -> dict[str, Any]:
    """The test's shape parameters (``backend``, ``transport``) that it was given."""
    callspec = getattr(item, "callspec", None)
    params = {} if callspec is None else callspec.params
    return {k: params[k] for k in DEFAULT_SHAPE if k in params}


def _runs_in_shape(item: pytest.Item, every_shape: bool) -> bool:
    shape = _shape(item)
    if shape.get("transport") == "remote" and item.get_closest_marker("embedded_only"):
        return False
    if every_shape or item.get_closest_marker("every_shape"):
        return True
    if item.get_closest_marker("every_backend"):
        return shape.get("transport", "embedded") == "embedded"
    if item.get_closest_marker("every_transport"):
        return shape.get("backend", "local") == "local"
    return all(DEFAULT_SHAPE[k] == v for k, v in shape.items())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each test's shapes; mark what the fast loop leaves out (see the module docstring)."""
    every_shape = bool(config.getoption("--every-shape"))
    keep = [item for item in items if _runs_in_shape(item, every_shape)]
    if len(keep) < len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep
    for item in items:
        other_shape = any(DEFAULT_SHAPE[k] != v for k, v in _shape(item).items())
        if other_shape or STARTS_SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # The modules that are slow as a whole (killed servers, containers, fuzzing) go first, so
    # that a parallel run does not end with one worker on a long test and the other idle.
    items.sort(key=lambda item: not _slow_module(item))


def _slow_module(item: pytest.Item) -> bool:
    module = item.getparent(pytest.Module)
    return module is not None and module.get_closest_marker("slow") is not None


@pytest.fixture
def server(store: Path) -> Iterator[Server]:
    """``haathi serve`` of the test's store: uvicorn on a free loopback port (in this process).
    For what only a real server has: sockets, the CLI over ``http://``, the S3 gateway,
    several connections at once. A test that asks for it gets its ``remote`` client through
    it too (see ``client``)."""
    s = Server.for_store(str(store), {}, "127.0.0.1:0").start()
    yield s
    s.stop()


@pytest.fixture
def app_server(store: Path) -> Iterator[InProcessServer]:
    """The server's app on the test's store, in this process: no uvicorn, no socket
    (``tests/in_process.py``)."""
    s = InProcessServer.for_store(str(store)).start()
    yield s
    s.stop()


@pytest.fixture
def real_server(transport: str, request: pytest.FixtureRequest) -> Server | None:
    """For a test whose remote shape needs a real server (an address to hand to something
    else, a socket): the ``server`` its remote ``client`` then talks to; None embedded."""
    return request.getfixturevalue("server") if transport == "remote" else None


@pytest.fixture
def client(store: Path, transport: str, request: pytest.FixtureRequest) -> Iterator[Client]:
    """A Client on a fresh store: embedded, or remote: ``RemoteApi`` over HTTP to the server's
    app run in process, or to the real ``server`` when the test asks for it (or for
    ``real_server``)."""
    if transport == "remote":
        if {"server", "real_server"} & set(request.fixturenames):
            srv: Server | InProcessServer = request.getfixturevalue("server")
            c = haathi.connect(srv.url)
        else:
            srv = request.getfixturevalue("app_server")
            c = srv.connect()
        c.server_api = srv.api  # type: ignore[attr-defined]  # see tests/internals.py
    else:
        c = haathi.connect(str(store))
    yield c
    c.close()


@dataclass
class Result:
    code: int
    out: str
    err: str
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs ``haathi`` against one store: through its entry point in this process (see
    :func:`tests.in_process.run_cli`), or as a real ``python -m haathi`` subprocess when
    ``process=True`` (for what only a process shows: signals, start-up, the interpreter's
    own exit)."""

    def __init__(self, store: Path, cwd: Path, *, process: bool = False) -> None:
        self.store = store
        self.cwd = cwd
        self.process = process

    def __call__(self, *args: str, input: bytes | None = None, ok: bool = True) -> Result:
        env = {"HAATHI_ADDRESS": str(self.store), "COLUMNS": "200"}
        if self.process:
            proc = subprocess.run(
                [sys.executable, "-m", "haathi", *args],
                input=input,
                capture_output=True,
                env=dict(os.environ, **env),
                cwd=self.cwd,
                timeout=120,
            )
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            code, out, err = run_cli(list(args), env=env, cwd=self.cwd, input=input)
        res = Result(code, out.decode(errors="replace"), err.decode(errors="replace"), out)
        if ok and res.code != 0:
            raise AssertionError(f"haathi {' '.join(args)} failed ({res.code}): {res.err}")
        return res

    def fails(self, *args: str, input: bytes | None = None) -> Result:
        """Run a command that must fail with a one-line error and no traceback."""
        res = self(*args, input=input, ok=False)
        assert res.code != 0, f"expected failure: haathi {' '.join(args)}"
        assert "Traceback" not in res.err
        lines = [ln for ln in res.err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got: {res.err!r}"
        return res


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (:mod:`loopback.browser`), one per test module."""
    from loopback.browser import chromium

    with chromium() as driver:
        yield driver


@pytest.fixture
def cli(store: Path, tmp_path: Path) -> Cli:
    return Cli(store, tmp_path)


def put_all(client: Client, repo: str, content: dict[str, str]) -> str:
    """Put ``{path: text}`` into ``repo@master`` as one commit; returns its ID."""
    with client.start_commit(f"{repo}@master") as c:
        for path, text in content.items():
            c.put_file(path, text.encode())
    return c.id
