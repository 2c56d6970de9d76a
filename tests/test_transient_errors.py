"""Transient database errors: which failures may pass if the transaction runs again.

They are recognised by code (the SQLite result code, the PostgreSQL SQLSTATE), never by their
message: a retryable :class:`StorageError` for a lost race, a held lock or a lost connection,
which ``Database.retrying`` runs again; any other failure is raised at once, whatever its
message says. Each error here is a real one, made by the database (mostly by two connections
that get in each other's way). A retryable error stays retryable on its way from the server to
a remote client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError, OperationalError

import haathi
from haathi.errors import StorageError
from haathi.meta.database import Database, is_transient
from haathi.server.serve import Server
from loopback.servers import Postgres, free_port


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres(fsync=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_url(pg: Postgres) -> str:
    """One database for the tests' scratch tables (each database slows PostgreSQL's stop)."""
    return pg.create_database()


Scratch = Callable[[str], Database]


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    """Opens a database with one table ``t`` holding the row ``x = 1``, closed at the end."""
    opened: list[Database] = []

    def open_scratch(url: str) -> Database:
        db = Database(url)
        opened.append(db)
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY, n INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1, 0)")
        return db

    yield open_scratch
    for db in opened:
        with db.write() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS t")
        db.dispose()


def storage_error(run: Callable[[], object]) -> StorageError:
    with pytest.raises(StorageError) as caught:
        run()
    return caught.value


def code(err: StorageError) -> str | None:
    """The code of the driver's error under haathi's: SQLite's name for it, or the SQLSTATE."""
    assert isinstance(err.__cause__, DBAPIError)
    orig = err.__cause__.orig
    return getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None)


NOT_TRANSIENT = {
    "unique-violation": "INSERT INTO t VALUES (1, 0)",
    # the message names the table: it says "locked" and "connection", yet nothing is
    "no-such-table": "SELECT * FROM locked_connections",
}


def assert_not_retried(db: Database, statement: str) -> None:
    runs = []

    def run() -> None:
        runs.append(1)
        with db.write() as conn:
            conn.exec_driver_sql(statement)

    err = storage_error(lambda: db.retrying(run))
    assert runs == [1]
    assert not err.retryable


# SQLite ---------------------------------------------------------------------------------


def test_sqlite_busy_is_transient(tmp_path: Path) -> None:
    # haathi waits 60 s for SQLite's write lock; a second writer with a short timeout sees
    # SQLITE_BUSY at once
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 0.05})
    with engine.connect() as holder, engine.connect() as waiter:
        holder.exec_driver_sql("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError) as caught:
            waiter.exec_driver_sql("BEGIN IMMEDIATE")
        holder.exec_driver_sql("ROLLBACK")
    assert caught.value.orig.sqlite_errorname == "SQLITE_BUSY"  # type: ignore[union-attr]
    assert is_transient(caught.value)


def test_sqlite_locked_is_transient(tmp_path: Path, scratch: Scratch) -> None:
    db = scratch(f"sqlite:///{tmp_path / 'm.db'}")

    def drop_while_reading() -> None:
        # a statement still reading the table when the table is dropped
        with db.write() as conn, conn.exec_driver_sql("SELECT * FROM t"):
            conn.exec_driver_sql("DROP TABLE t")

    err = storage_error(drop_while_reading)
    assert code(err) == "SQLITE_LOCKED"
    assert err.retryable


def test_sqlite_a_stale_snapshot_is_retried(tmp_path: Path, scratch: Scratch) -> None:
    db = scratch(f"sqlite:///{tmp_path / 'm.db'}")
    attempts: list[StorageError | None] = []

    def count() -> None:
        with db.read() as conn:  # a snapshot: a transaction that has read, then writes
            n = conn.exec_driver_sql("SELECT n FROM t WHERE x = 1").scalar_one()
            if not attempts:  # another writer commits after our snapshot
                with db.write() as other:
                    other.exec_driver_sql("UPDATE t SET n = n + 10 WHERE x = 1")
            conn.exec_driver_sql("UPDATE t SET n = ? WHERE x = 1", (n + 1,))

    def attempt() -> None:
        try:
            count()
        except StorageError as exc:
            attempts.append(exc)
            raise
        attempts.append(None)

    db.retrying(attempt)
    first = attempts[0]
    assert first is not None and first.retryable
    assert code(first) == "SQLITE_BUSY_SNAPSHOT"
    assert attempts[1:] == [None]  # the second run read the other write and added to it
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT n FROM t").scalar_one() == 11


@pytest.mark.parametrize("statement", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT)
def test_sqlite_other_errors_are_not_retried(
    tmp_path: Path, scratch: Scratch, statement: str
) -> None:
    assert_not_retried(scratch(f"sqlite:///{tmp_path / 'm.db'}"), statement)


# PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.slow  # a PostgreSQL server of its own
def test_postgres_lock_not_available_is_retried(pg_url: str, scratch: Scratch) -> None:
    db = scratch(pg_url)
    holder = psycopg.connect(pg_url)
    holder.execute("SELECT * FROM t WHERE x = 1 FOR UPDATE")  # holds the row until rollback
    errors: list[StorageError] = []

    def bump() -> None:
        if errors:  # the holder has finished by the time the update runs again
            holder.rollback()
        try:
            with db.write() as conn:
                conn.exec_driver_sql("SELECT * FROM t WHERE x = 1 FOR UPDATE NOWAIT")
                conn.exec_driver_sql("UPDATE t SET n = n + 1 WHERE x = 1")
        except StorageError as exc:
            errors.append(exc)
            raise

    try:
        db.retrying(bump)
    finally:
        holder.close()
    assert [(code(e), e.retryable) for e in errors] == [("55P03", True)]
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT n FROM t").scalar_one() == 1


@pytest.mark.slow  # a PostgreSQL server of its own
def test_postgres_serialization_failure_is_transient(pg_url: str, scratch: Scratch) -> None:
    db = scratch(pg_url)

    def update_after_a_concurrent_update() -> None:
        with db.read() as conn:  # REPEATABLE READ: one snapshot
            conn.exec_driver_sql("SELECT n FROM t WHERE x = 1").scalar_one()
            with db.write() as other:
                other.exec_driver_sql("UPDATE t SET n = n + 1 WHERE x = 1")
            conn.exec_driver_sql("UPDATE t SET n = n + 1 WHERE x = 1")

    err = storage_error(update_after_a_concurrent_update)
    assert code(err) == "40001"
    assert err.retryable


@pytest.mark.slow  # a PostgreSQL server of its own
def test_postgres_deadlock_is_transient(pg_url: str, scratch: Scratch) -> None:
    db = scratch(pg_url)
    with db.write() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2, 0)")
    both_locked = threading.Barrier(2)
    errors: list[StorageError] = []

    def lock(first: int, second: int) -> None:
        try:
            with db.write() as conn:
                conn.exec_driver_sql(f"SELECT * FROM t WHERE x = {first} FOR UPDATE")
                both_locked.wait()
                conn.exec_driver_sql(f"SELECT * FROM t WHERE x = {second} FOR UPDATE")
        except StorageError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=args) for args in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [(code(e), e.retryable) for e in errors] == [("40P01", True)]


