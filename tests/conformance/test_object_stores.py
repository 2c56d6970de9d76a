"""The object-store contract, one suite run against every backend: a local directory, S3 (a real
SeaweedFS on loopback) and memory.

What every backend promises (``haathi/storage/objects.py`` states it): a put makes the whole
object visible at once and replaces an object of the same key; reading a missing object, or
bytes past its end, is ``NotFound``; listing goes by string prefix and gives each object's
size and the time it was written; a key is ``/``-separated segments, none empty or starting
with a dot, without control characters or backslashes, and any other key is
``InvalidArgument`` everywhere; the store's own failures are ``StorageError``.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from haathi.errors import HaathiError, InvalidArgument, NotFound, StorageError
from haathi.storage.objects import LocalObjectStore, MemoryObjectStore, ObjectStore
from haathi.storage.s3 import S3ObjectStore
from loopback.servers import ACCESS_KEY, SECRET_KEY
from tests.conftest import BUCKET, Backends


@dataclass
class Impl:
    """One backend under test: its store, and how to open another store object on the same
    objects (as another process would; memory has no other, so it is the same object)."""

    name: str
    objects: ObjectStore
    reopen: Callable[[], ObjectStore]
    spool: Path  # where the test writes the files it puts

    def put(self, key: str, data: bytes) -> None:
        source = self.spool / f"src-{uuid.uuid4().hex}"
        source.write_bytes(data)
        self.objects.put_file(key, source)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(o.key for o in self.objects.list_objects(prefix))

    def read(self, key: str) -> bytes:
        return self.objects.get_range(key, 0, self.objects.size(key))


def s3_store(backends: Backends, prefix: str) -> S3ObjectStore:
    s3 = backends.start().s3
    assert s3 is not None
    return S3ObjectStore(
        BUCKET, prefix, endpoint=s3.endpoint, region="us-east-1",
        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, retry_timeout=10,
    )  # fmt: skip


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow), "memory"])
def impl(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Impl]:
    """A new, empty object store of each kind."""
    spool = tmp_path / "spool"  # beside a local store's directory: the same file system
    spool.mkdir()
    opened: list[ObjectStore] = []

    def opener(make: Callable[[], ObjectStore]) -> Callable[[], ObjectStore]:
        def reopen() -> ObjectStore:
            opened.append(make())
            return opened[-1]

        return reopen

    kind = request.param
    if kind == "local":
        reopen = opener(lambda: LocalObjectStore(tmp_path / "objects"))
    elif kind == "s3":
        backends = request.getfixturevalue("backends")
        prefix = uuid.uuid4().hex
        reopen = opener(lambda: s3_store(backends, prefix))
    else:
        memory = MemoryObjectStore()
        reopen = opener(lambda: memory)
    yield Impl(kind, reopen(), reopen, spool)
    for objects in opened:
        objects.close()


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# ---------------------------------------------------------------------------------------------
# Reading what was put


def test_a_new_store_is_empty_and_usable(impl: Impl) -> None:
    impl.objects.check()
    assert impl.keys() == []
    assert not impl.objects.exists("packs/ab/x")


def test_what_is_put_is_read_back_whole_and_in_any_range(impl: Impl) -> None:
    data = random_bytes(100_003)
    impl.put("packs/ab/obj", data)
    objects = impl.objects
    assert objects.exists("packs/ab/obj")
    assert objects.size("packs/ab/obj") == len(data)
    assert objects.get_range("packs/ab/obj", 0, len(data)) == data
    rng = random.Random(1)
    for _ in range(30):
        offset = rng.randrange(len(data))
        length = rng.randrange(len(data) - offset + 1)
        assert objects.get_range("packs/ab/obj", offset, length) == data[offset : offset + length]
    assert objects.get_range("packs/ab/obj", len(data) - 1, 1) == data[-1:]
    for offset in (0, 500, len(data)):
        assert objects.get_range("packs/ab/obj", offset, 0) == b""


def test_reading_past_the_end_is_not_found_naming_the_truncation(impl: Impl) -> None:
    impl.put("obj", b"0123456789")
    for offset, length in [(0, 11), (9, 2), (10, 1), (500, 10)]:
        with pytest.raises(NotFound, match=f"object obj is truncated: wanted {length} bytes"):
            impl.objects.get_range("obj", offset, length)


def test_a_missing_object_is_not_found(impl: Impl) -> None:
    objects = impl.objects
    impl.put("other", b"x")
    for read in (
        lambda: objects.get_range("missing", 0, 10),
        lambda: objects.get_range("missing", 0, 0),
        lambda: objects.size("missing"),
    ):
        with pytest.raises(NotFound, match="object missing is missing"):
            read()
    assert not objects.exists("missing")
    objects.delete("missing")  # deleting what is not there is no error
    assert impl.keys() == ["other"]


def test_an_empty_object(impl: Impl) -> None:
    impl.put("empty", b"")
    assert impl.objects.exists("empty")
    assert impl.objects.size("empty") == 0
    assert impl.objects.get_range("empty", 0, 0) == b""
    assert [(o.key, o.size) for o in impl.objects.list_objects()] == [("empty", 0)]


def test_a_large_object_reads_back_across_its_upload_parts(impl: Impl) -> None:
    """20 MiB: S3 uploads it in 8 MiB parts; reads that span part boundaries are whole."""
    data = os.urandom(20 * 1024 * 1024)
    impl.put("packs/big", data)
    objects = impl.objects
    assert objects.size("packs/big") == len(data)
    whole = objects.get_range("packs/big", 0, len(data))
    assert hashlib.sha256(whole).digest() == hashlib.sha256(data).digest()
    for boundary in (8 * 1024 * 1024, 16 * 1024 * 1024):
        start = boundary - 1000
        assert objects.get_range("packs/big", start, 2000) == data[start : start + 2000]


# ---------------------------------------------------------------------------------------------
# Writing


def test_put_replaces_an_object_whole(impl: Impl) -> None:
    objects = impl.objects
    impl.put("obj", b"a" * 1000)
    assert objects.get_range("obj", 0, 1000) == b"a" * 1000  # read: a local store caches it
    impl.put("obj", b"b" * 10)
    assert objects.size("obj") == 10
    assert objects.get_range("obj", 0, 10) == b"b" * 10
    with pytest.raises(NotFound, match="truncated"):
        objects.get_range("obj", 0, 11)
    assert [(o.key, o.size) for o in objects.list_objects()] == [("obj", 10)]
    impl.put("obj", b"c" * 2000)
    assert impl.read("obj") == b"c" * 2000


def test_the_object_does_not_depend_on_its_source_file(impl: Impl) -> None:
    """A put may consume its source file; whatever it leaves, the caller may change or delete."""
    source = impl.spool / "source"
    source.write_bytes(b"original")
    impl.objects.put_file("obj", source)
    if source.exists():
        source.write_bytes(b"changed!")
        source.unlink()
    assert impl.read("obj") == b"original"


def test_the_source_may_be_on_another_file_system(impl: Impl) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == impl.spool.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) on this machine")
    source = shm / f"haathi-test-{uuid.uuid4().hex}"
    try:
        source.write_bytes(b"from elsewhere")
        impl.objects.put_file("obj", source)
    finally:
        source.unlink(missing_ok=True)
    assert impl.read("obj") == b"from elsewhere"


def test_a_failed_put_stores_nothing(impl: Impl) -> None:
    missing = impl.spool / "never-written"
    with pytest.raises(StorageError, match=r"cannot (store|upload) object obj"):
        impl.objects.put_file("obj", missing)
    assert not impl.objects.exists("obj")
    assert impl.keys() == []


def test_readers_never_see_part_of_an_object(impl: Impl) -> None:
    """While one thread replaces an object again and again (9 MiB: S3 uploads it in parts), a
    reader sees no object or one whole version, never a mix or a short one."""
    length, versions = 9 * 1024 * 1024, 3
    seen: set[int] = set()
    problems: list[str] = []
    done = threading.Event()

    def read() -> None:
        reader = impl.reopen()
        while not done.is_set():
            try:
                data = reader.get_range("obj", 0, length)
            except NotFound as exc:
                if "truncated" in str(exc):
                    problems.append(str(exc))
                continue
            if data != bytes([data[0]]) * length:
                problems.append(f"a mix of versions {sorted(set(data))}")
            seen.add(data[0])

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for version in range(1, versions + 1):
            impl.put("obj", bytes([version]) * length)
            time.sleep(0.05)
    finally:
        done.set()
        thread.join()
    assert problems == []
    assert seen <= set(range(1, versions + 1)) and seen, seen
    assert impl.read("obj") == bytes([versions]) * length


def test_threads_putting_and_reading_at_once(impl: Impl) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(8):
                key = f"packs/t{t}/{i}"
                impl.put(key, f"{t}-{i}".encode() * 100)
                assert impl.read(key) == f"{t}-{i}".encode() * 100
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert impl.keys("packs/") == sorted(f"packs/t{t}/{i}" for t in range(6) for i in range(8))


def test_delete_removes_the_object_and_only_it(impl: Impl) -> None:
    objects = impl.objects
    impl.put("d/1", b"one")
    impl.put("d/2", b"two")
    assert objects.get_range("d/1", 0, 3) == b"one"  # read: a local store caches it
    objects.delete("d/1")
    assert not objects.exists("d/1")
    with pytest.raises(NotFound):
        objects.size("d/1")
    with pytest.raises(NotFound):
        objects.get_range("d/1", 0, 3)
    assert impl.keys() == ["d/2"]
    objects.delete("d/1")
    impl.put("d/1", b"again")
    assert impl.read("d/1") == b"again" and impl.read("d/2") == b"two"


def test_another_store_object_sees_what_this_one_writes_and_deletes(impl: Impl) -> None:
    """Two processes on one store: what one puts, the other finds, and so for deletes."""
    other = impl.reopen()
    impl.put("packs/new", b"new")
    assert other.exists("packs/new") and other.size("packs/new") == 3
    assert other.get_range("packs/new", 0, 3) == b"new"
    assert [o.key for o in other.list_objects("packs/")] == ["packs/new"]
    other.delete("packs/new")
    assert not impl.objects.exists("packs/new")
    with pytest.raises(NotFound):
        impl.objects.size("packs/new")


# ---------------------------------------------------------------------------------------------
# Listing


def test_listing_goes_by_string_prefix(impl: Impl) -> None:
    keys = ["p", "packs/aa/1", "packs/ab/2", "packs/b", "packsx", "store-id"]
    for key in keys:
        impl.put(key, key.encode())
    assert impl.keys() == keys
    assert impl.keys("packs/") == ["packs/aa/1", "packs/ab/2", "packs/b"]
    assert impl.keys("packs/a") == ["packs/aa/1", "packs/ab/2"]
    assert impl.keys("packs") == ["packs/aa/1", "packs/ab/2", "packs/b", "packsx"]
    assert impl.keys("packs/aa/1") == ["packs/aa/1"]
    assert impl.keys("p") == keys[:5]
    assert impl.keys("nothing") == []


def test_listing_gives_sizes_and_when_each_object_was_written(impl: Impl) -> None:
    before = time.time()
    impl.put("a", b"x" * 10)
    impl.put("b/c", b"")
    after = time.time()
    listed = {o.key: o for o in impl.objects.list_objects()}
    assert {k: o.size for k, o in listed.items()} == {"a": 10, "b/c": 0}
    for info in listed.values():  # S3 keeps whole seconds
        assert before - 1.5 <= info.modified <= after + 1.5, (info, before, after)


# ---------------------------------------------------------------------------------------------
# Keys

ODD_KEYS = [
    "with space", "trailing space ", "uni/ćč/日本語", "a+b=c&d", "percent%41", "q?x#frag",
    "tilde~", "semi;colon,comma", "star*[1]", "quotes'\"", "dots.in.name...", "a\u0085b",
]  # fmt: skip
BAD_KEYS = [
    "", "/abs", "a//b", "a/", "./a", "a/./b", "a/../b", "..", ".hidden", "a/.tmp-x",
    "nul\x00", "ctl\x01", "new\nline", "del\x7f", "back\\slash",
]  # fmt: skip


def test_keys_with_odd_characters_are_stored_as_given(impl: Impl) -> None:
    for i, key in enumerate(ODD_KEYS):
        impl.put(key, f"object {i}".encode())
    assert impl.keys() == sorted(ODD_KEYS)
    for i, key in enumerate(ODD_KEYS):
        assert impl.read(key) == f"object {i}".encode(), key
        impl.objects.delete(key)
    assert impl.keys() == []


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_an_invalid_key_is_refused_everywhere_and_nothing_is_stored(impl: Impl, key: str) -> None:
    objects = impl.objects
    source = impl.spool / "source"
    source.write_bytes(b"data")
    for call in (
        lambda: objects.put_file(key, source),
        lambda: objects.get_range(key, 0, 1),
        lambda: objects.size(key),
        lambda: objects.exists(key),
        lambda: objects.delete(key),
    ):
        with pytest.raises(InvalidArgument, match="invalid object key"):
            call()
    assert source.read_bytes() == b"data"
    assert impl.keys() == []


@pytest.mark.parametrize("prefix", ["/", "a//", ".tmp", "a/.", "x\x00"], ids=repr)
def test_an_invalid_prefix_is_refused(impl: Impl, prefix: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid object key prefix"):
        list(impl.objects.list_objects(prefix))


def test_a_key_below_another_key(impl: Impl) -> None:
    """``a`` and ``a/b``: an object store keeps both; a directory of files cannot (``a`` is a
    file), and says so with a StorageError. Either way nothing else changes, and a key below
    an object is simply missing."""
    impl.put("a", b"file")
    try:
        impl.put("a/b", b"below")
    except StorageError:
        assert impl.name == "local"
        assert impl.keys() == ["a"]
    else:
        assert impl.keys() == ["a", "a/b"] and impl.read("a/b") == b"below"
    assert impl.read("a") == b"file"
    with pytest.raises(NotFound):
        impl.objects.size("a/x/y")
    with pytest.raises(NotFound):
        impl.objects.get_range("a/x/y", 0, 1)
    assert not impl.objects.exists("a/x/y")
    impl.objects.delete("a/x/y")


# ---------------------------------------------------------------------------------------------
# What only one backend has


def test_local_temporary_files_are_not_objects(tmp_path: Path) -> None:
    """A local store keeps its spool (``.tmp/``) and half-copied files (``.tmp-*``) in its own
    directory; they are never listed."""
    objects = LocalObjectStore(tmp_path / "objects")
    (tmp_path / "objects" / ".tmp").mkdir()
    (tmp_path / "objects" / ".tmp" / "spooled").write_bytes(b"x")
    (tmp_path / "objects" / "packs").mkdir()
    (tmp_path / "objects" / "packs" / ".tmp-123").write_bytes(b"x")
    (tmp_path / "src").write_bytes(b"obj")
    objects.put_file("packs/obj", tmp_path / "src")
    assert [o.key for o in objects.list_objects()] == ["packs/obj"]


def test_s3_stores_with_different_prefixes_are_apart(backends: Backends, tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    one, other = s3_store(backends, name), s3_store(backends, f"{name}x")
    (tmp_path / "src").write_bytes(b"one")
    one.put_file("packs/k", tmp_path / "src")
    assert [o.key for o in one.list_objects()] == ["packs/k"]
    assert list(other.list_objects()) == [] and not other.exists("packs/k")


def test_s3_an_unknown_bucket_is_a_clear_storage_error(backends: Backends) -> None:
    s3 = backends.start().s3
    assert s3 is not None
    objects = S3ObjectStore(
        "no-such-bucket-here", endpoint=s3.endpoint, region="us-east-1",
        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, retry_timeout=2,
    )  # fmt: skip
    with pytest.raises(StorageError) as caught:
        objects.check()
    assert "s3://no-such-bucket-here" in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, HaathiError)
