"""Commits: the owner of the ``commits`` table. Resolving refs (branches, IDs, prefixes,
ancestry), reading, listing and writing commit rows."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, literal, select, update

from haathi.errors import InvalidArgument, NotFound
from haathi.meta.schema import commits
from haathi.models.ids import is_commit_id
from haathi.models.info import CommitInfo, CommitState, Origin
from haathi.models.limits import check_limit
from haathi.models.refspec import CommitSpec, parse_ancestry
from haathi.pfs import branches, repos
from haathi.pfs.context import AUTHOR_MAX, as_utc, metadata_of, now
from haathi.pfs.repos import repo_id_of

MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class CommitRow:
    """A commit as stored, plus its repo's name."""

    repo_id: int
    repo: str
    id: str
    seq: int
    branch: str | None
    parent: str | None
    origin: str
    state: str
    error: str | None
    root: bytes | None
    size_bytes: int
    file_count: int
    description: str
    started_at: datetime
    finished_at: datetime | None
    author: str | None = None
    metadata: dict[str, str] | None = None

    @property
    def finished(self) -> bool:
        return self.state == CommitState.FINISHED.value

    def info(self, children: tuple[str, ...] = ()) -> CommitInfo:
        return CommitInfo(
            repo=self.repo,
            id=self.id,
            branch=self.branch,
            parent=self.parent,
            origin=Origin(self.origin),
            state=CommitState(self.state),
            description=self.description,
            started=self.started_at,
            finished=self.finished_at,
            size_bytes=self.size_bytes,
            file_count=self.file_count,
            error=self.error,
            children=children,
            author=self.author,
            metadata=dict(self.metadata or {}),
        )


def _row(repo: str, r: Row[tuple[object, ...]]) -> CommitRow:
    m = r._mapping
    return CommitRow(
        repo_id=int(m["repo_id"]),
        repo=repo,
        id=str(m["id"]),
        seq=int(m["seq"]),
        branch=m["branch"],
        parent=m["parent"],
        origin=str(m["origin"]),
        state=str(m["state"]),
        error=m["error"],
        root=bytes(m["root"]) if m["root"] is not None else None,
        size_bytes=int(m["size_bytes"]),
        file_count=int(m["file_count"]),
        description=str(m["description"]),
        started_at=as_utc(m["started_at"]) or m["started_at"],
        finished_at=as_utc(m["finished_at"]),
        author=m["author"],
        metadata=metadata_of(m["metadata"]),
    )


# the point lookups every resolve makes, built once (building a statement costs several
# times running it on SQLite)
_COMMIT = select(commits).where(
    commits.c.repo_id == bindparam("repo_id"), commits.c.id == bindparam("cid")
)
_CHILDREN = (
    select(commits.c.id)
    .where(commits.c.repo_id == bindparam("repo_id"), commits.c.parent == bindparam("cid"))
    .order_by(commits.c.seq)
)


def get_commit(conn: Connection, repo_id: int, repo: str, cid: str) -> CommitRow:
    found = find_commit(conn, repo_id, repo, cid)
    if found is None:
        raise NotFound(f"commit {cid} not found in repo {repo}", repo=repo, commit=cid)
    return found


def find_commit(conn: Connection, repo_id: int, repo: str, cid: str) -> CommitRow | None:
    r = conn.execute(_COMMIT, {"repo_id": repo_id, "cid": cid}).first()
    return None if r is None else _row(repo, r)


def children_of(conn: Connection, repo_id: int, cid: str) -> tuple[str, ...]:
    rows = conn.execute(_CHILDREN, {"repo_id": repo_id, "cid": cid})
    return tuple(str(r[0]) for r in rows)


def _base_commit(conn: Connection, repo_id: int, repo: str, base: str) -> CommitRow:
    is_branch, head = branches.branch_head(conn, repo_id, base)
    if is_branch:
        if head is None:
            raise NotFound(f"branch {base} of repo {repo} has no commits", repo=repo, branch=base)
        return get_commit(conn, repo_id, repo, head)
    if is_commit_id(base):
        return get_commit(conn, repo_id, repo, base)
    if len(base) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in base):
        rows = conn.execute(
            select(commits.c.id)
            .where(commits.c.repo_id == repo_id, commits.c.id.like(base + "%"))
            .limit(2)
        ).all()
        if len(rows) == 1:
            return get_commit(conn, repo_id, repo, str(rows[0][0]))
        if len(rows) > 1:
            raise InvalidArgument(
                f"commit prefix {base} is ambiguous in repo {repo}", repo=repo, commit=base
            )
    raise NotFound(f"branch or commit {base} not found in repo {repo}", repo=repo, ref=base)


