"""Transaction methods of the Client (Pachyderm's ``start|finish|delete|stop|resume|list|
inspect transaction``).

While :attr:`TransactionMethods.transaction_id` is set (``with client.transaction():``, or
the CLI's active transaction), the Client's transactional methods (``create_repo``,
``delete_repo``, ``create_branch``, ``delete_branch``, ``start_commit``, ``finish_commit``,
``create_pipeline``, ``update_pipeline``) add a request to that transaction instead of
acting: each is checked by a dry run (an error there adds nothing) and returns what it made
as the dry run saw it; ``finish_transaction`` then applies them all at once, or none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from haathi.errors import FailedPrecondition
from haathi.models.contract import ApiContract
from haathi.models.transaction import TransactionInfo, TxnOp, TxnResponse


class TransactionMethods:
    """Mixed into :class:`haathi.client.client.Client`."""

    _api: ApiContract
    transaction_id: str | None = None  # the transaction requests go to (None: they act)

    def _ran_writes(self, result: Any = None) -> Any:  # the Client's
        raise NotImplementedError

    def _added(self, op: TxnOp) -> TxnResponse:
        """Add ``op`` to the current transaction; its response."""
        assert self.transaction_id is not None
        return self._api.append_transaction(self.transaction_id, op)

    def _txn(self, transaction: str | None) -> str:
        """``transaction``, else the current one (FailedPrecondition: none)."""
        found = transaction or self.transaction_id
        if not found:
            raise FailedPrecondition("no active transaction")
        return found

    def start_transaction(self) -> TransactionInfo:
        """Start a new, empty transaction (set :attr:`transaction_id` to add to it, or use
        :meth:`transaction`)."""
        return self._api.start_transaction()

    def finish_transaction(self, transaction: str | None = None) -> TransactionInfo:
        """Apply every request of ``transaction`` (default: the current one, which then ends)
        at once; if one fails, none is applied and the transaction stays. Then the jobs it
        started run, as after any write."""
        tid = self._txn(transaction)
        info = self._api.finish_transaction(tid)
        if tid == self.transaction_id:
            self.transaction_id = None
        return self._ran_writes(info)  # type: ignore[no-any-return]

    def delete_transaction(self, transaction: str | None = None) -> None:
        """Delete ``transaction`` (default: the current one, which then ends): none of its
        requests is applied."""
        tid = self._txn(transaction)
        self._api.delete_transaction(tid)
        if tid == self.transaction_id:
            self.transaction_id = None

    def inspect_transaction(self, transaction: str | None = None) -> TransactionInfo:
        """``transaction`` (default: the current one), with its requests."""
        return self._api.inspect_transaction(self._txn(transaction))

    def list_transaction(self) -> list[TransactionInfo]:
        """Every transaction, oldest first."""
        return self._api.list_transaction()

    @contextmanager
    def transaction(self) -> Iterator[TransactionInfo]:
        """``with client.transaction():`` starts a transaction that the transactional methods
        add to, finishes it when the block ends, and deletes it if the block raises."""
        if self.transaction_id is not None:
            raise FailedPrecondition(
                "cannot start a new transaction, since transaction with ID "
                f'"{self.transaction_id}" already exists'
            )
        info = self.start_transaction()
        self.transaction_id = info.id
        try:
            yield info
        except BaseException:
            self.transaction_id = None
            self._api.delete_transaction(info.id)
            raise
        self.transaction_id = None
        self.finish_transaction(info.id)  # (if a request fails now, the transaction stays)