@pytest.mark.slow  # a PostgreSQL server of its own
def test_postgres_a_terminated_connection_is_transient(pg_url: str, scratch: Scratch) -> None:
    db = scratch(pg_url)

    def terminated() -> None:
        with db.write() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.exec_driver_sql("SELECT 1")

    err = storage_error(terminated)
    assert code(err) == "57P01"
    assert err.retryable
    with db.read() as conn:  # the pool has let the dead connection go
        assert conn.exec_driver_sql("SELECT n FROM t").scalar_one() == 0


def test_postgres_a_refused_connection_is_transient() -> None:
    db = Database(f"postgresql://haathi@127.0.0.1:{free_port()}/nothing")

    def read() -> None:
        with db.read():
            pass

    err = storage_error(read)
    assert code(err) is None  # no server answered
    assert err.retryable


@pytest.mark.slow  # a PostgreSQL server of its own
@pytest.mark.parametrize("statement", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT)
def test_postgres_other_errors_are_not_retried(
    pg_url: str, scratch: Scratch, statement: str
) -> None:
    assert_not_retried(scratch(pg_url), statement)


# over HTTP ------------------------------------------------------------------------------


@pytest.mark.slow  # a PostgreSQL server of its own
def test_a_retryable_error_stays_retryable_through_the_server(pg: Postgres, tmp_path: Path) -> None:
    url = pg.create_database()
    with psycopg.connect(url, autocommit=True) as admin:  # sessions wait 0.2 s for a lock
        admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET lock_timeout = 200')
    haathi.init(str(tmp_path / "store"), db=url).close()
    server = Server.for_store(str(tmp_path / "store"), {}, "127.0.0.1:0", run_worker=False,
                              s3_bind=None).start()  # fmt: skip
    holder = psycopg.connect(url)
    try:
        holder.execute("LOCK TABLE repos IN ACCESS EXCLUSIVE MODE")
        response = httpx.get(f"{server.url}/v1/repos")
        with haathi.connect(server.url) as remote:
            err = storage_error(remote.list_repo)
            holder.rollback()
            assert remote.list_repo() == []  # it passed when run again
    finally:
        holder.close()
        server.stop()
    assert response.status_code == 503
    assert response.json()["code"] == "storage"
    assert response.json()["details"] == {"retryable": True}
    assert "lock timeout" in err.message
    assert err.retryable
