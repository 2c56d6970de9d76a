"""Transaction operations of the Api (Pachyderm's ``start|finish|delete|list|inspect
transaction``): see :mod:`haathi.pps.transactions`.

A request is checked as the operation it stands for is: what ``create pipeline`` checks
before it writes (the spec, its secrets, that jobs can run here) when it is added and again
when the transaction finishes; the caller's roles inside the dry run and the finish. A
transaction is its creator's (and a cluster admin's): to anyone else it does not exist, so its
requests (repo names, specs) show only to who made them.
"""

from __future__ import annotations

from haathi.errors import NotFound
from haathi.models.auth import Caller
from haathi.models.transaction import CreatePipelineOp, TransactionInfo, TxnOp, TxnResponse
from haathi.pfs.context import PfsContext
from haathi.pps import transactions
from haathi.pps.context import PpsContext
from haathi.pps.runner import JobRunner
from haathi.pps.spec import PipelineSpec, parse_spec


class TransactionApi:
    """Mixed into :class:`haathi.api.service.Api`."""

    pfs: PfsContext
    pps: PpsContext
    caller: Caller | None

    @property
    def runner(self) -> JobRunner:  # the Api's
        raise NotImplementedError

    def _owner(self) -> str | None:  # AccessApi's
        raise NotImplementedError

    def _check_secrets(self, spec: PipelineSpec) -> None:  # SecretApi's
        raise NotImplementedError

    def _is_admin(self) -> bool:  # AccessApi's
        raise NotImplementedError

    def _sees(self, info: TransactionInfo) -> bool:
        return info.created_by == self._owner() or self._is_admin()

    def _own(self, transaction: str) -> TransactionInfo:
        """The caller's transaction ``transaction``; NotFound if it is another caller's."""
        info = transactions.inspect(self.pps, transaction)
        if not self._sees(info):
            raise NotFound(f"transaction {transaction} not found", transaction=transaction)
        return info

    def start_transaction(self) -> TransactionInfo:
        """A new, empty transaction."""
        return transactions.start(self.pps, self._owner())

    def append_transaction(self, transaction: str, op: TxnOp) -> TxnResponse:
        """Add a request to a transaction if a dry run of all its requests succeeds."""
        self._own(transaction)
        self._check_request(op)
        return transactions.append(self.pps, transaction, op, self._owner())

    def finish_transaction(self, transaction: str) -> TransactionInfo:
        """Apply every request of a transaction at once, or none; the transaction applied."""
        for op in self._own(transaction).requests:
            self._check_request(op)
        return transactions.finish(self.pps, transaction, self._owner())

    def delete_transaction(self, transaction: str) -> None:
        """Delete a transaction (none of its requests is applied)."""
        self._own(transaction)
        transactions.delete(self.pps, transaction)

    def inspect_transaction(self, transaction: str) -> TransactionInfo:
        return self._own(transaction)

    def list_transaction(self) -> list[TransactionInfo]:
        """The caller's transactions (a cluster admin's: all)."""
        admin, owner = self._is_admin(), self._owner()
        return [t for t in transactions.list_all(self.pps) if admin or t.created_by == owner]

    def _check_request(self, op: TxnOp) -> None:
        """What an operation checks before it opens the database (the rest is checked by
        the dry run)."""
        if isinstance(op, CreatePipelineOp):
            self._check_secrets(parse_spec(op.spec))
            self.runner.check()
