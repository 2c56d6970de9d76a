"""The store-ID marker: a small object ``store-id`` beside the packs, naming the store they
belong to (the metadata database records the same ID)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from haathi.errors import Corrupt, NotFound
from haathi.storage.objects import ObjectStore

MARKER_KEY = "store-id"
_PREFIX = "haathi store "
_FORMAT = re.compile(rf"{_PREFIX}([0-9a-f]{{32}})\n")


def read_marker(objects: ObjectStore) -> str | None:
    """The store ID the object store is marked with, None if it has no marker."""
    try:
        size = objects.size(MARKER_KEY)
        raw = objects.get_range(MARKER_KEY, 0, min(size, 256))
    except NotFound:
        return None
    found = _FORMAT.fullmatch(raw.decode("ascii", errors="replace"))
    if found is None:
        raise Corrupt(
            f"the object store's {MARKER_KEY} marker is damaged ({raw[:60]!r}): restore it "
            "from a backup (it holds the store ID that the metadata database records)"
        )
    return found.group(1)


def write_marker(objects: ObjectStore, store_id: str, spool_dir: Path) -> None:
    """Mark the object store as holding the store ``store_id`` (atomically)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    tmp = spool_dir / f".tmp-marker-{uuid.uuid4().hex}"
    try:
        tmp.write_text(f"{_PREFIX}{store_id}\n")
        objects.put_file(MARKER_KEY, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def pack_ids(objects: ObjectStore, *, limit: int | None = None) -> list[str]:
    """IDs of the pack objects in the object store (at most ``limit`` of them)."""
    out: list[str] = []
    for info in objects.list_objects("packs/"):
        out.append(info.key.rsplit("/", 1)[-1])
        if limit is not None and len(out) >= limit:
            break
    return out
