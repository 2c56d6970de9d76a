"""Transaction rows: the owner of the ``transactions`` table (see
:mod:`haathi.pps.transactions` for what a transaction does)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, Row, delete, insert, select, update

from haathi.errors import NotFound
from haathi.meta.database import lock_rows
from haathi.meta.schema import transactions
from haathi.models.transaction import (
    TransactionInfo,
    TxnOp,
    TxnResponse,
    op_from_dict,
    op_to_dict,
)
from haathi.pfs.context import as_utc


def _info(row: Row[tuple[object, ...]]) -> TransactionInfo:
    m = row._mapping
    started = m["started_at"]
    return TransactionInfo(
        str(m["id"]),
        as_utc(started) or started,
        m["created_by"],
        tuple(op_from_dict(d) for d in json.loads(m["ops"])),
        tuple(TxnResponse.from_dict(d) for d in json.loads(m["responses"])),
    )


def insert_transaction(conn: Connection, tid: str, started: datetime, by: str | None) -> None:
    conn.execute(
        insert(transactions).values(
            id=tid, started_at=started, created_by=by, version=0, ops="[]", responses="[]"
        )
    )


def get(conn: Connection, tid: str, *, lock: bool = False) -> TransactionInfo:
    """Transaction ``tid`` (``lock``: its row, until this write transaction ends); NotFound
    if there is none."""
    stmt = select(transactions).where(transactions.c.id == tid)
    rows = lock_rows(conn, stmt) if lock else list(conn.execute(stmt))
    if not rows:
        raise NotFound(f"transaction {tid} not found", transaction=tid)
    return _info(rows[0])


def list_all(conn: Connection) -> list[TransactionInfo]:
    """Every transaction, oldest first."""
    rows = conn.execute(select(transactions).order_by(transactions.c.started_at, transactions.c.id))
    return [_info(r) for r in rows]


def set_requests(
    conn: Connection, tid: str, ops: tuple[TxnOp, ...], responses: tuple[TxnResponse, ...]
) -> None:
    """Replace the transaction's requests and their responses (its row locked by
    :func:`get`)."""
    conn.execute(
        update(transactions)
        .where(transactions.c.id == tid)
        .values(
            ops=json.dumps([op_to_dict(op) for op in ops]),
            responses=json.dumps([r.to_dict() for r in responses]),
            version=transactions.c.version + 1,
        )
    )


def delete_transaction(conn: Connection, tid: str) -> bool:
    """Delete the transaction's row; whether there was one."""
    return conn.execute(delete(transactions).where(transactions.c.id == tid)).rowcount == 1
