"""Files: put (bytes, paths, streams, dirs, tar, append), get, open, list, glob, diff, copy."""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from haathi.client import Client
from haathi.client.sources import bytes_op, walk_dir
from haathi.errors import FailedPrecondition, InvalidArgument, NotFound, StorageError
from haathi.storage import readahead
from haathi.storage.readahead import ReadAhead
from tests.internals import ReadLog, inner, read_threads


@pytest.fixture
def repo(client: Client) -> Client:
    client.create_repo("r")
    return client


@pytest.mark.every_shape
def test_put_and_get_bytes_path_and_stream(repo: Client, tmp_path: Path) -> None:
    src = tmp_path / "local.txt"
    src.write_bytes(b"from a path")
    repo.put_file("r@master:/bytes", b"from bytes")
    repo.put_file("r@master:/path", src)
    repo.put_file("r@master:/stream", io.BytesIO(b"from a stream"))
    assert repo.get_file("r@master:/bytes") == b"from bytes"
    assert repo.get_file("r@master:/path") == b"from a path"
    assert repo.get_file("r@master:/stream") == b"from a stream"


@pytest.mark.every_shape
def test_large_file_round_trips_through_many_chunks(repo: Client) -> None:
    data = os.urandom(5 * 1024 * 1024)
    repo.put_file("r@master:/big.bin", data)
    info = repo.inspect_file("r@master:/big.bin")
    assert info.size_bytes == len(data)
    assert info.chunks > 5
    assert repo.get_file("r@master:/big.bin") == data
    with repo.open_file("r@master:/big.bin") as fh:
        assert fh.read(10) == data[:10]
        assert fh.read() == data[10:]


