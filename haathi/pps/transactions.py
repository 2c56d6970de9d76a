"""Transactions, as Pachyderm's: requests recorded now and applied together later.

``start transaction`` makes an empty one. Each request added (:func:`append`) is checked by a
dry run: every request so far and the new one are applied, in one database transaction that
is rolled back, and a request that fails is not added. ``finish transaction``
(:func:`finish`) applies them all in one database transaction: either every request takes
effect, or (one fails) none does and the transaction stays, to be fixed or deleted.

While they apply, branch moves are only recorded (:class:`~haathi.pfs.propagation.Deferred`);
at the end every branch downstream of a moved one gets one commit with the transaction's ID,
provenant on the heads as they are then: a pipeline over several moved inputs runs one job.
Commits started in the transaction take its ID too (so one per repo). Each request is
checked as the caller that adds it, and again as the one that finishes it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from haathi.auth import bindings
from haathi.errors import AlreadyExists, Conflict, FailedPrecondition, HaathiError, NotFound
from haathi.models.auth import Permission
from haathi.models.ids import new_commit_id, split_key, validate_repo_key
from haathi.models.transaction import (
    CreateBranchOp,
    CreatePipelineOp,
    CreateRepoOp,
    DeleteBranchOp,
    DeleteRepoOp,
    FinishCommitOp,
    StartCommitOp,
    TransactionInfo,
    TxnOp,
    TxnResponse,
)
from haathi.pfs import catalog, commits, lifecycle, projects, repos
from haathi.pfs.context import now
from haathi.pfs.lifecycle import BuiltTree, TreeNeeded
from haathi.pfs.propagation import Deferred
from haathi.pps import pipelines, records, txn_records
from haathi.pps.context import PpsContext
from haathi.pps.spec import parse_spec

TREE_ROUNDS = 20  # times a transaction is run again for the trees of commits it finishes


class _Failed(Exception):
    """Request ``index`` (from 0) of a transaction failed with ``error``."""

    def __init__(self, index: int, op: TxnOp, error: HaathiError) -> None:
        super().__init__(str(error))
        self.index, self.op, self.error = index, op, error


def _restated(error: HaathiError, message: str) -> HaathiError:
    """``error`` (its class and details) with ``message``."""
    new = copy.copy(error)
    new.message = message
    new.args = (message,)
    return new


# ---- the transactions ------------------------------------------------------------------------


def start(ctx: PpsContext, by: str | None) -> TransactionInfo:
    """A new, empty transaction started by ``by`` (None: the embedded client)."""
    tid = new_commit_id()
    with ctx.pfs.db.write() as conn:
        txn_records.insert_transaction(conn, tid, now(), by)
        return txn_records.get(conn, tid)


def inspect(ctx: PpsContext, tid: str) -> TransactionInfo:
    with ctx.pfs.db.read() as conn:
        return txn_records.get(conn, tid)


def list_all(ctx: PpsContext) -> list[TransactionInfo]:
    with ctx.pfs.db.read() as conn:
        return txn_records.list_all(conn)


def delete(ctx: PpsContext, tid: str) -> None:
    """Delete a transaction and its requests (nothing they ask for is done)."""
    with ctx.pfs.db.write() as conn:
        if not txn_records.delete_transaction(conn, tid):
            raise NotFound(f"transaction {tid} not found", transaction=tid)


def append(ctx: PpsContext, tid: str, op: TxnOp, subject: str | None) -> TxnResponse:
    """Add ``op`` to transaction ``tid`` if a dry run of all its requests with ``op`` last
    succeeds (as ``subject``); the response of ``op``'s dry run. A failure raises the
    request's own error, saying that ``op`` was not added."""
    built: list[BuiltTree] = []
    for _ in range(TREE_ROUNDS):
        try:
            with ctx.pfs.db.write() as conn:
                info = txn_records.get(conn, tid, lock=True)
                ops = (*info.requests, op)
                with _rolled_back(conn):
                    responses = _apply(ctx, conn, tid, ops, subject, built, describe=True)
                stored = tuple(replace(r, info=None) for r in responses)
                txn_records.set_requests(conn, tid, ops, stored)
                return responses[-1]
        except TreeNeeded as need:
            built.append(lifecycle.build_tree(ctx.pfs, need))
        except _Failed as failed:
            which = "" if failed.index == len(ops) - 1 else _which(failed, len(ops))
            message = f"{which}{failed.error} (not added to transaction {tid})"
            raise _restated(failed.error, message) from failed.error
    raise Conflict(f"too many writes to the commits transaction {tid} finishes; try again")


