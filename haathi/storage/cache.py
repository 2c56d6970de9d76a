"""A bounded on-disk cache of recently read blobs, for stores whose objects are remote.

Entries are the blobs' stored payloads, named by digest. The blob store verifies every payload
it reads, so a damaged entry is dropped and read again from the object store. When the cache
grows past its bound, the least recently used entries are removed until it is back to 80%.
Several processes may share one cache directory: writes are atomic renames.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from pathlib import Path


class BlobCache:
    """Digest -> payload files below ``root``, at most about ``max_bytes`` in total."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None

    def _path(self, digest: bytes) -> Path:
        h = digest.hex()
        return self.root / h[:2] / h

    def get(self, digest: bytes) -> bytes | None:
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recency for eviction
        return data

    def has(self, digest: bytes) -> bool:
        """Whether an entry for ``digest`` is there (not whether it is sound)."""
        h = digest.hex()
        return os.path.isfile(f"{self._root}/{h[:2]}/{h}")  # a stat per blob read: no Path

    def put(self, digest: bytes, payload: bytes) -> None:
        if self.max_bytes <= 0 or len(payload) > self.max_bytes // 8:
            return
        path = self._path(digest)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(payload)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        with self._lock:
            self._size = (self._size if self._size is not None else self.usage()) + len(payload)
            if self._size > self.max_bytes:
                self._size = self._evict(int(self.max_bytes * 0.8))

    def discard(self, digest: bytes) -> None:
        self._path(digest).unlink(missing_ok=True)

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for sub in self.root.glob("[0-9a-f][0-9a-f]"):
            for entry in os.scandir(sub):
                if entry.name.startswith(".tmp-"):
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat()
                    out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def usage(self) -> int:
        """Bytes the cache holds now."""
        return sum(size for _, size, _ in self._entries())

    def _evict(self, target: int) -> int:
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total
