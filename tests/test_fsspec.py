"""fsspec and pandas: ``haathi://repo@ref/path`` through the public Client, embedded and remote.

Every test runs on both transports (the file system's address is the store directory, or the
URL of the server the test's client talks to) and both backend pairs.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from haathi.client import Client
from haathi.client.filesystem import HaathiFileSystem
from haathi.errors import NotFound
from haathi.server.serve import Server
from tests.conftest import put_all


@pytest.fixture
def address(client: Client, store: Path, real_server: Server | None) -> str:
    """Where the test's client is: the store directory, or its server's URL (fsspec and
    pandas connect by address, so the remote shape needs a real server, not the in-process
    app)."""
    return str(store) if real_server is None else real_server.url


@pytest.fixture(autouse=True)
def _close_file_systems() -> Iterator[None]:
    """fsspec caches file system instances: close their clients after each test."""
    yield
    for inst in list(HaathiFileSystem._cache.values()):
        inst.close()
    HaathiFileSystem.clear_instance_cache()


@pytest.fixture
def fs(address: str) -> Iterator[HaathiFileSystem]:
    f = HaathiFileSystem(address=address, skip_instance_cache=True)
    yield f
    f.close()


def commits(client: Client, branch: str = "data@master") -> list[str]:
    """The branch's commit IDs, newest first (none before its first commit)."""
    try:
        return [c.id for c in client.list_commit(branch)]
    except NotFound:
        return []


def changed(client: Client, commit: str) -> set[str]:
    """The paths the commit changed against its parent."""
    return {d.path for d in client.diff_file(f"{commit}:/")}


FRAME = pd.DataFrame({"city": ["Pune", "Oslo", "Lima"], "temp": [31.5, -2.0, 18.25]})


# pandas ------------------------------------------------------------------------------------


@pytest.mark.every_shape
def test_pandas_reads_and_writes_a_csv_as_one_commit(client: Client, address: str) -> None:
    client.create_repo("data")
    put_all(client, "data", {"/x.csv": "a,b\n1,2\n3,4\n"})
    opts = {"address": address}

    df = pd.read_csv("haathi://data@master/x.csv", storage_options=opts)
    assert df.to_dict("list") == {"a": [1, 3], "b": [2, 4]}

    before = commits(client)
    FRAME.to_csv("haathi://data@master/y.csv", index=False, storage_options=opts)
    after = commits(client)
    assert len(after) == len(before) + 1
    assert changed(client, f"data@{after[0]}") == {"/y.csv"}
    assert client.get_file("data@master:/y.csv") == FRAME.to_csv(index=False).encode()
    assert client.get_file("data@master:/x.csv") == b"a,b\n1,2\n3,4\n"
    back = pd.read_csv("haathi://data/y.csv", storage_options=opts)  # no ref: master
    assert back.equals(FRAME)


