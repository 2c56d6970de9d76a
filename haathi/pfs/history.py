"""``find commit``: which commits of a ref's history changed a path (Pachyderm's FindCommits).

Each commit is compared with its parent at the path only, never by listing either commit:

- equal tree roots mean equal content (trees are history-independent): nothing changed;
- a file is compared by two point lookups;
- a directory by :func:`prolly.diff` restricted to the key range under it, which skips every
  subtree the two trees share and every subtree outside the range, stopped at the first
  difference.

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
from haathi.tree.prolly import NodeStore


def path_changed(old: bytes | None, new: bytes | None, path: str, nodes: NodeStore) -> bool:
    """Whether ``path`` (a file, or anything below it as a directory) differs between trees."""
    if old == new:
        return False
    if path == "/":
        return True
    if prolly.get(old, path, nodes) != prolly.get(new, path, nodes):
        return True
    # anything under the directory: the first difference in its key range is enough
    below = prolly.diff(old, new, nodes, paths.dir_prefix(path), path + "0")
    return next(below, None) is not None


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
            if pending is not None and path_changed(
                commit.root, pending.root, spec.path, ctx.nodes
            ):
                found.append(pending)
                if limit is not None and len(found) >= limit:
                    return found
            pending = commit
        if pending is not None and path_changed(None, pending.root, spec.path, ctx.nodes):
            found.append(pending)  # the first commit: changed the path if it has it
    return found
