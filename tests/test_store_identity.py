"""A store's metadata and objects carry one store ID: lost or foreign metadata is refused, and
gc never deletes objects it cannot account for."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import haathi
from haathi.client import Client
from haathi.config import store_config
from haathi.errors import IncompatibleStore
from haathi.meta.database import Database, engine_url, head_revision
from haathi.runtime import object_store
from haathi.storage import chunker
from haathi.storage.blobs import digest_of
from haathi.storage.chunker import chunk_bytes
from haathi.storage.marker import MARKER_KEY, read_marker, write_marker
from haathi.tree.entry import FileEntry
from tests.conftest import BUCKET, Backends, Cli
from tests.internals import inner

pytestmark = pytest.mark.every_backend  # the store ID lives in each backend


def packs_in(store: Path) -> dict[str, int]:
    """Every pack object of the store, with its size."""
    objects = object_store(store_config(str(store)))
    return {o.key: o.size for o in objects.list_objects("packs/")}


def has_metadata(store: Path) -> bool:
    db = Database(store_config(str(store)).db_url)
    try:
        return not db.is_empty()
    finally:
        db.dispose()


def run_sql(store: Path, *statements: str) -> None:
    engine = create_engine(engine_url(store_config(str(store)).db_url))
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))
    engine.dispose()


def lose_metadata(store: Path, backend: str) -> None:
    """What a deleted ``meta.db`` is to an embedded store, an emptied database is to S3+PG."""
    if backend == "local":
        for path in store.glob("meta.db*"):
            path.unlink()
    else:
        run_sql(store, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")


# what migration 0016 (projects) adds, undone in place (as it added it: no table rebuilt)
PROJECTS_0016 = (
    "DROP INDEX ix_repos_project",
    "ALTER TABLE repos DROP COLUMN project",
    "DROP INDEX ix_pipelines_project",
    "ALTER TABLE pipelines DROP COLUMN project",
    "DROP TABLE projects",
)
# what the migrations after 0017 (project roles: rows only) add: 0018 (transactions), 0019
# (daemons), 0020 (daemon_logs)
SINCE_0017 = ("DROP TABLE daemon_logs", "DROP TABLE daemons", "DROP TABLE transactions")
# what the migrations after 0015 add
SINCE_0015 = (*SINCE_0017, *PROJECTS_0016)
# what the migrations after 0010 add
SINCE_0010 = (
    *SINCE_0015,
    "DROP TABLE secrets",
    "ALTER TABLE branches DROP COLUMN trigger",
    "ALTER TABLE commit_provenance DROP COLUMN from_branches",
    "ALTER TABLE jobs DROP COLUMN egress",
)
# what the migrations after 0009 add
SINCE_0009 = ("DROP TABLE kept_datums", *SINCE_0010)


def make_old(store: Path) -> None:
    """Turn the store into one made before store IDs (schema 0006: no ID in its metadata, no
    marker, nor what later migrations add)."""
    run_sql(
        store,
        "DROP TABLE store_info",
        "DROP INDEX ix_staged_path",
        *SINCE_0009,
        "UPDATE alembic_version SET version_num = '0006'",
    )
    object_store(store_config(str(store))).delete(MARKER_KEY)


def store_with_data(store: Path, data: bytes = b"") -> str:
    """A repo ``r`` with files in the store; the store's ID."""
    with haathi.connect(str(store)) as c:
        c.create_repo("r")
        c.put_file("r@master:/a", data or os.urandom(200_000))
        c.put_file("r@master:/b", os.urandom(100_000))
        return str(c.store_info()["store_id"])


def store_info_of(store: Path) -> dict[str, object]:
    with haathi.connect(str(store)) as c:
        return c.store_info()


def store_id_of(store: Path) -> str:
    return str(store_info_of(store)["store_id"])


def test_a_new_store_records_its_id_in_metadata_and_objects(store: Path, cli: Cli) -> None:
    cli("create", "repo", "r")
    store_id = store_id_of(store)
    assert len(store_id) == 32
    assert read_marker(object_store(store_config(str(store)))) == store_id
    assert f"store_id        {store_id}" in cli("inspect", "store").out  # opens again: agreed


def test_a_store_whose_metadata_is_lost_is_refused_and_keeps_every_pack(
    store: Path, backend: str, cli: Cli
) -> None:
    store_id = store_with_data(store)
    packs = packs_in(store)
    assert packs
    if backend == "local":  # old enough for gc to delete them as orphans, as in issue 14
        for path in (store / "objects" / "packs").rglob("*"):
            os.utime(path, (time.time() - 7200, time.time() - 7200))
    lose_metadata(store, backend)

    for args in (("list", "repo"), ("gc", "--grace", "0")):
        res = cli.fails(*args)
        assert res.code == 6  # FailedPrecondition (IncompatibleStore)
        assert f"holds the data of store {store_id}" in res.err
        assert "missing or empty" in res.err and "restore the metadata database" in res.err
    with pytest.raises(IncompatibleStore, match="missing or empty"):
        haathi.connect(str(store))
    assert packs_in(store) == packs  # gc deleted nothing
    assert not has_metadata(store)  # and no empty metadata was made in its place


def test_objects_without_marker_and_without_metadata_are_refused(
    store: Path, backend: str, cli: Cli
) -> None:
    store_with_data(store)
    object_store(store_config(str(store))).delete(MARKER_KEY)
    lose_metadata(store, backend)
    with pytest.raises(IncompatibleStore, match="holds packs, but the metadata database"):
        haathi.connect(str(store))
    assert not has_metadata(store)


