"""The metadata engine's contract, one suite run against every engine: SQLite (a file) and
PostgreSQL (a real server on loopback).

What :class:`haathi.meta.database.Database` promises on each: a new database migrates to the
head revision and then holds exactly the schema of ``haathi/meta/schema.py``, a newer one is
refused; ``read()`` is one snapshot; ``write()`` commits as a whole or, when its block raises,
not at all (the exception passes through); writers that lock the rows they read
(``lock_rows``) lose no update, and a deadlock between them is a retryable error that
``retrying`` gets past; ``named_lock`` admits one holder at a time; the engine's own failures
are one-line ``StorageError``s; the integrity check finds nothing wrong with a healthy database
and names a missing table.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, Text, inspect, select, text, update

from haathi.errors import IncompatibleStore, InvalidArgument, StorageError
from haathi.meta.database import (
    Database,
    batches,
    head_revision,
    insert_ignore,
    lock_rows,
    param_marks,
)
from haathi.meta.integrity import check_database
from haathi.meta.schema import metadata
from tests.conftest import Backends

SECRET = "s3cret-pw"

scratch = MetaData()
counters = Table(
    "conformance_counters",
    scratch,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
    Column("note", Text, nullable=False, default=""),
)


@dataclass
class Engine:
    """One engine under test: the test's database (a new, empty one unless the test asks for
    ``db``), opened as many times as processes would."""

    name: str
    new_database: Callable[[], str]  # a new, empty database's URL
    copy_migrated: Callable[[], str]  # a new database's URL: a copy of one migrated to head
    unreachable_url: str  # a database that cannot be reached (with a password in it)
    locks_across_processes: bool  # named_lock excludes other Database objects, not only threads
    url: str = ""
    opened: list[Database] = field(default_factory=list)

    def open(self) -> Database:
        self.url = self.url or self.new_database()
        self.opened.append(Database(self.url))
        return self.opened[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def migrate(url: str) -> None:
    """Migrate the database at ``url`` to head and add the scratch table of two counters."""
    database = Database(url)
    try:
        database.ensure_schema()
        with database.write() as conn:
            scratch.create_all(conn)
            conn.execute(counters.insert(), [{"id": 1, "n": 0}, {"id": 2, "n": 0}])
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once; tests get copies (migrating each would cost more)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "meta.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(backends: Backends) -> str:
    """A PostgreSQL database migrated once, the template of the tests' copies."""
    pg = backends.start().pg
    assert pg is not None
    name = f"template_{uuid.uuid4().hex[:12]}"
    migrate(pg.create_database(name))
    return name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def impl(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":

        def new_file() -> str:
            return f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"

        def copy_file() -> str:
            url = new_file()
            shutil.copyfile(request.getfixturevalue("sqlite_template"), url.split(":///")[1])
            return url

        engine = Engine(
            "sqlite", new_file, copy_file, f"sqlite:///{tmp_path / 'no-such-dir' / 'meta.db'}",
            locks_across_processes=True,
        )  # fmt: skip
    else:
        backends: Backends = request.getfixturevalue("backends")
        pg = backends.start().pg
        assert pg is not None

        def copy_database() -> str:
            template = request.getfixturevalue("pg_template")
            name = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(pg.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return pg.url(name)

        engine = Engine(
            "postgresql", pg.create_database, copy_database,
            f"postgresql://haathi:{SECRET}@127.0.0.1:{closed_port()}/x",
            locks_across_processes=True,
        )  # fmt: skip
    yield engine
    for db in engine.opened:
        db.dispose()


@pytest.fixture
def db(impl: Engine) -> Database:
    """A database of the engine migrated to head, with a scratch table of two counters."""
    impl.url = impl.copy_migrated()
    return impl.open()


def count(db: Database, row: int = 1) -> int:
    with db.read() as conn:
        return int(conn.execute(select(counters.c.n).where(counters.c.id == row)).scalar_one())


def increment(db: Database, row: int = 1) -> None:
    """Read a counter and write it back one higher, locking the row it read."""
    with db.write() as conn:
        (n,) = lock_rows(conn, select(counters.c.n).where(counters.c.id == row))[0]
        conn.execute(update(counters).where(counters.c.id == row).values(n=n + 1))


def in_threads(fn: Callable[[int], None], n: int) -> None:
    """Run ``fn(0) ... fn(n-1)`` at once; re-raise the first failure."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------------------------------
# The schema


def test_a_new_database_is_empty_and_migrates_to_head(impl: Engine) -> None:
    db = impl.open()
    assert db.is_empty() and db.stored_revision() is None
    db.ensure_schema()
    assert db.stored_revision() == head_revision() and not db.is_empty()
    with db.read() as conn:
        assert set(inspect(conn).get_table_names()) == {*metadata.tables, "alembic_version"}
    db.ensure_schema()  # current: nothing to do
    assert db.stored_revision() == head_revision()
    assert check_database(db, fast=True) == []
    assert check_database(db, fast=False) == []


def test_the_migrations_make_exactly_the_declared_schema(impl: Engine) -> None:
    """Columns, types, indexes and constraints after every migration are those that
    ``haathi/meta/schema.py`` declares: a migration that misses something on one engine fails
    here."""
    db = impl.open()
    db.ensure_schema()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_a_migration_waits_for_another_processs_write(impl: Engine) -> None:
    """Several haathi processes started at once on a new store: while one migrates (writes),
    another's migration waits for it, then finds the schema current or migrates, and succeeds.
    The other process's write is held open here for half a second."""
    other, db = impl.open(), impl.open()
    writing, done = threading.Event(), threading.Event()

    def write() -> None:
        with other.write() as conn:
            conn.execute(text("CREATE TABLE another_process (x INTEGER)"))
            writing.set()
            time.sleep(0.5)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(10)
        db.ensure_schema()
    finally:
        writer.join()
    assert done.is_set()
    assert db.stored_revision() == head_revision()
    assert check_database(db, fast=True) == []


def test_a_schema_from_a_newer_haathi_is_refused_and_left_alone(db: Database) -> None:
    with db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(IncompatibleStore, match="version 9999, newer than this haathi"):
        db.ensure_schema()
    assert db.stored_revision() == "9999"


# ---------------------------------------------------------------------------------------------
# Transactions


def test_a_write_commits_as_a_whole_or_not_at_all(db: Database) -> None:
    with db.write() as conn:
        conn.execute(update(counters).values(n=5))
    assert (count(db, 1), count(db, 2)) == (5, 5)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.write() as conn:  # its own exception, not a translation
        conn.execute(update(counters).where(counters.c.id == 1).values(n=6))
        conn.execute(update(counters).where(counters.c.id == 2).values(n=6))
        raise Boom
    assert (count(db, 1), count(db, 2)) == (5, 5)

    with pytest.raises(StorageError, match="metadata database"), db.write() as conn:
        conn.execute(update(counters).where(counters.c.id == 1).values(n=7))
        conn.execute(text("UPDATE no_such_table SET n = 1"))  # a statement that fails
    assert count(db, 1) == 5


def test_a_read_sees_one_snapshot(impl: Engine, db: Database) -> None:
    other = impl.open()
    with db.read() as conn:
        before = conn.execute(select(counters.c.n).where(counters.c.id == 1)).scalar_one()
        in_threads(lambda _: increment(other), 1)  # another connection commits meanwhile
        again = conn.execute(select(counters.c.n).where(counters.c.id == 1)).scalar_one()
    assert before == again == 0
    assert count(db) == 1


def test_concurrent_writers_lose_no_update(impl: Engine, db: Database) -> None:
    """Two databases objects (two processes' connections), two threads each, every write a
    read-modify-write of one counter."""
    dbs = [db, impl.open()]

    def writer(i: int) -> None:
        for _ in range(25):
            increment(dbs[i % 2])

    in_threads(writer, 4)
    assert count(db) == 100


def test_writers_locking_rows_in_opposite_orders_get_through_by_retrying(
    impl: Engine, db: Database
) -> None:
    """Each of two writers locks one row, then the other's. Where the engine lets both hold
    their first row (PostgreSQL), that is a deadlock: the engine ends one transaction, with a
    retryable error, and ``retrying`` runs it again. Where writers take turns (SQLite), there
    is nothing to retry."""
    both_hold_one = threading.Barrier(2)
    attempts = [0, 0]
    dbs = [db, impl.open()]

    def transfer(i: int) -> None:
        first, second = (1, 2) if i == 0 else (2, 1)

        def once() -> None:
            attempts[i] += 1
            with dbs[i].write() as conn:
                lock_rows(conn, select(counters.c.n).where(counters.c.id == first))
                if attempts[i] == 1:
                    with contextlib.suppress(threading.BrokenBarrierError):
                        both_hold_one.wait(timeout=0.5)  # SQLite: the other is not in yet
                lock_rows(conn, select(counters.c.n).where(counters.c.id == second))
                conn.execute(update(counters).values(n=counters.c.n + 1))

        dbs[i].retrying(once)

    in_threads(transfer, 2)
    assert (count(db, 1), count(db, 2)) == (2, 2)
    assert sum(attempts) in (2, 3), attempts


def test_a_named_lock_has_one_holder_at_a_time(impl: Engine, db: Database) -> None:
    """Threads of one process share a Database; other processes have their own (where the
    engine's locks reach across processes)."""
    dbs = [db, impl.open(), impl.open()] if impl.locks_across_processes else [db] * 3
    holders: list[int] = []
    most = [0]
    guard = threading.Lock()

    def hold(i: int) -> None:
        for _ in range(5):
            with dbs[i].named_lock("conformance"):
                with guard:
                    holders.append(i)
                    most[0] = max(most[0], len(holders))
                time.sleep(0.005)
                with guard:
                    holders.remove(i)

    in_threads(hold, 3)
    assert most == [1]


def test_helpers_compose_inside_a_write(db: Database) -> None:
    with db.write() as conn:
        assert insert_ignore(conn, counters, ["id"], id=3, n=30) is True
        assert insert_ignore(conn, counters, ["id"], id=3, n=31) is False  # already there
        rows = lock_rows(conn, select(counters.c.id, counters.c.n).order_by(counters.c.id))
        ids = [1, 3, 4]
        raw = conn.exec_driver_sql(  # the driver's own placeholders, in batches
            f"SELECT id FROM conformance_counters WHERE id IN ({param_marks(conn, 2)})",
            tuple(next(iter(batches(ids, 2)))),
        )
        assert sorted(r[0] for r in raw) == [1, 3]
    assert [tuple(r) for r in rows] == [(1, 0), (2, 0), (3, 30)]
    assert [list(b) for b in batches(ids, 2)] == [[1, 3], [4]]


def test_retrying_runs_again_on_transient_errors_only(db: Database) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StorageError("busy", retryable=True)
        return "done"

    assert db.retrying(flaky) == "done" and len(calls) == 3
    calls.clear()

    def broken() -> None:
        calls.append(1)
        raise StorageError("disk full")

    with pytest.raises(StorageError, match="disk full"):
        db.retrying(broken)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------
# Text and failures


def test_text_round_trips_and_text_that_is_not_unicode_is_refused(db: Database) -> None:
    note = 'naïve 日本語 🐘 \u2028 tab\tquote\' "x"'
    with db.write() as conn:
        conn.execute(update(counters).where(counters.c.id == 1).values(note=note))
    with db.read() as conn:
        assert conn.execute(select(counters.c.note).where(counters.c.id == 1)).scalar() == note
    with pytest.raises(InvalidArgument, match="lone surrogate"), db.write() as conn:
        conn.execute(update(counters).where(counters.c.id == 2).values(n=9))
        conn.execute(update(counters).where(counters.c.id == 2).values(note="bad \udc80"))
    assert count(db, 2) == 0


def test_text_with_a_nul_character_is_refused(impl: Engine, db: Database) -> None:
    """PostgreSQL cannot store a NUL in text; for the same request to have the same outcome on
    every engine, SQLite must refuse it too."""
    with pytest.raises(InvalidArgument, match="NUL"), db.write() as conn:
        conn.execute(update(counters).where(counters.c.id == 2).values(n=9))
        conn.execute(update(counters).where(counters.c.id == 2).values(note="a\x00b"))
    assert count(db, 2) == 0


def test_an_unreachable_database_is_a_one_line_storage_error(impl: Engine) -> None:
    db = Database(impl.unreachable_url)
    try:
        with pytest.raises(StorageError) as caught:
            db.stored_revision()
    finally:
        db.dispose()
    message = str(caught.value)
    assert message.startswith("metadata database error: ") and "\n" not in message
    assert SECRET not in message


# ---------------------------------------------------------------------------------------------
# The integrity check


def test_the_integrity_check_names_a_missing_table(db: Database) -> None:
    with db.write() as conn:
        conn.execute(text("DROP TABLE role_bindings"))
    for fast in (True, False):
        findings = check_database(db, fast=fast)
        assert [(f.message, f.damage) for f in findings] == [
            ("table role_bindings is missing", True)
        ]


# ---------------------------------------------------------------------------------------------
# What only one engine has


def test_postgresql_connections_the_server_ended_are_replaced(backends: Backends) -> None:
    """A server restart or an administrator ends haathi's connections: the next transaction
    gets a new one instead of failing."""
    pg = backends.start().pg
    assert pg is not None
    db = Database(pg.create_database())
    try:
        db.ensure_schema()
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
        admin = Database(pg.url())
        try:
            with admin.write() as conn:
                ended = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": db.engine.url.database},
                ).scalar()
        finally:
            admin.dispose()
        assert ended
        assert db.stored_revision() == head_revision()
    finally:
        db.dispose()


def test_sqlite_a_missing_database_file_is_not_created_by_asking(tmp_path: Path) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    db = Database(f"sqlite:///{path}")
    try:
        assert db.is_empty()
    finally:
        db.dispose()
    assert not path.exists()
