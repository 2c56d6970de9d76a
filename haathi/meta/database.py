"""Opening the metadata database: engine set-up, schema version checks, transactions."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, Select, Table, create_engine, event, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from haathi.config import mask_url
from haathi.errors import Corrupt, IncompatibleStore, InvalidArgument, StorageError
from haathi.models.text import not_unicode

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")


def known_revisions() -> list[str]:
    """Migration revisions this haathi knows, oldest first (file names ``NNNN_*.py``)."""
    return sorted(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))


def head_revision() -> str:
    return known_revisions()[-1]


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _no_nul(
        _conn: Any, _cursor: Any, _sql: str, params: Any, _context: Any, many: bool
    ) -> None:
        for row in params if many else [params]:  # PostgreSQL cannot store it: nor do we
            values = row.values() if isinstance(row, dict) else row or ()
            if any(isinstance(v, str) and "\x00" in v for v in values):
                raise InvalidArgument(_NUL_TEXT)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("haathi_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a user's database URL (PostgreSQL goes through psycopg 3)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


class _FairLock:
    """A lock handed to its waiters in arrival order (``threading.Lock`` is not fair: under
    contention a waiter can lose again and again)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder handing the lock over

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # still held: by the next waiter now
            else:
                self._held = False


class _LocalLocks:
    """Named fair locks for the threads of one process (a lock exists while someone holds
    or waits for it)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, tuple[_FairLock, list[int]]] = {}

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        with self._mutex:
            lock, users = self._locks.setdefault(name, (_FairLock(), [0]))
            users[0] += 1
        try:
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._mutex:
                users[0] -= 1
                if not users[0]:
                    del self._locks[name]


class _FileLocks:
    """Exclusive locks across processes: one byte of a lock file per key, locked with an open
    file description lock (Linux ``F_OFD_SETLKW``): two Database objects exclude each other
    even in one process, and the kernel drops the locks of a process that dies. Elsewhere a
    POSIX record lock (``lockf``): one per process, so the threads of a process must take
    turns first (as :meth:`Database.named_lock` has them)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._mutex = threading.Lock()

    def _file(self) -> int:
        with self._mutex:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            return self._fd

    @staticmethod
    def _set(fd: int, kind: int, offset: int) -> None:
        if hasattr(fcntl, "F_OFD_SETLKW"):  # struct flock: type, whence, start, len, pid (0)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0))
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN if kind == fcntl.F_UNLCK else fcntl.LOCK_EX, 1, offset)

    @contextmanager
    def hold(self, key: int) -> Iterator[None]:
        """Hold the lock ``key`` (a byte offset below 2**62); blocks until it is free."""
        try:
            fd = self._file()
            self._set(fd, fcntl.F_WRLCK, key)
        except OSError as exc:
            raise StorageError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        try:
            yield
        finally:
            self._set(fd, fcntl.F_UNLCK, key)

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_FLOCK = struct.Struct("@hhqqi4x")  # Linux's struct flock on 64-bit hosts (32 bytes)


