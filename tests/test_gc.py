"""gc deletes what nothing reaches and never what something does, even while writers run."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import haathi
from haathi.client import Client
from haathi.errors import Conflict
from haathi.models.refspec import CommitSpec
from haathi.pfs import lifecycle, markset, reach, staging
from haathi.pfs.gc import live_packs
from haathi.pfs.ingest import ingest_stream
from haathi.storage.blobs import BlobStore, BlobWriter
from haathi.tree.entry import FileEntry
from tests.conftest import Cli
from tests.internals import inner


@pytest.fixture(autouse=True, params=["marks in memory", "marks on disk"])
def marks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: gc's marks of chunks in memory (as in a small store), and each in a
    run of its own on disk (as past a quarter of a million in a large one)."""
    if request.param == "marks on disk":
        monkeypatch.setattr(markset, "RUN", 1)


def stored_bytes(client: Client) -> int:
    objects = inner(client).runtime.objects
    return sum(o.size for o in objects.list_objects("packs/"))


def errors(client: Client) -> list[str]:
    return [p.message for p in client.fsck() if p.severity == "error"]


@pytest.mark.every_shape
def test_gc_deletes_a_deleted_repos_data_and_keeps_the_rest(client: Client) -> None:
    client.create_repo("keep")
    client.create_repo("drop")
    kept = os.urandom(300_000)
    client.put_file("keep@master:/k", kept)
    client.put_file("drop@master:/d", os.urandom(2_000_000))
    before = stored_bytes(client)
    client.delete_repo("drop")

    report = client.gc(grace_s=0)

    assert report["packs_deleted"] >= 1 and report["bytes_deleted"] > 1_900_000
    assert stored_bytes(client) < before - 1_900_000
    assert client.get_file("keep@master:/k") == kept
    assert errors(client) == []
    assert client.gc(grace_s=0)["packs_deleted"] == 0  # nothing left to do


def test_gc_keeps_history_other_branches_and_open_commits(client: Client) -> None:
    client.create_repo("r")
    old, new, side, staged = (os.urandom(100_000) for _ in range(4))
    client.put_file("r@master:/f", old)
    first = client.list_commit("r@master")[0].id
    client.put_file("r@master:/f", new)
    client.put_file("r@side:/s", side)
    client.delete_branch("r@side")  # its commit stays reachable by ID
    side_commit = next(c for c in client.list_commit("r") if c.branch == "side").id
    with client.start_commit("r@open") as commit:
        commit.put_file("/staged", staged)
        assert client.gc(grace_s=0)["packs_deleted"] == 0
    assert client.get_file(f"r@{first}:/f") == old
    assert client.get_file("r@master:/f") == new
    assert client.get_file(f"r@{side_commit}:/s") == side
    assert client.get_file("r@open:/staged") == staged
    assert errors(client) == []


@pytest.mark.every_backend
def test_unreachable_data_is_condemned_first_and_deleted_after_the_grace_period(
    client: Client,
) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(500_000))
    client.delete_repo("r")
    before = stored_bytes(client)

    first = client.gc(grace_s=3600)
    assert (first["packs_condemned"], first["packs_deleted"]) == (1, 0)
    assert stored_bytes(client) == before

    later = client.gc(grace_s=0)
    assert later["packs_deleted"] == 1 and stored_bytes(client) == 0


def make_garbage(client: Client, data: bytes) -> None:
    """Store ``data`` in a repo, then delete the repo: its pack is reachable from nothing."""
    client.create_repo("tmp")
    client.put_file("tmp@master:/f", data)
    client.delete_repo("tmp")


def test_new_writes_do_not_reuse_condemned_data(client: Client) -> None:
    data = os.urandom(400_000)
    make_garbage(client, data)
    assert client.gc(grace_s=3600)["packs_condemned"] == 1
    client.create_repo("r")
    client.put_file("r@master:/same", data)  # stores a fresh copy
    assert client.gc(grace_s=0)["packs_deleted"] == 1
    assert client.get_file("r@master:/same") == data
    assert errors(client) == []


def _write_reusing(client: Client, data: bytes) -> tuple[FileEntry, BlobWriter, int]:
    """Start a write of ``data`` the way ``put file`` does, stopping before its commit.

    The writer checks which chunks are already stored every 4 MiB: for data larger than that,
    the first chunks are found stored (and reused) before the write ends.
    """
    ctx = inner(client).pfs
    since = lifecycle.gc_epoch_now(ctx)
    writer = ctx.blobs.writer()
    entry = ingest_stream(writer, "/f", io.BytesIO(data))
    return entry, writer, since


def commit(client: Client, entry: FileEntry, writer: BlobWriter, since: int) -> None:
    """Finish a write started by ``_write_reusing`` as a commit to r@master."""
    change = staging.Change(staging.PUT, "/f", entry)
    spec = CommitSpec("r", "master")
    lifecycle.commit_changes(inner(client).pfs, spec, [change], "", writer, since)


