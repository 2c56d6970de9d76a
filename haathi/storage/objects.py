"""Object-store backends: where packs live.

Every backend keeps the same contract (``tests/conformance/test_object_stores.py`` runs one
suite against each):

- A key is one or more ``/``-separated segments; a segment is not empty, does not start with a
  dot (stores keep their temporary files there) and holds no control character or backslash.
  Any other key is :class:`InvalidArgument` in every operation; a valid key is stored as given.
- ``put_file`` makes the whole object visible at once (a reader sees no object, the old one, or
  the new one, never part of one), and replaces an object stored under the same key. haathi
  writes each key once (packs are named by a random ID); replacing is for repairs and tests.
- Reading a missing object, or bytes past its end, is :class:`NotFound`; deleting a missing
  object is not an error. ``list_objects(prefix)`` lists the objects whose keys start with the
  string ``prefix``, with their sizes and the time each was written.
- Failures of the store itself are :class:`StorageError`: no other exception type escapes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from haathi.errors import InvalidArgument, NotFound, StorageError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch


class ObjectStore(Protocol):
    """The operations haathi needs from any object store (see the module docstring)."""

    def put_file(self, key: str, source: Path) -> None:
        """Store the local file ``source`` under ``key`` durably and atomically; may consume it."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` of object ``key``."""

    def size(self, key: str) -> int:
        """Size in bytes of object ``key``; NotFound if absent."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def check(self) -> None:
        """Fail with a clear StorageError unless the store can be used."""

    def close(self) -> None: ...


Read = TypeVar("Read", bytes, memoryview)


def check_length(key: str, offset: int, length: int, data: Read) -> Read:
    """``data`` if it is the ``length`` bytes asked for, else NotFound naming the truncation."""
    if len(data) != length:
        raise NotFound(
            f"object {key} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}"
        )
    return data


_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def check_key(key: str) -> str:
    """``key`` if it is a valid object key (see the module docstring), else InvalidArgument."""
    segments = key.split("/")
    if any(not seg or seg.startswith(".") for seg in segments) or _BAD_KEY_CHARS.search(key):
        raise InvalidArgument(f"invalid object key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` if some valid key starts with it (``""`` does), else InvalidArgument."""
    if prefix:
        try:
            check_key(prefix + "x")  # its last segment may be cut short, or not begun
        except InvalidArgument:
            raise InvalidArgument(f"invalid object key prefix {prefix!r}") from None
    return prefix


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OpenObject:
    """An object of a :class:`LocalObjectStore` open for reading as a file of its own (``fd``),
    for reads its holders make themselves (``os.preadv``, ``os.sendfile``); closed once
    nothing refers to it any more, so that a holder never meets its descriptor closed or
    reused under it."""

    __slots__ = ("fd", "key")

    def __init__(self, fd: int, key: str) -> None:
        self.fd, self.key = fd, key

    def fileno(self) -> int:
        return self.fd

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # also at the interpreter's exit
            os.close(self.fd)


class LocalObjectStore:
    """Objects as files below a directory: fsync'd, renamed into place, never rewritten.

    Open files are cached. A store object reads back what it wrote at once; another store
    object on the same directory keeps reading a file it had open until it is replaced or
    deleted through that other object (objects are written once, so this is only seen after a
    repair, or when a pack that gc deleted is still read).
    """

    def __init__(self, root: Path, *, open_files: int = 64) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._handles: OrderedDict[str, BinaryIO] = OrderedDict()
        self._max_handles = open_files
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, source: Path) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                os.replace(source, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(source, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise StorageError(f"cannot store object {key}: {exc.strerror or exc}") from exc
        with self._lock:  # a handle cached for a replaced object reads the old file
            cached = self._handles.pop(key, None)
            if cached is not None:
                cached.close()

    @staticmethod
    def _copy_in(source: Path, dest: Path) -> None:
        """Store ``source`` from another file system: a copy beside ``dest``, renamed into place."""
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(source, "rb") as src, open(tmp, "xb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        Path(source).unlink()

    def _handle(self, key: str) -> BinaryIO:
        fh = self._handles.get(key)
        if fh is not None:
            self._handles.move_to_end(key)
            return fh
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - cached handle, closed on eviction
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc
        except OSError as exc:
            raise StorageError(f"cannot open object {key}: {exc.strerror or exc}") from exc
        self._handles[key] = fh
        if len(self._handles) > self._max_handles:
            _, old = self._handles.popitem(last=False)
            old.close()
        return fh

    def open(self, key: str) -> OpenObject:
        """Object ``key`` open for reading on a descriptor of its own (NotFound if absent)."""
        try:
            return OpenObject(os.open(self._path(key), os.O_RDONLY), key)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc
        except OSError as exc:
            raise StorageError(f"cannot open object {key}: {exc.strerror or exc}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._lock:
            fh = self._handle(key)
            try:
                data = os.pread(fh.fileno(), length, offset)
            except OSError as exc:
                raise StorageError(f"cannot read object {key}: {exc.strerror or exc}") from exc
        return check_length(key, offset, length, data)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc
        except OSError as exc:
            raise StorageError(f"cannot inspect object {key}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._lock:
            fh = self._handles.pop(key, None)
            if fh is not None:
                fh.close()
        try:
            path.unlink(missing_ok=True)
        except NotADirectoryError:
            pass  # a "directory" of the key is an object: the key is not there
        except OSError as exc:
            raise StorageError(f"cannot delete object {key}: {exc.strerror or exc}") from exc

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        for dirpath, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # temporary files, not keys
            for name in files:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                if rel.startswith(prefix) and not name.startswith("."):
                    try:
                        st = os.stat(full)
                    except FileNotFoundError:
                        continue
                    yield ObjectInfo(rel, st.st_size, st.st_mtime)

    def check(self) -> None:
        """Nothing to check: a local directory is there once created."""

    def close(self) -> None:
        with self._lock:
            for fh in self._handles.values():
                fh.close()
            self._handles.clear()


class MemoryObjectStore:
    """Objects in this process's memory: for tests of the layers above (and the conformance
    suite's reference)."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def put_file(self, key: str, source: Path) -> None:
        check_key(key)
        try:
            data = Path(source).read_bytes()
            Path(source).unlink()
        except OSError as exc:
            raise StorageError(f"cannot store object {key}: {exc.strerror or exc}") from exc
        with self._lock:
            self._objects[key] = (data, time.time())

    def _data(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise NotFound(f"object {key} is missing from the object store")
        return found[0]

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return check_length(key, offset, length, self._data(key)[offset : offset + length])

    def size(self, key: str) -> int:
        return len(self._data(key))

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        with self._lock:
            found = [ObjectInfo(k, len(d), t) for k, (d, t) in self._objects.items()]
        return iter([info for info in found if info.key.startswith(prefix)])

    def check(self) -> None:
        """Nothing to check: memory is always there."""

    def close(self) -> None:
        pass