class Database:
    """The metadata database: an engine plus read and write transactions.

    SQLite serializes writers with BEGIN IMMEDIATE. PostgreSQL runs writes at READ COMMITTED,
    and each write that reads before it writes locks the rows it depends on (``lock_rows``);
    reads run at REPEATABLE READ so that each sees one snapshot.
    """

    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=4, max_overflow=8, connect_args={
                "connect_timeout": 10, "application_name": "haathi",
            })  # fmt: skip
        try:
            self.engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            msg = mask_url(str(exc).splitlines()[0])
            raise InvalidArgument(f"cannot use metadata database: {msg}") from exc
        self._local_locks = _LocalLocks()
        path = self.engine.url.database if self.is_sqlite else None
        on_disk = bool(path) and path != ":memory:" and not str(path).startswith("file:")
        self._file_locks = _FileLocks(Path(f"{path}.locks")) if on_disk else None
        if self.is_sqlite:
            _sqlite_setup(self.engine)
            self._read_options: dict[str, Any] = {}
        else:
            self._read_options = {"isolation_level": "REPEATABLE READ"}

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot)."""
        try:
            with self.engine.connect() as raw:
                conn = raw.execution_options(**self._read_options) if self._read_options else raw
                with conn.begin():
                    yield conn
        except (OperationalError, DBAPIError) as exc:
            raise _translate(exc) from exc
        except UnicodeEncodeError as exc:
            raise not_unicode(exc, "a name or value in the request") from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        try:
            with self.engine.connect() as raw:
                conn = raw.execution_options(haathi_write=True)
                with conn.begin():
                    yield conn
        except (OperationalError, DBAPIError) as exc:
            raise _translate(exc) from exc
        except UnicodeEncodeError as exc:
            raise not_unicode(exc, "a name or value in the request") from exc

    @contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        """Hold the lock ``name`` across transactions: one thread of this process at a time
        and one process (on PostgreSQL, one host) at a time.

        Threads take turns on an in-process lock first (a server's request threads: waiting
        there holds no database connection, so waiters cannot exhaust the pool that the
        holder needs for its writes). Then the holder takes a lock that reaches other
        processes: on PostgreSQL a session advisory lock, on SQLite a lock on a byte of the
        file ``<database>.locks`` beside it (:class:`_FileLocks`; the processes of one host,
        e.g. the workers of ``haathi serve --workers N`` and CLI commands). Both are released
        if the process dies. An in-memory SQLite database has only the in-process lock.
        """
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
        with self._local_locks.hold(str(key)):  # names of one key take turns here too
            if self.is_sqlite:
                if self._file_locks is None:
                    yield
                    return
                with self._file_locks.hold(key >> 2):
                    yield
                return
            key -= 2**63
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
                    conn.commit()
                    try:
                        yield
                    finally:
                        conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                        conn.commit()
            except (OperationalError, DBAPIError) as exc:
                raise _translate(exc) from exc

    def retrying(self, fn: Callable[[], T], *, attempts: int = 5) -> T:
        """Run ``fn`` again when the database reports a transient failure."""
        for i in range(attempts):
            try:
                return fn()
            except StorageError as exc:
                if not exc.retryable or i == attempts - 1:
                    raise
                time.sleep(0.05 * 2**i)
        raise AssertionError("unreachable")

    def stored_revision(self) -> str | None:
        with self.read() as conn:
            return self._revision(conn)

    def _revision(self, conn: Connection) -> str | None:
        has = conn.execute(
            text(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
                if self.is_sqlite
                else "SELECT 1 FROM information_schema.tables "
                "WHERE table_name='alembic_version' AND table_schema=current_schema()"
            )
        ).first()
        if not has:
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None

    def is_empty(self) -> bool:
        """Whether the database holds no haathi schema yet. Creates nothing: a SQLite file that
        does not exist is empty without being opened."""
        if self.is_sqlite:
            path = self.engine.url.database
            if path and path != ":memory:" and not Path(path).exists():
                return True
        return self.stored_revision() is None

    def ensure_schema(self) -> None:
        """Create or upgrade the schema; refuse a store written by a newer haathi."""
        if self.stored_revision() == head_revision():
            return
        try:  # one migrator at a time: others wait here, then find the schema current
            with self.engine.connect() as raw:
                conn = raw.execution_options(haathi_write=True)
                if self.is_sqlite:  # BEGIN IMMEDIATE: the write lock before the first read
                    with conn.begin():
                        self._ensure_schema(conn)
                    return
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
                conn.commit()
                try:
                    with conn.begin():
                        self._ensure_schema(conn)
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                    conn.commit()
        except (OperationalError, DBAPIError) as exc:
            raise _translate(exc) from exc

    def _ensure_schema(self, conn: Connection) -> None:
        current = self._revision(conn)
        known = known_revisions()
        if current == known[-1]:
            return
        if current is not None and current not in known:
            raise IncompatibleStore(
                f"this store's metadata schema is version {current}, newer than this haathi "
                f"understands (up to {known[-1]}): upgrade haathi to open it"
            )
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._file_locks is not None:
            self._file_locks.close()


# SQLSTATEs of PostgreSQL errors that may pass when the transaction runs again (whole classes
# by their first two characters): a connection failed or was lost (08), the transaction lost a
# race (40001 serialization_failure, 40P01 deadlock_detected) or a lock or statement timeout
# (55P03 lock_not_available, 57014 query_canceled), the server is shutting down or starting up
# (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), or dropped an idle
# session (25P03, 57P05) or is full (53300 too_many_connections).
_PG_TRANSIENT = frozenset(
    ("08", "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "57P05", "25P03", "53300")
)
# SQLite primary result codes (an extended code's low byte): another connection holds the lock
# (SQLITE_BUSY, and its _RECOVERY, _SNAPSHOT, _TIMEOUT forms) or a table is locked within this
# connection or a shared cache (SQLITE_LOCKED and its extended forms).
_SQLITE_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_MIGRATION_LOCK = 0x68616174  # "haat"


def batches(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``items`` in slices small enough for one ``IN (...)`` list."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def param_marks(conn: Connection, n: int) -> str:
    """``n`` placeholders for raw SQL in the driver's style (``?`` or ``%s``)."""
    return ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * n)