def test_a_running_write_that_reuses_condemned_data_revives_it(client: Client) -> None:
    data = os.urandom(6_000_000)
    make_garbage(client, data)
    client.create_repo("r")
    entry, writer, since = _write_reusing(client, data)  # dedups against the garbage copy
    assert client.gc(grace_s=3600)["packs_condemned"] == 1  # gc runs mid-write
    commit(client, entry, writer, since)
    assert client.gc(grace_s=0)["packs_deleted"] == 0  # revived: the commit needs it
    assert client.get_file("r@master:/f") == data
    assert errors(client) == []


@pytest.mark.every_backend
def test_a_running_write_whose_reused_data_was_deleted_commits_nothing(client: Client) -> None:
    data = os.urandom(6_000_000)
    make_garbage(client, data)
    client.create_repo("r")
    entry, writer, since = _write_reusing(client, data)
    assert client.gc(grace_s=0)["packs_deleted"] == 1  # gc deletes it mid-write
    with pytest.raises(Conflict, match="garbage collection"):
        commit(client, entry, writer, since)
    assert client.list_commit("r") == []
    assert errors(client) == []


@pytest.mark.every_backend
def test_gc_keeps_each_pack_a_commit_reaches_by_its_one_blob(client: Client) -> None:
    """Packs of one blob each (a chunk or the tree node): each is kept by its own digest alone,
    found by merging the index and the marks in digest order, in SQLite and PostgreSQL alike."""
    ctx = inner(client).pfs
    blobs = ctx.blobs
    one_each = BlobStore(blobs.objects, blobs.index, blobs.spool_dir, pack_target=1,
                         chunker=blobs.chunker)  # fmt: skip
    kept, gone = os.urandom(12_000_000), os.urandom(12_000_000)
    chunks = {}
    for repo, data in (("r", kept), ("tmp", gone)):
        client.create_repo(repo)
        since = lifecycle.gc_epoch_now(ctx)
        writer = one_each.writer()
        entry = ingest_stream(writer, "/f", io.BytesIO(data))
        change = staging.Change(staging.PUT, "/f", entry)
        lifecycle.commit_changes(ctx, CommitSpec(repo, "master"), [change], "", writer, since)
        chunks[repo] = len(entry.chunk_list())
    assert chunks["tmp"] > 3
    client.delete_repo("tmp")
    report = client.gc(grace_s=0)
    assert report["packs_deleted"] == chunks["tmp"] + 1  # its chunks and its tree's one node
    assert report["reachable_blobs"] == chunks["r"] + 1
    assert client.get_file("r@master:/f") == kept
    assert errors(client) == []


@pytest.mark.every_backend
def test_a_repo_made_while_gc_marks_is_marked_even_in_a_deleted_repos_place(
    client: Client,
) -> None:
    """SQLite gives a new repo the ID of the newest one deleted (no AUTOINCREMENT). A repo
    deleted and another made while gc marks (the other's first commit taking its ID and its
    commit numbers) must still count as new when gc looks again under its lock: else the new
    commit's tree is condemned, and a later gc deletes it (found by the concurrent-writers test
    below, 1 run in about 8)."""
    db = inner(client).pfs.db
    client.create_repo("old")
    client.put_file("old@master:/f", b"old data")
    with db.read() as conn:
        snap = reach.snapshot(conn)
    client.delete_repo("old")
    client.create_repo("new")
    client.put_file("new@master:/g", b"new data")
    new_root = client.inspect_commit("new@master")  # (its tree is the only root added)
    with db.read() as conn:
        added = reach.snapshot(conn, since=snap)
    assert [where.split("@")[0] for where, _ in added.roots] == ["new"], added.roots
    assert added.roots[0][0] == f"new@{new_root.id}"
    client.gc(grace_s=0)
    assert client.get_file("new@master:/g") == b"new data"


@pytest.mark.every_backend
def test_a_change_staged_while_gc_marks_is_marked_after_another_commit_finishes(
    client: Client,
) -> None:
    """The same for staged changes: a commit that finishes deletes its staged rows, and SQLite
    (before migration 0021) gave the next change staged the number of the newest one deleted,
    one gc had already seen while it marked."""
    db = inner(client).pfs.db
    for repo in ("a", "b"):
        client.create_repo(repo)
        client.start_commit(f"{repo}@master")
        client.put_file(f"{repo}@master:/first", repo.encode())  # staged into the open commit
    with db.read() as conn:
        snap = reach.snapshot(conn)
    client.finish_commit("b@master")  # (its staged rows, the newest, go)
    client.put_file("a@master:/later", b"staged while gc marked")
    with db.read() as conn:
        added = reach.snapshot(conn, since=snap)
    assert [entry.size for _, entry in added.staged] == [len(b"staged while gc marked")]
    client.finish_commit("a@master")
    client.gc(grace_s=0)
    assert client.get_file("a@master:/later") == b"staged while gc marked"


