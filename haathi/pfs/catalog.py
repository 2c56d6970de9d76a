"""Repos and branches as users see them: create, inspect, list, update and delete.

Each operation is one transaction over the owners of the tables it touches (``repos``,
``branches``, ``commits``, ``provenance``, ``staging``).
"""

from __future__ import annotations

from sqlalchemy import Connection

from haathi.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from haathi.models.bounds import check_description
from haathi.models.ids import split_key, validate_branch_name, validate_repo_key
from haathi.models.info import BranchInfo, RepoInfo
from haathi.models.refspec import CommitSpec
from haathi.models.text import check_text
from haathi.models.trigger import Trigger
from haathi.pfs import branches, commits, projects, provenance, repos, staging, triggers
from haathi.pfs.context import PfsContext, as_utc, metadata_of
from haathi.pfs.propagation import Deferred


def create_repo(ctx: PfsContext, name: str, description: str = "") -> RepoInfo:
    """Create repo ``name`` (a key) in its project, which must exist."""
    with ctx.db.write() as conn:
        create_repo_in(conn, name, description)
    return inspect_repo(ctx, name)


def create_repo_in(conn: Connection, name: str, description: str = "") -> None:
    """:func:`create_repo` in this transaction."""
    validate_repo_key(name)
    projects.require(conn, split_key(name)[0])
    repos.insert_repo(conn, name, description)


def inspect_repo(ctx: PfsContext, name: str) -> RepoInfo:
    with ctx.db.read() as conn:
        return repo_info_in(conn, name)


def repo_info_in(conn: Connection, name: str) -> RepoInfo:
    """:func:`inspect_repo` in this transaction."""
    validate_repo_key(name)
    r = repos.repo_row(conn, name)
    names = branches.branch_names(conn, r.id)
    size = 0
    head = branches.branch_head(conn, r.id, "master")[1]
    if head is not None:
        size = commits.get_commit(conn, r.id, name, head).size_bytes
    return RepoInfo(
        name,
        r.description,
        as_utc(r.created_at) or r.created_at,
        size,
        names,
        metadata_of(r.metadata),
    )


def list_repo(ctx: PfsContext, project: str | None = None) -> list[RepoInfo]:
    """The repos of ``project`` (None: of every project), by project and name."""
    with ctx.db.read() as conn:
        names = sorted(repos.repo_names(conn, project), key=split_key)
    return [inspect_repo(ctx, n) for n in names]


def update_repo(ctx: PfsContext, name: str, description: str) -> RepoInfo:
    check_text(description, f"the description of repo {name}")
    check_description(description, f"the description of repo {name}")
    with ctx.db.write() as conn:
        repos.set_description(conn, repos.repo_row(conn, name).id, description)
    return inspect_repo(ctx, name)


def delete_repo(ctx: PfsContext, name: str, force: bool = False) -> None:
    """Delete a repo with its branches and commits (stored bytes are reclaimed by gc)."""
    with ctx.db.write() as conn:
        delete_repo_rows(conn, name, force)


def delete_repo_rows(
    conn: Connection, name: str, force: bool = False, prop: Deferred | None = None
) -> None:
    """Delete a repo in this transaction; ``force`` even if branches downstream use it.
    ``prop``: the moves of a transaction, which forget the repo's branches."""
    validate_repo_key(name)
    r = repos.repo_row(conn, name, lock=True)
    downstream = provenance.downstream_repos(conn, r.id)
    if downstream and not force:
        raise FailedPrecondition(
            f"repo {name} is an input of {', '.join(downstream)}: delete those pipelines "
            "first, or use --force",
            repo=name,
        )
    provenance.forget_repo(conn, r.id)
    staging.clear_repo(conn, r.id)
    commits.delete_repo_commits(conn, r.id)
    branches.delete_repo_branches(conn, r.id)
    repos.delete_repo_row(conn, r.id)
    if prop is not None:
        prop.forget_repo(int(r.id))


def _branch_info(repo: str, b: object) -> BranchInfo:
    m = b._mapping  # type: ignore[attr-defined]
    trigger = branches.trigger_in(m["trigger"])
    return BranchInfo(
        repo,
        str(m["name"]),
        m["head"],
        as_utc(m["created_at"]) or m["created_at"],
        metadata_of(m["metadata"]),
        None if trigger is None else trigger.to_dict(),
    )


