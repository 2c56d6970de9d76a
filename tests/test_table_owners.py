"""One owner per table: each table of ``haathi.meta.schema`` is read and written by one module.

Every other module calls the owner's functions, which take the caller's connection, so that
several owners compose inside one transaction. A schema change then touches the owner (and a
migration), not a hunt through the tree. ``OWNERS`` below is the map: to add a table, give it
an owner here; to use a table from elsewhere, add a function to its owner.

The check reads every module under ``haathi/`` with ``ast``: a module other than the owner may
neither name the table object (imported from the schema, or re-exported by any module) nor
write SQL text that names the table. The schema, the migrations and the engine-level checks
of the database as a whole are exempt. (``pyproject.toml``'s import-linter contracts add that
``api``, ``cli``, ``server`` and ``client`` import neither the schema nor SQLAlchemy.)
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from sqlalchemy import Table

from haathi.meta import schema

OWNERS = {
    # pfs
    "projects": "haathi.pfs.projects",
    "repos": "haathi.pfs.repos",
    "branches": "haathi.pfs.branches",
    "commits": "haathi.pfs.commits",
    "commit_provenance": "haathi.pfs.provenance",
    "branch_provenance": "haathi.pfs.provenance",
    "staged": "haathi.pfs.staging",
    # the blob index and the store's identity
    "blobs": "haathi.meta.blob_index",
    "packs": "haathi.meta.blob_index",
    "gc_state": "haathi.meta.blob_index",
    "store_info": "haathi.meta.store_id",
    # pps
    "pipelines": "haathi.pps.records",
    "pipeline_versions": "haathi.pps.records",
    "jobs": "haathi.pps.records",
    "datums": "haathi.pps.datum_records",
    "datum_inputs": "haathi.pps.datum_records",
    "kept_datums": "haathi.pps.datum_records",
    "secrets": "haathi.pps.secrets",
    "transactions": "haathi.pps.txn_records",
    "daemons": "haathi.pps.daemon_records",
    "daemon_logs": "haathi.pps.daemon_records",
    # auth
    "auth_config": "haathi.auth.activation",
    "auth_tokens": "haathi.auth.tokens",
    "role_bindings": "haathi.auth.bindings",
}

EXEMPT = ("haathi.meta.schema", "haathi.meta.migrations")

ROOT = Path(__file__).resolve().parent.parent
TABLES = {t.name: t for t in schema.metadata.tables.values()}
# SQL text naming a table: ``FROM blobs``, ``JOIN packs p``, ``INSERT INTO "jobs"``, ...
SQL = re.compile(r'\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+"?(\w+)"?')


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "haathi").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(EXEMPT):
            out[name] = path
    return out


def _resolve(dotted: str) -> object:
    """The object ``haathi.x.y`` names (a module, or an attribute of one); None if none."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` of an attribute chain on a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def table_uses(source: str) -> list[tuple[str, int]]:
    """(table, line) of every use of a table in a module's source: a table object reached
    through an import (``from haathi.meta.schema import jobs``, ``schema.jobs``,
    ``records.jobs``), or SQL text naming one."""
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> the haathi object it was imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("haathi"):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("haathi"):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("haathi"):
            for alias in node.names:
                obj = _resolve(f"{node.module}.{alias.name}")
                if isinstance(obj, Table):
                    uses.append((obj.name, node.lineno))
        elif isinstance(node, ast.Attribute | ast.Name) and not isinstance(
            getattr(node, "ctx", None), ast.Store
        ):
            dotted = _dotted(node)
            head = dotted.split(".")[0] if dotted else None
            if dotted is None or head not in bound or isinstance(node, ast.Name):
                continue
            obj = _resolve(bound[head] + dotted[len(head) :])
            if isinstance(obj, Table):
                uses.append((obj.name, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for m in SQL.finditer(node.value):
                if m.group(1) in TABLES:
                    uses.append((m.group(1), node.lineno))
    return uses


def test_every_table_has_one_owner_that_uses_it() -> None:
    assert sorted(OWNERS) == sorted(TABLES), "give each table of haathi.meta.schema an owner"
    modules = _modules()
    for table, owner in OWNERS.items():
        assert owner in modules, f"the owner of {table}, {owner}, does not exist"
        used = {t for t, _ in table_uses(modules[owner].read_text())}
        assert table in used, f"{owner} owns {table} but does not use it"


def test_no_module_uses_a_table_it_does_not_own() -> None:
    trespass = []
    for module, path in _modules().items():
        for table, line in table_uses(path.read_text()):
            if OWNERS[table] != module:
                trespass.append(
                    f"{path.relative_to(ROOT)}:{line}: {module} uses table {table}, owned by "
                    f"{OWNERS[table]}: call a function of {OWNERS[table]} instead"
                )
    assert not trespass, "\n".join(trespass)


@pytest.mark.parametrize(
    "source",
    [
        "from haathi.meta.schema import commits\n",
        "from haathi.meta.schema import commits as c\nc.c.id\n",
        "from haathi.meta import schema\nschema.commits.c.id\n",
        "import haathi.meta.schema\nhaathi.meta.schema.commits\n",
        "import haathi.meta.schema as s\ns.commits\n",
        "from haathi.pfs import commits\ncommits.commits.c.id\n",  # a re-export of the table
        "sql = 'SELECT id FROM commits WHERE repo_id = ?'\n",
    ],
)
def test_the_check_sees_every_way_to_reach_a_table(source: str) -> None:
    assert [t for t, _ in table_uses(source)] and all(t == "commits" for t, _ in table_uses(source))


@pytest.mark.parametrize(
    "source",
    [
        "from haathi.pfs import commits\ncommits.find_commit\n",
        "from haathi.pps import records\nrecords.list_jobs\n",
        '"""Reads commits from the repos (prose, not SQL)."""\n',
    ],
)
def test_the_check_lets_owner_functions_and_prose_be(source: str) -> None:
    assert table_uses(source) == []
