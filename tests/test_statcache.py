"""The stat cache of ``put file -r``: a directory put again reads only the files that changed
(their stat moved, or their destination changed since), and never misses a change.

What a put reads is what the kernel reports opened (inotify, :mod:`tests.file_opens`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from haathi.client import Client, dirput
from haathi.client.dirput import PutResult
from haathi.client.sources import scan_dir, stat_key
from haathi.client.statcache import COARSE_TICK_NS, FINE_TICK_NS, settled
from haathi.models.refspec import parse_commit
from tests.conftest import Cli
from tests.file_opens import FileOpens
from tests.in_process import run_cli
from tests.internals import inner

FILES = {
    "a.txt": b"alpha\n",
    "b.bin": bytes(range(256)) * 40,
    "sub/c.txt": b"gamma\n",
    "sub/deeper/d.txt": b"delta\n",
}


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache directory (a client of a server keeps its stat cache there)."""
    path = tmp_path / "user-cache"
    monkeypatch.setenv("HAATHI_CACHE_DIR", str(path))
    return path


def make_tree(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def settle(root: Path) -> None:
    """Wait until every file below ``root`` is older than a tick of the clock (a file written
    just before a put is not trusted: see ``test_a_file_written_just_before_a_put_...``)."""
    while not all(
        settled(_key(p), time.time_ns()) for p in root.rglob("*") if p.is_file()
    ):  # fmt: skip
        time.sleep(0.02)


def _key(p: Path) -> bytes:
    st = p.stat()
    return stat_key(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def settled_tree(tmp_path: Path, files: dict[str, bytes] = FILES) -> Path:
    src = make_tree(tmp_path / "src", files)
    settle(src)
    return src


def put_dir(client: Client, src: Path, dest: str = "/", **kw: bool) -> PutResult:
    return client.put_files("r@master", [scan_dir(src, dest)], **kw)


def files_of(client: Client, target: str = "r@master") -> dict[str, bytes]:
    return {f.path: client.get_file(f"{target}:{f.path}") for f in client.walk_file(f"{target}:/")}


def expected(src: Path, dest: str = "") -> dict[str, bytes]:
    return {f"{dest}/{p.relative_to(src)}": p.read_bytes() for p in src.rglob("*") if p.is_file()}


def same_size_edit(path: Path, data: bytes) -> None:
    """Overwrite ``path`` with other bytes of its size, and set its mtime back as it was: the
    edit a file system with coarse timestamps shows when it comes within the same second."""
    before = path.stat()
    assert len(data) == before.st_size and data != path.read_bytes()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


# -- nothing changed: nothing read ------------------------------------------------------------


@pytest.mark.every_shape
def test_a_directory_put_again_unchanged_reads_no_file_and_commits_the_same_files(
    client: Client, tmp_path: Path, store: Path, transport: str, user_cache: Path
) -> None:
    client.create_repo("r")
    src = settled_tree(tmp_path)
    first = put_dir(client, src)
    assert (first.sent, first.unchanged) == (len(FILES), 0)

    with FileOpens(src) as opens:
        again = put_dir(client, src)
    assert opens.files == set()
    assert (again.sent, again.unchanged) == (0, len(FILES))
    # As without the cache (and as Pachyderm does): a new commit, holding the same files.
    assert again.commit != first.commit
    assert client.inspect_commit("r@master").parent == first.commit
    assert client.diff_file("r@master") == []
    assert files_of(client) == expected(src)
    # An embedded store keeps the cache in its directory; a client of a server, in the user's.
    kept = store / "statcache" if transport == "embedded" else user_cache / "statcache"
    assert len(list(kept.glob("*.stat"))) == 1


def test_cli_put_file_r_again_reads_no_file(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    src = settled_tree(tmp_path)
    cli("put", "file", "r@master:/data", "-r", "-f", str(src))
    with FileOpens(src) as opens:
        res = cli("put", "file", "r@master:/data", "-r", "-f", str(src))
    assert opens.files == set()
    assert res.err == ""
    assert len(cli("list", "commit", "r@master", "-o", "json").json()) == 2
    assert cli("diff", "file", "r@master", "--name-only").out == ""


def test_cli_against_a_server_reads_only_what_changed(server: object, tmp_path: Path) -> None:
    url = server.url  # type: ignore[attr-defined]

    def haathi(*args: str) -> bytes:
        code, out, err = run_cli(list(args), env={"HAATHI_ADDRESS": url}, cwd=tmp_path)
        assert code == 0, err
        return out

    haathi("create", "repo", "r")
    src = settled_tree(tmp_path)
    haathi("put", "file", "r@master:/", "-r", "-f", str(src))
    with FileOpens(src) as opens:
        haathi("put", "file", "r@master:/", "-r", "-f", str(src))
    assert opens.files == set()
    same_size_edit(src / "sub/c.txt", b"GAMMA\n")
    with FileOpens(src) as opens:
        haathi("put", "file", "r@master:/", "-r", "-f", str(src))
    assert opens.files == {"sub/c.txt"}
    assert haathi("get", "file", "r@master:/sub/c.txt") == b"GAMMA\n"


# -- a change is never missed -----------------------------------------------------------------


@pytest.mark.every_shape
def test_a_same_size_edit_in_the_same_second_is_put(client: Client, tmp_path: Path) -> None:
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src)
    same_size_edit(src / "a.txt", b"ALPHA\n")  # size and mtime as recorded; the ctime moved
    with FileOpens(src) as opens:
        result = put_dir(client, src)
    assert opens.files == {"a.txt"}
    assert (result.sent, result.unchanged) == (1, len(FILES) - 1)
    assert client.get_file("r@master:/a.txt") == b"ALPHA\n"
    assert files_of(client) == expected(src)


def test_a_file_replaced_by_rename_is_put(client: Client, tmp_path: Path) -> None:
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src)
    old = (src / "sub/c.txt").stat()
    new = tmp_path / "c.new"
    new.write_bytes(b"GAMMA\n")  # same size
    os.utime(new, ns=(old.st_atime_ns, old.st_mtime_ns))  # same mtime
    os.replace(new, src / "sub/c.txt")  # another inode at the path
    assert (src / "sub/c.txt").stat().st_ino != old.st_ino
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == {"sub/c.txt"}
    assert client.get_file("r@master:/sub/c.txt") == b"GAMMA\n"


def test_a_file_written_just_before_a_put_is_read_again_at_the_next_put(
    client: Client, tmp_path: Path
) -> None:
    """Git's racy case: a file whose mtime falls in the tick the put stat'ed it in could be
    written again within that tick, its stat unchanged. Such a file is not recorded: the next
    put reads it again (and records it, once it has settled)."""
    client.create_repo("r")
    src = make_tree(tmp_path / "src")
    started = time.time_ns()
    put_dir(client, src)
    assert not any(settled(_key(p), started) for p in src.rglob("*") if p.is_file())
    settle(src)
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == set(FILES)
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == set()


def test_only_a_stat_a_tick_older_than_the_scan_is_trusted() -> None:
    second = 1_000_000_000
    scan = 1_700_000_000 * second + 500_000_000

    def stat(mtime: int, ctime: int) -> bytes:
        return stat_key(10, mtime, ctime, 1, 1)

    # A fine clock (ctimes with fractions of a second): one tick of FINE_TICK_NS.
    fine = scan - FINE_TICK_NS - 1_234
    assert settled(stat(fine, fine), scan)
    assert not settled(stat(fine, scan - 1_234), scan)  # changed (chmod, touch -d) just now
    assert not settled(stat(scan - 1_234, fine), scan)
    # A coarse clock (whole seconds, FAT's two): the same second, or the one before, is racy.
    assert not settled(stat(scan - scan % second, scan - scan % second), scan)
    assert not settled(stat(scan - scan % second - second, scan - scan % second - second), scan)
    old = scan - scan % second - 3 * second
    assert scan - old > COARSE_TICK_NS
    assert settled(stat(old, old), scan)


@pytest.mark.every_shape
def test_a_destination_changed_by_another_commit_is_overwritten(
    client: Client, tmp_path: Path
) -> None:
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src)
    with client.start_commit("r@master") as other:  # someone else's commit
        other.put_file("/a.txt", b"theirs")
        other.delete_file("/sub/c.txt")
        other.put_file("/theirs.txt", b"kept")
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == {"a.txt", "sub/c.txt"}
    assert files_of(client) == {**expected(src), "/theirs.txt": b"kept"}
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == set()


