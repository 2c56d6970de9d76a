"""Builds the parts of a store (metadata, objects, blobs, services) from its config."""

from __future__ import annotations

from dataclasses import dataclass

from haathi.config import StoreConfig
from haathi.errors import StorageError
from haathi.meta.blob_index import SqlBlobIndex
from haathi.meta.database import Database
from haathi.pfs.context import PfsContext
from haathi.storage.blobs import BlobStore, remove_stale_spools
from haathi.storage.objects import LocalObjectStore


@dataclass
class Runtime:
    config: StoreConfig
    db: Database
    objects: LocalObjectStore
    pfs: PfsContext

    def close(self) -> None:
        self.objects.close()
        self.db.dispose()


def open_store(config: StoreConfig) -> Runtime:
    """Open (creating on first use) an embedded store."""
    try:
        config.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create store {config.root}: {exc.strerror}") from exc
    db = Database(config.db_url)
    db.ensure_schema()
    objects = LocalObjectStore(config.objects_dir)
    blobs = BlobStore(objects, SqlBlobIndex(db), config.spool_dir)
    remove_stale_spools(config.spool_dir)
    return Runtime(config, db, objects, PfsContext.create(db, blobs))
