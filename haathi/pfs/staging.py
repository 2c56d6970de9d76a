"""Turning an ordered list of changes into tree edits, and keeping changes of open commits.

A change is (op, path, entry): ``put`` replaces a file, ``append`` adds chunks to it,
``delete`` removes a file, ``rdelete`` a file or directory with everything below it. This
module owns the ``staged`` table (the changes of open commits).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

import msgpack
from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from haathi.meta.database import batches
from haathi.meta.schema import staged
from haathi.models import paths
from haathi.pfs.commits import CommitRow, get_commit
from haathi.tree import prolly
from haathi.tree.entry import FileEntry, content_hash
from haathi.tree.prolly import NodeStore

PUT = "put"
APPEND = "append"
DELETE = "delete"
RDELETE = "rdelete"


@dataclass(frozen=True, slots=True)
class Change:
    op: str
    path: str
    entry: FileEntry | None = None


def concat(old: FileEntry | None, new: FileEntry) -> FileEntry:
    """``new`` appended to ``old`` (chunk lists concatenated)."""
    if old is None:
        return new
    chunks = old.chunks + new.chunks
    return FileEntry(new.path, old.size + new.size, content_hash(chunks), chunks, new.datum)


def edits_for(
    base: bytes | None, changes: Sequence[Change], nodes: NodeStore
) -> list[tuple[str, FileEntry | None]]:
    """The sorted tree edits that applying ``changes`` in order to ``base`` amounts to."""
    overlay: dict[str, FileEntry | None] = {}

    def current(path: str) -> FileEntry | None:
        if path in overlay:
            return overlay[path]
        return prolly.get(base, path, nodes)

    for ch in changes:
        if ch.op == PUT:
            overlay[ch.path] = ch.entry
        elif ch.op == APPEND:
            assert ch.entry is not None
            overlay[ch.path] = concat(current(ch.path), ch.entry)
        elif ch.op in (DELETE, RDELETE):
            overlay[ch.path] = None
            if ch.op == RDELETE:
                prefix = paths.dir_prefix(ch.path)
                for e in prolly.iter_prefix(base, prefix, nodes):
                    overlay[e.path] = None
                for p in list(overlay):
                    if p.startswith(prefix):
                        overlay[p] = None
    return sorted(overlay.items())


def open_base(conn: Connection, commit: CommitRow) -> bytes | None:
    """The tree an open commit's staged changes apply to: its parent's."""
    if commit.parent is None:
        return None
    return get_commit(conn, commit.repo_id, commit.repo, commit.parent).root


def open_commit_state(conn: Connection, commit: CommitRow) -> tuple[bytes | None, list[Change]]:
    """An open commit's base (its parent's tree) and its staged changes, in order."""
    return open_base(conn, commit), staged_changes(conn, commit.repo_id, commit.id)


def last_seq(conn: Connection, repo_id: int, commit_id: str) -> int | None:
    """The sequence number of the commit's latest staged change (None if it has none)."""
    value = conn.execute(
        select(func.max(staged.c.seq)).where(
            staged.c.repo_id == repo_id, staged.c.commit_id == commit_id
        )
    ).scalar_one()
    return None if value is None else int(value)


STAGE_BATCH = 10_000


def stage(conn: Connection, repo_id: int, commit_id: str, changes: Iterable[Change]) -> None:
    """Add ``changes`` to the open commit's, after those it has (in batches of rows)."""
    rows = (
        {
            "repo_id": repo_id,
            "commit_id": commit_id,
            "op": ch.op,
            "path": ch.path,
            "payload": msgpack.packb(ch.entry.encode()) if ch.entry is not None else None,
        }
        for ch in changes
    )
    while batch := list(itertools.islice(rows, STAGE_BATCH)):
        conn.execute(insert(staged), batch)


def staged_changes(conn: Connection, repo_id: int, commit_id: str) -> list[Change]:
    rows = conn.execute(
        select(staged.c.op, staged.c.path, staged.c.payload)
        .where(staged.c.repo_id == repo_id, staged.c.commit_id == commit_id)
        .order_by(staged.c.seq)
    )
    return [
        Change(
            r.op,
            r.path,
            FileEntry.decode(msgpack.unpackb(r.payload)) if r.payload is not None else None,
        )
        for r in rows
    ]


def staged_near(
    conn: Connection,
    repo_id: int,
    commit_id: str,
    exact: Collection[str],
    below: Collection[str],
) -> list[Change]:
    """The commit's staged changes, in order and without their entries, whose path is one of
    ``exact`` or lies below one of the directories ``below``: by index lookups, or all of
    them when the commit has few (about as cheap, and a superset)."""
    where = (staged.c.repo_id == repo_id, staged.c.commit_id == commit_id)
    cap = 4 * (len(exact) + len(below)) + 64
    few = select(staged.c.seq).where(*where).limit(cap).subquery()
    count = conn.execute(select(func.count()).select_from(few)).scalar_one()
    if count == 0:
        return []
    cols = (staged.c.seq, staged.c.op, staged.c.path)
    if count < cap:
        rows = conn.execute(select(*cols).where(*where).order_by(staged.c.seq))
        return [Change(r.op, r.path) for r in rows]
    # byte order, as the tree's (PostgreSQL's default collation may sort '/' elsewhere)
    path = staged.c.path.collate("C") if conn.dialect.name == "postgresql" else staged.c.path
    found: dict[int, Change] = {}
    for part in batches(sorted(exact)):
        for r in conn.execute(select(*cols).where(*where, staged.c.path.in_(part))):
            found[r.seq] = Change(r.op, r.path)
    for part in batches(sorted(below), 100):
        inside = or_(*(and_(path >= d + "/", path < d + "0") for d in part))
        for r in conn.execute(select(*cols).where(*where, inside)):
            found[r.seq] = Change(r.op, r.path)
    return [found[seq] for seq in sorted(found)]


def clear(conn: Connection, repo_id: int, commit_id: str) -> None:
    conn.execute(delete(staged).where(staged.c.repo_id == repo_id, staged.c.commit_id == commit_id))


def clear_repo(conn: Connection, repo_id: int) -> None:
    """Drop the staged changes of every open commit of the repo."""
    conn.execute(delete(staged).where(staged.c.repo_id == repo_id))


def staged_since(conn: Connection, floor: int) -> Iterator[tuple[int, str, FileEntry | None]]:
    """(seq, commit ID, entry) of every change staged after sequence number ``floor``, in
    any open commit (deletes have no entry)."""
    rows = conn.execute(
        select(staged.c.seq, staged.c.commit_id, staged.c.payload).where(staged.c.seq > floor)
    )
    for seq, cid, payload in rows:
        entry = None if payload is None else FileEntry.decode(msgpack.unpackb(payload))
        yield int(seq), str(cid), entry