WRITER = """
import random, sys, haathi
from haathi.errors import Conflict
c = haathi.connect(sys.argv[1])
w, n = sys.argv[2], int(sys.argv[3])
pool = [bytes([i]) * 1000 + random.Random(i).randbytes(150_000) for i in range(12)]
rng = random.Random(int(w))
for i in range(n):
    k = rng.randrange(len(pool))
    try:
        if i % 2:
            # garbage sharing content with kept files: later writes dedup against it
            c.create_repo(f"tmp-{w}-{i}")
            c.put_file(f"tmp-{w}-{i}@master:/g", pool[(k + 1) % len(pool)])
            c.delete_repo(f"tmp-{w}-{i}")
        c.put_file(f"keep@w{w}:/f{i}", pool[k])
        print(i, k, flush=True)
    except Conflict as exc:  # gc deleted data this write reused: nothing was committed
        print("conflict", exc, file=sys.stderr, flush=True)
"""


@pytest.mark.every_backend  # (the remote shape: test_gc_deletes_a_deleted_repos_data_...)
def test_gc_running_during_writes_never_deletes_what_they_commit(
    client: Client, store: Path
) -> None:
    client.create_repo("keep")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store), str(w), "40"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    runs = 0
    deleted = 0
    while any(p.poll() is None for p in procs):
        deleted += client.gc(grace_s=0)["packs_deleted"]
        runs += 1
        time.sleep(random.uniform(0, 0.05))
    outs = [p.communicate()[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert runs >= 2 and deleted >= 1, (runs, deleted)
    pool = [bytes([i]) * 1000 + random.Random(i).randbytes(150_000) for i in range(12)]
    written = [
        (w, *map(int, line.split()))
        for w, out in enumerate(outs)
        for line in out.split("\n")
        if line
    ]
    assert len(written) >= 40  # most writes commit
    for w, i, k in written:
        assert client.get_file(f"keep@w{w}:/f{i}") == pool[k]
    client.gc(grace_s=0)
    assert errors(client) == []
    for w, i, k in written:
        assert client.get_file(f"keep@w{w}:/f{i}") == pool[k]


def test_cli_gc_reports_what_it_did(client: Client, cli: Cli) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(100_000))
    client.delete_repo("r")
    assert cli("gc", "-o", "json").json()["packs_condemned"] == 1
    report = cli("gc", "--grace", "0", "-o", "json").json()
    assert report["packs_deleted"] == 1
    assert "deleted 0 packs" in cli("gc", "--grace", "0s").out
    assert "invalid duration" in cli.fails("gc", "--grace", "soon").err


def test_reopened_store_sees_gc_results(store: Path, client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", b"x" * 100_000)
    client.delete_repo("r")
    client.gc(grace_s=0)
    with haathi.connect(str(store)) as other:
        assert other.fsck() == []


# -- the mark set: as large as the store, in one run's memory --------------------------------


@settings(max_examples=200, deadline=None)
@given(
    digests=st.lists(st.sampled_from([bytes([i]) * 32 for i in range(40)]), max_size=60),
    run=st.integers(1, 6),
    fan_in=st.integers(2, 5),
)
def test_the_mark_set_gives_back_every_digest_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, digests: list[bytes], run: int, fan_in: int
) -> None:
    """Sorted into runs on disk every ``run`` digests, the runs merged into one when there
    would be ``fan_in`` of them."""
    spool = tmp_path_factory.mktemp("spool")
    with markset.MarkSet(spool, run, fan_in) as marks:
        marks.update(digests)
        spills = len(digests) // run  # runs: 1, 2, ... fan_in, then 2 (merged, new), 3, ...
        runs = spills if spills <= fan_in else 2 + (spills - fan_in - 1) % (fan_in - 1)
        assert marks.runs == runs
        assert list(marks) == sorted(set(digests))
        assert list(marks) == sorted(set(digests))  # (read as often as needed)
        assert os.listdir(spool) == []  # the runs have no names: a crash leaves nothing


@given(
    index=st.dictionaries(st.binary(min_size=2, max_size=2), st.sampled_from("abcd")),
    reached=st.sets(st.binary(min_size=2, max_size=2)),
)
def test_live_packs_are_those_holding_a_reached_digest(
    index: dict[bytes, str], reached: set[bytes]
) -> None:
    """The index and the marks merged in digest order, neither held whole."""
    expected = {pack for digest, pack in index.items() if digest in reached}
    assert live_packs(iter(sorted(index.items())), iter(sorted(reached))) == expected
