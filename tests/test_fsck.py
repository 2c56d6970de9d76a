"""fsck finds damage on either backend and, with --fix, repairs only what is safe to repair."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import haathi
from haathi.client import Client
from haathi.config import store_config
from haathi.meta.database import engine_url
from haathi.pfs import markset
from haathi.storage.blobs import pack_key
from loopback.servers import Postgres
from tests.conftest import Cli
from tests.internals import inner
from tests.test_bad_input import _chunks_of, flip_byte

pytestmark = pytest.mark.every_backend  # fsck reads what each backend stored


def kinds(problems: list) -> list[tuple[str, bool]]:  # type: ignore[type-arg]
    return sorted((p.kind, bool(p.extra.get("fixed"))) for p in problems)


def pack_of(client: Client, target: str) -> str:
    digest = _chunks_of(client, target)[0]
    return inner(client).pfs.blobs.locate([digest])[digest].pack


@pytest.mark.usefixtures("marks")
def test_fast_fsck_checks_sizes_and_full_fsck_checks_hashes(client: Client, tmp_path: Path) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(100_000))
    digest = _chunks_of(client, "r@master:/f")[0]
    loc = inner(client).pfs.blobs.locate([digest])[digest]
    flip_byte(inner(client).runtime.objects, pack_key(loc.pack), loc.offset + 10, tmp_path)
    assert client.fsck(fast=True) == []  # same size: only hashing finds it
    assert kinds(client.fsck()) == [("corrupt_blob", False), ("needed_blob_lost", False)]


@pytest.fixture(params=["marks in memory", "marks on disk"])
def marks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The marks of chunks in memory (a small store), or each in a run of its own on disk (as
    past a quarter of a million in a large one)."""
    if request.param == "marks on disk":
        monkeypatch.setattr(markset, "RUN", 1)


@pytest.mark.usefixtures("marks")
def test_fix_drops_index_rows_of_a_lost_pack_nothing_needs(client: Client, cli: Cli) -> None:
    client.create_repo("tmp")
    client.put_file("tmp@master:/f", os.urandom(50_000))
    lost = pack_of(client, "tmp@master:/f")
    client.delete_repo("tmp")
    inner(client).runtime.objects.delete(pack_key(lost))
    assert kinds(client.fsck()) == [("missing_pack", False)]
    assert cli("fsck", ok=False).code == 1

    res = cli("fsck", "--fix")
    assert res.code == 0 and "fixed" in res.err
    assert client.fsck() == []


@pytest.mark.usefixtures("marks")
def test_fix_never_drops_what_a_commit_needs(client: Client, cli: Cli) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(50_000))
    inner(client).runtime.objects.delete(pack_key(pack_of(client, "r@master:/f")))
    found = client.fsck(fix=True)
    assert ("missing_pack", False) in kinds(found)  # reported, not "fixed"
    assert ("needed_blob_lost", False) in kinds(found)
    assert cli("fsck", "--fix", ok=False).code == 1
    assert ("missing_pack", False) in kinds(client.fsck())


@pytest.mark.usefixtures("marks")
def test_fix_drops_a_corrupt_unused_blob_so_new_writes_store_a_good_copy(
    client: Client, tmp_path: Path
) -> None:
    data = os.urandom(50_000)  # under the chunker's minimum: one chunk, so one pack to drop
    client.create_repo("tmp")
    client.put_file("tmp@master:/f", data)
    [digest] = _chunks_of(client, "tmp@master:/f")
    loc = inner(client).pfs.blobs.locate([digest])[digest]
    client.delete_repo("tmp")
    flip_byte(inner(client).runtime.objects, pack_key(loc.pack), loc.offset + 5, tmp_path)
    assert kinds(client.fsck(fix=True)) == [("corrupt_blob", True)]
    client.create_repo("r")
    client.put_file("r@master:/again", data)  # not deduplicated against the corrupt copy
    assert client.get_file("r@master:/again") == data
    # the damaged copy is still in its pack, which nothing uses: a warning until gc deletes it
    assert [(p.kind, p.severity, p.subject) for p in client.fsck()] == [
        ("corrupt_unused_blob", "warning", digest.hex())
    ]
    client.gc(grace_s=0)
    assert client.fsck() == []


# The metadata database itself: its engine's integrity check runs first, and damage that makes
# ordinary queries fail is reported as a problem, not raised.


def damage_sqlite_page(db: Path, table: str) -> None:
    """Zero the first page of ``table`` in a closed SQLite database, as a failing disk would."""
    conn = sqlite3.connect(db)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(bytes(page_size))


@pytest.mark.parametrize("table", ["repos", "auth_tokens"])
def test_fsck_reports_a_damaged_sqlite_database(tmp_path: Path, table: str) -> None:
    store = tmp_path / "store"
    cli = Cli(store, tmp_path)
    with haathi.connect(str(store)) as c:
        c.create_repo("r")
        c.put_file("r@master:/a", b"a")
    damage_sqlite_page(store / "meta.db", table)

    if table == "repos":  # what the damage breaks fails with a one-line error naming it
        res = cli.fails("list", "repo")
        assert res.code == 9 and "metadata database is damaged" in res.err
    for args in (("fsck",), ("fsck", "--fast"), ("fsck", "--fix")):
        res = cli(*args, ok=False)
        assert res.code == 1 and "Traceback" not in res.err, res.err
        assert "error: the metadata database is damaged" in res.err
        assert "no problems found" not in res.out
    with haathi.connect(str(store)) as c:
        problems = c.fsck()
    assert problems[0].kind == "corrupt_metadata" and problems[0].severity == "error"


