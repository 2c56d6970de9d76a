"""A put of millions of files is streamed: ``modify_file`` given an iterator of puts (what
``put file -r`` gives it) takes one op at a time and holds no op, change or entry per file in
memory. It keeps the guarantees of a put given as a list: one atomic commit, nothing visible on
a failure, paths validated and clashes refused, each before the bytes of its own file are
read (a list is checked whole before any byte is read)."""

from __future__ import annotations

import gc
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import haathi
from haathi.client import Client, dirput
from haathi.client.sources import bytes_op, file_op, scan_dir
from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.meta import blob_index
from haathi.models.ops import DeleteOp, Op, PutOp
from haathi.models.refspec import CommitSpec
from haathi.pfs import changelog, lifecycle, puts
from haathi.pfs.commits import resolve
from haathi.storage.blobs import CHECK_BATCH_COUNT, BlobStore
from haathi.storage.encoder import Encoders
from tests.internals import inner
from tests.test_bad_input import _chunks_of


class Opened:
    """Puts whose files record being opened (read), and whether Python's collector was on."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.collector: list[bool] = []

    def put(self, path: str, data: bytes = b"x") -> PutOp:
        def open_() -> BinaryIO:
            self.paths.append(path)
            self.collector.append(gc.isenabled())
            return io.BytesIO(data)

        return PutOp(path, open_, size_hint=len(data))


def files(client: Client, ref: str = "r@master") -> dict[str, bytes]:
    return {f.path: client.get_file(f"{ref}:{f.path}") for f in client.walk_file(f"{ref}:/")}


@pytest.mark.every_shape
def test_an_iterator_of_puts_makes_one_commit(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/old", b"old")
    content = {f"/d{i % 7}/f{i:04}": f"{i}".encode() for i in range(300)}
    client.modify_file("r@master", (bytes_op(v, p) for p, v in sorted(content.items())))
    assert files(client) == {"/old": b"old", **content}
    assert len(client.list_commit("r")) == 2


def test_many_puts_spill_to_disk_and_go_in_batches_as_one_list_would(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a few thousand changes the write keeps them in a temp file, and puts in path order
    reach the tree in batches (each onto the tree the batches before made): the commit is the
    one the same puts given as a list make, node for node."""
    monkeypatch.setattr(changelog, "SPILL", 50)
    monkeypatch.setattr(lifecycle, "APPLY_BATCH", 64)
    client.create_repo("r")
    client.put_file("r@master:/d2/f0100", b"overwritten")
    client.put_file("r@master:/zz", b"after them all")
    client.create_branch("r@listed", head="master")
    content = {f"/d{i % 7}/f{i:04}": f"{i}".encode() for i in range(1000)}
    ops = [bytes_op(v, p) for p, v in sorted(content.items())]
    client.modify_file("r@master", iter(ops))
    client.modify_file("r@listed", ops)
    assert files(client) == {"/zz": b"after them all", **content}
    assert client.diff_file("r@master", "r@listed") == []
    pfs = inner(client).pfs
    with pfs.db.read() as conn:
        roots = {b: resolve(conn, CommitSpec("r", b)).root for b in ("master", "listed")}
    assert roots["master"] == roots["listed"]


