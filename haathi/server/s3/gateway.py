"""What S3 requests share (:class:`Gateway`) and what one request carries (:class:`Call`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from haathi.server.s3.backend import Access, Backend, BucketRef, Buckets, View
from haathi.server.s3.multipart import UploadLimits, Uploads

T = TypeVar("T")


class Gateway:
    """An S3 gateway: its buckets (``backend``), its upload limit and the multipart uploads
    in progress (spooled under ``spool_root``, else the system's temporary directory)."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_upload_bytes: int | None = None,
        upload_limits: UploadLimits | None = None,
        spool_root: Path | None = None,
    ) -> None:
        self.backend = backend
        self.max_upload_bytes = max_upload_bytes
        self.uploads = Uploads(upload_limits, spool_root)

    def close(self) -> None:
        """Drop multipart uploads in progress and their spooled parts."""
        self.uploads.close()
        self.backend.close()


@dataclass
class Call:
    """One S3 request: the gateway, who it acts as, and the bucket and key it names."""

    gateway: Gateway
    access: Access
    request: Request
    bucket: BucketRef | None = None
    key: str | None = None

    @property
    def buckets(self) -> Buckets:
        return self.access.buckets

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``fn(*args, **kw)`` on a worker thread (the Api blocks)."""
        return await run_in_threadpool(fn, *args, **kw)

    @property
    def the_bucket(self) -> BucketRef:
        assert self.bucket is not None
        return self.bucket

    @property
    def the_key(self) -> str:
        assert self.key is not None
        return self.key

    async def snapshot(self) -> View:
        return await self.run(self.buckets.open, self.the_bucket)