def lock_rows(conn: Connection, stmt: Select[Any]) -> list[Row[Any]]:
    """Run ``stmt`` taking row locks (FOR UPDATE) until the transaction ends.

    On SQLite a write transaction already holds the database lock, so this is a plain select.
    """
    return list(conn.execute(stmt.with_for_update()))


def insert_ignore(conn: Connection, table: Table, conflict: Sequence[str], **values: Any) -> bool:
    """Insert one row unless a row with the same ``conflict`` columns exists; True if inserted."""
    stmt: Any
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        stmt = sqlite.insert(table)
    else:  # imported on use: the PostgreSQL dialect costs 23 ms of every SQLite CLI command
        from sqlalchemy.dialects import postgresql

        stmt = postgresql.insert(table)
    stmt = stmt.values(**values).on_conflict_do_nothing(index_elements=conflict)
    return conn.execute(stmt.returning(table.c[conflict[0]])).first() is not None


_NUL_TEXT = "text with a NUL character (\\x00) is not a valid name or value"
# The database's own files are damaged: SQLite's SQLITE_CORRUPT ("database disk image is
# malformed") and SQLITE_NOTADB; PostgreSQL's data_corrupted (XX001, e.g. "invalid page in
# block") and index_corrupted (XX002).
_SQLITE_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_PG_DAMAGED = frozenset({"XX001", "XX002"})


def _codes(exc: DBAPIError) -> tuple[int | None, str | None]:
    """The driver's error code: (SQLite primary result code, PostgreSQL SQLSTATE)."""
    if isinstance(exc.orig, sqlite3.Error):
        code = getattr(exc.orig, "sqlite_errorcode", None)
        return (None if code is None else code & 0xFF), None
    return None, getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def _translate(exc: DBAPIError) -> StorageError | InvalidArgument | Corrupt:
    msg = (str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__])[0]
    if "cannot contain NUL" in msg:  # psycopg's own check (no SQLSTATE): the value is bad
        return InvalidArgument(_NUL_TEXT)
    sqlite_code, sqlstate = _codes(exc)
    if sqlite_code in _SQLITE_DAMAGED or sqlstate in _PG_DAMAGED:
        return Corrupt(
            f"the metadata database is damaged: {msg} (`haathi fsck` checks it; restore the "
            "database from a backup)"
        )
    return StorageError(f"metadata database error: {msg}", retryable=is_transient(exc))


def is_transient(exc: DBAPIError) -> bool:
    """Whether a database error (SQLAlchemy's wrapper of the driver's) may pass if its
    transaction runs again, by its code: the SQLite result code, or the PostgreSQL SQLSTATE
    (psycopg 3 ``sqlstate``, psycopg2 ``pgcode``).

    An OperationalError without a code never got the server's answer (psycopg: the connection
    was refused, lost or timed out); it is transient, as is a connection SQLAlchemy found
    broken.
    """
    if exc.connection_invalidated:
        return True
    sqlite_code, state = _codes(exc)
    if isinstance(exc.orig, sqlite3.Error):
        return sqlite_code in _SQLITE_TRANSIENT
    if not state:
        return isinstance(exc, OperationalError)
    return state in _PG_TRANSIENT or state[:2] in _PG_TRANSIENT
