"""The in-process Api behind a test's Client, for tests that look at stored internals.

Embedded it is the Client's own; remote, it is the Api of the server the Client talks to
(the same store), so such tests still run every request over HTTP."""

from __future__ import annotations

import threading
import time

from haathi.api import Api
from haathi.client import Client
from haathi.storage.objects import ObjectStore


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


class ReadLog:
    """Counts the ranged reads of a store's objects (``get_range``: an S3 GET each), and how
    many are in flight at once; each read is slowed by ``delay`` seconds, so that reads
    started together overlap. Installed with ``monkeypatch.setattr(objects, "get_range",
    log.get_range)``."""

    def __init__(self, objects: ObjectStore, delay: float = 0.0) -> None:
        self._get_range = objects.get_range
        self._delay = delay
        self._lock = threading.Lock()
        self.reads: list[tuple[str, int]] = []  # (key, length), in the order they were started
        self.ahead = 0  # bytes read by the read-ahead threads
        self.in_flight = 0
        self.most_in_flight = 0

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._lock:
            self.reads.append((key, length))
            if threading.current_thread().name.startswith("haathi-read"):
                self.ahead += length
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self._delay)
            return self._get_range(key, offset, length)
        finally:
            with self._lock:
                self.in_flight -= 1


def read_threads() -> list[threading.Thread]:
    """The read-ahead threads alive now (none once a stream of reads has ended)."""
    return [t for t in threading.enumerate() if t.name.startswith("haathi-read")]
