"""Backend faults: the S3 server or PostgreSQL goes away (or is busy) under a real store.

Each test starts its own SeaweedFS and PostgreSQL (faults kill them, so the session-wide
servers of ``conftest.py`` are not used) and stops them at teardown. A fault may make an
operation fail, but only with a clear :class:`StorageError` (one line from the CLI), and never
leaves a commit that references missing data or loses a commit that was reported done.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import haathi
from haathi.client import Client
from haathi.client.sources import bytes_op
from haathi.errors import StorageError
from haathi.models.info import CommitInfo
from haathi.storage import readahead
from haathi.storage.readahead import ReadAhead
from loopback.servers import Postgres, SeaweedS3
from tests.internals import ReadLog, inner, read_threads

pytestmark = pytest.mark.slow  # its own SeaweedFS and PostgreSQL, killed and restarted

BUCKET = "haathi-faults"
BIG_MIB = 128  # two 64 MiB packs: uploads take long enough to be interrupted
STORAGE_EXIT = 10  # StorageError.exit_code


@pytest.fixture
def s3() -> Iterator[SeaweedS3]:
    server = SeaweedS3(election_timeout_s=1)  # restarts take ~3 s, not ~20 s
    try:
        server.start()
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg() -> Iterator[Postgres]:
    server = Postgres(fsync=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(tmp_path: Path, s3: SeaweedS3, pg: Postgres, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new store on this test's own SeaweedFS and PostgreSQL."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HAATHI_ADDRESS", raising=False)
    path = tmp_path / "store"
    haathi.init(
        str(path), db=pg.create_database(), s3_endpoint=s3.endpoint,
        objects=f"s3://{BUCKET}/{uuid.uuid4().hex}",
    ).close()  # fmt: skip
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float


def haathi_cli(store: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``haathi --address STORE ARGS...`` (the store's config file says the rest)."""
    return subprocess.Popen(
        [sys.executable, "-m", "haathi", "--address", str(store), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, COLUMNS="200"),
    )  # fmt: skip


def finish(proc: subprocess.Popen[bytes], started: float, timeout: float = 300) -> Run:
    out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
               time.monotonic() - started)  # fmt: skip


def run_cli(store: Path, *args: str, timeout: float = 300) -> Run:
    started = time.monotonic()
    return finish(haathi_cli(store, *args), started, timeout)


def assert_one_line_storage_error(run: Run) -> str:
    """The CLI failed as a storage failure should: exit 10, one line on stderr, no traceback."""
    assert run.code == STORAGE_EXIT, f"exit {run.code}, stderr: {run.err!r}"
    assert "Traceback" not in run.err, run.err
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {run.err!r}"
    return lines[0]


def assert_fsck_clean(c: Client) -> None:
    errors = [p for p in c.fsck() if p.severity == "error"]
    assert errors == [], errors


def set_retry_timeout(store: Path, seconds: float) -> None:
    """Write ``[objects] retry_timeout_s`` into the store's config file."""
    cfg = store / "haathi.toml"
    text = cfg.read_text()
    assert "[objects]\n" in text
    cfg.write_text(text.replace("[objects]\n", f"[objects]\nretry_timeout_s = {seconds}\n", 1))


def write_random(path: Path, mib: int) -> str:
    """``mib`` MiB of incompressible bytes at ``path``; returns their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(mib):
            block = os.urandom(1024 * 1024)
            h.update(block)
            fh.write(block)
    return h.hexdigest()


def sha256_of(c: Client, target: str) -> str:
    h = hashlib.sha256()
    with c.open_file(target) as fh:
        while block := fh.read(4 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def ids(commits: list[CommitInfo]) -> list[str]:
    return [c.id for c in commits]


def assert_history(c: Client, expected: list[str]) -> None:
    """The repo's commits are exactly ``expected`` (newest first), finished and linear."""
    history = c.list_commit("r@master")
    assert ids(history) == expected
    assert ids(c.list_commit("r")) == expected  # no stray (open or off-branch) commit
    assert all(ci.finished is not None for ci in history)
    assert [ci.parent for ci in history] == [*expected[1:], None]


def wait_for_spools(spool: Path, count: int, proc: subprocess.Popen[bytes], old: set[Path]) -> bool:
    """Wait until ``proc`` has made ``count`` pack spool files (False if it ended first).

    A pack's spool file is sealed and uploaded while the next one fills (and removed once
    stored), so the second file means the first pack's upload is under way, the third the
    second's. Files in ``old`` were there before ``proc`` started.
    """
    seen: set[Path] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen |= set(spool.glob(".tmp-pack-*")) - old
        if len(seen) >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"the put never had {count} packs in flight")


