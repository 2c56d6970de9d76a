"""`haathi init` describes a store once; later only its address is needed; secrets stay hidden."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import haathi
from haathi.errors import InvalidArgument
from haathi.storage.readahead import ReadAhead
from tests.conftest import BUCKET, Backends, Cli

SECRET = "s3cret-pw"


@pytest.fixture
def live(backends: Backends, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backends]:
    """The worker's SeaweedFS and PostgreSQL, with the S3 credentials in the environment."""
    backends.start()
    assert backends.s3 is not None
    for key, value in backends.s3.env().items():
        monkeypatch.setenv(key, value)
    yield backends


def pg_url_with_password(b: Backends) -> str:
    assert b.pg is not None
    url = b.pg.create_database()  # trust auth: the password is accepted and ignored
    return url.replace("postgresql://haathi@", f"postgresql://haathi:{SECRET}@")


def s3_args(b: Backends) -> list[str]:
    assert b.s3 is not None
    return ["--objects", f"s3://{BUCKET}/{uuid.uuid4().hex}", "--s3-endpoint", b.s3.endpoint]


def test_init_then_only_the_address(live: Backends, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "store", tmp_path)
    res = cli("init", "--db", pg_url_with_password(live), *s3_args(live))
    assert "s3://" in res.out and SECRET not in res.out + res.err
    config = tmp_path / "store" / "haathi.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    cli("create", "repo", "r")
    cli("put", "file", "r@master:/hello", "-f", "-", input=b"hi")
    assert cli("get", "file", "r@master:/hello").raw == b"hi"
    info = cli("inspect", "store", "-o", "json").json()
    assert info["metadata"].startswith("postgresql://haathi:***@")
    assert info["s3_credentials"] == "from environment"
    assert SECRET not in str(info) + cli("inspect", "store").out
    assert not (tmp_path / "store" / "meta.db").exists()  # metadata is in PostgreSQL


