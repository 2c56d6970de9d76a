"""Repos and branches."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from haathi.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from haathi.meta.database import insert_ignore
from haathi.meta.schema import (
    branch_provenance,
    branches,
    commit_provenance,
    commits,
    repos,
    staged,
)
from haathi.models.bounds import check_description
from haathi.models.ids import new_commit_id, validate_branch_name, validate_repo_name
from haathi.models.info import BranchInfo, RepoInfo
from haathi.models.refspec import CommitSpec
from haathi.models.text import check_text
from haathi.pfs import provenance
from haathi.pfs.commits import get_commit, resolve
from haathi.pfs.context import PfsContext, as_utc, branch_row, metadata_of, now, repo_row


def insert_repo(conn: Connection, name: str, description: str = "") -> int:
    """Create a repo in this transaction; its ID."""
    validate_repo_name(name)
    check_text(description, f"the description of repo {name}")
    check_description(description, f"the description of repo {name}")
    values = {"description": description, "created_at": now(), "metadata": "{}"}
    if not insert_ignore(conn, repos, ["name"], name=name, **values):
        raise AlreadyExists(f"repo {name} already exists", repo=name)
    return int(repo_row(conn, name).id)


def create_repo(ctx: PfsContext, name: str, description: str = "") -> RepoInfo:
    with ctx.db.write() as conn:
        insert_repo(conn, name, description)
    return inspect_repo(ctx, name)


def inspect_repo(ctx: PfsContext, name: str) -> RepoInfo:
    validate_repo_name(name)
    with ctx.db.read() as conn:
        r = repo_row(conn, name)
        names = tuple(
            str(b[0])
            for b in conn.execute(
                select(branches.c.name).where(branches.c.repo_id == r.id).order_by(branches.c.name)
            )
        )
        size = 0
        head = conn.execute(
            select(branches.c.head).where(branches.c.repo_id == r.id, branches.c.name == "master")
        ).first()
        if head is not None and head[0] is not None:
            size = get_commit(conn, r.id, name, str(head[0])).size_bytes
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
        names = [str(r[0]) for r in conn.execute(select(repos.c.name).order_by(repos.c.name))]
    return [inspect_repo(ctx, n) for n in names]


def update_repo(ctx: PfsContext, name: str, description: str) -> RepoInfo:
    check_text(description, f"the description of repo {name}")
    check_description(description, f"the description of repo {name}")
    with ctx.db.write() as conn:
        r = repo_row(conn, name)
        conn.execute(update(repos).where(repos.c.id == r.id).values(description=description))
    return inspect_repo(ctx, name)


def delete_repo(ctx: PfsContext, name: str, force: bool = False) -> None:
    """Delete a repo with its branches and commits (stored bytes are reclaimed by gc)."""
    with ctx.db.write() as conn:
        delete_repo_rows(conn, name, force)


def delete_repo_rows(conn: Connection, name: str, force: bool = False) -> None:
    """Delete a repo in this transaction; ``force`` even if branches downstream use it."""
    validate_repo_name(name)
    r = repo_row(conn, name, lock=True)
    downstream = conn.execute(
        select(repos.c.name)
        .join(branch_provenance, branch_provenance.c.repo_id == repos.c.id)
        .where(branch_provenance.c.from_repo_id == r.id)
        .distinct()
    ).all()
    if downstream and not force:
        names = ", ".join(sorted(str(d[0]) for d in downstream))
        raise FailedPrecondition(
            f"repo {name} is an input of {names}: delete those pipelines first, or use --force",
            repo=name,
        )
    conn.execute(delete(branch_provenance).where(branch_provenance.c.from_repo_id == r.id))
    conn.execute(delete(staged).where(staged.c.repo_id == r.id))
    for table in (branch_provenance, commit_provenance):
        conn.execute(delete(table).where(table.c.repo_id == r.id))
    conn.execute(delete(commits).where(commits.c.repo_id == r.id))
    conn.execute(delete(branches).where(branches.c.repo_id == r.id))
    conn.execute(delete(repos).where(repos.c.id == r.id))


def repo_name(conn: Connection, repo_id: int) -> str:
    """The name of the repo with ID ``repo_id``."""
    return str(conn.execute(select(repos.c.name).where(repos.c.id == repo_id)).scalar_one())


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
        r = repo_row(conn, spec.repo, lock=True)
        head_id = None
        if head is not None:
            check_text(head, f"head {head!r}")
            target = resolve(conn, CommitSpec(spec.repo, head))
            head_id = target.id
        existing = conn.execute(
            select(branches.c.id).where(branches.c.repo_id == r.id, branches.c.name == name)
        ).first()
        if existing:
            if head is None:
                raise AlreadyExists(f"branch {name} already exists in repo {spec.repo}")
            conn.execute(update(branches).where(branches.c.id == existing[0]).values(head=head_id))
        else:
            conn.execute(
                insert(branches).values(
                    repo_id=r.id, name=name, head=head_id, created_at=now(), metadata="{}"
                )
            )
        if head_id is not None:  # downstream branches follow, extending that commit set
            key = (int(r.id), name)
            if provenance.downstream_order(conn, key) and not provenance.propagate(
                conn, key, head_id
            ):  # they already have that set (a rollback): they get a new one
                provenance.propagate(conn, key, new_commit_id())
    return inspect_branch(ctx, spec)


def inspect_branch(ctx: PfsContext, spec: CommitSpec) -> BranchInfo:
    with ctx.db.read() as conn:
        r = repo_row(conn, spec.repo)
        return _branch_info(spec.repo, branch_row(conn, r.id, spec.repo, spec.ref_or_default))


def list_branch(ctx: PfsContext, repo: str) -> list[BranchInfo]:
    with ctx.db.read() as conn:
        r = repo_row(conn, repo)
        rows = conn.execute(
            select(branches).where(branches.c.repo_id == r.id).order_by(branches.c.name)
        )
        return [_branch_info(repo, b) for b in rows]


def delete_branch(ctx: PfsContext, spec: CommitSpec) -> None:
    """Delete a branch; its commits stay reachable by ID."""
    if spec.ref is None:
        raise InvalidArgument("delete branch needs repo@branch")
    with ctx.db.write() as conn:
        r = repo_row(conn, spec.repo, lock=True)
        b = branch_row(conn, r.id, spec.repo, spec.ref)
        users = provenance.downstream_branches(conn, (int(r.id), spec.ref))
        if users:
            names = ", ".join(sorted(repo_name(conn, rid) for rid, _ in users))
            raise FailedPrecondition(
                f"branch {spec.ref} of repo {spec.repo} is an input of {names}: delete "
                "those pipelines first",
                repo=spec.repo,
                branch=spec.ref,
            )
        if b.head is not None:
            head = get_commit(conn, r.id, spec.repo, b.head)
            if not head.finished:
                raise FailedPrecondition(
                    f"branch {spec.ref} has an open commit {head.id}: finish or delete it first"
                )
        conn.execute(delete(branches).where(branches.c.id == b.id))
