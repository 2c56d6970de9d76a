"""Objects in an S3-compatible service (AWS S3, SeaweedFS, MinIO, ...) through obstore.

Credentials come from the store's config or the usual ``AWS_*`` environment variables. Large
objects go up as multipart uploads; reads are ranged GETs. Transient failures (5xx, timeouts,
dropped connections) are retried with exponential backoff for up to ``retry_timeout`` seconds,
then reported as one clear :class:`StorageError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from haathi.errors import NotFound, StorageError
from haathi.storage.objects import ObjectInfo, check_key, check_length, check_prefix

MULTIPART_CHUNK = 8 * 1024 * 1024
UPLOAD_CONCURRENCY = 8


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _range_not_satisfiable(exc: BaseException) -> bool:
    """Whether a ranged GET failed with HTTP 416: the range starts past the object's end.
    (obstore gives no status code, only the message that quotes it.)"""
    return "416 Range Not Satisfiable" in str(exc)


class S3ObjectStore:
    """Implements :class:`haathi.storage.objects.ObjectStore` on one bucket and key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        retry_timeout: float = 60.0,
    ) -> None:
        self._retry_timeout = retry_timeout
        self.where = f"s3://{bucket}/{prefix}".rstrip("/") + (f" at {endpoint}" if endpoint else "")
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        if access_key_id:
            config["access_key_id"] = access_key_id
        if secret_access_key:
            config["secret_access_key"] = secret_access_key
        try:
            self._store = S3Store(
                bucket,
                prefix=prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options={
                    "allow_http": bool(endpoint and endpoint.startswith("http://")),
                    "connect_timeout": "5s",
                    "timeout": "120s",
                },
                retry_config={
                    "max_retries": 100_000,  # the retry timeout decides, not a count
                    "retry_timeout": timedelta(seconds=retry_timeout),
                    "backoff": {
                        "init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=5),
                        "base": 2,
                    },
                },
            )
        except (BaseError, ValueError) as exc:
            raise StorageError(f"cannot use object store {self.where}: {_first_line(exc)}") from exc

    def _error(self, action: str, key: str, exc: BaseException) -> Exception:
        if isinstance(exc, FileNotFoundError):
            return NotFound(f"object {key} is missing from the object store {self.where}")
        return StorageError(f"cannot {action} object {key} in {self.where}: {_first_line(exc)}")

    def _missing_source(self, key: str, source: Path) -> StorageError:
        return StorageError(f"cannot upload object {key} to {self.where}: no file {source}")

    def put_file(self, key: str, source: Path) -> None:
        """Upload ``source``; an upload that fails anyway (obstore does not retry timeouts of
        PUTs, which are not "safe" requests) is tried again with backoff until the retry
        timeout is spent. Packs are immutable, so a repeated upload writes the same bytes."""
        check_key(key)
        deadline = time.monotonic() + self._retry_timeout
        delay = 0.2
        while True:
            try:
                obstore.put(
                    self._store, key, Path(source),
                    chunk_size=MULTIPART_CHUNK, max_concurrency=UPLOAD_CONCURRENCY,
                )  # fmt: skip
                break
            except FileNotFoundError as exc:  # the local file: a PUT finds no object missing
                raise self._missing_source(key, source) from exc
            except (PermissionDeniedError, UnauthenticatedError) as exc:
                raise self._error("upload", key, exc) from exc
            except (BaseError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    raise self._error("upload", key, exc) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        Path(source).unlink(missing_ok=True)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length == 0:
            self.size(key)  # no bytes to read, but a missing object is still NotFound
            return b""
        check_key(key)
        try:
            data = bytes(obstore.get_range(self._store, key, start=offset, length=length))
        except (BaseError, OSError) as exc:
            if _range_not_satisfiable(exc):  # the object ends before ``offset``
                check_length(key, offset, length, b"")
            raise self._error("read", key, exc) from exc
        return check_length(key, offset, length, data)

    def size(self, key: str) -> int:
        check_key(key)
        try:
            return int(obstore.head(self._store, key)["size"])
        except (BaseError, OSError) as exc:
            raise self._error("inspect", key, exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass
        except (BaseError, OSError) as exc:
            raise self._error("delete", key, exc) from exc

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # obstore's prefix is whole segments ("packs/a" lists "packs/a/..." only): list from
        # the last "/" and keep the keys that start with the string ``prefix``
        base = check_prefix(prefix).rpartition("/")[0]
        try:
            for batch in obstore.list(self._store, prefix=base or None):
                for meta in batch:
                    key = str(meta["path"])
                    if key.startswith(prefix):
                        modified = meta["last_modified"].timestamp()
                        yield ObjectInfo(key, int(meta["size"]), modified)
        except (BaseError, OSError) as exc:
            raise StorageError(f"cannot list {self.where}: {_first_line(exc)}") from exc

    def check(self) -> None:
        """Fail with a clear error unless the bucket can be listed."""
        next(iter(self.list_objects("packs/")), None)

    def close(self) -> None:
        pass
