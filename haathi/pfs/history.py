"""``find commit``: which commits of a ref's history changed a path (Pachyderm's FindCommits).

Each commit is compared with its parent at the path only, never by listing either commit:

- equal tree roots mean equal content (trees are history-independent): nothing changed;
- a file is compared by two point lookups;
- a directory by a walk of both trees restricted to the key range under it, which skips every
  subtree the two trees share and every subtree outside the range, and stops at the first
  difference (:func:`range_changed`).

Open commits are not searched (their content is not final): each finished commit is compared
with its nearest finished ancestor.
"""

from __future__ import annotations

from haathi.errors import InvalidArgument
from haathi.models import paths
from haathi.models.refspec import FileSpec
from haathi.pfs.commits import CommitRow, iter_ancestry, resolve
from haathi.pfs.context import PfsContext
from haathi.tree import prolly
from haathi.tree.entry import NodeRef
from haathi.tree.prolly import Entry, NodeStore

Item = tuple[int, Entry]  # (level of the node a NodeRef points at, or -1 for a file; entry)


def _children(nodes: NodeStore, item: Item, lo: str, hi: str) -> list[Item]:
    """The entries of a node that may hold keys in [lo, hi), in reverse order (for a stack)."""
    ref = item[1]
    assert isinstance(ref, NodeRef)
    node = nodes.get(ref.digest)
    level = node.level - 1 if node.level > 0 else -1
    out: list[Item] = []
    for e in node.entries:
        if e.key < lo:  # a child's key is the last key below it: all of it lies before lo
            continue
        out.append((level, e))
        if e.key >= hi:  # later children hold only keys after this one
            break
    out.reverse()
    return out


def _start(nodes: NodeStore, root: bytes | None) -> list[Item]:
    if root is None:
        return []
    node = nodes.get(root)
    return [(node.level, NodeRef(node.last_key, root, 0, 0))]


def range_changed(
    old: bytes | None, new: bytes | None, lo: str, hi: str, nodes: NodeStore
) -> bool:
    """Whether any entry with lo <= key < hi differs between two trees.

    The two trees are merged in key order as in :func:`prolly.diff`, with subtrees outside
    [lo, hi) dropped as they are reached and subtrees with equal digests skipped.
    """
    if old == new:
        return False
    a, b = _start(nodes, old), _start(nodes, new)
    while a or b:
        if a and b:
            (la, ea), (lb, eb) = a[-1], b[-1]
            if la >= 0 and lb >= 0:
                assert isinstance(ea, NodeRef) and isinstance(eb, NodeRef)
                if ea.digest == eb.digest:
                    a.pop()
                    b.pop()
                    continue
                if la >= lb:
                    a.extend(_children(nodes, a.pop(), lo, hi))
                if lb >= la:
                    b.extend(_children(nodes, b.pop(), lo, hi))
                continue
            if la >= 0:
                a.extend(_children(nodes, a.pop(), lo, hi))
                continue
            if lb >= 0:
                b.extend(_children(nodes, b.pop(), lo, hi))
                continue
            if min(ea.key, eb.key) >= hi:  # both streams are past the range
                return False
            if ea.key == eb.key:
                a.pop()
                b.pop()
                if ea != eb:
                    return True
                continue
            return True  # a file only one side has, within the range
        side = a or b
        level, e = side[-1]
        if level >= 0:
            side.extend(_children(nodes, side.pop(), lo, hi))
            continue
        return e.key < hi  # the first file only one side has: in range or past it
    return False


def path_changed(old: bytes | None, new: bytes | None, path: str, nodes: NodeStore) -> bool:
    """Whether ``path`` (a file, or anything below it as a directory) differs between trees."""
    if old == new:
        return False
    if path == "/":
        return True
    if prolly.get(old, path, nodes) != prolly.get(new, path, nodes):
        return True
    return range_changed(old, new, paths.dir_prefix(path), path + "0", nodes)


def find_commits(ctx: PfsContext, spec: FileSpec, limit: int | None = None) -> list[CommitRow]:
    """The finished commits in the ancestry of ``spec``'s commit (newest first) that changed
    its path, at most ``limit`` of them."""
    if not spec.has_path:
        raise InvalidArgument(f"find commit needs repo@branch-or-commit:/path, got {spec}")
    if limit is not None and limit < 1:
        raise InvalidArgument(f"--limit must be at least 1, got {limit}")
    found: list[CommitRow] = []
    with ctx.db.read() as conn:
        pending: CommitRow | None = None  # the newest finished commit not yet compared
        for commit in iter_ancestry(conn, resolve(conn, spec.commit)):
            if not commit.finished:
                continue
            if pending is not None and path_changed(commit.root, pending.root, spec.path,
                                                    ctx.nodes):
                found.append(pending)
                if limit is not None and len(found) >= limit:
                    return found
            pending = commit
        if pending is not None and path_changed(None, pending.root, spec.path, ctx.nodes):
            found.append(pending)  # the first commit: changed the path if it has it
    return found
