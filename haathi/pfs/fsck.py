"""Checking a store: every index row, pack, tree node and chunk a commit needs is sound."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from haathi.errors import HaathiError
from haathi.meta.schema import blobs, branches, commits, packs, repos
from haathi.models.info import Problem
from haathi.pfs import staging
from haathi.pfs.context import PfsContext
from haathi.storage.blobs import BlobLocation, pack_key
from haathi.tree.entry import FileEntry, NodeRef


def fsck(ctx: PfsContext, *, fast: bool = False) -> Iterator[Problem]:
    """Yield every problem found; nothing is changed."""
    with ctx.db.read() as conn:
        pack_rows = {str(r.id): int(r.size) for r in conn.execute(select(packs))}
        blob_rows = [
            BlobLocation(bytes(r.digest), r.pack, r.offset, r.length, r.raw_length, r.codec)
            for r in conn.execute(select(blobs))
        ]
        commit_rows = conn.execute(
            select(repos.c.name, commits.c.id, commits.c.state, commits.c.root, commits.c.repo_id)
            .join(repos, repos.c.id == commits.c.repo_id)
        ).all()
        branch_rows = conn.execute(
            select(repos.c.name, branches.c.name, branches.c.head, branches.c.repo_id)
            .join(repos, repos.c.id == branches.c.repo_id)
        ).all()
        known = {(int(r[4]), str(r[1])) for r in commit_rows}
        staged_by_commit = {
            (int(r[4]), str(r[1])): staging.staged_changes(conn, int(r[4]), str(r[1]))
            for r in commit_rows
            if r[2] != "FINISHED"
        }

    present: dict[str, int | None] = {}
    for pack in set(pack_rows) | {b.pack for b in blob_rows}:
        try:
            present[pack] = ctx.blobs.objects.size(pack_key(pack))
        except HaathiError:
            present[pack] = None
            yield Problem(
                "error",
                "missing_pack",
                pack,
                f"pack {pack} is in the index but missing from the object store",
                "restore the pack from a backup, or run `haathi fsck --fix` once nothing "
                "references its blobs",
            )

    bad_blobs: set[bytes] = set()
    for loc in blob_rows:
        size = present.get(loc.pack)
        if size is None:
            bad_blobs.add(loc.digest)
            continue
        if loc.offset + loc.length > size:
            bad_blobs.add(loc.digest)
            yield Problem(
                "error",
                "truncated_blob",
                loc.digest.hex(),
                f"blob {loc.digest.hex()} lies beyond the end of pack {loc.pack}",
                "restore the pack from a backup",
            )
            continue
        if not fast:
            try:
                ctx.blobs.read_location(loc)
            except HaathiError as exc:
                bad_blobs.add(loc.digest)
                yield Problem(
                    "error", "corrupt_blob", loc.digest.hex(), str(exc),
                    "restore the pack from a backup; the files using this blob cannot be read",
                )

    indexed = {b.digest for b in blob_rows}
    seen_nodes: set[bytes] = set()

    def check_entry(e: FileEntry, where: str) -> Iterator[Problem]:
        for digest, _ in e.chunk_list():
            if digest not in indexed:
                yield Problem(
                    "error", "missing_chunk", digest.hex(),
                    f"{where}:{e.path} needs chunk {digest.hex()}, which is not in the index",
                    "the file's data is lost; restore from a backup or delete the file",
                )

    for repo, cid, state, root, _repo_id in commit_rows:
        if state != "FINISHED" or root is None:
            continue
        stack = [bytes(root)]
        while stack:
            d = stack.pop()
            if d in seen_nodes:
                continue
            seen_nodes.add(d)
            if d in bad_blobs or d not in indexed:
                yield Problem(
                    "error", "missing_node", d.hex(),
                    f"commit {repo}@{cid} needs tree node {d.hex()}, which is unreadable",
                    "restore the pack from a backup",
                )
                continue
            try:
                node = ctx.nodes.get(d)
            except HaathiError as exc:
                yield Problem("error", "corrupt_node", d.hex(), str(exc), "restore from backup")
                continue
            for e in node.entries:
                if isinstance(e, NodeRef):
                    stack.append(e.digest)
                else:
                    yield from check_entry(e, f"{repo}@{cid}")

    for (_repo_id, cid), changes in staged_by_commit.items():
        for ch in changes:
            if ch.entry is not None:
                yield from check_entry(ch.entry, f"open commit {cid}")

    for repo, name, head, repo_id in branch_rows:
        if head is not None and (int(repo_id), str(head)) not in known:
            yield Problem(
                "error", "dangling_head", f"{repo}@{name}",
                f"branch {repo}@{name} points at commit {head}, which does not exist",
                f"move the branch: `haathi create branch {repo}@{name} --head <commit>`",
            )
