"""Which store this is: metadata and objects must belong to the same store.

A store has a random ID, recorded in its metadata database (``store_info``) and in its object
store (the ``store-id`` marker beside the packs). Opening a store checks that the two agree,
before anything is created or changed, so that objects are never paired with missing, empty or
foreign metadata (which would make every pack look like garbage to ``gc``):

- no metadata, and objects that hold packs or a marker: refused;
- both record an ID and the IDs differ: refused, naming both;
- one side records no ID yet (a store made before store IDs, a crash while creating one): the
  metadata must account for the objects (they share a pack, or both hold none); then the ID
  (the marker's, if there is one, else a new one) is recorded where it is missing;
- a new store (no metadata, no objects): gets a new ID on both sides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from haathi.errors import IncompatibleStore
from haathi.meta.blob_index import any_pack_known, pack_count
from haathi.meta.database import Database
from haathi.meta.store_id import claim_id, stored_chunker, stored_id
from haathi.storage.chunker import DEFAULT, LEGACY
from haathi.storage.marker import MARKER_KEY, pack_ids, read_marker, write_marker
from haathi.storage.objects import ObjectStore

_UNCHANGED = "the store was not opened and nothing was changed"


@dataclass(frozen=True, slots=True)
class StoreParts:
    """A store's metadata database and object store, with how to name them in messages."""

    db: Database
    objects: ObjectStore
    spool_dir: Path
    db_where: str
    objects_where: str


@dataclass(frozen=True, slots=True)
class Identity:
    """A store's ID and the chunker that cuts its files (new stores get the default one)."""

    store_id: str
    chunker: str


def open_identity(parts: StoreParts) -> Identity:
    """Check (creating the schema, and recording the ID where it is missing, only when that is
    safe) that the metadata and the objects are one store's; its ID and chunker."""
    marker = read_marker(parts.objects)
    if parts.db.is_empty():
        held = pack_ids(parts.objects, limit=1)
        if marker is not None or held:
            what = f"the data of store {marker}" if marker else "packs"
            raise IncompatibleStore(
                f"the object store {parts.objects_where} holds {what}, but the metadata "
                f"database {parts.db_where} is missing or empty; {_UNCHANGED}: restore the "
                "metadata database from a backup, or point the store at its own database"
            )
    parts.db.ensure_schema()
    with parts.db.read() as conn:
        recorded, chunker = stored_id(conn), stored_chunker(conn)
    if recorded is not None and marker is not None:
        if recorded != marker:
            raise IncompatibleStore(
                f"the metadata database {parts.db_where} belongs to store {recorded} but the "
                f"object store {parts.objects_where} to store {marker}; {_UNCHANGED}: point "
                "the store at the metadata and objects of one store"
            )
        return Identity(recorded, chunker)
    try:
        empty = _check_accounts_for(parts, recorded, marker)
    except IncompatibleStore:
        agreed = _agreed(parts)  # another process may have just made a new store here
        if agreed is None:
            raise
        return _identity(parts, agreed)
    with parts.db.write() as conn:
        # A store holding packs already was cut by the chunker of the time.
        store_id = claim_id(
            conn, recorded or marker or uuid.uuid4().hex, DEFAULT if empty else LEGACY
        )
    if marker is None:
        write_marker(parts.objects, store_id, parts.spool_dir)
    elif store_id != marker:  # another process recorded a different ID meanwhile
        raise IncompatibleStore(
            f"the metadata database {parts.db_where} belongs to store {store_id} but the "
            f"object store {parts.objects_where} to store {marker}; {_UNCHANGED}"
        )
    return _identity(parts, store_id)


def _identity(parts: StoreParts, store_id: str) -> Identity:
    with parts.db.read() as conn:
        return Identity(store_id, stored_chunker(conn))


def _agreed(parts: StoreParts) -> str | None:
    """The store ID, if the metadata and the objects now both record the same one."""
    marker = read_marker(parts.objects)
    with parts.db.read() as conn:
        recorded = stored_id(conn)
    return recorded if recorded is not None and recorded == marker else None


def _check_accounts_for(parts: StoreParts, recorded: str | None, marker: str | None) -> bool:
    """With the ID missing on one side: IncompatibleStore unless the metadata's packs and the
    objects' packs are one store's (they share a pack, or neither side has any); whether
    neither has any."""
    held = pack_ids(parts.objects)
    with parts.db.read() as conn:
        indexed = pack_count(conn)
        shared = bool(held) and any_pack_known(conn, held)
    if shared or (not held and not indexed):
        return not shared
    meta = f"store {recorded}" if recorded else "a store"
    objs = f"the object store {parts.objects_where}" + (f" of store {marker}" if marker else "")
    if not held:
        raise IncompatibleStore(
            f"the metadata database {parts.db_where} of {meta} records {_packs(indexed)}, but "
            f"{objs} holds none; "
            f"{_UNCHANGED}: check the store's objects location, or restore its objects"
        )
    raise IncompatibleStore(
        f"the metadata database {parts.db_where} of {meta} records none of the "
        f"{_packs(len(held))} in {objs}; {_UNCHANGED}: restore the store's "
        "metadata database from a backup, or point the store at its own database"
    )


def _packs(n: int) -> str:
    return f"{n} pack" if n == 1 else f"{n} packs"


def verify_identity(db: Database, objects: ObjectStore, action: str) -> None:
    """IncompatibleStore unless the metadata and the object store record the same store ID
    (checked again before anything is deleted: an ID that cannot be confirmed stops it)."""
    marker = read_marker(objects)
    with db.read() as conn:
        recorded = stored_id(conn)
    if recorded is None or marker is None or recorded != marker:
        raise IncompatibleStore(
            f"{action} refused: the metadata records store {recorded or '(none)'} and the "
            f"object store's {MARKER_KEY} names store {marker or '(none: no marker)'}, so "
            "the objects cannot be accounted for; nothing was deleted"
        )
