"""What the metadata can reach: the tree nodes and chunks of every commit and open commit.

``snapshot`` lists the roots (finished commits' trees, open commits' staged files) and where
the listing stopped, so a later ``snapshot(conn, since=...)`` returns only what was added after.
``Marker`` walks roots into the reachable digests, skipping subtrees it has seen: the tree
nodes in a set in memory, the chunks in a :class:`~haathi.pfs.markset.MarkSet` (sorted runs on
disk once they are many), read back in digest order beside the index.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from haathi.errors import Corrupt, HaathiError
from haathi.models.info import Problem
from haathi.pfs import commits, staging
from haathi.pfs.markset import MarkSet, merged
from haathi.tree.entry import FileEntry, NodeRef
from haathi.tree.prolly import NodeStore


@dataclass
class Snapshot:
    """Roots of reachability at one moment, and the marks to list later additions from."""

    roots: list[tuple[str, bytes]] = field(default_factory=list)  # (repo@commit, tree root)
    staged: list[tuple[str, FileEntry]] = field(default_factory=list)  # (open commit, entry)
    # repo (ID, name, made at: SQLite gives a new repo a deleted one's ID) -> highest commit seq
    commit_seq: dict[tuple[int, str, datetime | None], int] = field(default_factory=dict)
    open_commits: set[tuple[int, str]] = field(default_factory=set)
    staged_seq: int = 0


def snapshot(conn: Connection, since: Snapshot | None = None) -> Snapshot:
    """The roots now; with ``since``, only those added after it (new commits, commits that
    were open then and are finished now, changes staged since)."""
    snap = Snapshot()
    for r in commits.tree_rows(conn):
        repo = (r.repo_id, r.repo, r.repo_created)
        snap.commit_seq[repo] = max(snap.commit_seq.get(repo, 0), r.seq)
        if r.state != "FINISHED":
            snap.open_commits.add((r.repo_id, r.id))
            continue
        is_new = since is None or (
            r.seq > since.commit_seq.get(repo, 0) or (r.repo_id, r.id) in since.open_commits
        )
        if r.root is not None and is_new:
            snap.roots.append((f"{r.repo}@{r.id}", r.root))
    floor = since.staged_seq if since is not None else 0
    for seq, cid, entry in staging.staged_since(conn, floor):
        snap.staged_seq = max(snap.staged_seq, seq)
        if entry is not None:
            snap.staged.append((f"open commit {cid}", entry))
    snap.staged_seq = max(snap.staged_seq, floor)
    return snap


class Marker:
    """Accumulates the digests reachable from roots: :attr:`nodes` (tree nodes, in memory) and
    :attr:`chunks` (on disk past 262,144); :meth:`reached` reads them back in order.

    A tree node that cannot be read stops ``gc`` (``strict``): what lies below it is unknown,
    so nothing may be deleted. ``fsck`` instead records a problem and goes on.
    """

    def __init__(
        self,
        nodes: NodeStore,
        spool_dir: Path,
        *,
        strict: bool = True,
        on_entry: Callable[[FileEntry, str], None] | None = None,
    ) -> None:
        self.store = nodes
        self.strict = strict
        self.on_entry = on_entry
        self.nodes: set[bytes] = set()
        self.chunks = MarkSet(spool_dir)
        self.added: list[bytes] | None = None  # reached since ``track_added`` (repeats allowed)
        self.problems: list[Problem] = []

    def track_added(self) -> None:
        """From now on, list the digests reached (for :meth:`take_added`)."""
        self.added = []

    def take_added(self) -> list[bytes]:
        """The digests reached since :meth:`track_added` or the last call (some perhaps
        reached before too)."""
        added, self.added = self.added or [], []
        return added

    def entry(self, e: FileEntry, where: str) -> None:
        for digest, _ in e.chunk_list():
            self.chunks.add(digest)
            if self.added is not None:
                self.added.append(digest)
        if self.on_entry is not None:
            self.on_entry(e, where)

    def tree(self, root: bytes, where: str) -> None:
        stack = [root]
        while stack:
            d = stack.pop()
            if d in self.nodes:
                continue  # (and all below it)
            self.nodes.add(d)
            if self.added is not None:
                self.added.append(d)
            try:
                node = self.store.get(d)
            except HaathiError as exc:
                if self.strict:
                    raise Corrupt(
                        f"stopped: tree node {d.hex()} of {where} is unreadable ({exc}); "
                        "run `haathi fsck`",
                        blob=d.hex(),
                    ) from exc
                self.problems.append(
                    Problem(
                        "error", "unreadable_node", d.hex(),
                        f"{where} needs tree node {d.hex()}, which is unreadable: {exc}",
                        "restore the pack holding it from a backup",
                    )
                )  # fmt: skip
                continue
            for e in node.entries:
                if isinstance(e, NodeRef):
                    stack.append(e.digest)
                else:
                    self.entry(e, where)

    def mark(self, snap: Snapshot) -> None:
        for where, root in snap.roots:
            self.tree(root, where)
        for where, e in snap.staged:
            self.entry(e, where)

    def reached(self) -> Iterator[bytes]:
        """Every digest reached, in increasing order, each once."""
        return merged(sorted(self.nodes), *self.chunks.streams())

    def reached_among(self, digests: Collection[bytes]) -> set[bytes]:
        """Those of ``digests`` that were reached (one pass over the chunks)."""
        wanted = set(digests)
        found = wanted & self.nodes
        if len(found) < len(wanted):
            found.update(d for d in self.chunks if d in wanted)
        return found

    def close(self) -> None:
        self.chunks.close()

    def __enter__(self) -> Marker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
