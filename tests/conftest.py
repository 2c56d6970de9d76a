"""Shared fixtures: a fresh store per test, a connected Client, and the real CLI.

Every store-backed test runs twice: on the embedded default (``local``: packs in the store
directory, SQLite) and on ``s3pg`` (a real SeaweedFS S3 server and a real PostgreSQL, started
once per test worker on loopback ports). Each ``s3pg`` test gets its own database and key
prefix; the store directory then holds only ``haathi.toml`` and the local cache.
"""

from __future__ import annotations

import json
import os
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
from tests.servers import Postgres, SeaweedS3

BUCKET = "haathi-tests"


class Backends:
    """SeaweedFS and PostgreSQL for this test worker, started on first use."""

    def __init__(self) -> None:
        self.s3: SeaweedS3 | None = None
        self.pg: Postgres | None = None

    def start(self) -> Backends:
        if self.s3 is None:
            self.s3 = SeaweedS3().start()
            self.s3.create_bucket(BUCKET)
        if self.pg is None:
            self.pg = Postgres().start()
        return self

    def stop(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
        if self.pg is not None:
            self.pg.stop()


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop()


@pytest.fixture(params=["local", "s3pg"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend pair the test's store uses."""
    return str(request.param)


@pytest.fixture
def store(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A new store directory on the test's backend pair (created, empty)."""
    path = tmp_path / "store"
    if backend == "s3pg":
        b = request.getfixturevalue("backends").start()
        for key, value in b.s3.env().items():
            monkeypatch.setenv(key, value)
        c = haathi.init(
            str(path), db=b.pg.create_database(), s3_endpoint=b.s3.endpoint,
            objects=f"s3://{BUCKET}/{uuid.uuid4().hex}",
        )  # fmt: skip
        c.close()
    return path


@pytest.fixture
def client(store: Path) -> Iterator[Client]:
    """A Client on a fresh store."""
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
    """Runs ``haathi`` as a real subprocess against one store."""

    def __init__(self, store: Path, cwd: Path) -> None:
        self.store = store
        self.cwd = cwd

    def __call__(self, *args: str, input: bytes | None = None, ok: bool = True) -> Result:
        env = dict(os.environ, HAATHI_ADDRESS=str(self.store), COLUMNS="200")
        proc = subprocess.run(
            [sys.executable, "-m", "haathi", *args],
            input=input, capture_output=True, env=env, cwd=self.cwd, timeout=120,
        )
        res = Result(
            proc.returncode, proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"), proc.stdout,
        )
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


@pytest.fixture
def cli(store: Path, tmp_path: Path) -> Cli:
    return Cli(store, tmp_path)