def create_branch(
    ctx: PfsContext, spec: CommitSpec, head: str | None, trigger: Trigger | None = None
) -> BranchInfo:
    """Create a branch (or move an existing one) to ``head``: metadata only, nothing copied.

    ``trigger`` (Pachyderm's): the branch follows another branch of the repo (see
    ``pfs/triggers.py``); an existing branch gets it and keeps its head unless ``head`` is
    given. Without one, an existing branch keeps its trigger.
    """
    with ctx.db.write() as conn:
        create_branch_in(conn, spec, head, trigger)
    return inspect_branch(ctx, spec)


def create_branch_in(
    conn: Connection,
    spec: CommitSpec,
    head: str | None,
    trigger: Trigger | None = None,
    prop: Deferred | None = None,
) -> None:
    """:func:`create_branch` in this transaction (``prop``: a transaction's, where the
    branches downstream follow at its end)."""
    name = validate_branch_name(spec.ref_or_default)
    r = repos.repo_row(conn, spec.repo, lock=True)
    head_id = None
    if head is not None:
        check_text(head, f"head {head!r}")
        target = commits.resolve(conn, CommitSpec(spec.repo, head))
        head_id = target.id
    existing = branches.branch_id(conn, r.id, name)
    if existing is not None:
        if head is None and trigger is None:
            raise AlreadyExists(f"branch {name} already exists in repo {spec.repo}")
        if head is not None:
            branches.set_head(conn, existing, head_id)
    else:
        branches.insert_branch(conn, r.id, name, head_id)
    if trigger is not None:
        triggers.set_trigger(conn, int(r.id), spec.repo, name, trigger)
    if head_id is not None and prop is not None:
        prop.move((int(r.id), name))
    elif head_id is not None:  # downstream branches follow, extending that commit set
        provenance.propagate_move(conn, [(int(r.id), name)], head_id)


def inspect_branch(ctx: PfsContext, spec: CommitSpec) -> BranchInfo:
    with ctx.db.read() as conn:
        return branch_info_in(conn, spec)


def branch_info_in(conn: Connection, spec: CommitSpec) -> BranchInfo:
    """:func:`inspect_branch` in this transaction."""
    r = repos.repo_row(conn, spec.repo)
    row = branches.branch_row(conn, r.id, spec.repo, spec.ref_or_default)
    return _branch_info(spec.repo, row)


def list_branch(ctx: PfsContext, repo: str) -> list[BranchInfo]:
    with ctx.db.read() as conn:
        r = repos.repo_row(conn, repo)
        return [_branch_info(repo, b) for b in branches.branch_rows(conn, r.id)]


def delete_branch(ctx: PfsContext, spec: CommitSpec) -> None:
    """Delete a branch; its commits stay reachable by ID."""
    with ctx.db.write() as conn:
        delete_branch_in(conn, spec)


def delete_branch_in(conn: Connection, spec: CommitSpec, prop: Deferred | None = None) -> None:
    """:func:`delete_branch` in this transaction (``prop``: a transaction's moves, which
    forget the branch)."""
    if spec.ref is None:
        raise InvalidArgument("delete branch needs repo@branch")
    r = repos.repo_row(conn, spec.repo, lock=True)
    b = branches.branch_row(conn, r.id, spec.repo, spec.ref)
    users = provenance.downstream_branches(conn, (int(r.id), spec.ref))
    if users:
        names = ", ".join(sorted(repos.repo_name(conn, rid) for rid, _ in users))
        raise FailedPrecondition(
            f"branch {spec.ref} of repo {spec.repo} is an input of {names}: delete "
            "those pipelines first",
            repo=spec.repo,
            branch=spec.ref,
        )
    if b.head is not None:
        head = commits.get_commit(conn, r.id, spec.repo, b.head)
        if not head.finished:
            raise FailedPrecondition(
                f"branch {spec.ref} has an open commit {head.id}: finish or delete it first"
            )
    branches.delete_branch(conn, b.id)
    if prop is not None:
        prop.forget((int(r.id), spec.ref))
