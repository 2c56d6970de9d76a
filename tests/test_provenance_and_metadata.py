"""Who made what, from what: commit provenance and subvenance, find commit, authors, metadata.

- ``inspect commit`` names a commit's direct provenance, its full provenance (every upstream
  commit, transitively, back to user commits, nearest first) and its subvenance (every commit
  made from it, transitively); ``list commit <id>`` lists a whole commit set.
- ``find commit repo@ref:/path`` lists the commits of the ref's history (newest first) that
  changed a file, or anything below a directory.
- User commits record their author (the OS user); pipeline output commits have none.
- Repos, branches and commits carry key/value metadata, edited with ``edit metadata``; a failed
  edit changes nothing.
"""

from __future__ import annotations

import getpass
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.errors import AlreadyExists, InvalidArgument, NotFound
from haathi.models.info import Origin
from tests.conftest import Cli


def copy_pipeline(name: str, src: str) -> dict[str, Any]:
    """A pipeline copying each top-level entry of ``src`` to its output."""
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": src, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f"cp -r /pfs/{src}/* /pfs/out/"]},
    }


MODEL = {
    "pipeline": {"name": "model"},
    "input": {
        "cross": [
            {"pfs": {"repo": "features", "glob": "/"}},
            {"pfs": {"repo": "params", "glob": "/"}},
        ]
    },
    "transform": {
        "cmd": [
            "sh",
            "-c",
            "ls /pfs/features > /pfs/out/files; cat /pfs/params/* > /pfs/out/params",
        ]
    },
}


def three_stage_dag(client: Client) -> tuple[str, dict[str, str], str]:
    """raw -> clean -> features -> model (crossed with params).

    Returns the params commit, each repo's first commit (each pipeline's creation started a
    commit set of its own) and the commit set a second raw commit started.
    """
    client.create_repo("raw")
    client.create_repo("params")
    params = client.put_file("params@master:/p", b"lr=0.1\n")
    client.put_file("raw@master:/a", b"a\n")
    client.create_pipeline(copy_pipeline("clean", "raw"))
    client.create_pipeline(copy_pipeline("features", "clean"))
    client.create_pipeline(MODEL)
    first = {
        r: client.inspect_commit(f"{r}@master").id for r in ("raw", "clean", "features", "model")
    }
    second = client.put_file("raw@master:/b", b"b\n")
    return params, first, second


def find(client: Client, target: str, limit: int | None = None) -> list[str]:
    return [c.id for c in client.find_commit(target, limit)]


# ---- provenance and subvenance -------------------------------------------------------------


@pytest.mark.every_shape
def test_full_provenance_and_subvenance_of_a_three_stage_dag(client: Client) -> None:
    params, first, x = three_stage_dag(client)

    model = client.inspect_commit(f"model@{x}")
    assert model.origin == Origin.AUTO
    assert model.provenance == (f"features@{x}", f"params@{params}")
    # Every upstream commit, nearest first, back to the user commits (and nothing else).
    assert model.full_provenance == (f"features@{x}", f"params@{params}", f"clean@{x}", f"raw@{x}")
    assert model.subvenance == ()
    features = client.inspect_commit(f"features@{x}")
    assert features.full_provenance == (f"clean@{x}", f"raw@{x}")
    assert features.subvenance == (f"model@{x}",)

    raw = client.inspect_commit(f"raw@{x}")
    assert raw.provenance == () and raw.full_provenance == ()
    assert raw.subvenance == (f"clean@{x}", f"features@{x}", f"model@{x}")
    # The params commit reached both model commits: the first job's and the second set's.
    assert set(client.inspect_commit(f"params@{params}").subvenance) == {
        f"model@{first['model']}",
        f"model@{x}",
    }
    # The first raw commit made the first generation of outputs only (each pipeline's
    # creation started a commit set of its own).
    raw_first = client.inspect_commit(f"raw@{first['raw']}")
    assert raw_first.subvenance == (
        f"clean@{first['clean']}",
        f"features@{first['features']}",
        f"model@{first['model']}",
    )
    assert client.inspect_commit(f"model@{first['model']}").full_provenance == (
        f"features@{first['features']}",
        f"params@{params}",
        f"clean@{first['clean']}",
        f"raw@{first['raw']}",
    )

    # list commit <id>: the whole commit set, across the DAG, upstream first.
    members = client.list_commit(x)
    assert [c.repo for c in members] == ["raw", "clean", "features", "model"]
    assert all(c.id == x and c.finished for c in members)
    assert {c.repo: c.origin for c in members}["raw"] == Origin.USER

    # Authors: user commits record the OS user; pipeline output commits have none.
    assert raw.author == getpass.getuser()
    assert model.author is None
    assert {c.repo: c.author for c in members} == {
        "raw": getpass.getuser(),
        "clean": None,
        "features": None,
        "model": None,
    }

    # find commit works on output repos too: their AUTO commits changed what they wrote.
    assert find(client, "clean@master:/b") == [x]
    assert find(client, "clean@master:/a") == [first["clean"]]
    assert find(client, "model@master:/files") == [x, first["model"]]
    assert find(client, "model@master:/params") == [first["model"]]


def test_inspect_commit_shows_provenance_in_the_cli(client: Client, cli: Cli) -> None:
    params, _, x = three_stage_dag(client)
    info = cli("inspect", "commit", f"model@{x}", "-o", "json").json()
    assert info["full_provenance"] == [
        f"features@{x}",
        f"params@{params}",
        f"clean@{x}",
        f"raw@{x}",
    ]
    assert info["subvenance"] == [] and info["author"] is None and info["metadata"] == {}
    text = cli("inspect", "commit", f"raw@{x}").out
    assert f"Subvenance: clean@{x}, features@{x}, model@{x}" in text
    assert f"Author: {getpass.getuser()}" in text
    text = cli("inspect", "commit", f"model@{x}").out
    assert f"Full Provenance: features@{x}, params@{params}, clean@{x}, raw@{x}" in text
    listed = cli("list", "commit", x, "-o", "json").json()
    assert [c["repo"] for c in listed] == ["raw", "clean", "features", "model"]


# ---- find commit ---------------------------------------------------------------------------


def history(client: Client) -> list[str]:
    """Eight commits on r@master touching files, directories and neighbours of them."""
    client.create_repo("r")
    ids = [
        client.put_file("r@master:/d/x", b"x1"),  # 0: adds /d/x
        client.put_file("r@master:/d-x", b"n"),  # 1: a neighbour sorting before /d/
        client.put_file("r@master:/d/y", b"y1"),  # 2: adds /d/y
        client.put_file("r@master:/d/x", b"x2"),  # 3: modifies /d/x
        client.put_file("r@master:/d0", b"n"),  # 4: a neighbour sorting right after /d/
        client.put_file("r@master:/d/x", b"x2"),  # 5: rewrites /d/x unchanged
        client.delete_file("r@master:/d/y"),  # 6: removes /d/y
        client.put_file("r@master:/d/sub/z", b"z"),  # 7: adds below a subdirectory
    ]
    return ids


@pytest.mark.every_shape
def test_find_commit_lists_commits_that_changed_a_file_or_directory(client: Client) -> None:
    ids = history(client)
    newest_first = list(reversed(ids))
    assert find(client, "r@master:/d/x") == [ids[3], ids[0]]
    assert find(client, "r@master:/d/y") == [ids[6], ids[2]]
    assert find(client, "r@master:/d") == [ids[7], ids[6], ids[3], ids[2], ids[0]]
    assert find(client, "r@master:/d/") == find(client, "r@master:/d")
    assert find(client, "r@master:/d/sub") == [ids[7]]
    assert find(client, "r@master:/d-x") == [ids[1]]
    assert find(client, "r@master:/d0") == [ids[4]]
    assert find(client, "r@master:/") == [i for i in newest_first if i != ids[5]]
    assert find(client, "r@master:/never") == []
    # A limit stops the search; the start can be any ref of the history.
    assert find(client, "r@master:/d", limit=2) == [ids[7], ids[6]]
    assert find(client, "r@master^2:/d") == [ids[3], ids[2], ids[0]]
    assert find(client, f"r@{ids[2]}:/d/x") == [ids[0]]
    found = client.find_commit("r@master:/d/y")
    assert [c.repo for c in found] == ["r", "r"] and found[0].author == getpass.getuser()


def test_find_commit_follows_parents_and_skips_open_commits(client: Client) -> None:
    ids = history(client)
    client.create_branch("r@fork", head=ids[2])
    fork = client.put_file("r@fork:/d/x", b"fork")
    assert find(client, "r@fork:/d/x") == [fork, ids[0]]
    handle = client.start_commit("r@master")
    handle.put_file("/d/x", b"open")
    # The open head is not searched (its content is not final); its parent is.
    assert find(client, "r@master:/d/x") == [ids[3], ids[0]]
    handle.finish()
    assert find(client, "r@master:/d/x") == [handle.id, ids[3], ids[0]]


def test_find_commit_over_a_long_history(client: Client) -> None:
    """More commits than one ancestry query reads, on a tree several nodes wide."""
    client.create_repo("r")
    with client.start_commit("r@master") as c:
        for i in range(300):
            c.put_file(f"/bulk/{i:04d}", b"%d" % i)
    bulk = [client.list_commit("r@master")[0].id]
    other = []
    for i in range(258):
        bulk.append(client.put_file(f"r@master:/bulk/{(i * 7) % 300:04d}", b"v%d" % i))
        if i in (0, 100, 200):
            other.append(client.put_file("r@master:/other/x", b"%d" % i))
    assert len(client.list_commit("r@master")) == 262
    assert find(client, "r@master:/bulk/0000") == [bulk[1], bulk[0]]  # only i = 0 wrote it
    assert find(client, "r@master:/bulk/0007") == [bulk[2], bulk[0]]
    assert find(client, "r@master:/bulk") == bulk[::-1]
    assert find(client, "r@master:/other") == other[::-1]
    assert find(client, "r@master:/bulk", limit=5) == bulk[::-1][:5]


def test_find_commit_bad_input(client: Client) -> None:
    history(client)
    with pytest.raises(NotFound):
        client.find_commit("ghost@master:/d")
    with pytest.raises(NotFound):
        client.find_commit("r@nobranch:/d")
    with pytest.raises(NotFound):
        client.find_commit("r@0123456789abcdef0123456789abcdef:/d")
    with pytest.raises(NotFound):
        client.find_commit("r@master~20:/d")
    for bad in ["r@master", "r@master:/a/../b", "r@master:/x\ny", "nope"]:
        with pytest.raises(InvalidArgument):
            client.find_commit(bad)
    with pytest.raises(InvalidArgument):
        client.find_commit("r@master:/d", limit=0)


def test_find_commit_cli(cli: Cli) -> None:
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/d/x", "-f", "-", "-m", "first x", input=b"1")
    cli("put", "file", "r@master:/e", "-f", "-", input=b"e")
    cli("put", "file", "r@master:/d/x", "-f", "-", "-m", "second x", input=b"2")
    found = cli("find", "commit", "r@master:/d", "-o", "json").json()
    assert [c["description"] for c in found] == ["second x", "first x"]
    assert all(c["author"] == getpass.getuser() for c in found)
    limited = cli("find", "commit", "r@master:/d/x", "--limit", "1", "-o", "json").json()
    assert [c["id"] for c in limited] == [found[0]["id"]]
    table = cli("find", "commit", "r@master:/d").out
    assert "AUTHOR" in table and found[1]["id"] in table and "second x" in table
    assert cli.fails("find", "commit", "ghost@master:/d").code == 3
    assert cli.fails("find", "commit", "r@master").code == 2
    assert cli.fails("find", "commit", "r@master:/../x").code == 2


# ---- authors -------------------------------------------------------------------------------


def test_user_commits_record_the_os_user(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ana")  # what getpass.getuser() reads first
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/a", "-f", "-", "-m", "why: first data", input=b"a")
    cid = cli("start", "commit", "r@master", "-m", "by hand").out.strip()
    cli("finish", "commit", f"r@{cid}")
    listed = cli("list", "commit", "r", "-o", "json").json()
    assert [(c["author"], c["description"]) for c in listed] == [
        ("ana", "by hand"),
        ("ana", "why: first data"),
    ]
    assert "Author: ana" in cli("inspect", "commit", "r@master").out


# ---- metadata ------------------------------------------------------------------------------


@pytest.mark.every_shape
def test_edit_metadata_on_repos_branches_and_commits(client: Client) -> None:
    client.create_repo("images")
    first = client.put_file("images@master:/a", b"a")
    head = client.put_file("images@master:/b", b"b")

    assert client.edit_metadata("repo", "images", "add", "owner=ana") == {"owner": "ana"}
    assert client.edit_metadata("repo", "images", "add", {"team": "vision"}) == {
        "owner": "ana",
        "team": "vision",
    }
    assert client.edit_metadata("repo", "images", "edit", "owner=bo=b") == {
        "owner": "bo=b",
        "team": "vision",
    }  # the value is everything after the first '='
    assert client.inspect_repo("images").metadata == {"owner": "bo=b", "team": "vision"}
    assert client.list_repo()[0].metadata == {"owner": "bo=b", "team": "vision"}

    client.edit_metadata("branch", "images@master", "add", "stage=dev")
    client.edit_metadata("branch", "images@master", "edit", "stage=prod")
    assert client.inspect_branch("images@master").metadata == {"stage": "prod"}
    assert client.list_branch("images")[0].metadata == {"stage": "prod"}

    # A finished commit's metadata can be edited (it is not the commit's content).
    client.edit_metadata("commit", f"images@{first}", "replace", "k1=v1,k2=v2;k3=")
    assert client.inspect_commit(f"images@{first}").metadata == {"k1": "v1", "k2": "v2", "k3": ""}
    client.edit_metadata("commit", f"images@{first}", "delete", "k2")
    client.edit_metadata("commit", "images@master", "replace", '{"json": "ok", "x": "1,2"}')
    assert client.inspect_commit(f"images@{first}").metadata == {"k1": "v1", "k3": ""}
    assert client.inspect_commit("images@master").metadata == {"json": "ok", "x": "1,2"}
    assert {c.id: c.metadata for c in client.list_commit("images")} == {
        head: {"json": "ok", "x": "1,2"},
        first: {"k1": "v1", "k3": ""},
    }
    client.edit_metadata("commit", "images@master^", "replace", "")  # replace with nothing
    assert client.inspect_commit(f"images@{first}").metadata == {}
    # Editing metadata makes no commit and changes no content.
    assert [c.id for c in client.list_commit("images")] == [head, first]
    assert client.inspect_commit("images@master").finished is not None
    assert client.inspect_branch("images@master").head == head


def test_metadata_errors_change_nothing(client: Client) -> None:
    client.create_repo("images")
    client.put_file("images@master:/a", b"a")
    client.edit_metadata("repo", "images", "add", "owner=ana")
    client.edit_metadata("branch", "images@master", "add", "stage=dev")
    client.edit_metadata("commit", "images@master", "add", "ok=yes")

    def snapshot() -> tuple[dict[str, str], ...]:
        return (
            client.inspect_repo("images").metadata,
            client.inspect_branch("images@master").metadata,
            client.inspect_commit("images@master").metadata,
        )

    before = snapshot()
    cases: list[tuple[type[Exception], str, str, str, Any]] = [
        (AlreadyExists, "repo", "images", "add", "owner=bo"),
        (AlreadyExists, "repo", "images", "add", ["new=1", "owner=bo"]),  # all or nothing
        (NotFound, "repo", "images", "edit", "nobody=x"),
        (NotFound, "branch", "images@master", "delete", "nokey"),
        (NotFound, "commit", "images@master", "delete", ["ok", "nokey"]),
        (NotFound, "repo", "ghost", "add", "a=b"),
        (NotFound, "branch", "images@nobranch", "add", "a=b"),
        (NotFound, "commit", "images@0123456789abcdef0123456789abcdef", "add", "a=b"),
        (NotFound, "commit", "images@master^", "add", "a=b"),
        (InvalidArgument, "project", "images", "add", "a=b"),
        (InvalidArgument, "repo", "images", "upsert", "a=b"),
        (InvalidArgument, "repo", "images", "add", "novalue"),
        (InvalidArgument, "repo", "images", "add", "=v"),
        (InvalidArgument, "repo", "images", "add", " =v"),
        (InvalidArgument, "repo", "images", "add", {"": "v"}),
        (InvalidArgument, "repo", "images", "add", []),
        (InvalidArgument, "repo", "images", "delete", ""),
        (InvalidArgument, "repo", "images", "replace", "a=1,a=2"),
        (InvalidArgument, "repo", "images", "replace", "a=1,broken"),
        (InvalidArgument, "repo", "images", "replace", '{"a": 1}'),
        (InvalidArgument, "repo", "images", "replace", '{"a": '),
        (InvalidArgument, "repo", "images@master", "add", "a=b"),
        (InvalidArgument, "branch", "images", "add", "a=b"),
        (InvalidArgument, "branch", "images@master^", "add", "a=b"),
        (InvalidArgument, "commit", "images@master:/a", "add", "a=b"),
        (InvalidArgument, "repo", "bad name!", "add", "a=b"),
    ]
    for error, kind, target, action, items in cases:
        with pytest.raises(error):
            client.edit_metadata(kind, target, action, items)
        assert snapshot() == before, (kind, target, action, items)


KiB = 1024


def test_descriptions_past_64_kib_store_nothing(client: Client) -> None:
    """Repo descriptions and commit messages are at most 64 KiB of UTF-8: a longer one is
    InvalidArgument naming the bound, and nothing is stored."""
    at_bound, over = "d" * 64 * KiB, "d" * (64 * KiB + 1)
    wide = "é" * (32 * KiB + 1)  # 32 K characters, 64 KiB + 2 bytes: bytes are what count
    for text in (over, wide):
        with pytest.raises(InvalidArgument, match=r"^the description of repo r is too long: "
                           r"6553[78] bytes, at most 65536$"):  # fmt: skip
            client.create_repo("r", text)
    assert client.list_repo() == []
    client.create_repo("r", at_bound)
    with pytest.raises(InvalidArgument, match="description of repo r is too long"):
        client.update_repo("r", over)
    assert client.inspect_repo("r").description == at_bound

    with pytest.raises(InvalidArgument, match=r"^the commit message is too long: 65537 bytes"):
        client.put_file("r@master:/a", b"a", description=over)
    with pytest.raises(InvalidArgument, match="commit message is too long"):
        client.start_commit("r@master", description=wide)
    assert client.list_commit("r") == []
    commit = client.start_commit("r@master", description=at_bound)
    commit.put_file("/a", b"a")
    with pytest.raises(InvalidArgument, match="commit message is too long"):
        commit.finish(over)
    assert client.inspect_commit("r@master").finished is None  # still open, message kept
    assert commit.finish().description == at_bound
    assert [c.description for c in client.list_commit("r")] == [at_bound]


def test_metadata_past_its_bounds_stores_nothing(client: Client) -> None:
    """A metadata key is at most 256 bytes, a value 64 KiB, an object's whole map 256 KiB."""
    client.create_repo("r")
    client.put_file("r@master:/a", b"a")
    client.edit_metadata("commit", "r@master", "add", {"k" * 256: "v" * 64 * KiB})
    before = client.inspect_commit("r@master").metadata
    cases: list[tuple[str, Any, str]] = [
        (
            "add",
            {"k" * 257: "v"},
            r"^metadata key 'k+'\.\.\. of commit r@\w+ is too long: 257 "
            r"bytes, at most 256$",
        ),
        (
            "add",
            {"big": "v" * (64 * KiB + 1)},
            r"^metadata value of 'big' on commit r@\w+ is too "
            r"long: 65537 bytes, at most 65536$",
        ),
        ("edit", {"k" * 256: "ü" * (32 * KiB + 1)}, "metadata value of 'k+' on commit .* too long"),
        (
            "add",
            {f"k{i}": "v" * 60 * KiB for i in range(4)},
            r"^the metadata of commit r@\w+ would be too large: \d+ bytes, at most 262144$",
        ),
        ("replace", {f"k{i}": "v" * 60 * KiB for i in range(5)}, "would be too large"),
    ]
    for action, items, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            client.edit_metadata("commit", "r@master", action, items)
        assert client.inspect_commit("r@master").metadata == before, (action, message)
    with pytest.raises(InvalidArgument, match=r"key 'k+'\.\.\. of repo r is too long"):
        client.edit_metadata("repo", "r", "add", {"k" * 257: "v"})
    with pytest.raises(InvalidArgument, match="value of 'v' on branch r@master is too long"):
        client.edit_metadata("branch", "r@master", "replace", {"v": "v" * (64 * KiB + 1)})
    assert client.inspect_repo("r").metadata == {}
    assert client.inspect_branch("r@master").metadata == {}
    client.edit_metadata("commit", "r@master", "delete", ["k" * 256])
    assert client.inspect_commit("r@master").metadata == {}


@pytest.mark.every_shape
def test_concurrent_metadata_edits_lose_nothing(client: Client, store: Path) -> None:
    client.create_repo("r")
    errors: list[BaseException] = []

    def add_keys(worker: int) -> None:
        try:
            with haathi.connect(str(store)) as c:
                for i in range(5):
                    c.edit_metadata("repo", "r", "add", f"w{worker}-{i}=v")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add_keys, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert client.inspect_repo("r").metadata == {
        f"w{w}-{i}": "v" for w in range(4) for i in range(5)
    }


def test_edit_metadata_cli(cli: Cli) -> None:
    cli("create", "repo", "images")
    cli("put", "file", "images@master:/a", "-f", "-", input=b"a")
    cli("edit", "metadata", "repo", "images", "add", "owner=ana")
    cli("edit", "metadata", "branch", "images@master", "add", "stage=prod")
    cli("edit", "metadata", "commit", "images@master", "replace", "k1=v1,k2=v2")
    cli("edit", "metadata", "commit", "images@master", "delete", "k1")
    assert "Metadata: owner=ana" in cli("inspect", "repo", "images").out
    assert cli("list", "branch", "images", "-o", "json").json()[0]["metadata"] == {"stage": "prod"}
    assert "Metadata: stage=prod" in cli("inspect", "branch", "images@master").out
    assert "Metadata: k2=v2" in cli("inspect", "commit", "images@master").out
    cli("edit", "metadata", "commit", "images@master", "replace", "a=1", "b=2")
    assert cli("inspect", "commit", "images@master", "-o", "json").json()["metadata"] == {
        "a": "1",
        "b": "2",
    }
    cli("edit", "metadata", "commit", "images@master", "replace")  # nothing: clears
    cli("edit", "metadata", "repo", "images", "replace", json.dumps({"x": "1;2"}))
    assert cli("list", "commit", "images", "-o", "json").json()[0]["metadata"] == {}
    assert cli("list", "repo", "-o", "json").json()[0]["metadata"] == {"x": "1;2"}

    assert cli.fails("edit", "metadata", "repo", "images", "add", "x=again").code == 4
    assert cli.fails("edit", "metadata", "repo", "images", "edit", "nokey=1").code == 3
    assert cli.fails("edit", "metadata", "cluster", ".", "add", "a=b").code == 2
    assert cli.fails("edit", "metadata", "repo", "images", "add", "malformed").code == 2
    assert cli.fails("edit", "metadata", "repo", "images").code == 2  # no action
    assert cli("inspect", "repo", "images", "-o", "json").json()["metadata"] == {"x": "1;2"}