def test_a_bad_path_fails_the_stream_before_its_file_is_read(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/keep", b"0")
    opened = Opened()
    ops = [opened.put("/a"), opened.put("/b"), opened.put("/c/../d"), opened.put("/e")]
    with pytest.raises(InvalidArgument, match=r"'\.\.' is not allowed"):
        client.modify_file("r@master", iter(ops))
    assert opened.paths == ["/a", "/b"]  # read before the bad path came: garbage for gc
    assert files(client) == {"/keep": b"0"}
    assert len(client.list_commit("r")) == 1


@pytest.mark.parametrize(
    ("paths", "message", "read"),
    [
        (["/a", "/e/f", "/z"], "/e is a file, so /e/f cannot", ["/a"]),  # the branch's file
        (["/a", "/d", "/d/f"], "/d is a file, so /d/f cannot", ["/a", "/d"]),  # a path before
        (["/a", "/old", "/z"], "/old is a directory", ["/a"]),  # the branch's directory
    ],
)
def test_a_clash_is_refused_before_the_file_making_it_is_read(
    client: Client, paths: list[str], message: str, read: list[str]
) -> None:
    client.create_repo("r")
    client.put_file("r@master:/e", b"file")
    client.put_file("r@master:/old/x", b"in a directory")
    opened = Opened()
    with pytest.raises(FailedPrecondition, match=message):
        client.modify_file("r@master", (opened.put(p) for p in paths))
    assert opened.paths == read
    assert files(client) == {"/e": b"file", "/old/x": b"in a directory"}


def test_a_stream_out_of_path_order_is_checked_whole(client: Client) -> None:
    client.create_repo("r")
    with pytest.raises(FailedPrecondition, match="file / directory path collision"):
        client.modify_file("r@master", iter([bytes_op(b"1", "/b/c"), bytes_op(b"2", "/b")]))
    assert client.list_commit("r") == []
    client.modify_file("r@master", iter([bytes_op(b"2", "/b"), bytes_op(b"1", "/a")]))
    assert files(client) == {"/a": b"1", "/b": b"2"}


def test_a_stream_only_puts(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    ops: Iterator[Op] = iter([bytes_op(b"2", "/b"), DeleteOp("/a")])
    with pytest.raises(InvalidArgument, match="a stream of ops can only put files"):
        client.modify_file("r@master", ops)  # type: ignore[arg-type]
    assert files(client) == {"/a": b"1"}


def test_a_stream_into_an_open_commit_is_staged(client: Client) -> None:
    client.create_repo("r")
    with client.start_commit("r@master"):
        client.modify_file("r@master", (bytes_op(b"%d" % i, f"/f{i}") for i in range(3)))
        with pytest.raises(FailedPrecondition, match="/f1 is a file"):
            client.modify_file("r@master", iter([bytes_op(b"below", "/f1/g")]))
    assert files(client) == {"/f0": b"0", "/f1": b"1", "/f2": b"2"}


def test_the_collector_is_paused_while_a_write_runs(client: Client) -> None:
    """Reference counting frees what a write makes; the cyclic collector's passes over every
    live object cost a quarter of a million-file put's CPU."""
    client.create_repo("r")
    opened = Opened()
    assert gc.isenabled()
    client.modify_file("r@master", iter([opened.put("/a"), opened.put("/b")]))
    client.modify_file("r@master", [opened.put("/c")])
    assert opened.collector == [False, False, False]
    assert gc.isenabled()
    with pytest.raises(InvalidArgument):
        client.modify_file("r@master", iter([opened.put("/d"), opened.put("/bad\x00")]))
    assert gc.isenabled()


def test_a_directory_put_makes_its_ops_as_the_write_takes_them(
    client: Client, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / name).write_bytes(name.encode())
    client.create_repo("r")
    api, spec, cache = inner(client), CommitSpec("r", "master"), tmp_path / "cache"
    put = dirput.plan(api, spec, [scan_dir(src, "/"), bytes_op(b"c", "/c")], cache)
    streamed = put.ops()
    assert isinstance(streamed, Iterator)
    assert [op.path for op in streamed] == ["/a", "/b", "/c"]
    put = dirput.plan(api, spec, [scan_dir(src, "/"), DeleteOp("/x")], cache)
    assert isinstance(put.ops(), list)  # (deletes and copies go in a list)


def test_a_writer_remembers_only_the_blobs_not_yet_indexed(client: Client) -> None:
    """A blob writer dedups against the blobs it has not seen indexed yet (pending, in the pack
    being written, in packs being stored) and against the index: a blob given again after its
    pack was indexed is not stored twice, and the writer's memory does not grow with what it
    wrote (32 bytes per blob, for ``keep_reused``)."""
    blobs = inner(client).pfs.blobs
    small = BlobStore(blobs.objects, blobs.index, blobs.spool_dir, pack_target=64 * 1024)
    data = [os.urandom(1024) for _ in range(6_000)]
    with small.writer() as writer:
        digests = [writer.put(d) for d in data]
        remembered = len(writer._pending_digests) + sum(len(s.digests) for _, s in writer._inflight)
        # the pending batch (looked up in the index together) and a few 64 KiB packs' worth
        assert remembered < CHECK_BATCH_COUNT + 300
        assert [writer.put(d) for d in data] == digests  # again: found indexed or in flight
        assert writer.referenced == frozenset(digests)
    assert set(blobs.index.locate(digests)) == set(digests)
    with inner(client).pfs.db.read() as conn:
        rows = [r for p in blob_index.packs_indexed(conn) for r in blob_index.pack_blobs(conn, p)]
        assert len(rows) == 6_000  # each stored once


def test_a_small_file_read_whole_is_read_again_when_it_grew(client: Client, tmp_path: Path) -> None:
    """A small local file is read in one system call, whole; one that grew since it was seen
    (larger than its size said) is read again as a stream, to its end."""
    client.create_repo("r")
    grown, same = tmp_path / "grown", tmp_path / "same"
    grown.write_bytes(b"x" * 100)
    same.write_bytes(b"y" * 100)
    ops = [file_op(grown, "/grown"), file_op(same, "/same")]
    grown.write_bytes(b"z" * 3_000_000)  # past a whole read, and chunked
    client.modify_file("r@master", iter(ops))
    assert files(client) == {"/grown": b"z" * 3_000_000, "/same": b"y" * 100}


def test_the_collector_is_paused_while_a_directory_is_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from haathi.client import sources

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    seen: list[bool] = []
    entries = sources._entries

    def watched(local: str, prefix: str) -> list[tuple[str, os.DirEntry[str]]]:
        seen.append(gc.isenabled())
        return entries(local, prefix)

    monkeypatch.setattr(sources, "_entries", watched)
    assert [f.rel for f in scan_dir(tmp_path, "/").files] == ["d/f"]
    assert seen == [False, False]
    assert gc.isenabled()


@pytest.mark.parametrize(("meanwhile", "refused"), [("/b", True), ("/m", False)])
def test_a_branch_that_moves_during_a_stream_is_checked_again_before_the_commit(
    client: Client, meanwhile: str, refused: bool
) -> None:
    """The paths of a stream are checked against the head of the branch when it starts; if
    another commit lands on the branch while the stream runs, the whole write is checked again
    against the new head before it commits: a file and a directory at one path are still
    refused, and nothing of the stream becomes visible."""
    client.create_repo("r")
    client.put_file("r@master:/keep", b"0")

    def ops() -> Iterator[PutOp]:
        yield bytes_op(b"1", "/a")
        client.put_file(f"r@master:{meanwhile}", b"another writer's")  # the branch moves
        yield bytes_op(b"2", "/b/c")
        yield bytes_op(b"3", "/d")

    before = {"/keep": b"0", meanwhile: b"another writer's"}
    if refused:
        with pytest.raises(FailedPrecondition, match="/b is a file, so /b/c cannot"):
            client.modify_file("r@master", ops())
        assert files(client) == before
        assert len(client.list_commit("r")) == 2
    else:
        client.modify_file("r@master", ops())
        assert files(client) == {**before, "/a": b"1", "/b/c": b"2", "/d": b"3"}
        assert len(client.list_commit("r")) == 3


def _fds_in(directory: Path) -> list[str]:
    """What this process's open file descriptors below ``directory`` point at."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # (the descriptor listdir itself used)
        if target.startswith(f"{directory}/"):
            out.append(target)
    return out


@pytest.mark.parametrize("fails", [False, True])
def test_a_spilled_change_log_is_an_unnamed_file_closed_when_the_write_ends(
    client: Client, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """Past a few thousand changes a write keeps them in a temp file in the store's spool
    directory: one without a name (nothing to clean up after a crash, even a SIGKILL), and
    closed when the write ends, committed or failed."""
    monkeypatch.setattr(changelog, "SPILL", 10)
    client.create_repo("r")
    spool = Path(os.path.realpath(inner(client).pfs.blobs.spool_dir))
    names_before = set(os.listdir(spool))
    during: list[tuple[set[str], list[str]]] = []

    def ops() -> Iterator[PutOp]:
        for i in range(50):
            if i == 40:  # the log spilled 30 changes ago
                during.append((set(os.listdir(spool)) - names_before, _fds_in(spool)))
            yield bytes_op(b"%d" % i, f"/f{i:03}")
        if fails:
            yield bytes_op(b"", "/bad\x00name")

    if fails:
        with pytest.raises(InvalidArgument):
            client.modify_file("r@master", ops())
        assert client.list_commit("r") == []
    else:
        client.modify_file("r@master", ops())
        assert len(files(client)) == 50
    [(new_names, open_fds)] = during
    assert new_names == set()  # no name in the directory
    assert len(open_fds) == 1 and open_fds[0].endswith(" (deleted)")  # the log, unnamed
    assert _fds_in(spool) == []
    assert set(os.listdir(spool)) == names_before


@pytest.mark.slow
def test_a_directory_put_killed_midway_commits_all_of_it_or_nothing(
    client: Client, store: Path, tmp_path: Path
) -> None:
    """``put file -r`` of many small files (streamed: its change log spilled, its tree built
    in batches) killed at any moment leaves the branch at its old head or at a commit of every
    file, never part of them; fsck finds no error."""
    src = tmp_path / "src"
    for d in range(10):  # 8,000 files: the change log spills past 4,096
        (src / f"d{d:02}").mkdir(parents=True)
        for f in range(800):
            (src / f"d{d:02}" / f"f{f:04}").write_bytes(b"%d-%d" % (d, f) + os.urandom(64))
    client.create_repo("r")
    client.put_file("r@master:/before", b"safe")
    client.close()
    cmd = [sys.executable, "-m", "haathi", "put", "file", "r@master:/data", "-r", "-f", str(src)]
    env = dict(os.environ, HAATHI_ADDRESS=str(store), HAATHI_PRELOAD="0")
    t0 = time.monotonic()
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # how long a whole put takes
    whole = time.monotonic() - t0
    with haathi.connect(str(store)) as c:
        assert len(c.walk_file("r@master:/data")) == 8_000
        c.delete_file("r@master:/data", recursive=True)
    outcomes = set()
    for part in (0.3, 0.6, 0.85, 0.95):  # scanning, storing, building the tree, ...
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(part * whole)
        p.send_signal(signal.SIGKILL)
        p.wait()
        with haathi.connect(str(store)) as c:
            listed = {f.path for f in c.walk_file("r@master:/")}
            outcomes.add(len(listed))
            assert len(listed) in (1, 8_001), "a commit of part of the files"
            assert all(p.state.value == "FINISHED" for p in c.list_commit("r"))
            assert c.get_file("r@master:/before") == b"safe"
            assert [p for p in c.fsck() if p.severity == "error"] == []
            if len(listed) == 8_001:
                c.delete_file("r@master:/data", recursive=True)  # the next one starts anew
    assert 1 in outcomes  # (at least one kill came before the commit)


def _done(result: Any) -> Future[Any]:
    done: Future[Any] = Future()
    done.set_result(result)
    return done


def _ready_at_once(self: Encoders, files: list[tuple[str, int]], chunker: str) -> Future[Any]:
    """A write stores files itself until its helper runs: here, it runs at once."""
    return _done([]) if not files else submit(self, files, chunker)


submit = Encoders.submit


def test_helper_processes_encode_small_files_as_this_process_would(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a few hundred small local files, helper processes read, hash and compress them,
    and the write stores their blobs in the files' order: the commit is the one a write
    without helpers makes, and the files lie in the packs in path order. A file that grew
    since it was seen, or is too large, is read here; empty and multi-chunk ones go through
    the helpers too."""
    submitted: list[int] = []

    def counted(self: Encoders, files: list[tuple[str, int]], chunker: str) -> Future[Any]:
        if not files:  # the write asks whether the helper runs: say it does, at once
            return _done([])
        submitted.append(len(files))
        return submit(self, files, chunker)

    monkeypatch.setattr(Encoders, "submit", counted)
    monkeypatch.setattr(puts, "HELPERS_AFTER", 4)
    monkeypatch.setattr(puts, "BATCH_FILES", 16)
    monkeypatch.setattr(puts, "_helpers", lambda parallelism: 1)
    src = tmp_path / "src"
    for i in range(200):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i:03}").write_bytes(os.urandom(i * 7))
    (src / "big").write_bytes(os.urandom(200_000))  # more than one chunk
    (src / "large").write_bytes(os.urandom(1_200_000))  # read here, as a stream
    scan = scan_dir(src, "/")
    (src / "d1" / "f190").write_bytes(b"grown " * 1000)  # larger than the scan saw
    client.create_repo("r")
    client.create_branch("r@alone")
    client.modify_file("r@master", (scan.op(f) for f in scan.files), parallelism=4)
    assert sum(submitted) == 201 - 3  # every small file but the 3 before the helper started
    monkeypatch.setattr(puts, "_helpers", lambda parallelism: 0)
    client.modify_file("r@alone", (scan.op(f) for f in scan.files), parallelism=4)
    expected = {f"/{f.rel}": (src / f.rel).read_bytes() for f in scan.files}
    assert files(client) == expected
    assert client.diff_file("r@master", "r@alone") == []
    pfs = inner(client).pfs
    with pfs.db.read() as conn:
        roots = {b: resolve(conn, CommitSpec("r", b)).root for b in ("master", "alone")}
        assert roots["master"] == roots["alone"]
    digests = [d for p in sorted(expected) for d in _chunks_of(client, f"r@master:{p}")]
    places = [(loc.pack, loc.offset) for loc in map(pfs.blobs.locate(digests).get, digests)]
    assert places == sorted(places)  # (one pack here: in path order)


def test_a_file_gone_before_a_helper_reads_it_fails_the_write(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Encoders, "submit", _ready_at_once)
    monkeypatch.setattr(puts, "HELPERS_AFTER", 1)
    monkeypatch.setattr(puts, "_helpers", lambda parallelism: 1)
    for i in range(40):
        (tmp_path / f"f{i:02}").write_bytes(b"%d" % i)
    scan = scan_dir(tmp_path, "/")
    (tmp_path / "f30").unlink()
    client.create_repo("r")
    with pytest.raises(InvalidArgument, match=r"cannot read .*f30: No such file"):
        client.modify_file("r@master", (scan.op(f) for f in scan.files), parallelism=2)
    assert client.list_commit("r") == []


def test_a_helper_that_dies_leaves_its_files_to_the_write(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper process that dies (killed, out of memory) takes nothing with it: the files it
    held, and every later one, are read and stored by the write itself."""
    batches: list[int] = []

    def dies_on_the_second(self: Encoders, files: list[tuple[str, int]], chunker: str) -> Any:
        if not files:
            return _done([])
        batches.append(len(files))
        if len(batches) == 2:
            return self._pool.submit(os._exit, 1)
        return submit(self, files, chunker)

    monkeypatch.setattr(Encoders, "submit", dies_on_the_second)
    monkeypatch.setattr(puts, "HELPERS_AFTER", 1)
    monkeypatch.setattr(puts, "BATCH_FILES", 10)
    monkeypatch.setattr(puts, "_helpers", lambda parallelism: 1)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(100):
        (src / f"f{i:02}").write_bytes(b"%d" % i)
    scan = scan_dir(src, "/")
    client.create_repo("r")
    client.modify_file("r@master", (scan.op(f) for f in scan.files), parallelism=2)
    assert files(client) == {f"/f{i:02}": b"%d" % i for i in range(100)}
    assert len(batches) >= 2