def other_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A second store with data, on the same backend pair; (its directory, its database URL)."""
    path = tmp_path / "other"
    if backend == "s3pg":
        backends: Backends = request.getfixturevalue("backends")
        assert backends.s3 is not None and backends.pg is not None
        haathi.init(
            str(path), db=backends.pg.create_database(), s3_endpoint=backends.s3.endpoint,
            objects=f"s3://{BUCKET}/{uuid.uuid4().hex}",
        ).close()  # fmt: skip
    with haathi.connect(str(path)) as c:
        c.create_repo("theirs")
        c.put_file("theirs@master:/t", b"their data")
    return path, store_config(str(path)).db_url


def test_metadata_of_another_store_is_refused_naming_both_ids(
    store: Path, backend: str, cli: Cli, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ours = store_with_data(store)
    path, their_db = other_store(backend, request, tmp_path)
    theirs = store_id_of(path)
    packs = packs_in(store)

    res = cli.fails("--db", their_db, "list", "repo")
    assert res.code == 6
    assert f"belongs to store {theirs}" in res.err and f"to store {ours}" in res.err
    res = cli.fails("--db", their_db, "gc", "--grace", "0")
    assert theirs in res.err and ours in res.err
    assert packs_in(store) == packs
    with haathi.connect(str(store)) as c:
        assert [r.name for r in c.list_repo()] == ["r"]
    with haathi.connect(str(path)) as c:
        assert c.get_file("theirs@master:/t") == b"their data"


def test_a_store_made_before_store_ids_gets_one_on_first_open(store: Path, cli: Cli) -> None:
    data = os.urandom(50_000)
    store_with_data(store, data)
    make_old(store)
    assert read_marker(object_store(store_config(str(store)))) is None

    assert cli("get", "file", "r@master:/a").raw == data  # opens: migrated
    store_id = store_id_of(store)
    assert read_marker(object_store(store_config(str(store)))) == store_id
    db = Database(store_config(str(store)).db_url)
    assert db.stored_revision() == head_revision()
    db.dispose()
    assert store_id_of(store) == store_id  # and kept


def file_hash(store: Path, path: str) -> str:
    with haathi.connect(str(store)) as c:
        return c.inspect_file(path).hash


def legacy_hash(data: bytes) -> str:
    """The hash of ``data`` as a store cut by fastcdc-2016 records it."""
    chunks = [(digest_of(p), len(p)) for p in chunk_bytes(data, chunker.FASTCDC_2016)]
    return FileEntry.from_chunks("/x", chunks).hash.hex()


def test_a_new_store_cuts_files_with_the_default_chunker(store: Path, cli: Cli) -> None:
    data = os.urandom(3 * 1024 * 1024)  # several chunks: their boundaries make the file's hash
    store_with_data(store, data)
    assert store_info_of(store)["chunker"] == chunker.DEFAULT == "fastcdc-2020"
    assert "chunker         fastcdc-2020" in cli("inspect", "store").out
    assert file_hash(store, "r@master:/a") != legacy_hash(data)


@pytest.mark.parametrize("made_before", ["store ids", "the chunker was recorded"])
def test_an_older_store_keeps_cutting_files_as_it_did(store: Path, made_before: str) -> None:
    """Its files' hashes name their chunk lists: the same bytes put again must not change."""
    data = os.urandom(3 * 1024 * 1024)
    store_with_data(store)  # made by this haathi: then turned into an older one with data
    if made_before == "store ids":
        make_old(store)
    else:
        run_sql(
            store,
            "ALTER TABLE store_info DROP COLUMN chunker",
            *SINCE_0009,
            "UPDATE alembic_version SET version_num = '0008'",
        )
    with haathi.connect(str(store)) as c:
        old = c.put_file("r@master:/big", data)
        assert c.store_info()["chunker"] == chunker.FASTCDC_2016
    assert file_hash(store, "r@master:/big") == legacy_hash(data)
    with haathi.connect(str(store)) as c:
        c.put_file("r@master:/big", data)  # the same bytes again: the same file
        assert c.diff_file("r@master:/", f"r@{old}:/") == []


def test_an_old_store_whose_metadata_names_none_of_its_packs_is_refused(
    store: Path, cli: Cli
) -> None:
    """What an earlier haathi left after ``meta.db`` was lost: a new empty database."""
    store_with_data(store)
    packs = packs_in(store)
    make_old(store)
    run_sql(store, "DELETE FROM blobs", "DELETE FROM packs")
    res = cli.fails("gc", "--grace", "0")
    assert f"records none of the {len(packs)} pack" in res.err
    assert packs_in(store) == packs
    assert read_marker(object_store(store_config(str(store)))) is None  # nothing written


def test_a_store_whose_objects_are_gone_is_refused(store: Path) -> None:
    store_with_data(store)
    objects = object_store(store_config(str(store)))
    for key in [o.key for o in objects.list_objects()]:
        objects.delete(key)
    with pytest.raises(IncompatibleStore, match=r"records 2 packs, but the object .* holds none"):
        haathi.connect(str(store))
    assert read_marker(objects) is None  # no marker was written into the wrong place


def test_gc_deletes_nothing_when_the_objects_name_another_store(
    client: Client, tmp_path: Path
) -> None:
    client.create_repo("tmp")
    client.put_file("tmp@master:/f", os.urandom(100_000))
    client.delete_repo("tmp")  # its pack is garbage now
    runtime = inner(client).runtime
    objects = runtime.objects
    before = {o.key for o in objects.list_objects("packs/")}
    write_marker(objects, uuid.uuid4().hex, tmp_path)  # e.g. another store's objects restored

    with pytest.raises(IncompatibleStore, match=r"gc refused.*nothing was deleted"):
        client.gc(grace_s=0)
    assert {o.key for o in objects.list_objects("packs/")} == before

    write_marker(objects, runtime.store_id, tmp_path)
    assert client.gc(grace_s=0)["packs_deleted"] == 1
