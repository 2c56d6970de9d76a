"""Tokens: 256 random bits shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, insert, select

from haathi.errors import InvalidArgument, Unauthenticated
from haathi.meta.schema import auth_tokens

TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite drops the zone


def issue(conn: Connection, subject: str, ttl_s: float | None = None) -> str:
    """A new token for ``subject`` (valid for ``ttl_s`` seconds, or until revoked)."""
    if ttl_s is not None and ttl_s <= 0:
        raise InvalidArgument("--ttl must be positive")
    token = secrets.token_hex(TOKEN_BYTES)
    now = datetime.now(UTC)
    conn.execute(
        insert(auth_tokens).values(
            token_hash=hash_token(token),
            subject=subject,
            created_at=now,
            expires_at=None if ttl_s is None else now + timedelta(seconds=ttl_s),
        )
    )
    return token


_SUBJECT = select(auth_tokens.c.subject, auth_tokens.c.expires_at).where(
    auth_tokens.c.token_hash == bindparam("token_hash")
)  # built once: every request with auth on runs it


def subject_of(conn: Connection, token: str) -> str:
    """Who ``token`` belongs to; Unauthenticated if it is unknown, revoked or expired."""
    row = conn.execute(_SUBJECT, {"token_hash": hash_token(token)}).first()
    if row is None:
        raise Unauthenticated("the token is not valid (unknown or revoked): log in again")
    if row.expires_at is not None and _utc(row.expires_at) <= datetime.now(UTC):
        raise Unauthenticated("the token has expired: log in again")
    return str(row.subject)


def revoke_token(conn: Connection, token: str) -> int:
    """Revoke one token; how many were revoked (0 or 1)."""
    result = conn.execute(delete(auth_tokens).where(auth_tokens.c.token_hash == hash_token(token)))
    return int(result.rowcount or 0)


def revoke_subject(conn: Connection, subject: str) -> int:
    """Revoke every token of ``subject``; how many."""
    result = conn.execute(delete(auth_tokens).where(auth_tokens.c.subject == subject))
    return int(result.rowcount or 0)


def revoke_all(conn: Connection) -> None:
    """Revoke every token."""
    conn.execute(delete(auth_tokens))