def test_a_put_into_an_open_commit_records_nothing(client: Client, tmp_path: Path) -> None:
    """Other writers may write the same paths into an open commit before it is finished: what
    it ends up holding is not known to be what was put."""
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src)
    (src / "a.txt").write_bytes(b"local edit\n")
    settle(src)
    with client.start_commit("r@master") as open_commit:
        with FileOpens(src) as opens:
            put_dir(client, src)  # into the open commit
        assert opens.files == {"a.txt"}
        open_commit.put_file("/a.txt", b"another writer")
    assert client.get_file("r@master:/a.txt") == b"another writer"
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == {"a.txt"}
    assert client.get_file("r@master:/a.txt") == b"local edit\n"


def test_a_put_that_lands_in_a_commit_opened_meanwhile_records_nothing(
    client: Client, tmp_path: Path
) -> None:
    """The race a put into a branch can meet: a commit is opened on the branch after the put
    looked at its (finished) head, so the put goes into that open commit, and another writer
    writes the same path into it before finishing it."""
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src)
    (src / "a.txt").write_bytes(b"local edit\n")
    settle(src)
    api, spec = inner(client), parse_commit("r@master")
    assert client.stat_cache_dir is not None
    put = dirput.plan(api, spec, [scan_dir(src, "/")], client.stat_cache_dir)
    with client.start_commit("r@master") as other:
        commit = api.modify_file(spec, put.ops())
        other.put_file("/a.txt", b"another writer")
    put.remember(api, commit)
    assert client.get_file("r@master:/a.txt") == b"another writer"
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == {"a.txt"}
    assert client.get_file("r@master:/a.txt") == b"local edit\n"


