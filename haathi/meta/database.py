"""Opening the metadata database: engine set-up, schema version checks, transactions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from haathi.errors import IncompatibleStore, StorageError

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

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("haathi_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """The metadata database: an engine plus read and write transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_setup(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot)."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except (OperationalError, DBAPIError) as exc:
            raise _translate(exc) from exc

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
            has = conn.execute(
                text(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
                    if self.is_sqlite
                    else "SELECT 1 FROM information_schema.tables "
                    "WHERE table_name='alembic_version'"
                )
            ).first()
            if not has:
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return str(row[0]) if row else None

    def ensure_schema(self) -> None:
        """Create or upgrade the schema; refuse a store written by a newer haathi."""
        current = self.stored_revision()
        known = known_revisions()
        if current == known[-1]:
            return
        if current is not None and current not in known:
            raise IncompatibleStore(
                f"this store's metadata schema is version {current}, newer than this haathi "
                f"understands (up to {known[-1]}): upgrade haathi to open it"
            )
        self._upgrade()

    def _upgrade(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def _translate(exc: Exception) -> StorageError:
    msg = str(getattr(exc, "orig", exc)).splitlines()[0]
    transient = any(s in msg.lower() for s in ("locked", "busy", "could not serialize", "deadlock"))
    return StorageError(f"metadata database error: {msg}", retryable=transient)
