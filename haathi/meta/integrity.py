"""The metadata database's own integrity check, as far as its engine offers one.

Both engines: every table haathi's schema needs must exist (also when fast).

SQLite: ``PRAGMA integrity_check`` (every page, every index against its table), or
``PRAGMA quick_check`` when fast (the same without the index cross-check).

PostgreSQL: a full check reads every page of every table in a sequential scan, which makes the
server check each page's header (and its checksum, on clusters with data checksums), and, where
the ``amcheck`` extension is installed in the database, runs ``verify_heapam`` on every table
and ``bt_index_check`` on every index. haathi never installs the extension itself.

A check that cannot even run because of the damage is itself a finding: this never raises for
a damaged database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection

from haathi.errors import HaathiError
from haathi.meta.database import Database
from haathi.meta.schema import metadata

_TABLES = sorted([*metadata.tables, "alembic_version"])


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the check found: ``damage`` (the data is wrong) or not (a limit of the check)."""

    message: str
    damage: bool = True


def check_database(db: Database, *, fast: bool) -> list[Finding]:
    """What the database engine finds wrong with the metadata (nothing: an empty list)."""
    try:
        return list(_sqlite(db, fast) if db.is_sqlite else _postgres(db, fast))
    except HaathiError as exc:  # the check itself failed on the damage
        return [Finding(f"its integrity check stopped: {_reason(exc)}")]


def _reason(exc: HaathiError) -> str:
    """The database's own words for a failure (not haathi's advice around them)."""
    cause = exc.__cause__
    cause = getattr(cause, "orig", None) or cause
    text = str(cause or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


def _missing(present: set[str]) -> Iterator[Finding]:
    for table in _TABLES:
        if table not in present:
            yield Finding(f"table {table} is missing")


def _sqlite(db: Database, fast: bool) -> Iterator[Finding]:
    pragma = "quick_check" if fast else "integrity_check"
    with db.read() as conn:
        rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
        present = {
            str(r[0])
            for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    yield from _missing(present)
    if rows == ["ok"]:
        return
    lines = [ln for r in rows for ln in r.splitlines() if ln and not ln.startswith("***")]
    for line in lines:
        yield Finding(f"SQLite {pragma}: {line}")


def _postgres(db: Database, fast: bool) -> Iterator[Finding]:
    with db.read() as conn:
        present = {
            str(r[0])
            for r in conn.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }
        amcheck = (
            conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").first()
            is not None
        )
    yield from _missing(present)
    if fast:
        return
    for table in (t for t in _TABLES if t in present):
        yield from _each(db, f"reading table {table}", _scan, table)
        if amcheck:
            yield from _each(db, f"amcheck of table {table}", _verify_heap, table)
    if amcheck:
        with db.read() as conn:
            indexes = [
                str(r[0])
                for r in conn.exec_driver_sql(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                )
            ]
        for index in indexes:
            yield from _each(db, f"amcheck of index {index}", _verify_index, index)


Check = Callable[[Connection, str], list[Finding]]


def _each(db: Database, what: str, check: Check, name: str) -> list[Finding]:
    """One check in its own transaction (a failed statement ends a PostgreSQL transaction)."""
    try:
        with db.read() as conn:
            return check(conn, name)
    except HaathiError as exc:
        reason = _reason(exc)
        if "permission denied" in reason:
            return [Finding(f"{what}: {reason} (grant haathi's role EXECUTE on amcheck's "
                            "functions)", damage=False)]  # fmt: skip
        return [Finding(f"{what}: {reason}")]


def _scan(conn: Connection, table: str) -> list[Finding]:
    for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
        conn.exec_driver_sql(f"SET LOCAL {setting} = off")
    conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one()
    return []


def _verify_heap(conn: Connection, table: str) -> list[Finding]:
    rows = conn.exec_driver_sql(
        "SELECT blkno, offnum, msg FROM verify_heapam(%s::regclass) LIMIT 20", (f'"{table}"',)
    ).all()
    return [Finding(f"table {table}, block {b}, item {o}: {m}") for b, o, m in rows]


def _verify_index(conn: Connection, index: str) -> list[Finding]:
    conn.exec_driver_sql("SELECT bt_index_check(%s::regclass)", (f'"{index}"',)).all()
    return []