def test_when_two_sources_write_one_path_the_last_still_wins(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    a = settled_tree(tmp_path / "a", {"x.txt": b"from a\n", "only-a.txt": b"a\n"})
    b = settled_tree(tmp_path / "b", {"x.txt": b"from b\n"})
    cli("put", "file", "r@master:/", "-r", "-f", str(a))
    cli("put", "file", "r@master:/", "-r", "-f", str(b), "-f", str(a))  # a's x.txt unchanged
    assert cli("get", "file", "r@master:/x.txt").out == "from a\n"
    cli("put", "file", "r@master:/", "-r", "-f", str(a), "-f", str(b))
    assert cli("get", "file", "r@master:/x.txt").out == "from b\n"
    with FileOpens(a) as opens:  # a's x.txt went in last time, but b's stayed: read it again
        cli("put", "file", "r@master:/", "-r", "-f", str(a))
    assert opens.files == {"x.txt"}
    assert cli("get", "file", "r@master:/x.txt").out == "from a\n"


# -- the cache itself -------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "empty", "truncated", "flipped", "garbage"])
def test_a_missing_or_damaged_cache_is_ignored_and_rebuilt(
    client: Client, tmp_path: Path, store: Path, damage: str
) -> None:
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src)
    (cache,) = (store / "statcache").glob("*.stat")
    data = cache.read_bytes()
    if damage == "deleted":
        cache.unlink()
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "truncated":
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        cache.write_bytes(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])
    else:
        cache.write_bytes(os.urandom(len(data)))
    (src / "b.bin").write_bytes(bytes(range(255, -1, -1)) * 40)
    settle(src)
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == set(FILES)  # read again, all of them
    assert files_of(client) == expected(src)
    with FileOpens(src) as opens:
        put_dir(client, src)
    assert opens.files == set()


def test_rehash_reads_every_file(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    src = settled_tree(tmp_path)
    cli("put", "file", "r@master:/", "-r", "-f", str(src))
    with FileOpens(src) as opens:
        cli("put", "file", "r@master:/", "-r", "-f", str(src), "--rehash")
    assert opens.files == set(FILES)
    with FileOpens(src) as opens:  # and the cache is as good after it
        cli("put", "file", "r@master:/", "-r", "-f", str(src))
    assert opens.files == set()


def test_each_destination_has_its_own_cache(client: Client, tmp_path: Path) -> None:
    client.create_repo("r")
    src = settled_tree(tmp_path)
    put_dir(client, src, "/one")
    with FileOpens(src) as opens:
        put_dir(client, src, "/two")
    assert opens.files == set(FILES)
    with FileOpens(src) as opens:
        put_dir(client, src, "/one")
        put_dir(client, src, "/two")
    assert opens.files == set()
    assert files_of(client) == {**expected(src, "/one"), **expected(src, "/two")}


def test_a_single_file_is_read_at_every_put(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    src = settled_tree(tmp_path)
    for _ in range(2):
        with FileOpens(src) as opens:
            cli("put", "file", "r@master:/a.txt", "-f", str(src / "a.txt"))
        assert opens.files == {"a.txt"}
