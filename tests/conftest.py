"""Shared fixtures: a fresh store per test, a connected Client, and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(params=["embedded"])
def client(request: pytest.FixtureRequest, store: Path) -> Iterator[Client]:
    """A Client on a fresh store (parametrized so other shapes can join later)."""
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