@pytest.fixture
def own_pg() -> Iterator[Postgres]:
    """A PostgreSQL server of this test's own (it is stopped to damage its files)."""
    server = Postgres(fsync=False)
    try:
        yield server.start()
    finally:
        server.stop()


def garble_page_header(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.write(b"\x5a" * 24)  # page 0's header: offsets past the end of the page


def test_fsck_checks_a_postgresql_database(own_pg: Postgres, tmp_path: Path) -> None:
    store = tmp_path / "store"
    haathi.init(str(store), db=own_pg.create_database()).close()
    cli = Cli(store, tmp_path)
    with haathi.connect(str(store)) as c:
        c.create_repo("r")
        c.put_file("r@master:/a", b"a")
        assert c.fsck() == []
    engine = create_engine(engine_url(store_config(str(store)).db_url))
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION amcheck"))  # used when installed, never installed
        heap, index = (
            conn.execute(text(f"SELECT pg_relation_filepath('{name}')")).scalar_one()
            for name in ("repos", "ix_commits_repo_seq")
        )
    engine.dispose()
    assert cli("fsck").out.strip() == "no problems found"  # with amcheck's checks too

    own_pg.stop(remove=False)
    garble_page_header(own_pg.data / heap)  # a table: any read of it fails
    garble_page_header(own_pg.data / index)  # an index only amcheck reads
    own_pg.restart()

    res = cli.fails("list", "repo")
    assert res.code == 9 and "metadata database is damaged: invalid page" in res.err
    res = cli("fsck", ok=False)
    assert res.code == 1 and "Traceback" not in res.err
    assert "reading table repos: invalid page in block 0" in res.err
    assert "amcheck of index ix_commits_repo_seq" in res.err

    engine = create_engine(engine_url(store_config(str(store)).db_url))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE role_bindings"))
    engine.dispose()
    res = cli("fsck", "--fast", ok=False)  # fast: only that every table is there
    assert res.code == 1 and "table role_bindings is missing" in res.err
    assert "reading table" not in res.err and "amcheck" not in res.err


# Every byte of a pack: not only its blobs, but its header, the footer listing its blobs and
# its trailer (verified by fsck, not by --fast, which reads no data).


def test_full_fsck_names_a_pack_damaged_outside_its_blobs(client: Client, tmp_path: Path) -> None:
    client.create_repo("r")
    objects = inner(client).runtime.objects
    damaged = {}
    for where in ("header", "footer", "footer length", "trailer"):  # one pack each
        client.put_file(f"r@master:/{where}", os.urandom(100_000))
        pack = pack_of(client, f"r@master:/{where}")
        size = objects.size(pack_key(pack))
        offset = {"header": 3, "footer": size - 16 - 3, "footer length": size - 9,
                  "trailer": size - 2}[where]  # fmt: skip
        flip_byte(objects, pack_key(pack), offset, tmp_path)
        damaged[pack] = where

    assert client.fsck(fast=True) == []  # same sizes, and --fast reads no data
    problems = client.fsck()
    assert {p.subject for p in problems} == set(damaged)
    assert {(p.kind, p.severity) for p in problems} == {("corrupt_pack", "error")}
    header = next(p.message for p in problems if damaged[p.subject] == "header")
    assert "its header (bytes 0-7) is not the pack magic" in header
    for where in damaged.values():  # no blob was hit: reads still work
        client.get_file(f"r@master:/{where}")


def test_fsck_names_a_pack_whose_size_is_not_what_was_written(
    client: Client, tmp_path: Path
) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(100_000))
    pack = pack_of(client, "r@master:/f")
    objects = inner(client).runtime.objects
    raw = objects.get_range(pack_key(pack), 0, objects.size(pack_key(pack)))
    (tmp_path / "longer").write_bytes(raw + b"\0")
    objects.put_file(pack_key(pack), tmp_path / "longer")
    for fast in (True, False):
        messages = [p.message for p in client.fsck(fast=fast) if p.kind == "corrupt_pack"]
        assert f"pack {pack} is damaged: it is {len(raw) + 1} bytes, {len(raw)} were written" in (
            messages
        )


@pytest.mark.parametrize("backend", ["local"])
def test_fsck_holds_one_packs_index_rows_at_a_time(client: Client) -> None:
    """A store of a million blobs is checked without holding its index: the rows are read a
    pack at a time, and the chunks the trees name are looked up in batches."""
    import tracemalloc

    from haathi.client.sources import bytes_op
    from haathi.storage.blobs import BlobStore

    blobs = inner(client).pfs.blobs
    small = BlobStore(blobs.objects, blobs.index, blobs.spool_dir, pack_target=512 * 1024)
    with small.writer() as writer:
        for _ in range(60_000):
            writer.put(os.urandom(512))  # ~60 packs of ~1,000 blobs
    client.create_repo("r")
    client.modify_file("r@master", [bytes_op(os.urandom(512), f"/f{i:04}") for i in range(2_000)])
    tracemalloc.start()
    try:
        assert client.fsck(fast=True) == []  # (a full one reads every pack too, one at a time)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024, peak  # the 62,000 index rows alone took ~24 MB