def test_saved_credentials_are_used_but_never_shown(
    live: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    assert live.pg is not None
    objects, endpoint = s3_args(live)[1::2]
    db = live.pg.create_database()
    haathi.init(
        str(store), db=db, objects=objects, s3_endpoint=endpoint, save_credentials=True
    ).close()
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret in (store / "haathi.toml").read_text()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    cli = Cli(store, tmp_path)
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/x", "-f", "-", input=b"x")
    shown = cli("inspect", "store").out + cli("inspect", "store", "-o", "json").out
    assert "in config" in shown and secret not in shown


def test_environment_overrides_the_config_file(
    live: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert live.pg is not None
    cli = Cli(tmp_path / "store", tmp_path)
    cli("init", "--db", live.pg.create_database())
    cli("create", "repo", "in_config_db")
    monkeypatch.setenv("HAATHI_DB", live.pg.create_database())
    # an empty database with this store's objects is refused (see test_store_identity.py)
    assert "missing or empty" in cli.fails("list", "repo").err
    monkeypatch.setenv("HAATHI_OBJECTS", str(tmp_path / "env-objects"))
    assert cli("list", "repo", "-o", "json").json() == []
    cli("create", "repo", "in_env_db")
    monkeypatch.delenv("HAATHI_DB")
    monkeypatch.delenv("HAATHI_OBJECTS")
    assert [r["name"] for r in cli("list", "repo", "-o", "json").json()] == ["in_config_db"]


def test_init_refuses_bad_settings_and_writes_nothing(live: Backends, tmp_path: Path) -> None:
    store = tmp_path / "store"
    cli = Cli(store, tmp_path)
    assert "unsupported metadata database" in cli.fails("init", "--db", "mysql://u:p@h/db").err
    assert "unsupported object store" in cli.fails("init", "--objects", "gs://b/p").err
    assert live.s3 is not None
    res = cli.fails("init", "--objects", "s3://no-such-bucket/p", "--s3-endpoint", live.s3.endpoint)
    assert "no-such-bucket" in res.err
    res = cli.fails("init", "--db", f"postgresql://haathi:{SECRET}@127.0.0.1:1/nodb")
    assert "metadata database" in res.err and SECRET not in res.err
    assert not (store / "haathi.toml").exists()


def test_init_refuses_an_existing_store(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "store", tmp_path)
    cli("init")
    assert "already exists" in cli.fails("init").err
    cli2 = Cli(tmp_path / "embedded", tmp_path)
    cli2("create", "repo", "r")  # an embedded store, created on first use
    assert "already exists" in cli2.fails("init").err


def test_a_config_file_with_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "haathi.toml").write_text('[objects]\nbukcet = "x"\n')
    with pytest.raises(InvalidArgument, match=r"objects\.bukcet"):
        haathi.connect(str(store))
    assert "objects.bukcet" in Cli(store, tmp_path).fails("list", "repo").err


def test_read_cache_stays_within_its_bound_and_survives_damage(
    live: Backends, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert live.pg is not None and live.s3 is not None
    bound = 1024 * 1024
    objects, endpoint = s3_args(live)[1::2]
    db = live.pg.create_database()
    with haathi.init(
        str(store), db=db, objects=objects, s3_endpoint=endpoint, cache_bytes=bound
    ) as c:
        c.create_repo("r")
        files = {f"/f{i}": os.urandom(20_000) for i in range(150)}
        with c.start_commit("r@master") as commit:
            for path, data in files.items():
                commit.put_file(path, data)
        for path, data in files.items():
            assert c.get_file(f"r@master:{path}") == data
        cache = c._api.pfs.blobs.cache
        assert cache is not None
        assert 0 < cache.usage() <= bound
        for entry in (store / "cache").rglob("*"):
            if entry.is_file():
                entry.write_bytes(b"garbage")  # a damaged cache is re-read from S3
        for path, data in list(files.items())[-20:]:
            assert c.get_file(f"r@master:{path}") == data


def test_a_restore_streams_past_the_read_cache(live: Backends, tmp_path: Path) -> None:
    """Blobs read with others (a restore, a large file) are not kept in the read cache: a
    restore larger than the cache would only evict what it holds, and writing each blob to the
    cache costs as much as writing it out. A blob read alone (a small file, a tree node) is."""
    store = tmp_path / "store"
    assert live.pg is not None and live.s3 is not None
    objects, endpoint = s3_args(live)[1::2]
    with haathi.init(str(store), db=live.pg.create_database(), objects=objects,
                     s3_endpoint=endpoint) as c:  # fmt: skip
        c.create_repo("r")
        files = {f"/d/f{i:03d}": os.urandom(20_000) for i in range(150)}
        files["/big"] = os.urandom(3_000_000)
        with c.start_commit("r@master") as commit:
            for path, data in files.items():
                commit.put_file(path, data)
        cache = c._api.pfs.blobs.cache
        assert cache is not None
        before = cache.usage()
        assert {f.path: b"".join(chunks) for f, chunks in c.read_files("r@master:/")} == files
        assert c.get_file("r@master:/big") == files["/big"]
        assert cache.usage() - before < 100_000  # tree nodes only, of 6 MB read
        assert c.get_file("r@master:/d/f007") == files["/d/f007"]
        assert cache.usage() - before >= 20_000


def test_read_ahead_of_an_s3_store_is_configured_in_its_file(
    live: Backends, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert live.pg is not None
    Cli(store, tmp_path)("init", "--db", live.pg.create_database(), *s3_args(live))
    config = store / "haathi.toml"
    text = config.read_text()
    config.write_text(text.replace("[objects]\n", "[objects]\nread_concurrency = 4\n"))
    with haathi.connect(str(store)) as c:
        assert c._api.pfs.blobs.read_ahead == ReadAhead(concurrency=4, window=32 << 20)
    config.write_text(text.replace("[objects]\n", "[objects]\nread_ahead_bytes = 0\n"))
    with pytest.raises(InvalidArgument, match="read_ahead_bytes must be a whole number"):
        haathi.connect(str(store))