def resolve(conn: Connection, spec: CommitSpec) -> CommitRow:
    """Resolve ``repo@ref`` (branch, ID, ID prefix, with ancestry) to a commit."""
    repo_id = repo_id_of(conn, spec.repo)
    anc = parse_ancestry(spec.ref_or_default)
    commit = _base_commit(conn, repo_id, spec.repo, anc.base)
    if anc.nth is not None:
        chain = ancestry_chain(conn, commit)
        if anc.nth > len(chain):
            raise NotFound(f"{spec}: the history has only {len(chain)} commits", repo=spec.repo)
        return chain[-anc.nth]
    for _ in range(anc.up):
        if commit.parent is None:
            raise NotFound(f"{spec}: commit {commit.id} has no parent", repo=spec.repo)
        commit = get_commit(conn, repo_id, spec.repo, commit.parent)
    return commit


def iter_ancestry(conn: Connection, head: CommitRow, batch: int = 256) -> Iterator[CommitRow]:
    """``head`` and its ancestors, newest first: one recursive query per ``batch`` commits."""
    yield head
    parent = head.parent
    while parent is not None:
        chain = (
            select(commits.c.id, commits.c.parent, literal(1).label("depth"))
            .where(commits.c.repo_id == head.repo_id, commits.c.id == parent)
            .cte("chain", recursive=True)
        )
        link = commits.alias("link")
        chain = chain.union_all(
            select(link.c.id, link.c.parent, chain.c.depth + 1)
            .join(chain, link.c.id == chain.c.parent)
            .where(link.c.repo_id == head.repo_id, chain.c.depth < batch)
        )
        rows = conn.execute(
            select(commits)
            .join(chain, commits.c.id == chain.c.id)
            .where(commits.c.repo_id == head.repo_id)
            .order_by(chain.c.depth)
        ).all()
        if not rows:  # a dangling parent (cannot happen: parents outlive their children)
            return
        for r in rows:
            yield _row(head.repo, r)
        parent = rows[-1]._mapping["parent"]


def ancestry_chain(conn: Connection, head: CommitRow, limit: int | None = None) -> list[CommitRow]:
    """``head`` and its ancestors, newest first."""
    return list(itertools.islice(iter_ancestry(conn, head), limit or None))


def list_commits(
    conn: Connection, repo: str, branch: str | None, limit: int | None
) -> list[CommitRow]:
    """Commits of a branch (following parents from its head) or of a whole repo, newest first;
    at most ``limit`` of them (None or 0: all). A branch with no commits has none (as
    pachctl lists it: an empty list, not an error)."""
    check_limit(limit, "--number")
    repo_id = repo_id_of(conn, repo)
    if branch is not None:
        is_branch, first = branches.branch_head(conn, repo_id, branch)
        if is_branch and first is None:
            return []
        head = resolve(conn, CommitSpec(repo, branch))
        return ancestry_chain(conn, head, limit)
    q = select(commits).where(commits.c.repo_id == repo_id).order_by(commits.c.seq.desc())
    if limit:
        q = q.limit(limit)
    return [_row(repo, r) for r in conn.execute(q)]


def commit_set(conn: Connection, cid: str) -> list[CommitRow]:
    """Every commit (in any repo) carrying the global ID ``cid``, upstream first: in the order
    they were started (the origin commit, then its downstream commits in propagation order)."""
    names = repos.names()
    rows = conn.execute(
        select(commits, names.c.name.label("repo_name"))
        .join(names, names.c.id == commits.c.repo_id)
        .where(commits.c.id == cid)
        .order_by(commits.c.started_at, names.c.name)
    ).all()
    return [_row(str(r._mapping["repo_name"]), r) for r in rows]


def next_seq(conn: Connection, repo_id: int) -> int:
    cur = conn.execute(
        select(func.coalesce(func.max(commits.c.seq), 0)).where(commits.c.repo_id == repo_id)
    ).scalar_one()
    return int(cur) + 1


def insert_commit(
    conn: Connection,
    repo_id: int,
    cid: str,
    *,
    branch: str | None,
    parent: str | None,
    state: CommitState,
    description: str,
    root: bytes | None = None,
    totals: tuple[int, int] = (0, 0),
    origin: Origin = Origin.USER,
    author: str | None = None,
) -> None:
    """Insert a commit row (``author``: who made a user commit; None for pipeline output)."""
    t = now()
    conn.execute(
        insert(commits).values(
            repo_id=repo_id,
            id=cid,
            seq=next_seq(conn, repo_id),
            branch=branch,
            parent=parent,
            origin=origin.value,
            state=state.value,
            error=None,
            root=root,
            file_count=totals[0],
            size_bytes=totals[1],
            description=description,
            started_at=t,
            finished_at=t if state == CommitState.FINISHED else None,
            metadata="{}",
            author=None if author is None else author[:AUTHOR_MAX],
        )
    )