def test_pandas_uses_haathi_address_without_storage_options(
    client: Client, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_repo("data")
    monkeypatch.setenv("HAATHI_ADDRESS", address)
    before = commits(client)
    FRAME.to_csv("haathi://data@master/sub/t.csv", index=False)
    assert len(commits(client)) == len(before) + 1
    assert pd.read_csv("haathi://data@master/sub/t.csv").equals(FRAME)
    assert client.get_file("data@master:/sub/t.csv") == FRAME.to_csv(index=False).encode()


def test_pandas_on_an_unknown_repo_or_file_is_file_not_found(client: Client, address: str) -> None:
    opts = {"address": address}
    with pytest.raises(FileNotFoundError, match="repo nope not found"):
        pd.read_csv("haathi://nope@master/x.csv", storage_options=opts)
    client.create_repo("data")
    put_all(client, "data", {"/x.csv": "a\n1\n"})
    with pytest.raises(FileNotFoundError, match=r"/missing\.csv"):
        pd.read_csv("haathi://data@master/missing.csv", storage_options=opts)
    with pytest.raises(FileNotFoundError, match="repo nope not found"):
        FRAME.to_csv("haathi://nope@master/y.csv", storage_options=opts)
    assert [r.name for r in client.list_repo()] == ["data"]


def test_the_entry_point_registers_the_protocol_and_haathi_client_stays_free_of_fsspec() -> None:
    assert fsspec.get_filesystem_class("haathi") is HaathiFileSystem
    code = (
        "import sys, haathi.client; assert 'fsspec' not in sys.modules, 'fsspec imported'; "
        "import fsspec; print(type(fsspec.filesystem('haathi', address='/nonexistent')).__name__)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "HaathiFileSystem"


# reading ----------------------------------------------------------------------------------


def test_ls_info_find_glob_exists_on_nested_dirs(client: Client, fs: HaathiFileSystem) -> None:
    client.create_repo("data")
    client.create_repo("empty")
    put_all(client, "data", {
        "/top.txt": "t", "/a/one.csv": "11", "/a/b/two.csv": "222", "/a/b/c/three.txt": "3333",
    })  # fmt: skip
    head = commits(client)[0]

    assert fs.ls("", detail=False) == ["data", "empty"]
    assert fs.ls("haathi://data@master", detail=False) == ["data@master/a", "data@master/top.txt"]
    listing = {e["name"]: e for e in fs.ls("data@master/a")}
    assert {n: (e["type"], e["size"]) for n, e in listing.items()} == {
        "data@master/a/b": ("directory", 7),
        "data@master/a/one.csv": ("file", 2),
    }
    assert listing["data@master/a/one.csv"]["commit"] == head
    assert fs.ls("data/a/one.csv", detail=False) == ["data/a/one.csv"]  # a file lists itself

    info = fs.info("haathi://data@master/a/b/two.csv")
    assert (info["name"], info["type"], info["size"], info["commit"]) == (
        "data@master/a/b/two.csv",
        "file",
        3,
        head,
    )
    assert fs.info("data@master/a/b")["type"] == "directory"
    assert fs.info("data@master")["size"] == 1 + 2 + 3 + 4

    assert fs.find("data@master/a") == [
        "data@master/a/b/c/three.txt",
        "data@master/a/b/two.csv",
        "data@master/a/one.csv",
    ]
    assert fs.find("data@master/a", maxdepth=2, withdirs=True) == [
        "data@master/a", "data@master/a/b", "data@master/a/b/c", "data@master/a/b/two.csv",
        "data@master/a/one.csv",
    ]  # fmt: skip
    assert fs.find("data@master/a/one.csv") == ["data@master/a/one.csv"]
    assert fs.find("data@master/nothing") == []
    assert fs.glob("haathi://data@master/**/*.csv") == [
        "data@master/a/b/two.csv",
        "data@master/a/one.csv",
    ]
    assert fs.glob("data@master/a/*") == ["data@master/a/b", "data@master/a/one.csv"]
    assert fs.glob("data/*.txt") == ["data/top.txt"]
    assert fs.du("data@master/a") == 2 + 3 + 4

    assert fs.exists("data@master/a/b/c/three.txt")
    assert fs.exists("data@master/a/b")
    assert not fs.exists("data@master/a/b/four.txt")
    assert not fs.exists("nope@master/x")
    assert fs.isdir("data@master/a/b") and not fs.isdir("data@master/a/one.csv")
    assert fs.isfile("data@master/a/one.csv") and not fs.isfile("data@master/a")

    # a repo with no commit is an empty directory; an unknown repo is not found
    assert fs.ls("empty") == [] and fs.isdir("empty@master") and fs.find("empty") == []
    with pytest.raises(FileNotFoundError, match="repo nope not found"):
        fs.ls("nope")
    with pytest.raises(FileNotFoundError, match="repo nope not found"):
        fs.info("nope@master/x")
    with pytest.raises(FileNotFoundError, match="/a/zzz"):
        fs.ls("data@master/a/zzz")
    with pytest.raises(IsADirectoryError):
        fs.open("data@master/a", "rb")


@pytest.mark.every_shape
def test_range_reads_and_seeks(client: Client, fs: HaathiFileSystem) -> None:
    data = random.Random(6).randbytes(2_500_000)  # several chunks
    client.create_repo("data")
    client.put_file("data@master:/blob.bin", data)
    p = "haathi://data@master/blob.bin"

    assert fs.cat_file(p) == data
    assert fs.cat_file(p, 0, 10) == data[:10]
    assert fs.cat_file(p, 300_000, 300_123) == data[300_000:300_123]
    assert fs.cat_file(p, -50) == data[-50:]
    assert fs.cat_file(p, 10, -10) == data[10:-10]
    assert fs.cat_file(p, 2_499_990, 2_600_000) == data[2_499_990:]
    assert fs.cat_file(p, 5, 5) == b""
    assert fs.cat_file(p, 2_600_000, 2_700_000) == b""
    assert fs.read_block(p, 100, 50) == data[100:150]

    with fs.open(p, "rb", block_size=4096) as f:
        assert f.size == len(data)
        assert f.read(5) == data[:5]
        f.seek(600_000)  # ahead by less than SKIP_AHEAD: read through
        assert f.read(1000) == data[600_000:601_000]
        f.seek(2_100_000)  # far ahead: a ranged read
        assert f.read(1000) == data[2_100_000:2_101_000]
        f.seek(-20, 2)
        assert f.read() == data[-20:]
        f.seek(12_345)  # backwards: a ranged read
        assert f.read(10) == data[12_345:12_355]
        assert f.tell() == 12_355
        f.seek(0)
        assert f.read() == data


def test_reads_at_an_old_commit_and_an_open_file_keeps_its_commit(
    client: Client, fs: HaathiFileSystem
) -> None:
    client.create_repo("data")
    first = client.put_file("data@master:/f.txt", b"version one\n")
    client.put_file("data@master:/f.txt", b"version two, longer\n")
    assert fs.cat_file(f"data@{first}/f.txt") == b"version one\n"
    assert fs.cat_file("data@master/f.txt") == b"version two, longer\n"
    assert fs.cat_file("data@master^/f.txt") == b"version one\n"
    assert fs.info(f"data@{first}/f.txt")["size"] == len(b"version one\n")
    assert fs.ls(f"data@{first}", detail=False) == [f"data@{first}/f.txt"]

    with fs.open("data@master/f.txt", "rb", block_size=4) as f:
        assert f.read(8) == b"version "
        client.put_file("data@master:/f.txt", b"version three\n")
        assert f.read() == b"two, longer\n"  # the commit it was opened at
    assert fs.cat_file("data@master/f.txt") == b"version three\n"


# writing ----------------------------------------------------------------------------------


@pytest.mark.every_shape
def test_open_for_writing_makes_one_commit_on_close(client: Client, fs: HaathiFileSystem) -> None:
    client.create_repo("data")
    with fs.open("haathi://data@master/out/w.bin", "wb", block_size=5) as f:
        for i in range(10):
            f.write(b"%d-" % i)
    assert len(commits(client)) == 1
    assert client.get_file("data@master:/out/w.bin") == b"0-1-2-3-4-5-6-7-8-9-"

    with fs.open("data@master/out/w.bin", "ab") as f:
        f.write(b"more")
    assert client.get_file("data@master:/out/w.bin") == b"0-1-2-3-4-5-6-7-8-9-more"
    with fs.open("data@master/t.txt", "w") as t:
        t.write("text mode\n")
    assert client.get_file("data@master:/t.txt") == b"text mode\n"
    with pytest.raises(FileExistsError):
        fs.open("data@master/t.txt", "xb")
    with fs.open("data@master/empty", "wb"):
        pass
    assert fs.info("data@master/empty")["size"] == 0
    assert len(commits(client)) == 4


def test_an_error_while_writing_commits_nothing(client: Client, fs: HaathiFileSystem) -> None:
    client.create_repo("data")
    put_all(client, "data", {"/keep.txt": "k"})
    with pytest.raises(RuntimeError, match="boom"), fs.open("data@master/x.bin", "wb") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert len(commits(client)) == 1
    assert not fs.exists("data@master/x.bin")


def test_pipe_put_get_copy_and_mkdir(client: Client, fs: HaathiFileSystem, tmp_path: Path) -> None:
    client.create_repo("data")
    fs.pipe_file("data@master/p.txt", b"piped")
    local = tmp_path / "local.bin"
    local.write_bytes(b"uploaded bytes")
    fs.put_file(str(local), "data@master/up/local.bin")
    fs.cp_file("data@master/p.txt", "data@master/copy/p.txt")
    fs.mkdir("data@master/newdir")  # directories are implicit: nothing happens
    fs.makedirs("data@master/newdir/deeper", exist_ok=True)
    assert len(commits(client)) == 3
    assert not fs.exists("data@master/newdir")
    assert client.get_file("data@master:/p.txt") == b"piped"
    assert client.get_file("data@master:/up/local.bin") == b"uploaded bytes"
    assert client.get_file("data@master:/copy/p.txt") == b"piped"
    out = tmp_path / "down.bin"
    fs.get_file("data@master/up/local.bin", str(out))
    assert out.read_bytes() == b"uploaded bytes"
    fs.pipe_file("data@dev/d.txt", b"new branch")  # a write to a new branch makes it
    assert client.get_file("data@dev:/d.txt") == b"new branch"


def test_rm_is_one_commit_per_call(client: Client, fs: HaathiFileSystem) -> None:
    client.create_repo("data")
    put_all(client, "data", {
        "/a.txt": "a", "/b.txt": "b", "/d/x": "x", "/d/e/y": "y", "/keep/z": "z",
    })  # fmt: skip
    with pytest.raises(IsADirectoryError):
        fs.rm("data@master/d")
    fs.rm(["data@master/a.txt", "haathi://data@master/d"], recursive=True)
    assert len(commits(client)) == 2
    assert fs.find("data@master") == ["data@master/b.txt", "data@master/keep/z"]
    fs.rm("data@master/*.txt")
    fs.rm_file("data@master/keep/z")
    assert len(commits(client)) == 4
    assert fs.find("data@master") == []
    with pytest.raises(FileNotFoundError):
        fs.rm("data@master/gone.txt")
    with pytest.raises(FileNotFoundError):
        fs.rm("data@master/*.none")
    assert len(commits(client)) == 4


def test_writing_to_a_commit_id_fails_and_changes_nothing(
    client: Client, fs: HaathiFileSystem
) -> None:
    client.create_repo("data")
    old = put_all(client, "data", {"/f.txt": "one"})
    put_all(client, "data", {"/g.txt": "two"})
    before = commits(client)

    with pytest.raises(PermissionError, match="finished"):
        fs.open(f"data@{old}/new.txt", "wb")
    with pytest.raises(PermissionError, match="finished"):
        fs.pipe_file(f"data@{old}/f.txt", b"changed")
    with pytest.raises(PermissionError, match="finished"):
        fs.rm(f"data@{old}/f.txt")
    with pytest.raises(PermissionError, match="finished"):
        FRAME.to_csv(f"haathi://data@{old}/y.csv", storage_options={"address": fs.address})
    with pytest.raises(FileNotFoundError):
        fs.pipe_file(f"data@{'0' * 32}/f.txt", b"x")  # no such commit

    assert commits(client) == before
    assert fs.find(f"data@{old}") == [f"data@{old}/f.txt"]
    assert fs.cat_file(f"data@{old}/f.txt") == b"one"
    assert fs.find("data@master") == ["data@master/f.txt", "data@master/g.txt"]


def test_bad_paths_are_value_errors(client: Client, fs: HaathiFileSystem) -> None:
    client.create_repo("data")
    with pytest.raises(ValueError, match=r"\.\."):
        fs.cat_file("data@master/../x")
    with pytest.raises(ValueError, match="glob characters"):
        fs.pipe_file("data@master/a*b", b"x")
    with pytest.raises(ValueError):
        fs.pipe_file("data@master", b"x")  # the root is not a file
    with pytest.raises(ValueError, match="missing branch"):
        fs.ls("data@/x")
    assert commits(client) == []


def test_a_file_system_follows_haathi_address_at_each_call(
    client: Client, address: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import haathi

    client.create_repo("data")
    other = haathi.init(str(tmp_path / "other"))
    other.create_repo("elsewhere")
    other.close()
    fs = fsspec.filesystem("haathi")
    monkeypatch.setenv("HAATHI_ADDRESS", address)
    assert fs.ls("", detail=False) == ["data"]
    monkeypatch.setenv("HAATHI_ADDRESS", str(tmp_path / "other"))
    assert fs.ls("", detail=False) == ["elsewhere"]


def test_the_project_storage_option_names_its_repos_bare(client: Client, address: str) -> None:
    """``project`` (a storage option): its repos are ``haathi://repo@ref/path``, as the CLI's
    ``--project`` makes bare names its own; without it, the default project's."""
    client.create_project("lab")
    client.create_repo("lab/data")
    put_all(client, "lab/data", {"/x.csv": "a\n1\n"})
    client.create_repo("data")
    put_all(client, "data", {"/x.csv": "a\n2\n"})
    opts = {"address": address, "project": "lab"}

    FRAME.to_csv("haathi://data@master/y.csv", index=False, storage_options=opts)
    assert pd.read_csv("haathi://data@master/x.csv", storage_options=opts)["a"].tolist() == [1]
    assert client.get_file("lab/data@master:/y.csv").startswith(b"city,temp")
    assert {f.path for f in client.list_file("data@master:/")} == {"/x.csv"}  # (default's)
    lab = fsspec.filesystem("haathi", address=address, project="lab", skip_instance_cache=True)
    assert lab.ls("", detail=False) == ["data"]
    assert sorted(lab.ls("data", detail=False)) == ["data/x.csv", "data/y.csv"]
    default = fsspec.filesystem("haathi", address=address, skip_instance_cache=True)
    assert default.cat_file("data/x.csv") == b"a\n2\n"
    with pytest.raises(FileNotFoundError):
        fsspec.filesystem("haathi", address=address, project="nope", skip_instance_cache=True).ls(
            "data"
        )
    for fs in (lab, default):
        fs.close()