def test_s3_killed_mid_upload_and_restarted(s3: SeaweedS3, store: Path, tmp_path: Path) -> None:
    c = haathi.connect(str(store))
    try:
        c.create_repo("r")
        c.put_file("r@master:/before", b"safe")
        expected = ids(c.list_commit("r@master"))
        big = tmp_path / "big"
        spool = store / "spool"
        outcomes = []
        # (kill when this many packs were started, retry timeout of the putting process): the
        # first pack uploading while the second fills; a restart 1.5 s later is within the
        # default 60 s of retries. Then 1 s of retries: the put must fail, cleanly.
        for round_, (packs, retry_s) in enumerate(((2, None), (2, 1))):
            if retry_s is not None:
                set_retry_timeout(store, retry_s)
            digest = write_random(big, BIG_MIB)  # new bytes: nothing deduplicates
            old = set(spool.glob(".tmp-pack-*"))
            started = time.monotonic()
            proc = haathi_cli(store, "put", "file", f"r@master:/big{round_}", "-f", str(big))
            try:
                interrupted = wait_for_spools(spool, packs, proc, old)
                s3.kill()
                if retry_s is None:
                    time.sleep(1.5)
                else:
                    proc.wait(timeout=120)
                s3.restart()
                run = finish(proc, started)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert interrupted, f"the put ended before the server was killed: {proc.returncode}"
            outcomes.append((run.code, round(run.seconds, 1)))
            if run.code == 0 and retry_s is None:
                new = c.list_commit("r@master")
                assert len(new) == len(expected) + 1, "one put, one commit"
                expected = [new[0].id, *expected]
                info = c.inspect_file(f"r@master:/big{round_}")
                assert info.size_bytes == BIG_MIB * 1024 * 1024
                assert sha256_of(c, f"r@master:/big{round_}") == digest
            else:
                line = assert_one_line_storage_error(run)
                assert f"s3://{BUCKET}/" in line, line
            assert_history(c, expected)
            assert c.get_file("r@master:/before") == b"safe"
            assert_fsck_clean(c)
            left = set(spool.glob(".tmp-pack-*")) - old
            assert left == set(), f"round {round_} {run}: spool files left behind: {left}"
        # The store works normally afterwards, from this client and a new process.
        c.put_file("r@master:/after", b"after")
        assert run_cli(store, "get", "file", "r@master:/after").out == "after"
        assert_fsck_clean(c)
        print("outcomes (exit code, seconds):", outcomes)
    finally:
        c.close()


def test_s3_down_after_retries_is_a_clear_error(s3: SeaweedS3, store: Path, tmp_path: Path) -> None:
    c = haathi.connect(str(store), s3_retry_timeout=2)
    try:
        c.create_repo("r")
        c.put_file("r@master:/keep", b"kept")
        expected = ids(c.list_commit("r@master"))
        s3.stop(remove=False)

        payload = os.urandom(3 * 1024 * 1024)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            c.put_file("r@master:/lost", payload)
        elapsed = time.monotonic() - started
        message = str(caught.value)
        assert "\n" not in message
        assert f"s3://{BUCKET}/" in message and s3.endpoint in message, message
        assert elapsed < 20, f"gave up after {elapsed:.1f}s with a 2s retry timeout"
        assert_history(c, expected)

        set_retry_timeout(store, 2)
        src = tmp_path / "src"
        src.write_bytes(os.urandom(1024 * 1024))
        run = run_cli(store, "put", "file", "r@master:/cli", "-f", str(src))
        line = assert_one_line_storage_error(run)
        assert line.startswith("error: ") and f"s3://{BUCKET}/" in line, line
        assert run.seconds < 30, f"the CLI gave up after {run.seconds:.1f}s"
        assert_history(c, expected)

        s3.restart()
        c.put_file("r@master:/lost", payload)  # the same client recovers
        assert run_cli(store, "put", "file", "r@master:/cli", "-f", str(src)).code == 0
        history = c.list_commit("r@master")
        assert ids(history)[2:] == expected and len(history) == len(expected) + 2
        assert c.get_file("r@master:/lost") == payload
        assert c.get_file("r@master:/cli") == src.read_bytes()
        assert c.get_file("r@master:/keep") == b"kept"
        assert {f.path for f in c.walk_file("r@master:/")} == {"/keep", "/lost", "/cli"}
        assert_fsck_clean(c)
    finally:
        c.close()


