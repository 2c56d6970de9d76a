"""Propagation deferred to the end of a transaction (Pachyderm's ``Propagater``).

Outside a transaction, each operation that moves a branch's head gives the branches
downstream of it a new commit at once (:mod:`haathi.pfs.provenance`). Inside one (``start
transaction`` ... ``finish transaction``), the operations only record what moved in a
:class:`Deferred`; when the last has run, :meth:`Deferred.run` gives every branch downstream
of any of them **one** open AUTO commit with the transaction's ID, in an order where each
comes after its upstream branches, so that its provenance names the heads as they are at the
end: a pipeline reading several moved inputs runs one job over all of their new heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection

from haathi.pfs import provenance

BranchKey = provenance.BranchKey


@dataclass
class Deferred:
    """The branch moves of one transaction, whose commit set is ``cid``."""

    cid: str
    moved: dict[BranchKey, None] = field(default_factory=dict)  # (a set, in order)
    fresh: dict[BranchKey, None] = field(default_factory=dict)

    def move(self, *branches: BranchKey) -> None:
        """The heads of ``branches`` moved: their downstream branches follow at the end."""
        self.moved.update(dict.fromkeys(branches))

    def start(self, branch: BranchKey) -> None:
        """``branch`` gets commit ``cid`` itself at the end (a pipeline's output branch, when
        the pipeline is created or updated), before the branches downstream of it."""
        self.fresh[branch] = None

    def forget(self, branch: BranchKey) -> None:
        """``branch`` was deleted (as Pachyderm's ``Propagater.DeleteBranch``)."""
        self.moved.pop(branch, None)
        self.fresh.pop(branch, None)

    def forget_repo(self, repo_id: int) -> None:
        """Every branch of the repo was deleted."""
        for branches in (self.moved, self.fresh):
            for key in [k for k in branches if k[0] == repo_id]:
                del branches[key]

    def run(self, conn: Connection) -> list[BranchKey]:
        """Give each branch started or downstream of a moved or started one an open AUTO
        commit ``cid`` (none to a branch that has it already); the branches given one."""
        started = []
        order = provenance.downstream_order(conn, *self.moved, *self.fresh, include=self.fresh)
        for branch in order:
            if provenance.start_auto_commit(conn, branch, self.cid):
                started.append(branch)
        return started