def finish(ctx: PpsContext, tid: str, subject: str | None) -> TransactionInfo:
    """Apply every request of transaction ``tid`` in one database transaction (as
    ``subject``) and delete it; the transaction with its responses. If a request fails,
    nothing is applied and the transaction stays: the error is the request's own, naming
    it."""
    built: list[BuiltTree] = []
    for _ in range(TREE_ROUNDS):
        try:
            with ctx.pfs.db.write() as conn:
                info = txn_records.get(conn, tid, lock=True)
                responses = _apply(ctx, conn, tid, info.requests, subject, built)
                txn_records.delete_transaction(conn, tid)
                return replace(info, responses=responses)
        except TreeNeeded as need:
            built.append(lifecycle.build_tree(ctx.pfs, need))
        except _Failed as failed:
            which = _which(failed, len(info.requests))
            message = f"transaction {tid} not applied: {which}{failed.error}"
            raise _restated(failed.error, message) from failed.error
    raise Conflict(f"too many writes to the commits transaction {tid} finishes; try again")


def _which(failed: _Failed, n: int) -> str:
    return f"request {failed.index + 1} of {n} ({failed.op.describe()}): "


@contextmanager
def _rolled_back(conn: Connection) -> Iterator[None]:
    """Whatever is done inside is undone (a savepoint rolled back), the rest of the database
    transaction kept."""
    savepoint = conn.begin_nested()
    try:
        yield
    finally:
        savepoint.rollback()


# ---- applying the requests -------------------------------------------------------------------


def _apply(
    ctx: PpsContext,
    conn: Connection,
    tid: str,
    ops: Sequence[TxnOp],
    subject: str | None,
    built: Sequence[BuiltTree],
    *,
    describe: bool = False,
) -> tuple[TxnResponse, ...]:
    """Run ``ops`` in order in ``conn``, then propagate their branch moves and queue the jobs
    of the output commits made; their responses (``describe``: the last one with the
    ``info`` of what it made). A request that fails raises :class:`_Failed`; one that
    finishes a commit whose tree is not in ``built`` raises
    :class:`~haathi.pfs.lifecycle.TreeNeeded`."""
    _lock_repos(conn, ops)
    prop = Deferred(tid)
    responses = []
    for i, op in enumerate(ops):
        try:
            response = _run(ctx, conn, op, subject, prop, built)
            if describe and i == len(ops) - 1:
                response = replace(response, info=_info(conn, op, response))
        except HaathiError as exc:
            raise _Failed(i, op, exc) from exc
        responses.append(response)
    for repo_id, branch in prop.run(conn):
        _queue_job(conn, repo_id, branch, tid)
    return tuple(responses)


def _lock_repos(conn: Connection, ops: Sequence[TxnOp]) -> None:
    """Lock the rows of the repos the requests name, in key order: two transactions that
    finish at once on PostgreSQL cannot then deadlock."""
    keys = set()
    for op in ops:
        if isinstance(op, (CreateRepoOp, DeleteRepoOp)):
            keys.add(op.repo)
        elif isinstance(op, (CreateBranchOp, DeleteBranchOp, StartCommitOp)):
            keys.add(op.branch.repo)
        elif isinstance(op, FinishCommitOp):
            keys.add(op.commit.repo)
    for key in sorted(keys):
        if repos.exists(conn, key):
            repos.lock(conn, key)


def _require(conn: Connection, subject: str | None, permission: Permission, repo: str) -> None:
    if subject is not None:
        bindings.require(conn, subject, permission, [repo])


def _may_create_repo_in(conn: Connection, subject: str | None, key: str) -> None:
    """``subject`` may create the repo ``key`` in its project (projectWriter there)."""
    if subject is not None:
        project = split_key(validate_repo_key(key))[0]
        projects.require(conn, project)
        bindings.require_project(conn, subject, Permission.CREATE_REPO, project)