def test_s3_down_in_the_middle_of_a_restore_is_a_clear_error(
    s3: SeaweedS3, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 going away while a restore has GETs in flight ahead of it fails the restore with the
    clear StorageError any read gives once the retry timeout is spent: no hang, no thread
    left behind. The files given out before were whole."""
    c = haathi.connect(str(store), s3_retry_timeout=2)
    try:
        c.create_repo("r")
        files = {f"/d/f{i:04d}": os.urandom(4096) for i in range(2000)}
        c.modify_file("r@master", [bytes_op(data, path) for path, data in files.items()])
        blobs = inner(c).pfs.blobs
        monkeypatch.setattr(readahead, "RUN_BYTES", 64 * 1024)
        monkeypatch.setattr(blobs, "read_ahead", ReadAhead(concurrency=8, window=512 * 1024))
        log = ReadLog(blobs.objects, delay=0.01)
        monkeypatch.setattr(blobs.objects, "get_range", log.get_range)

        restore = iter(c.read_files("r@master:/d"))
        for _ in range(100):
            f, chunks = next(restore)
            assert b"".join(chunks) == files[f.path]
        assert sum(n for _, n in log.reads) < len(files) * 4096 / 2  # most is still unread
        s3.stop(remove=False)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            for f, chunks in restore:
                assert b"".join(chunks) == files[f.path]
        elapsed = time.monotonic() - started
        message = str(caught.value)
        assert "\n" not in message and s3.endpoint in message, message
        assert elapsed < 20, f"gave up after {elapsed:.1f}s with a 2s retry timeout"
        del restore, chunks, caught
        assert log.in_flight == 0 and read_threads() == []
    finally:
        c.close()


OUTAGE_S = 5
RETRY_S = 15  # the retry timeout the clients are given: three times the outage
OUTAGE_CLIENTS = 4


def test_s3_outage_shorter_than_the_retry_timeout_is_ridden_out(
    s3: SeaweedS3, store: Path, tmp_path: Path
) -> None:
    """An outage shorter than the retry timeout (5 s of 15 s; backoff is capped at 5 s)
    delays reads and writes and fails none.

    Several clients write, and several read data they do not have cached, at once: each
    request retries on its own schedule, so one that gives up early (before the retry
    timeout) is not missed by chance.
    """
    # Readers open the same store from another directory: its read cache starts empty.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "haathi.toml").write_bytes((store / "haathi.toml").read_bytes())
    writers = [haathi.connect(str(store), s3_retry_timeout=RETRY_S) for _ in range(OUTAGE_CLIENTS)]
    readers = [
        haathi.connect(str(elsewhere), s3_retry_timeout=RETRY_S) for _ in range(OUTAGE_CLIENTS)
    ]
    c = writers[0]
    try:
        c.create_repo("r")
        stored = [os.urandom(1024 * 1024) for _ in readers]
        for k, data in enumerate(stored):
            c.put_file(f"r@master:/stored{k}", data)
        expected = ids(c.list_commit("r@master"))
        payloads = [os.urandom(1024 * 1024) for _ in writers]
        results: dict[str, float | BaseException] = {}

        def put(k: int) -> None:
            writers[k].put_file(f"r@b{k}:/during", payloads[k])

        def get(k: int) -> None:
            assert readers[k].get_file(f"r@master:/stored{k}") == stored[k]

        def timed(name: str, fn: Callable[[int], None], k: int) -> None:
            started = time.monotonic()
            try:
                fn(k)
                results[name] = time.monotonic() - started
            except BaseException as exc:
                results[name] = exc

        s3.stop(remove=False)
        threads = [
            threading.Thread(target=timed, args=(f"{fn.__name__} {k}", fn, k))
            for k in range(OUTAGE_CLIENTS)
            for fn in (put, get)
        ]
        for t in threads:
            t.start()
        time.sleep(OUTAGE_S)
        s3.restart()
        for t in threads:
            t.join(timeout=120)
        failed = {k: str(r) for k, r in results.items() if isinstance(r, BaseException)}
        assert not failed, (
            f"{sorted(failed)} failed during a {OUTAGE_S}s outage; the first: "
            f"{next(iter(failed.values()))}"
        )
        assert len(results) == len(threads), "an operation did not finish"
        too_quick = {k: r for k, r in results.items() if isinstance(r, float) and r < OUTAGE_S - 1}
        assert too_quick == {}, "operations did not wait for the server"
        assert ids(c.list_commit("r@master")) == expected
        for k in range(OUTAGE_CLIENTS):
            (head,) = c.list_commit(f"r@b{k}")
            assert head.parent is None
            assert c.get_file(f"r@b{k}:/during") == payloads[k]
            assert c.get_file(f"r@master:/stored{k}") == stored[k]
        assert_fsck_clean(c)
    finally:
        for client in writers + readers:
            client.close()


def test_postgres_restarted_between_operations(pg: Postgres, store: Path) -> None:
    c = haathi.connect(str(store))
    try:
        c.create_repo("r")
        for i in range(5):
            c.put_file(f"r@master:/f{i}", f"file {i}".encode())
        expected = ids(c.list_commit("r@master"))

        pg.stop(remove=False, mode="fast")
        pg.restart()
        # The first operation after the restart is a read: it reconnects.
        assert_history(c, expected)
        assert c.get_file("r@master:/f3") == b"file 3"
        c.put_file("r@master:/f5", b"file 5")

        pg.stop(remove=False, mode="fast")
        pg.restart()
        # ... and a write.
        c.put_file("r@master:/f6", b"file 6")
        history = c.list_commit("r@master")
        assert ids(history)[2:] == expected and len(history) == 7

        # An open commit keeps its staged files across a restart.
        with c.start_commit("r@master") as commit:
            commit.put_file("/staged-before", b"before")
            pg.stop(remove=False, mode="fast")
            pg.restart()
            commit.put_file("/staged-after", b"after")

        # While the database is down, operations fail with a clear error, not a hang.
        pg.stop(remove=False, mode="fast")
        started = time.monotonic()
        with pytest.raises(StorageError, match="metadata database"):
            c.list_commit("r@master")
        with pytest.raises(StorageError, match="metadata database"):
            c.put_file("r@master:/never", b"never")
        assert time.monotonic() - started < 30
        pg.restart()

        history = c.list_commit("r@master")
        assert len(history) == 8 and ids(history)[3:] == expected
        assert [ci.parent for ci in history] == [*ids(history)[1:], None]
        files = {f.path: c.get_file(f"r@master:{f.path}") for f in c.walk_file("r@master:/")}
        assert files == {
            **{f"/f{i}": f"file {i}".encode() for i in range(7)},
            "/staged-before": b"before", "/staged-after": b"after",
        }  # fmt: skip
        assert_fsck_clean(c)
    finally:
        c.close()


WRITER = """
import sys, haathi
c = haathi.connect(sys.argv[1])
w = sys.argv[2]
for i in range(int(sys.argv[3])):
    c.put_file(f"r@master:/w{w}/f{i:03d}", f"writer {w} file {i}\\n".encode())
c.close()
"""
WRITERS = 8
COMMITS_EACH = 25


def test_eight_processes_writing_one_branch_on_postgres_and_s3(store: Path) -> None:
    c = haathi.connect(str(store))
    try:
        c.create_repo("r")
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(store), str(w), str(COMMITS_EACH)],
                stderr=subprocess.PIPE,
            )
            for w in range(WRITERS)
        ]
        errs = [p.communicate(timeout=600)[1].decode(errors="replace") for p in procs]
        elapsed = time.monotonic() - started
        assert [p.returncode for p in procs] == [0] * WRITERS, errs
        total = WRITERS * COMMITS_EACH

        history = c.list_commit("r@master")
        assert len(history) == total
        assert all(ci.finished is not None for ci in history)
        # Linear: walking parents from the head visits every commit once, ending at the root.
        parent = {ci.id: ci.parent for ci in history}
        walked: list[str] = []
        at: str | None = c.inspect_branch("r@master").head
        while at is not None:
            walked.append(at)
            at = parent[at]
        assert walked == ids(history) and len(set(walked)) == total
        # Each commit added exactly one file to its parent's.
        assert [ci.file_count for ci in reversed(history)] == list(range(1, total + 1))

        head = {f.path: f for f in c.walk_file("r@master:/")}
        want = {
            f"/w{w}/f{i:03d}": f"writer {w} file {i}\n".encode()
            for w in range(WRITERS) for i in range(COMMITS_EACH)
        }  # fmt: skip
        assert set(head) == set(want)
        assert {p: c.get_file(f"r@master:{p}") for p in want} == want
        assert_fsck_clean(c)
        print(
            f"{total} commits from {WRITERS} processes in {elapsed:.1f}s"
        )  # a figure, not a bound
    finally:
        c.close()
