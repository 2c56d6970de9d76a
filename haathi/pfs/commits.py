"""Commits: resolving refs (branches, IDs, prefixes, ancestry), reading and listing them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, literal, select

from haathi.errors import InvalidArgument, NotFound
from haathi.meta.schema import branches, commits, repos
from haathi.models.ids import is_commit_id
from haathi.models.info import CommitInfo, CommitState, Origin
from haathi.models.limits import check_limit
from haathi.models.refspec import CommitSpec, parse_ancestry
from haathi.pfs.context import as_utc, metadata_of

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
_REPO_ID = select(repos.c.id).where(repos.c.name == bindparam("name"))
_BRANCH_HEAD = select(branches.c.head).where(
    branches.c.repo_id == bindparam("repo_id"), branches.c.name == bindparam("name")
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


def repo_id_of(conn: Connection, name: str) -> int:
    r = conn.execute(_REPO_ID, {"name": name}).first()
    if r is None:
        raise NotFound(f"repo {name} not found", repo=name)
    return int(r[0])


def _base_commit(conn: Connection, repo_id: int, repo: str, base: str) -> CommitRow:
    b = conn.execute(_BRANCH_HEAD, {"repo_id": repo_id, "name": base}).first()
    if b is not None:
        if b[0] is None:
            raise NotFound(f"branch {base} of repo {repo} has no commits", repo=repo, branch=base)
        return get_commit(conn, repo_id, repo, str(b[0]))
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
    at most ``limit`` of them (None or 0: all)."""
    check_limit(limit, "--number")
    repo_id = repo_id_of(conn, repo)
    if branch is not None:
        head = resolve(conn, CommitSpec(repo, branch))
        return ancestry_chain(conn, head, limit)
    q = select(commits).where(commits.c.repo_id == repo_id).order_by(commits.c.seq.desc())
    if limit:
        q = q.limit(limit)
    return [_row(repo, r) for r in conn.execute(q)]


def commit_set(conn: Connection, cid: str) -> list[CommitRow]:
    """Every commit (in any repo) carrying the global ID ``cid``, upstream first: in the order
    they were started (the origin commit, then its downstream commits in propagation order)."""
    rows = conn.execute(
        select(commits, repos.c.name.label("repo_name"))
        .join(repos, repos.c.id == commits.c.repo_id)
        .where(commits.c.id == cid)
        .order_by(commits.c.started_at, repos.c.name)
    ).all()
    return [_row(str(r._mapping["repo_name"]), r) for r in rows]
