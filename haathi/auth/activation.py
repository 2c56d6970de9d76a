"""Turning auth on and off. Off (the default) means no checks at all."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select

from haathi.auth import bindings, tokens
from haathi.errors import FailedPrecondition
from haathi.meta.schema import auth_config
from haathi.models.auth import ROOT

_ACTIVE = select(auth_config.c.id)  # built once: a server runs it for requests


def is_active(conn: Connection) -> bool:
    return conn.execute(_ACTIVE).first() is not None


def activate(conn: Connection) -> str:
    """Turn auth on; the root token (shown once: only its hash is kept). Every authenticated
    caller may then create projects, and repos and pipelines in ``default``
    (:func:`bindings.seed`)."""
    if is_active(conn):
        raise FailedPrecondition("auth is already activated")
    conn.execute(insert(auth_config).values(id=1, activated_at=datetime.now(UTC)))
    bindings.seed(conn)
    return tokens.issue(conn, ROOT)


def deactivate(conn: Connection) -> None:
    """Turn auth off, dropping every token and role binding."""
    conn.execute(delete(auth_config))
    tokens.revoke_all(conn)
    bindings.drop_all(conn)


def require_active(conn: Connection) -> None:
    if not is_active(conn):
        raise FailedPrecondition("auth is not activated: run haathi auth activate")
