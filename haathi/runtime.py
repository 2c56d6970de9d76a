"""Builds the parts of a store (metadata, objects, blobs, services) from its config."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from haathi.config import StoreConfig, check_no_store, mask_url, protected_paths, write_config
from haathi.errors import StorageError
from haathi.meta.blob_index import SqlBlobIndex
from haathi.meta.database import Database
from haathi.pfs.context import PfsContext
from haathi.pfs.identity import StoreParts, open_identity
from haathi.pps.context import PpsContext
from haathi.pps.openlineage import LineageSink
from haathi.storage.blobs import BlobStore, remove_stale_spools
from haathi.storage.cache import BlobCache
from haathi.storage.chunker import MIN_CHUNK
from haathi.storage.objects import LocalObjectStore
from haathi.storage.readahead import ReadAhead

if TYPE_CHECKING:
    from haathi.storage.s3 import S3ObjectStore


@dataclass
class Runtime:
    config: StoreConfig
    db: Database
    objects: LocalObjectStore | S3ObjectStore
    pfs: PfsContext
    pps: PpsContext
    store_id: str

    def close(self) -> None:
        if self.pps.lineage is not None:
            self.pps.lineage.close()  # sends what is queued (bounded wait)
        self.objects.close()
        self.db.dispose()


def object_store(config: StoreConfig) -> LocalObjectStore | S3ObjectStore:
    """The store's object store (a local directory, or a bucket and prefix in S3)."""
    if not config.is_s3:
        return LocalObjectStore(config.objects_dir)
    from haathi.storage.s3 import S3ObjectStore  # only S3 stores pay for importing obstore

    bucket, prefix = config.s3_bucket_prefix
    return S3ObjectStore(
        bucket,
        prefix,
        endpoint=config.s3_endpoint,
        region=config.s3_region,
        access_key_id=config.s3_access_key_id,
        secret_access_key=config.s3_secret_access_key,
        retry_timeout=config.s3_retry_timeout,
    )


def read_ahead(config: StoreConfig) -> ReadAhead:
    """How far streams of reads run ahead: on S3 several GETs in flight, as configured; on a
    local directory none (a read from the page cache costs less than handing it to a thread),
    and a file's chunks (64 KiB or more) each read alone, not copied out of a larger read."""
    if not config.is_s3:
        return ReadAhead(alone=MIN_CHUNK)
    return ReadAhead(config.s3_read_concurrency, config.s3_read_ahead_bytes)


def open_store(config: StoreConfig) -> Runtime:
    """Open (creating it on first use) the store ``config`` describes, once its metadata and
    objects are known to be one store's (:mod:`haathi.pfs.identity`)."""
    try:
        config.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create store {config.root}: {exc.strerror}") from exc
    db = Database(config.db_url)
    objects: LocalObjectStore | S3ObjectStore | None = None
    try:
        objects = object_store(config)
        identity = open_identity(StoreParts(
            db, objects, config.spool_dir, mask_url(config.db_url),
            config.objects_url if config.is_s3 else str(config.objects_dir),
        ))  # fmt: skip
    except BaseException:
        if objects is not None:
            objects.close()
        db.dispose()
        raise
    cache = BlobCache(config.cache_dir, config.cache_bytes) if config.is_s3 else None
    blobs = BlobStore(
        objects,
        SqlBlobIndex(db),
        config.spool_dir,
        cache=cache,
        chunker=identity.chunker,
        read_ahead=read_ahead(config),
    )
    remove_stale_spools(config.spool_dir)
    pfs = PfsContext.create(db, blobs)
    pps = PpsContext(
        pfs,
        scratch_dir=config.root / "scratch",
        remote_store=functools.partial(worker_store, config),
        executor=None if config.executor in (None, "local") else config.executor,
        sandbox=config.sandbox,
        sandbox_paths=config.sandbox_paths,
        runtime=config.runtime,
        image_pull_policy=config.image_pull_policy,
        allow_network=config.allow_network,
        protected_paths=protected_paths(config),
        job_lease_s=config.job_lease_s,
        store_key=f"{config.root}|{config.db_url}|{config.objects_url}",
        lineage=_lineage(config),
        secrets_key_path=config.secrets_key_path,
        own_objects=(*config.s3_bucket_prefix, config.s3_endpoint) if config.is_s3 else None,
        own_db_url=config.db_url,
    )
    return Runtime(config, db, objects, pfs, pps, identity.store_id)


def _lineage(config: StoreConfig) -> LineageSink | None:
    if not (config.openlineage_url or config.openlineage_file):
        return None
    return LineageSink(
        namespace=config.openlineage_namespace,
        url=config.openlineage_url,
        path=config.openlineage_path,
    )


def worker_store(config: StoreConfig) -> PfsContext:
    """The store as a pipeline worker process (e.g. a dask worker) opens it."""
    return open_store(config).pfs


def init_store(config: StoreConfig) -> Runtime:
    """Create a new store: check its backends are reachable, then write its config file."""
    check_no_store(config.root)
    try:
        runtime = open_store(config)
        try:
            runtime.objects.check()
            write_config(config)
        except BaseException:
            runtime.close()
            raise
    except BaseException:
        for leftover in config.root.glob("meta.db*"):  # a failed init leaves no store behind
            leftover.unlink(missing_ok=True)
        raise
    return runtime