def has_commit(conn: Connection, repo_id: int, cid: str) -> bool:
    return (
        conn.execute(
            select(commits.c.id).where(commits.c.repo_id == repo_id, commits.c.id == cid)
        ).first()
        is not None
    )


def finish_open(
    conn: Connection,
    repo_id: int,
    cid: str,
    *,
    root: bytes | None,
    totals: tuple[int, int],
    error: str | None = None,
    description: str | None = None,
) -> bool:
    """Finish the open commit with the tree ``root`` (``totals``: file count, size), an error
    if its making failed, and a new description if given; False if it is not open."""
    values: dict[str, object] = {
        "state": CommitState.FINISHED.value,
        "root": root,
        "file_count": totals[0],
        "size_bytes": totals[1],
        "error": error,
        "finished_at": now(),
    }
    if description is not None:
        values["description"] = description
    res = conn.execute(
        update(commits)
        .where(
            commits.c.repo_id == repo_id,
            commits.c.id == cid,
            commits.c.state == CommitState.STARTED.value,
        )
        .values(**values)
    )
    return res.rowcount == 1


def close_open(conn: Connection, repo_id: int, error: str) -> None:
    """Finish every open commit of the repo, with ``error`` and its tree as it is."""
    conn.execute(
        update(commits)
        .where(commits.c.repo_id == repo_id, commits.c.state == CommitState.STARTED.value)
        .values(state=CommitState.FINISHED.value, error=error, finished_at=now())
    )


def set_metadata(conn: Connection, repo_id: int, cid: str, metadata: str) -> None:
    """Store the commit's metadata (a JSON object, encoded)."""
    conn.execute(
        update(commits)
        .where(commits.c.repo_id == repo_id, commits.c.id == cid)
        .values(metadata=metadata)
    )


def reparent_children(conn: Connection, repo_id: int, cid: str, parent: str | None) -> None:
    """Make ``parent`` the parent of the children of ``cid``."""
    conn.execute(
        update(commits)
        .where(commits.c.repo_id == repo_id, commits.c.parent == cid)
        .values(parent=parent)
    )


def delete_commit_row(conn: Connection, repo_id: int, cid: str) -> None:
    conn.execute(delete(commits).where(commits.c.repo_id == repo_id, commits.c.id == cid))


def delete_repo_commits(conn: Connection, repo_id: int) -> None:
    conn.execute(delete(commits).where(commits.c.repo_id == repo_id))


def open_auto_in_set(conn: Connection, cid: str) -> list[tuple[int, str | None]]:
    """(repo ID, parent) of the open AUTO commits of commit set ``cid``."""
    rows = conn.execute(
        select(commits.c.repo_id, commits.c.parent).where(
            commits.c.id == cid,
            commits.c.origin == Origin.AUTO.value,
            commits.c.state == CommitState.STARTED.value,
        )
    )
    return [(int(r[0]), None if r[1] is None else str(r[1])) for r in rows]


def open_auto_on_branch(conn: Connection, repo_id: int, branch: str) -> list[str]:
    """The IDs of the open AUTO commits made on ``branch`` of the repo."""
    rows = conn.execute(
        select(commits.c.id).where(
            commits.c.repo_id == repo_id,
            commits.c.branch == branch,
            commits.c.state == CommitState.STARTED.value,
            commits.c.origin == Origin.AUTO.value,
        )
    )
    return [str(r[0]) for r in rows]


# ---- for gc and fsck: every commit ----------------------------------------------------------


class TreeRow(NamedTuple):
    repo_id: int
    repo: str
    id: str
    seq: int
    branch: str | None
    parent: str | None
    state: str
    root: bytes | None
    repo_created: datetime | None = None  # (with the ID and the name: which repo of that ID)


def tree_rows(conn: Connection, *, finished: bool = False) -> Iterator[TreeRow]:
    """Where the tree of every commit (with ``finished``, every finished one) is."""
    names = repos.names()
    q = select(
        commits.c.repo_id, names.c.name, commits.c.id, commits.c.seq, commits.c.branch,
        commits.c.parent, commits.c.state, commits.c.root, names.c.created_at,
    ).join(names, names.c.id == commits.c.repo_id)  # fmt: skip
    if finished:
        q = q.where(commits.c.state == CommitState.FINISHED.value)
    for r in conn.execute(q):
        root = None if r.root is None else bytes(r.root)
        yield TreeRow(
            int(r.repo_id), str(r.name), str(r.id), int(r.seq), r.branch, r.parent, str(r.state),
            root, as_utc(r.created_at),
        )  # fmt: skip
