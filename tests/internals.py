"""The in-process Api behind a test's Client, for tests that look at stored internals.

Embedded it is the Client's own; remote, it is the Api of the server the Client talks to
(the same store), so such tests still run every request over HTTP."""

from __future__ import annotations

from haathi.api import Api
from haathi.client import Client


def inner(client: Client) -> Api:
    api = getattr(client, "server_api", None) or client._api
    assert isinstance(api, Api)
    return api


def plant_commit(
    client: Client, repo: str, content: dict[str, bytes], *, staged_into: str | None = None
) -> str:
    """A commit holding ``content`` as an older haathi, which checked no paths, could have
    written it: a new finished commit on ``repo@master``, or (``staged_into``) changes staged
    into that open commit. Returns the commit's ID."""
    import io

    from haathi.models.ids import new_commit_id
    from haathi.models.info import CommitState
    from haathi.pfs import staging
    from haathi.pfs.branches import cas_head, ensure_branch
    from haathi.pfs.commits import insert_commit
    from haathi.pfs.ingest import ingest_stream
    from haathi.pfs.repos import lock
    from haathi.tree import prolly

    pfs = inner(client).pfs
    with pfs.blobs.writer() as writer:
        entries = sorted(
            (ingest_stream(writer, p, io.BytesIO(data)) for p, data in content.items()),
            key=lambda e: e.path,
        )
        root = prolly.build(entries, pfs.nodes, writer)
    with pfs.db.write() as conn:
        repo_id = lock(conn, repo)
        if staged_into is not None:
            changes = [staging.Change(staging.PUT, e.path, e) for e in entries]
            staging.stage(conn, repo_id, staged_into, changes)
            return staged_into
        head = ensure_branch(conn, repo_id, "master")
        cid = new_commit_id()
        insert_commit(
            conn,
            repo_id,
            cid,
            branch="master",
            parent=head,
            state=CommitState.FINISHED,
            description="planted",
            root=root,
            totals=prolly.totals(root, pfs.nodes),
        )
        assert cas_head(conn, repo_id, "master", head, cid)
    return cid