@pytest.mark.every_shape
def test_ranged_reads_read_only_the_chunks_holding_the_range(
    repo: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(5 * 1024 * 1024)
    repo.put_file("r@master:/big.bin", data)
    for offset, length in [(0, 10), (123_457, 1_000_000), (len(data) - 5, None),
                           (len(data) - 5, 100), (len(data), None), (len(data) + 9, 3),
                           (4_000_000, 0), (0, None)]:  # fmt: skip
        end = None if length is None else offset + length
        got = repo.get_file("r@master:/big.bin", offset=offset, length=length)
        assert got == data[offset:end], (offset, length)
    with repo.open_file("r@master:/big.bin", offset=3_000_000) as fh:
        assert fh.read(10) == data[3_000_000:3_000_010]
        assert fh.read() == data[3_000_010:]
    with pytest.raises(InvalidArgument):
        repo.get_file("r@master:/big.bin", offset=-1)
    blobs = inner(repo).pfs.blobs
    read: list[object] = []
    real = blobs.read_location
    monkeypatch.setattr(
        blobs, "read_location", lambda loc, *rest, **kw: read.append(loc) or real(loc, *rest, **kw)
    )
    info = repo.inspect_file("r@master:/big.bin")
    assert repo.get_file("r@master:/big.bin", offset=len(data) - 10) == data[-10:]
    assert len(read) == 1 < info.chunks  # the last chunk only
    read.clear()
    assert repo.get_file("r@master:/big.bin") == data
    assert len(read) == info.chunks


def test_read_file_gives_the_info_and_the_bytes_chunk_by_chunk(repo: Client) -> None:
    data = os.urandom(3 * 1024 * 1024)
    repo.put_file("r@master:/big.bin", data)
    info, chunks = repo.read_file("r@master:/big.bin")
    assert info.size_bytes == len(data) and info.path == "/big.bin"
    got = list(chunks)
    assert len(got) == info.chunks > 1 and b"".join(got) == data
    _, chunks = repo.read_file("r@master:/big.bin", offset=1_000_000, length=5)
    assert b"".join(chunks) == data[1_000_000:1_000_005]
    with pytest.raises(FailedPrecondition, match="is a directory"):
        repo.read_file("r@master:/")


def test_walk_pages_from_a_start_path(repo: Client) -> None:
    with repo.start_commit("r@master") as c:
        for name in ["a/1", "a/2", "a/b/3", "a0", "b/4", "b/5"]:
            c.put_file("/" + name, name.encode())
    every = [f.path for f in repo.walk_file("r@master:/")]
    assert every == ["/a/1", "/a/2", "/a/b/3", "/a0", "/b/4", "/b/5"]
    assert [f.path for f in repo.walk_file("r@master:/", start="/a/2", limit=2)] == [
        "/a/2", "/a/b/3"
    ]  # fmt: skip
    assert [f.path for f in repo.walk_file("r@master:/", start="/a0")] == every[3:]
    assert [f.path for f in repo.walk_file("r@master:/a", start="/a/b")] == ["/a/b/3"]
    assert [f.path for f in repo.walk_file("r@master:/b", start="/a")] == ["/b/4", "/b/5"]
    assert repo.walk_file("r@master:/a", start="/b") == []
    assert repo.walk_file("r@master:/", limit=0) == []
    assert [f.path for f in repo.walk_file("r@master:/b/4", start="/b/4")] == ["/b/4"]
    assert repo.walk_file("r@master:/b/4", start="/b/5") == []
    with pytest.raises(InvalidArgument):
        repo.walk_file("r@master:/", limit=-1)


@pytest.mark.every_shape
def test_same_content_is_stored_once(repo: Client) -> None:
    data = os.urandom(3 * 1024 * 1024)
    objects = inner(repo).runtime.objects
    repo.put_file("r@master:/one", data)
    size_after_first = sum(o.size for o in objects.list_objects())
    repo.create_repo("other")
    repo.put_file("r@master:/two", data)
    repo.put_file("other@dev:/three", data)
    size_after = sum(o.size for o in objects.list_objects())
    assert size_after - size_after_first < 64 * 1024  # only tree nodes, no data


def test_edit_inside_large_file_stores_only_a_few_chunks(repo: Client) -> None:
    data = bytearray(os.urandom(8 * 1024 * 1024))
    repo.put_file("r@master:/f", bytes(data))
    objects = inner(repo).runtime.objects
    before = sum(o.size for o in objects.list_objects())
    data[4_000_000:4_000_100] = b"z" * 100
    repo.put_file("r@master:/f", b"0123456789" + bytes(data))
    grown = sum(o.size for o in objects.list_objects()) - before
    assert grown < 3 * 1024 * 1024
    assert repo.get_file("r@master:/f") == b"0123456789" + bytes(data)


def test_overwrite_and_append(repo: Client) -> None:
    repo.put_file("r@master:/f", b"foo\n")
    repo.put_file("r@master:/f", b"bar\n")
    assert repo.get_file("r@master:/f") == b"bar\n"
    repo.put_file("r@master:/f", b"buzz\n", append=True)
    assert repo.get_file("r@master:/f") == b"bar\nbuzz\n"
    with repo.start_commit("r@master") as c:
        c.put_file("/f", b"1\n", append=True)
        c.put_file("/f", b"2\n", append=True)
    assert repo.get_file("r@master:/f") == b"bar\nbuzz\n1\n2\n"
    assert repo.get_file("r@master^:/f") == b"bar\nbuzz\n"


def test_put_directory_recursively_in_one_commit(repo: Client, tmp_path: Path) -> None:
    d = tmp_path / "data"
    for i in range(3):
        (d / f"sub{i}").mkdir(parents=True)
        for j in range(4):
            (d / f"sub{i}" / f"f{j}.txt").write_bytes(f"{i}-{j}".encode())
    repo.modify_file("r@master", list(walk_dir(d, "/data")), parallelism=4)
    assert len(repo.list_commit("r")) == 1
    assert [f.path for f in repo.list_file("r@master:/data")] == [
        "/data/sub0",
        "/data/sub1",
        "/data/sub2",
    ]
    assert repo.get_file("r@master:/data/sub2/f3.txt") == b"2-3"
    assert repo.inspect_file("r@master:/data").size_bytes == 12 * 3


def test_list_and_inspect_dirs(repo: Client) -> None:
    with repo.start_commit("r@master") as c:
        for p in ["/a/x", "/a/y", "/a.txt", "/a/b/z", "/b"]:
            c.put_file(p, b"12")
    listing = repo.list_file("r@master:/")
    assert [(f.path, f.type.value, f.size_bytes) for f in listing] == [
        ("/a.txt", "file", 2),
        ("/a", "dir", 6),
        ("/b", "file", 2),
    ]  # sorted by key: '.' sorts before '/', as in Pachyderm
    assert [f.path for f in repo.list_file("r@master:/a")] == ["/a/b", "/a/x", "/a/y"]
    assert repo.inspect_file("r@master:/a/b").type.value == "dir"
    assert [f.path for f in repo.list_file("r@master:/a/x")] == ["/a/x"]
    with pytest.raises(NotFound):
        repo.list_file("r@master:/nope")


def test_reading_a_directory_as_a_file_and_the_reverse(repo: Client) -> None:
    repo.put_file("r@master:/dir/f", b"1")
    with pytest.raises(FailedPrecondition):
        repo.get_file("r@master:/dir")
    with pytest.raises(NotFound):
        repo.get_file("r@master:/dir/f/inside")
    with pytest.raises(NotFound):
        repo.get_file("r@master:/missing")


@pytest.mark.every_shape
def test_glob(repo: Client) -> None:
    with repo.start_commit("r@master") as c:
        for p in ["/a/1.txt", "/a/2.csv", "/b/3.txt", "/b/c/4.txt", "/top.txt"]:
            c.put_file(p, b"x")

    def g(pattern: str) -> list[str]:
        return [f.path for f in repo.glob_file(f"r@master:{pattern}")]

    assert g("/*") == ["/a", "/b", "/top.txt"]
    assert g("/*/*") == ["/a/1.txt", "/a/2.csv", "/b/3.txt", "/b/c"]
    assert g("/**.txt") == ["/a/1.txt", "/b/3.txt", "/b/c/4.txt", "/top.txt"]
    assert g("/a/?.txt") == ["/a/1.txt"]
    assert g("/[ab]/[0-9].*") == ["/a/1.txt", "/a/2.csv", "/b/3.txt"]
    assert g("/{a,b}/*.txt") == ["/a/1.txt", "/b/3.txt"]
    assert g("/") == ["/"]
    assert g("/nothing*") == []


@pytest.mark.every_shape
def test_diff(repo: Client) -> None:
    with repo.start_commit("r@master") as c:
        for p in ["/keep", "/change", "/remove", "/d/x"]:
            c.put_file(p, p.encode())
    with repo.start_commit("r@master") as c:
        c.put_file("/change", b"changed")
        c.delete_file("/remove")
        c.put_file("/d/new", b"n")
    changes = {(d.path, d.change.value) for d in repo.diff_file("r@master")}
    assert changes == {("/change", "modified"), ("/remove", "removed"), ("/d/new", "added")}
    only_d = {(d.path, d.change.value) for d in repo.diff_file("r@master:/d")}
    assert only_d == {("/d/new", "added")}
    reverse = {(d.path, d.change.value) for d in repo.diff_file("r@master^", "r@master")}
    assert reverse == {("/change", "modified"), ("/remove", "added"), ("/d/new", "removed")}
    first = {d.path for d in repo.diff_file("r@master^")}
    assert first == {"/keep", "/change", "/remove", "/d/x"}  # first commit: all added


@pytest.mark.every_shape
def test_list_and_diff_page_from_a_start_path(repo: Client) -> None:
    """A page of a huge directory or change: from ``start`` on, at most ``limit``; the next
    page starts at the ``list_key`` of the entry after the last one shown (a directory sorts
    as its path followed by ``/``, among the files below it)."""
    with repo.start_commit("r@master") as c:
        for name in ["a-b", "a/1", "a/2", "a0", "b", "c/d/e"]:
            c.put_file("/" + name, name.encode())
    every = repo.list_file("r@master:/")
    assert [(f.path, f.list_key) for f in every] == [
        ("/a-b", "/a-b"), ("/a", "/a/"), ("/a0", "/a0"), ("/b", "/b"), ("/c", "/c/")
    ]  # fmt: skip
    assert every[1].size_bytes == 6  # a directory: the bytes below it
    first = repo.list_file("r@master:/", limit=3 + 1)  # a page of 3, and the next one's start
    assert [f.path for f in first[:3]] == ["/a-b", "/a", "/a0"]
    second = repo.list_file("r@master:/", start=first[3].list_key, limit=3 + 1)
    assert [f.path for f in second] == ["/b", "/c"]
    assert [f.path for f in repo.list_file("r@master:/", start="/a/2")] == ["/a0", "/b", "/c"]
    assert [f.path for f in repo.list_file("r@master:/", start="/a")] == ["/a-b", "/a", "/a0",
                                                                         "/b", "/c"]  # fmt: skip
    assert [f.path for f in repo.list_file("r@master:/c", start="/")] == ["/c/d"]
    assert [f.path for f in repo.list_file("r@master:/b", start="/b")] == ["/b"]
    assert repo.list_file("r@master:/b", start="/c") == []
    assert repo.list_file("r@master:/", limit=0) == []
    with pytest.raises(InvalidArgument):
        repo.list_file("r@master:/", limit=-1)

    with repo.start_commit("r@master") as c:
        for name in ["a-b", "a/2", "b"]:
            c.put_file("/" + name, b"changed")
        c.delete_file("/c/d/e")
    diff = [(d.path, d.change.value) for d in repo.diff_file("r@master")]
    assert diff == [("/a-b", "modified"), ("/a/2", "modified"), ("/b", "modified"),
                    ("/c/d/e", "removed")]  # fmt: skip
    page = repo.diff_file("r@master", start="/a/2", limit=2)
    assert [d.path for d in page] == ["/a/2", "/b"]
    assert [d.path for d in repo.diff_file("r@master", "r@master^", start="/b0")] == ["/c/d/e"]
    assert repo.diff_file("r@master", limit=0) == []


def test_delete_file_and_directory(repo: Client) -> None:
    with repo.start_commit("r@master") as c:
        for p in ["/d/a", "/d/b", "/d/e/f", "/dx", "/other"]:
            c.put_file(p, b"1")
    repo.delete_file("r@master:/other")
    with pytest.raises(NotFound):
        repo.delete_file("r@master:/d")  # a directory needs recursive
    repo.delete_file("r@master:/d", recursive=True)
    assert [f.path for f in repo.list_file("r@master:/")] == ["/dx"]
    with pytest.raises(NotFound):
        repo.delete_file("r@master:/ghost")


@pytest.mark.every_shape
def test_copy_file_is_metadata_only(repo: Client) -> None:
    data = os.urandom(2 * 1024 * 1024)
    repo.put_file("r@master:/src/big", data)
    repo.put_file("r@master:/src/small", b"s")
    repo.create_repo("dst")
    objects = inner(repo).runtime.objects
    before = sum(o.size for o in objects.list_objects())
    repo.copy_file("r@master:/src", "dst@master:/copied")
    repo.copy_file("r@master:/src/small", "r@master:/small-copy")
    assert sum(o.size for o in objects.list_objects()) - before < 32 * 1024
    assert repo.get_file("dst@master:/copied/big") == data
    assert repo.get_file("r@master:/small-copy") == b"s"
    assert (
        repo.inspect_file("dst@master:/copied/big").hash
        == repo.inspect_file("r@master:/src/big").hash
    )


@pytest.mark.every_shape
def test_untar_and_multiple_sources(client: Client, cli: object, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in [("t/one.txt", b"1"), ("t/two/three.txt", b"3")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    archive = tmp_path / "a.tgz"
    archive.write_bytes(buf.getvalue())
    from haathi.client.sources import tar_ops

    client.create_repo("r")
    client.modify_file("r@master", tar_ops(archive, "/x"))
    assert client.get_file("r@master:/x/t/two/three.txt") == b"3"


@pytest.mark.every_shape
def test_read_files_gives_every_file_below_a_path_with_its_bytes_in_path_order(
    repo: Client,
) -> None:
    """A restore's read: one walk, each file's verified bytes in turn. A file read only in
    part, or not at all, does not shift the next file's bytes."""
    content = {
        "/a/empty": b"",
        "/a/big.bin": os.urandom(2_500_000),  # at least three chunks (1 MiB at the most)
        "/a/sub/x.txt": b"x" * 5000,
        "/b.txt": b"b",
    }
    with repo.start_commit("r@master") as c:
        for path, data in content.items():
            c.put_file(path, data)
    got = {f.path: b"".join(chunks) for f, chunks in repo.read_files("r@master:/")}
    assert list(got) == sorted(content) and got == content
    assert repo.inspect_file("r@master:/a/big.bin").chunks > 1

    partial = []
    for f, chunks in repo.read_files("r@master:/a"):
        if f.path == "/a/big.bin":
            next(chunks)  # its first chunk only
            continue
        partial.append((f.path, f.size_bytes, b"".join(chunks)))
    assert partial == [("/a/empty", 0, b""), ("/a/sub/x.txt", 5000, b"x" * 5000)]

    f, chunks = next(iter(repo.read_files("r@master:/b.txt")))
    assert (f.path, b"".join(chunks)) == ("/b.txt", b"b")
    with pytest.raises(NotFound):
        repo.read_files("r@master:/nowhere")  # at the call, before any file


@pytest.mark.every_shape
def test_reading_many_small_files_reads_their_blobs_a_run_at_a_time(
    repo: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blobs written one after another in a pack are read back together (one ranged read, an
    S3 GET, per run of up to 256), not one read per blob; over HTTP, in one request."""
    content = {f"/d/f{i:03d}": f"file {i}\n".encode() * 50 for i in range(300)}
    repo.modify_file("r@master", [bytes_op(data, path) for path, data in content.items()])
    objects = inner(repo).pfs.blobs.objects
    reads: list[int] = []
    get_range = objects.get_range

    def counted(key: str, offset: int, length: int) -> bytes:
        reads.append(length)
        return get_range(key, offset, length)

    monkeypatch.setattr(objects, "get_range", counted)
    got = {f.path: b"".join(chunks) for f, chunks in repo.read_files("r@master:/d")}
    assert got == content
    assert len(reads) <= 12, f"{len(reads)} reads for 300 files (and their tree's nodes)"


def test_a_large_files_chunks_are_read_each_alone_from_a_local_store(
    repo: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a local disk a read costs less than copying a chunk out of a larger read: each
    chunk of a large file (64 KiB or more) is read on its own, exactly its bytes."""
    data = os.urandom(3 * 1024 * 1024)  # random: every chunk stored as it is
    repo.put_file("r@master:/big", data)
    sizes = [len(chunk) for chunk in repo.read_file("r@master:/big")[1]]  # one piece a chunk
    objects = inner(repo).pfs.blobs.objects
    reads: list[int] = []
    get_range = objects.get_range

    def counted(key: str, offset: int, length: int) -> bytes:
        reads.append(length)
        return get_range(key, offset, length)

    monkeypatch.setattr(objects, "get_range", counted)
    with repo.open_file("r@master:/big") as fh:
        assert fh.read() == data
    assert len(sizes) > 3 and reads == sizes


def test_a_directory_put_is_restored_a_run_at_a_time(
    repo: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``put file -r`` stores a directory's files in the order of their paths ("a.txt" before
    "a/", as in the tree), so that restoring it reads their blobs in runs."""
    src = tmp_path / "src"
    names = ["a/x", "a/y/z", "a.txt", "a-b", "b", "B", "c/d/e/f"] + [
        f"m/{i:03d}" for i in range(200)
    ]
    for i, name in enumerate(reversed(names)):  # created out of order
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(f"{name} {i}\n".encode() * 30)
    ops = list(walk_dir(src, "/data"))
    assert [op.path for op in ops] == sorted(f"/data/{n}" for n in names)
    repo.modify_file("r@master", ops)

    objects = inner(repo).pfs.blobs.objects
    reads: list[int] = []
    get_range = objects.get_range

    def counted(key: str, offset: int, length: int) -> bytes:
        reads.append(length)
        return get_range(key, offset, length)

    monkeypatch.setattr(objects, "get_range", counted)
    got = {f.path: b"".join(chunks) for f, chunks in repo.read_files("r@master:/data")}
    assert got == {f"/data/{n}": (src / n).read_bytes() for n in names}
    assert len(reads) <= 12, f"{len(reads)} reads for {len(names)} files (and their tree's nodes)"


def interleaved_files(client: Client, n: int = 900) -> dict[str, bytes]:
    """``n`` files of 1-6 KiB of random bytes below ``r@master:/d``, put in three commits (so
    in three packs), each file in turn in the next; each commit writes its files in reverse
    path order. In path order, no file's blob follows the one before it in a pack."""
    rng = random.Random(7)
    content = {f"/d/f{i:04d}": rng.randbytes(rng.randint(1024, 6144)) for i in range(n)}
    paths = sorted(content)
    for k in range(3):
        ops = [bytes_op(content[p], p) for p in reversed(paths[k::3])]
        client.modify_file("r@master", ops)
    return content


@pytest.mark.every_backend
def test_a_restore_reads_runs_ahead_in_parallel_and_gives_every_file_in_order(
    repo: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore reads ahead: the blobs of upcoming files that lie close together in a pack are
    read together whatever order they were written in, several such runs at once, and what is
    read ahead and not yet given out stays within the read-ahead window (plus the runs of one
    batch of 256 blobs, which may be needed far apart); the files come in path order, byte for
    byte."""
    content = interleaved_files(repo)
    blobs = inner(repo).pfs.blobs
    window = 256 * 1024
    monkeypatch.setattr(readahead, "RUN_BYTES", 32 * 1024)  # many runs
    monkeypatch.setattr(blobs, "read_ahead", ReadAhead(concurrency=8, window=window))
    log = ReadLog(blobs.objects, delay=0.005)
    monkeypatch.setattr(blobs.objects, "get_range", log.get_range)

    got, consumed, most_ahead = [], 0, 0
    for f, chunks in repo.read_files("r@master:/d"):
        data = b"".join(chunks)
        got.append((f.path, data))
        consumed += len(data)  # random bytes: stored as they are, as many bytes as read
        most_ahead = max(most_ahead, log.ahead - consumed)
    assert got == sorted(content.items())
    assert 1 < log.most_in_flight <= 8
    runs = sum(map(len, content.values())) / (32 * 1024)  # about 100, where files are 900
    assert len(log.reads) < 1.5 * runs, f"{len(log.reads)} reads for {len(content)} files"
    assert 0 < most_ahead <= window + 256 * 6144
    assert read_threads() == []


@pytest.mark.every_backend
def test_a_restore_stopped_early_stops_its_reads_ahead(
    repo: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stops taking files (an error writing one out, a client gone) and lets go
    of the file it holds stops the restore: the reads ahead not started are dropped, those in
    flight finish, no thread is left, and nothing more is read. (The file held can be read to
    its end until then.)"""
    content = interleaved_files(repo)
    blobs = inner(repo).pfs.blobs
    monkeypatch.setattr(readahead, "RUN_BYTES", 16 * 1024)
    monkeypatch.setattr(blobs, "read_ahead", ReadAhead(concurrency=8, window=128 * 1024))
    log = ReadLog(blobs.objects, delay=0.02)
    monkeypatch.setattr(blobs.objects, "get_range", log.get_range)

    for i, (f, chunks) in enumerate(repo.read_files("r@master:/d")):
        if i == 2:
            break  # with the third file's bytes not read
        assert b"".join(chunks) == content[f.path]
    assert read_threads() != []  # ``chunks`` can still be read
    del chunks
    assert log.in_flight == 0 and read_threads() == []
    started = len(log.reads)
    assert started < 40, f"{started} reads to give out 2 files"
    assert repo.get_file("r@master:/d/f0500") == content["/d/f0500"]  # the store reads on
    assert len(log.reads) <= started + 2 and read_threads() == []


def test_a_restore_refuses_a_file_the_server_names_outside_the_path(tmp_path: Path) -> None:
    """A server that answers a restore of ``/d`` with ``/d/../../x`` (or ``/e``) is refused
    before the file is handed out: a restore writes each file where its path says. The
    server here is a crafted response (httpx's MockTransport): haathi's own never sends one."""
    import httpx

    from haathi.client.remote import RemoteApi
    from haathi.models.info import FileInfo, FileType
    from haathi.models.tar_stream import tar_of

    def serving(path: str) -> httpx.MockTransport:
        info = FileInfo("r", "c" * 32, path, FileType.FILE, 1, "00", 1)
        body = b"".join(tar_of(iter([(info, iter([b"x"]))])))
        return httpx.MockTransport(lambda _: httpx.Response(200, stream=httpx.ByteStream(body)))

    for bad in ("/d/../../x", "/e", "/dd/x"):
        client = Client(RemoteApi("http://haathi.test", transport=serving(bad)))
        with pytest.raises(StorageError, match="not at or below /d"):
            list(client.read_files("r@master:/d"))
    client = Client(RemoteApi("http://haathi.test", transport=serving("/d/x")))
    assert [(f.path, b"".join(c)) for f, c in client.read_files("r@master:/d")] == [("/d/x", b"x")]
