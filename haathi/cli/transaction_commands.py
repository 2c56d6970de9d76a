"""``haathi`` commands for transactions, as pachctl's (``start|stop|resume|finish|delete|list|
inspect transaction``), with its output lines.

The active transaction is the context's (:mod:`haathi.client.context`, per store or server):
while there is one, ``create|delete repo``, ``create|delete branch``, ``start|finish commit``
and ``create|update pipeline`` add a request to it (``Added to transaction: ID``) instead of
acting.
"""

from __future__ import annotations

from typing import Annotated

import typer

from haathi.cli import render
from haathi.cli.main import NoWait, OutputOpt, after_write, client, command, state
from haathi.cli.render import Output
from haathi.errors import FailedPrecondition

Transaction = Annotated[
    str | None, typer.Argument(help="a transaction ID (default: the active transaction)")
]


def _address() -> str:
    from haathi.config import resolve_address

    return resolve_address(state.address)


def _set_active(transaction: str | None) -> None:
    from haathi.client.context import set_active_transaction

    set_active_transaction(_address(), transaction)


def _active() -> str:
    """The active transaction (FailedPrecondition: none)."""
    from haathi.client.context import active_transaction

    found = active_transaction(_address())
    if found is None:
        raise FailedPrecondition("no active transaction")
    return found


@command("start", "transaction")
def start_transaction() -> None:
    """Start a new transaction: the transactional commands add to it until it is finished,
    deleted or stopped."""
    from haathi.client.context import active_transaction

    found = active_transaction(_address())
    if found is not None:
        raise FailedPrecondition(
            f'cannot start a new transaction, since transaction with ID "{found}" already exists'
        )
    info = client().start_transaction()
    _set_active(info.id)
    print(f'started new transaction: "{info.id}"')


@command("stop", "transaction")
def stop_transaction() -> None:
    """Stop adding to the active transaction (it stays: resume transaction ID)."""
    found = _active()
    _set_active(None)
    print(f"Cleared active transaction: {found}")


@command("resume", "transaction")
def resume_transaction(transaction: Annotated[str, typer.Argument()]) -> None:
    """Make an existing transaction the active one again."""
    info = client().inspect_transaction(transaction)
    _set_active(info.id)
    print(f"Resuming existing transaction with {len(info.requests)} requests: {info.id}")


@command("finish", "transaction")
def finish_transaction(transaction: Transaction = None, no_wait: NoWait = False) -> None:
    """Apply every request of the transaction at once (or, if one fails, none of them), and
    run the jobs it starts."""
    tid = transaction or _active()
    c = client()
    c.transaction_id = None  # (its requests are applied, not added to)
    info = c.finish_transaction(tid)
    _set_active(None)
    print(f"Completed transaction with {len(info.responses)} requests: {info.id}")
    after_write(no_wait)


@command("delete", "transaction")
def delete_transaction(transaction: Transaction = None) -> None:
    """Delete the transaction: none of its requests is applied."""
    from haathi.client.context import active_transaction

    active = active_transaction(_address())
    tid = transaction or _active()
    c = client()
    c.transaction_id = None
    c.delete_transaction(tid)
    if tid == active:
        _set_active(None)


@command("list", "transaction", "transactions")
def list_transaction(output: OutputOpt = Output.table) -> None:
    """List transactions: ID, when started, how many requests."""
    items = client().list_transaction()
    render.emit_json(items) if output == Output.json else render.transactions(items)


@command("inspect", "transaction")
def inspect_transaction(transaction: Transaction = None, output: OutputOpt = Output.table) -> None:
    """Show a transaction and its requests."""
    info = client().inspect_transaction(transaction or _active())
    render.emit_json(info) if output == Output.json else render.transaction(info)
