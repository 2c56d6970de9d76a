"""Repos and branches as users see them: create, inspect, list, update and delete.

Each operation is one transaction over the owners of the tables it touches (``repos``,
``branches``, ``commits``, ``provenance``, ``staging``).
"""

from __future__ import annotations

from sqlalchemy import Connection

from haathi.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from haathi.models.bounds import check_description
from haathi.models.ids import new_commit_id, validate_branch_name, validate_repo_name
from haathi.models.info import BranchInfo, RepoInfo
from haathi.models.refspec import CommitSpec
from haathi.models.text import check_text
from haathi.pfs import branches, commits, provenance, repos, staging
from haathi.pfs.context import PfsContext, as_utc, metadata_of


def create_repo(ctx: PfsContext, name: str, description: str = "") -> RepoInfo:
    with ctx.db.write() as conn:
        repos.insert_repo(conn, name, description)
    return inspect_repo(ctx, name)


def inspect_repo(ctx: PfsContext, name: str) -> RepoInfo:
    validate_repo_name(name)
    with ctx.db.read() as conn:
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


def list_repo(ctx: PfsContext) -> list[RepoInfo]:
    with ctx.db.read() as conn:
        names = repos.repo_names(conn)
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


def delete_repo_rows(conn: Connection, name: str, force: bool = False) -> None:
    """Delete a repo in this transaction; ``force`` even if branches downstream use it."""
    validate_repo_name(name)
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


def _branch_info(repo: str, b: object) -> BranchInfo:
    m = b._mapping  # type: ignore[attr-defined]
    return BranchInfo(
        repo,
        str(m["name"]),
        m["head"],
        as_utc(m["created_at"]) or m["created_at"],
        metadata_of(m["metadata"]),
    )


def create_branch(ctx: PfsContext, spec: CommitSpec, head: str | None) -> BranchInfo:
    """Create a branch (or move an existing one) to ``head``: metadata only, nothing copied."""
    name = validate_branch_name(spec.ref_or_default)
    with ctx.db.write() as conn:
        r = repos.repo_row(conn, spec.repo, lock=True)
        head_id = None
        if head is not None:
            check_text(head, f"head {head!r}")
            target = commits.resolve(conn, CommitSpec(spec.repo, head))
            head_id = target.id
        existing = branches.branch_id(conn, r.id, name)
        if existing is not None:
            if head is None:
                raise AlreadyExists(f"branch {name} already exists in repo {spec.repo}")
            branches.set_head(conn, existing, head_id)
        else:
            branches.insert_branch(conn, r.id, name, head_id)
        if head_id is not None:  # downstream branches follow, extending that commit set
            key = (int(r.id), name)
            if provenance.downstream_order(conn, key) and not provenance.propagate(
                conn, key, head_id
            ):  # they already have that set (a rollback): they get a new one
                provenance.propagate(conn, key, new_commit_id())
    return inspect_branch(ctx, spec)


def inspect_branch(ctx: PfsContext, spec: CommitSpec) -> BranchInfo:
    with ctx.db.read() as conn:
        r = repos.repo_row(conn, spec.repo)
        row = branches.branch_row(conn, r.id, spec.repo, spec.ref_or_default)
        return _branch_info(spec.repo, row)


def list_branch(ctx: PfsContext, repo: str) -> list[BranchInfo]:
    with ctx.db.read() as conn:
        r = repos.repo_row(conn, repo)
        return [_branch_info(repo, b) for b in branches.branch_rows(conn, r.id)]


def delete_branch(ctx: PfsContext, spec: CommitSpec) -> None:
    """Delete a branch; its commits stay reachable by ID."""
    if spec.ref is None:
        raise InvalidArgument("delete branch needs repo@branch")
    with ctx.db.write() as conn:
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
