"""Commit lifecycle: start, finish, one-off commits with compare-and-swap, delete, squash."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from haathi.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from haathi.meta.blob_index import gc_epoch, keep_reused
from haathi.models.bounds import check_description
from haathi.models.ids import is_commit_id, new_commit_id, validate_branch_name
from haathi.models.info import CommitState, Origin
from haathi.models.refspec import CommitSpec, parse_ancestry
from haathi.models.text import check_text
from haathi.pfs import collisions, commits, provenance, staging, triggers
from haathi.pfs.branches import branch_head, branches_at, cas_head, ensure_branch, move_heads
from haathi.pfs.changelog import ChangeLog
from haathi.pfs.commits import (
    CommitRow,
    children_of,
    find_commit,
    get_commit,
    insert_commit,
    resolve,
)
from haathi.pfs.context import PfsContext
from haathi.pfs.propagation import Deferred
from haathi.pfs.provenance import (
    drop_open_auto_commits,
    propagate,
    provenance_of,
    subvenance,
)
from haathi.pfs.repos import lock, repo_id_of
from haathi.storage.blobs import BlobWriter
from haathi.tree import prolly

CAS_ATTEMPTS = 200
APPLY_BATCH = 65536  # sorted puts applied to a tree at once


def write_target(ctx: PfsContext, spec: CommitSpec) -> tuple[int, str | None, CommitRow | None]:
    """Where a write to ``spec`` goes: (repo id, branch or None, open commit or None).

    A branch with an open head commit takes writes into that commit; a branch without one gets
    a one-off commit; a commit named by ID must be open.
    """
    with ctx.db.read() as conn:
        repo_id = repo_id_of(conn, spec.repo)
        ref = spec.ref_or_default
        anc = parse_ancestry(ref)
        if anc.up or anc.nth is not None:
            raise InvalidArgument(f"cannot write to {spec}: ancestry refs are read-only")
        is_branch, head = branch_head(conn, repo_id, ref)
        if is_branch:
            _check_not_output(conn, repo_id, spec.repo, ref)
            commit = get_commit(conn, repo_id, spec.repo, head) if head else None
            if commit is not None and not commit.finished:
                _check_not_auto(commit)
                return repo_id, ref, commit
            return repo_id, ref, None
        try:
            commit = resolve(conn, spec)  # a commit ID or prefix
        except NotFound:
            if is_commit_id(ref):
                raise
            validate_branch_name(ref)  # a new branch, created by the write
            return repo_id, ref, None
        if commit.finished:
            raise FailedPrecondition(
                f"commit {commit.id} in repo {spec.repo} is finished: it cannot be written",
                repo=spec.repo,
                commit=commit.id,
            )
        _check_not_auto(commit)
        return repo_id, None, commit


def _check_no_subvenance(conn: Connection, commit: CommitRow, verb: str) -> None:
    """A commit other commits were made from (pipeline outputs) stays while they do."""
    users = subvenance(conn, commit.repo_id, commit.id)
    if users:
        raise FailedPrecondition(
            f"commit {commit.repo}@{commit.id} cannot be {verb}: commits were made from it "
            f"({', '.join(users[:3])}); delete those first",
            repo=commit.repo,
            commit=commit.id,
        )


def _check_not_output(conn: Connection, repo_id: int, repo: str, branch: str) -> None:
    """A branch provenant on others (a pipeline's output branch) is written by jobs only."""
    if provenance_of(conn, (repo_id, branch)):
        raise FailedPrecondition(
            f"{repo}@{branch} is an output branch (its commits are made by a pipeline): it "
            "cannot be written directly",
            repo=repo,
            branch=branch,
        )


def _check_not_auto(commit: CommitRow) -> None:
    """Open AUTO commits belong to the job that fills them: users cannot write or finish them."""
    if commit.origin == Origin.AUTO.value:
        raise FailedPrecondition(
            f"commit {commit.id} in repo {commit.repo} is an output commit being made by a "
            "pipeline job: wait for the job (haathi wait commit) or stop it",
            repo=commit.repo,
            commit=commit.id,
        )


def gc_epoch_now(ctx: PfsContext) -> int:
    """The gc epoch a write starts in (see ``keep_reused``)."""
    with ctx.db.read() as conn:
        return gc_epoch(conn, lock=None)


@dataclass(frozen=True, slots=True)
class Checked:
    """What :func:`check_paths` checked changes against: a branch's head commit (None: an
    empty branch), or an open commit with its changes staged up to ``staged_upto``."""

    commit: str | None
    staged_upto: int | None = None


def check_paths(ctx: PfsContext, spec: CommitSpec, changes: Sequence[staging.Change]) -> Checked:
    """Refuse ``changes`` (entries not needed) that would make a path collision where they
    go: a check before their bytes are stored. :func:`commit_changes` checks again only if
    what they go to changed since."""
    repo_id, branch, open_commit = write_target(ctx, spec)
    with ctx.db.read() as conn:
        if open_commit is not None:
            base = staging.open_base(conn, open_commit)
            collisions.check_staged(conn, repo_id, open_commit.id, base, changes, ctx.nodes)
            return Checked(open_commit.id, staging.last_seq(conn, repo_id, open_commit.id))
        assert branch is not None
        head_id = branch_head(conn, repo_id, branch)[1]
        head = get_commit(conn, repo_id, spec.repo, head_id) if head_id else None
    if head is not None and not head.finished:
        return Checked("")  # opened meanwhile: commit_changes checks against it
    collisions.check_changes(head.root if head else None, changes, ctx.nodes)
    return Checked(head_id)


@dataclass(frozen=True, slots=True)
class PutsCheck:
    """A stream of puts checked as it comes (:class:`collisions.SortedPuts`) against the head
    of the branch it goes to: ``checked`` says which."""

    checked: Checked
    puts: collisions.SortedPuts


def puts_check(ctx: PfsContext, spec: CommitSpec) -> PutsCheck | None:
    """The check for a stream of puts to ``spec``; None when they go to an open commit (they
    are checked when staged)."""
    repo_id, branch, open_commit = write_target(ctx, spec)
    if open_commit is not None:
        return None
    assert branch is not None
    with ctx.db.read() as conn:
        head_id = branch_head(conn, repo_id, branch)[1]
        head = get_commit(conn, repo_id, spec.repo, head_id) if head_id else None
    if head is not None and not head.finished:
        return None  # opened meanwhile: commit_changes checks against it
    puts = collisions.SortedPuts(head.root if head else None, ctx.nodes)
    return PutsCheck(Checked(head_id), puts)


Changes = Sequence[staging.Change] | ChangeLog


def _sorted_puts(changes: Changes) -> bool:
    if isinstance(changes, ChangeLog):
        return changes.sorted_puts
    return collisions.is_sorted_puts(changes)


def new_tree(
    ctx: PfsContext, base: bytes | None, changes: Changes, writer: BlobWriter, *, check: bool
) -> bytes | None:
    """The tree of ``base`` with ``changes`` applied, refused first if ``check`` finds a
    clash. Puts in path order (``put file -r``) go in batches of :data:`APPLY_BATCH`, each
    onto the tree the ones before made (flushed, so that it can be read): memory follows the
    batch, not the whole change; other changes are applied at once."""
    if not _sorted_puts(changes):
        listed = list(changes)
        if check:
            collisions.check_changes(base, listed, ctx.nodes)
        return prolly.apply(base, staging.edits_for(base, listed, ctx.nodes), ctx.nodes, writer)
    puts = collisions.SortedPuts(base, ctx.nodes) if check else None
    root = base
    batch: list[staging.Change] = []
    started = False
    for ch in itertools.chain(changes, [None]):
        if ch is not None:
            if puts is not None:
                collisions.refuse(puts.clash(ch.path))
            batch.append(ch)
            if len(batch) < APPLY_BATCH:
                continue
        if started:
            writer.flush()
        if all(ch.op == staging.PUT for ch in batch):  # (sorted, one per path: the edits)
            edits = [(ch.path, ch.entry) for ch in batch]
        else:
            edits = staging.edits_for(root, batch, ctx.nodes)
        root = prolly.apply(root, edits, ctx.nodes, writer)
        batch, started = [], True
    if puts is not None and not puts.complete:
        collisions.check_changes(base, list(changes), ctx.nodes)
    return root


def commit_changes(
    ctx: PfsContext,
    spec: CommitSpec,
    changes: Changes,
    description: str,
    writer: BlobWriter,
    since_epoch: int,
    checked: Checked | None = None,
) -> str:
    """Apply ``changes`` atomically to ``spec``: staged into an open commit or as a new commit.

    ``writer`` holds the changes' unflushed blobs (tree nodes join them in the same pack); it
    is flushed before anything refers to its blobs. ``since_epoch`` is the gc epoch read before
    the writer's first blob: if gc ran since, the blobs it reused are kept or the write fails.
    One-off commits are serialized per branch with a compare-and-swap on the branch head: a
    writer that loses the race rebuilds its tree on the new head, so no write is lost.
    """
    for attempt in range(CAS_ATTEMPTS):
        repo_id, branch, open_commit = write_target(ctx, spec)
        if open_commit is not None:
            writer.flush()
            with ctx.db.write() as conn:
                lock(conn, spec.repo)
                keep_reused(conn, since_epoch, writer.iter_referenced())
                cur = get_commit(conn, repo_id, spec.repo, open_commit.id)
                if cur.finished:
                    continue
                if checked != Checked(cur.id, staging.last_seq(conn, repo_id, cur.id)):
                    base = staging.open_base(conn, cur)
                    listed = list(changes)
                    collisions.check_staged(conn, repo_id, cur.id, base, listed, ctx.nodes)
                staging.stage(conn, repo_id, cur.id, changes)
            return open_commit.id
        assert branch is not None
        # Writers of one branch take turns building on its head (threads of a process: a
        # lock; processes on PostgreSQL: an advisory lock), so concurrent writers rarely
        # build a tree in vain.
        with ctx.db.named_lock(f"branch/{repo_id}/{branch}"):
            cid = _commit_on_branch(
                ctx, spec, repo_id, branch, changes, description, writer, since_epoch, checked
            )
        if cid is None:
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
            continue
        return cid
    raise Conflict(f"too much contention writing to {spec}; try again", repo=spec.repo)


def _commit_on_branch(
    ctx: PfsContext,
    spec: CommitSpec,
    repo_id: int,
    branch: str,
    changes: Changes,
    description: str,
    writer: BlobWriter,
    since_epoch: int,
    checked: Checked | None,
) -> str | None:
    """One attempt at a one-off commit on ``branch``'s head; None if the head moved first."""
    with ctx.db.read() as conn:
        head_id = branch_head(conn, repo_id, branch)[1]
        base = get_commit(conn, repo_id, spec.repo, head_id) if head_id else None
    if base is not None and not base.finished:
        return None
    root = base.root if base else None
    new_root = new_tree(ctx, root, changes, writer, check=checked != Checked(head_id))
    writer.flush()
    cid = new_commit_id()
    with ctx.db.write() as conn:
        lock(conn, spec.repo)
        keep_reused(conn, since_epoch, writer.iter_referenced())
        ensure_branch(conn, repo_id, branch)
        if not cas_head(conn, repo_id, branch, head_id, cid):
            return None
        insert_commit(
            conn,
            repo_id,
            cid,
            branch=branch,
            parent=head_id,
            state=CommitState.FINISHED,
            description=description,
            root=new_root,
            totals=prolly.totals(new_root, ctx.nodes),
            author=ctx.author,
        )
        triggers.on_finish(conn, repo_id, spec.repo, cid, new_head_of=(repo_id, branch))
    return cid


def start_commit(
    ctx: PfsContext, spec: CommitSpec, parent: str | None = None, description: str = ""
) -> str:
    """Open a new commit on a branch (created if missing); it becomes the branch head."""
    with ctx.db.write() as conn:
        return start_commit_in(ctx, conn, spec, parent, description, cid=new_commit_id())


def start_commit_in(
    ctx: PfsContext,
    conn: Connection,
    spec: CommitSpec,
    parent: str | None = None,
    description: str = "",
    *,
    cid: str,
    prop: Deferred | None = None,
) -> str:
    """:func:`start_commit` in this transaction, as commit ``cid`` (``prop``: a transaction's,
    where the branches downstream follow at its end)."""
    branch = spec.ref_or_default
    if parse_ancestry(branch).base != branch or is_commit_id(branch):
        raise InvalidArgument(f"start commit needs a branch, got {spec}")
    validate_branch_name(branch)
    check_text(description, "the commit message")
    check_description(description, "the commit message")
    repo_id = lock(conn, spec.repo)
    _check_not_output(conn, repo_id, spec.repo, branch)
    head = ensure_branch(conn, repo_id, branch)
    if head is not None:
        cur = get_commit(conn, repo_id, spec.repo, head)
        if not cur.finished:
            raise FailedPrecondition(
                f"branch {branch} of repo {spec.repo} already has an open commit {cur.id}: "
                "finish it first",
                repo=spec.repo,
                commit=cur.id,
            )
    parent_id = head
    if parent is not None:
        p = resolve(conn, CommitSpec(spec.repo, parent))
        if not p.finished:
            raise FailedPrecondition(f"parent commit {p.id} is not finished")
        parent_id = p.id
    insert_commit(
        conn,
        repo_id,
        cid,
        branch=branch,
        parent=parent_id,
        state=CommitState.STARTED,
        description=description,
        author=ctx.author,
    )
    if not cas_head(conn, repo_id, branch, head, cid):
        raise Conflict(f"branch {branch} moved while starting a commit; try again")
    if prop is not None:
        prop.move((repo_id, branch))
    else:
        propagate(conn, (repo_id, branch), cid)
    return cid


def finish_commit(ctx: PfsContext, spec: CommitSpec, description: str | None = None) -> str:
    """Build the open commit's tree from its staged changes and mark it finished.

    Writes staged while the tree is being built are not lost: the commit is finished only if
    its staged changes are still those the tree was built from, else the tree is rebuilt.
    """
    if description is not None:
        check_text(description, "the commit message")
        check_description(description, "the commit message")
    for _ in range(CAS_ATTEMPTS):
        with ctx.db.read() as conn:
            commit = _open_to_finish(conn, spec)
            base, changes = staging.open_commit_state(conn, commit)
            staged_upto = staging.last_seq(conn, commit.repo_id, commit.id)
            since_epoch = gc_epoch(conn, lock=None)
        # staged changes were checked as they came; a commit opened by an older haathi may
        # still hold a collision
        collisions.check_changes(
            base, changes, ctx.nodes, f"commit {commit.id} stays open: delete one, then finish it"
        )
        writer = ctx.blobs.writer()
        with writer:
            edits = staging.edits_for(base, changes, ctx.nodes)
            root = prolly.apply(base, edits, ctx.nodes, writer)
        totals = prolly.totals(root, ctx.nodes)
        with ctx.db.write() as conn:
            lock(conn, spec.repo)
            if staging.last_seq(conn, commit.repo_id, commit.id) != staged_upto:
                continue
            keep_reused(conn, since_epoch, writer.iter_referenced())
            _finish(conn, commit, spec.repo, root, totals, description)
        return commit.id
    raise Conflict(f"too many concurrent writes to {spec} while finishing it; try again")


def _open_to_finish(conn: Connection, spec: CommitSpec) -> CommitRow:
    """The open user commit ``spec`` names (FailedPrecondition if it is finished, or a
    pipeline's)."""
    commit = resolve(conn, spec)
    if commit.finished:
        raise FailedPrecondition(
            f"commit {commit.id} in repo {spec.repo} is already finished",
            repo=spec.repo,
            commit=commit.id,
        )
    _check_not_auto(commit)
    return commit


def _finish(
    conn: Connection,
    commit: CommitRow,
    repo: str,
    root: bytes | None,
    totals: tuple[int, int],
    description: str | None,
    prop: Deferred | None = None,
) -> None:
    """Mark the open ``commit`` finished with tree ``root`` and fire its triggers."""
    if not commits.finish_open(
        conn, commit.repo_id, commit.id, root=root, totals=totals, description=description
    ):
        raise FailedPrecondition(f"commit {commit.id} was finished or deleted meanwhile")
    staging.clear(conn, commit.repo_id, commit.id)
    triggers.on_finish(conn, commit.repo_id, repo, commit.id, prop=prop)


@dataclass(frozen=True, slots=True)
class BuiltTree:
    """An open commit's tree, built outside the transaction that finishes it, from its
    staged changes up to ``staged_upto`` (the blobs a gc since ``since_epoch`` must keep:
    ``refs``)."""

    repo_id: int
    commit: str
    staged_upto: int | None
    root: bytes | None
    totals: tuple[int, int]
    since_epoch: int
    refs: bytes  # 32-byte digests, concatenated


class TreeNeeded(Exception):
    """Raised by :func:`finish_commit_in` for an open commit with staged changes whose tree
    is not built yet: blobs cannot be written inside a write transaction (their index is
    written in one of its own). The caller rolls back, builds it (:func:`build_tree`) and
    runs the transaction again with it."""

    def __init__(self, commit: CommitRow, staged_upto: int | None, since_epoch: int) -> None:
        super().__init__(f"the tree of commit {commit.id} is to be built")
        self.commit = commit
        self.staged_upto = staged_upto
        self.since_epoch = since_epoch


def build_tree(ctx: PfsContext, needed: TreeNeeded) -> BuiltTree:
    """The tree :class:`TreeNeeded` asks for (its changes read again; if more were staged
    since, the transaction asks again)."""
    commit = needed.commit
    with ctx.db.read() as conn:
        base, changes = staging.open_commit_state(conn, commit)
        upto = staging.last_seq(conn, commit.repo_id, commit.id)
    collisions.check_changes(
        base, changes, ctx.nodes, f"commit {commit.id} stays open: delete one, then finish it"
    )
    writer = ctx.blobs.writer()
    with writer:
        root = prolly.apply(base, staging.edits_for(base, changes, ctx.nodes), ctx.nodes, writer)
    refs = b"".join(writer.iter_referenced())
    totals = prolly.totals(root, ctx.nodes)
    return BuiltTree(commit.repo_id, commit.id, upto, root, totals, needed.since_epoch, refs)


def finish_commit_in(
    ctx: PfsContext,
    conn: Connection,
    spec: CommitSpec,
    description: str | None = None,
    built: Sequence[BuiltTree] = (),
    prop: Deferred | None = None,
) -> str:
    """:func:`finish_commit` in this transaction. A commit with staged changes needs its tree
    in ``built`` (built from those changes: else :class:`TreeNeeded`); one without any
    (started in this transaction, say) gets its parent's. ``prop``: a transaction's, where
    the branches its triggers move are propagated at its end."""
    if description is not None:
        check_text(description, "the commit message")
        check_description(description, "the commit message")
    lock(conn, spec.repo)
    commit = _open_to_finish(conn, spec)
    upto = staging.last_seq(conn, commit.repo_id, commit.id)
    if upto is None:
        root = staging.open_base(conn, commit)
        totals = prolly.totals(root, ctx.nodes)
        _finish(conn, commit, spec.repo, root, totals, description, prop)
        return commit.id
    for tree in built:
        if (tree.repo_id, tree.commit, tree.staged_upto) == (commit.repo_id, commit.id, upto):
            refs = (tree.refs[i : i + 32] for i in range(0, len(tree.refs), 32))
            keep_reused(conn, tree.since_epoch, refs)
            _finish(conn, commit, spec.repo, tree.root, tree.totals, description, prop)
            return commit.id
    raise TreeNeeded(commit, upto, gc_epoch(conn, lock=None))


def _drop(conn: Connection, commit: CommitRow) -> None:
    """Remove one commit: heads pointing at it move to its parent."""
    move_heads(conn, commit.repo_id, commit.id, commit.parent)
    staging.clear(conn, commit.repo_id, commit.id)
    provenance.forget_commit(conn, commit.repo_id, commit.id)
    commits.delete_commit_row(conn, commit.repo_id, commit.id)


def _reparent(conn: Connection, commit: CommitRow) -> None:
    commits.reparent_children(conn, commit.repo_id, commit.id, commit.parent)


def delete_commit(ctx: PfsContext, spec: CommitSpec) -> str:
    """Drop a commit that has no children (its data goes with it; heads move back)."""
    with ctx.db.write() as conn:
        lock(conn, spec.repo)
        commit = resolve(conn, spec)
        if commit.finished:
            _check_no_subvenance(conn, commit, "deleted")
        kids = children_of(conn, commit.repo_id, commit.id)
        if kids:
            raise FailedPrecondition(
                f"commit {commit.id} has children ({', '.join(kids)}): only the newest commit "
                "of a branch can be deleted; use squash commit to remove one from the middle",
                repo=spec.repo,
                commit=commit.id,
            )
        heads = branches_at(conn, commit.repo_id, commit.id)
        if len(heads) > 1:
            raise FailedPrecondition(
                f"commit {commit.id} is the head of branches {', '.join(heads)}: deleting it "
                "would move all of them back; move or delete the other branches first (create "
                "branch --head, delete branch)",
                repo=spec.repo,
                commit=commit.id,
            )
        _drop(conn, commit)
        if commit.origin == Origin.USER.value and not commit.finished:
            drop_open_auto_commits(conn, commit.id)  # the set it started goes with it
    return commit.id


def squash_commit(ctx: PfsContext, spec: CommitSpec) -> str:
    """Remove a commit from history, keeping every branch's and every other commit's content.

    A commit with children is folded into them (as Pachyderm's squash). The newest commit of a
    branch (no children) is merged with its parent: the parent leaves the history and the
    newest commit, with its content unchanged, takes the parent's place. The commit that
    leaves must not be a branch's head (the branch would lose its content; Pachyderm refuses
    to squash one too) and its children must be finished (an open commit is built on its
    parent's files): else FailedPrecondition, and nothing changes.
    """
    with ctx.db.write() as conn:
        lock(conn, spec.repo)
        commit = resolve(conn, spec)
        if not commit.finished:
            raise FailedPrecondition(f"commit {commit.id} is open: finish it before squashing")
        _check_no_subvenance(conn, commit, "squashed")
        if children_of(conn, commit.repo_id, commit.id):
            _check_squashable(conn, commit, f"{spec.repo}@{commit.id}", "it")
            _reparent(conn, commit)
            _drop(conn, commit)
            return commit.id
        if commit.parent is None:
            raise FailedPrecondition(
                f"commit {commit.id} has no parent and no children: nothing to squash into"
            )
        parent = get_commit(conn, commit.repo_id, commit.repo, commit.parent)
        _check_no_subvenance(conn, parent, "squashed")
        _check_squashable(
            conn, parent, f"{spec.repo}@{commit.id} into its parent {parent.id}", "the parent"
        )
        _reparent(conn, parent)
        _drop(conn, parent)
        if find_commit(conn, commit.repo_id, commit.repo, commit.id) is None:
            raise NotFound(f"commit {commit.id} vanished while squashing")
    return commit.id


def _check_squashable(conn: Connection, leaving: CommitRow, what: str, who: str) -> None:
    """``leaving`` may leave history: it heads no branch and its children are finished."""
    heads = branches_at(conn, leaving.repo_id, leaving.id)
    if heads:
        which = "branch {} would lose its" if len(heads) == 1 else "branches {} would lose their"
        raise FailedPrecondition(
            f"cannot squash {what}: {who} is the head of "
            f"{which.format(', '.join(heads))} content; only a commit inside a branch's history "
            "can be squashed (delete commit drops a branch's newest commit)",
            repo=leaving.repo,
            commit=leaving.id,
        )
    for kid in children_of(conn, leaving.repo_id, leaving.id):
        if not get_commit(conn, leaving.repo_id, leaving.repo, kid).finished:
            raise FailedPrecondition(
                f"cannot squash {what}: {who} has an open child commit {kid}, which is built "
                "on its files; finish it first",
                repo=leaving.repo,
                commit=leaving.id,
            )
