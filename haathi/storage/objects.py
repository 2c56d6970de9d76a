"""Object-store backends: where packs live. Objects are immutable once written."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from haathi.errors import InvalidArgument, NotFound, StorageError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch


class ObjectStore(Protocol):
    """The operations haathi needs from any object store."""

    def put_file(self, key: str, source: Path) -> None:
        """Store the local file ``source`` under ``key`` durably and atomically; may consume it."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` of object ``key``."""

    def size(self, key: str) -> int:
        """Size in bytes of object ``key``; NotFound if absent."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]: ...


def check_length(key: str, offset: int, length: int, data: bytes) -> bytes:
    """``data`` if it is the ``length`` bytes asked for, else NotFound naming the truncation."""
    if len(data) != length:
        raise NotFound(
            f"object {key} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}"
        )
    return data


def check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/") or "\x00" in key:
        raise InvalidArgument(f"invalid object key {key!r}")
    return key


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore:
    """Objects as files below a directory: fsync'd, renamed into place, never rewritten."""

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
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(source, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(source, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise StorageError(f"cannot store object {key}: {exc.strerror or exc}") from exc
        with self._lock:  # a handle cached for a replaced object reads the old file
            cached = self._handles.pop(key, None)
            if cached is not None:
                cached.close()

    def _handle(self, key: str) -> BinaryIO:
        fh = self._handles.get(key)
        if fh is not None:
            self._handles.move_to_end(key)
            return fh
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - cached handle, closed on eviction
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc
        except OSError as exc:
            raise StorageError(f"cannot open object {key}: {exc.strerror or exc}") from exc
        self._handles[key] = fh
        if len(self._handles) > self._max_handles:
            _, old = self._handles.popitem(last=False)
            old.close()
        return fh

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
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        with self._lock:
            fh = self._handles.pop(key, None)
            if fh is not None:
                fh.close()
        self._path(key).unlink(missing_ok=True)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                if rel.startswith(prefix) and not name.startswith(".tmp"):
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
    """In-memory objects, for unit tests of the layers above only."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    def put_file(self, key: str, source: Path) -> None:
        self._objects[check_key(key)] = Path(source).read_bytes()
        Path(source).unlink()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            data = self._objects[key]
        except KeyError as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc
        return data[offset : offset + length]

    def size(self, key: str) -> int:
        try:
            return len(self._objects[key])
        except KeyError as exc:
            raise NotFound(f"object {key} is missing from the object store") from exc

    def exists(self, key: str) -> bool:
        return key in self._objects

    def delete(self, key: str) -> None:
        self._objects.pop(key, None)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        items = [(k, len(v)) for k, v in self._objects.items() if k.startswith(prefix)]
        return iter([ObjectInfo(k, n, 0.0) for k, n in items])

    def close(self) -> None:
        pass