def _run(
    ctx: PpsContext,
    conn: Connection,
    op: TxnOp,
    subject: str | None,
    prop: Deferred,
    built: Sequence[BuiltTree],
) -> TxnResponse:
    """Apply one request as ``subject``, as the operation it stands for would (its checks of
    the caller's roles, and the role bindings it makes or drops, included)."""
    if isinstance(op, CreateRepoOp):
        _may_create_repo_in(conn, subject, op.repo)
        catalog.create_repo_in(conn, op.repo, op.description)
        bindings.make_owner(conn, bindings.repo_resource(op.repo), subject)
    elif isinstance(op, DeleteRepoOp):
        _require(conn, subject, Permission.OWN, op.repo)
        if records.find_pipeline(conn, op.repo) is not None:
            raise FailedPrecondition(
                f"repo {op.repo} is the output of pipeline {op.repo}: delete the pipeline instead",
                repo=op.repo,
            )
        catalog.delete_repo_rows(conn, op.repo, op.force, prop)
        bindings.drop(conn, resource=bindings.repo_resource(op.repo))
    elif isinstance(op, CreateBranchOp):
        _require(conn, subject, Permission.WRITE, op.branch.repo)
        catalog.create_branch_in(conn, op.branch, op.head, op.trigger, prop)
    elif isinstance(op, DeleteBranchOp):
        _require(conn, subject, Permission.WRITE, op.branch.repo)
        catalog.delete_branch_in(conn, op.branch, prop)
    elif isinstance(op, StartCommitOp):
        _require(conn, subject, Permission.WRITE, op.branch.repo)
        if commits.has_commit(conn, repos.repo_id_of(conn, op.branch.repo), prop.cid):
            raise AlreadyExists(
                f"repo {op.branch.repo} already has commit {prop.cid}: a transaction starts "
                "one commit per repo (its commits take the transaction's ID)",
                repo=op.branch.repo,
                commit=prop.cid,
            )
        cid = lifecycle.start_commit_in(
            ctx.pfs, conn, op.branch, op.parent, op.description, cid=prop.cid, prop=prop
        )
        return TxnResponse(cid)
    elif isinstance(op, FinishCommitOp):
        _require(conn, subject, Permission.WRITE, op.commit.repo)
        cid = lifecycle.finish_commit_in(ctx.pfs, conn, op.commit, op.description, built, prop)
        return TxnResponse(cid)
    else:
        return TxnResponse(_create_pipeline(conn, op, subject, prop))
    return TxnResponse()


def _info(conn: Connection, op: TxnOp, response: TxnResponse) -> dict[str, Any] | None:
    """What ``op`` made, as it is now (``-o json``)."""
    if isinstance(op, CreateRepoOp):
        return catalog.repo_info_in(conn, op.repo).to_dict()
    if isinstance(op, CreateBranchOp):
        return catalog.branch_info_in(conn, op.branch).to_dict()
    if isinstance(op, (StartCommitOp, FinishCommitOp)) and response.commit is not None:
        repo = op.branch.repo if isinstance(op, StartCommitOp) else op.commit.repo
        rid = repos.repo_id_of(conn, repo)
        return commits.get_commit(conn, rid, repo, response.commit).info().to_dict()
    return None


def _create_pipeline(
    conn: Connection, op: CreatePipelineOp, subject: str | None, prop: Deferred
) -> str:
    """Create or update the pipeline as ``create pipeline`` does: the caller creates repos in
    its project (a new one), reads its inputs and writes its output (to update it); the
    pipeline gets its roles."""
    spec = parse_spec(op.spec)
    new = records.find_pipeline(conn, spec.name) is None
    if new:
        _may_create_repo_in(conn, subject, spec.name)
    if subject is not None:
        inputs = [r for r, _ in pipelines.input_branches(spec) if repos.exists(conn, r)]
        bindings.require(conn, subject, Permission.READ, inputs)
        if not new:
            bindings.require(conn, subject, Permission.WRITE, [spec.name])
    job = pipelines.create_pipeline_in(
        conn, spec, is_update=op.update, reprocess=op.reprocess, prop=prop
    )
    pipelines.secure(conn, spec, new=new, owner=subject)
    return job


def _queue_job(conn: Connection, repo_id: int, branch: str, cid: str) -> None:
    """Queue the job of the commit ``cid`` just made on ``branch``, if a pipeline's output."""
    p = records.find_pipeline(conn, repos.repo_name(conn, repo_id))
    if p is not None and pipelines.spec_of(conn, p)[0].output_branch == branch:
        records.queue_missing_job(conn, p.id, p.version, cid)
