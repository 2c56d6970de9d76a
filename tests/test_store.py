"""The store: created on first use, schema versioned, newer stores refused; clean layering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import haathi
from haathi.errors import IncompatibleStore
from tests.conftest import Cli


def test_store_is_created_on_first_use(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "store"
    with haathi.connect(str(target)) as c:
        c.create_repo("r")
    assert (target / "meta.db").is_file()
    with haathi.connect(str(target)) as c:
        assert [r.name for r in c.list_repo()] == ["r"]


@pytest.mark.every_backend
def test_store_from_a_newer_haathi_is_refused(tmp_path: Path, cli: Cli) -> None:
    with haathi.connect(str(tmp_path / "s")) as c:
        c.create_repo("r")
    engine = create_engine(f"sqlite:///{tmp_path / 's' / 'meta.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num='9999'"))
    engine.dispose()
    with pytest.raises(IncompatibleStore, match="newer"):
        haathi.connect(str(tmp_path / "s"))
    res = Cli(tmp_path / "s", tmp_path).fails("list", "repo")
    assert "upgrade haathi" in res.err


def test_address_from_environment_and_flag(tmp_path: Path, cli: Cli) -> None:
    cli("create", "repo", "viaenv")
    other = tmp_path / "other"
    cli("--address", str(other), "create", "repo", "viaflag")
    assert [r["name"] for r in cli("list", "repo", "-o", "json").json()] == ["viaenv"]
    flagged = cli("--address", str(other), "list", "repo", "-o", "json").json()
    assert [r["name"] for r in flagged] == ["viaflag"]


def test_client_import_is_free_of_database_code() -> None:
    code = (
        "import sys, haathi.client; "
        "bad = [m for m in ('sqlalchemy', 'alembic', 'fastapi', 'dask', 'httpx', 'uvicorn') "
        "if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
