"""What S3 requests share (:class:`Gateway`) and what one request carries (:class:`Call`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from haathi.api import Api
from haathi.server.s3.buckets import Bucket, Snapshot, open_bucket
from haathi.server.s3.callers import Access
from haathi.server.s3.multipart import UploadLimits, Uploads

T = TypeVar("T")


class Gateway:
    """The S3 gateway of one server: its Api, its upload limit and the multipart uploads in
    progress."""

    def __init__(
        self,
        api: Api,
        *,
        max_upload_bytes: int | None = None,
        upload_limits: UploadLimits | None = None,
    ) -> None:
        self.api = api
        self.max_upload_bytes = max_upload_bytes
        self.uploads = Uploads(upload_limits)

    def close(self) -> None:
        """Drop multipart uploads in progress and their spooled parts."""
        self.uploads.close()


@dataclass
class Call:
    """One S3 request: the gateway, who it acts as, and the bucket and key it names."""

    gateway: Gateway
    access: Access
    request: Request
    bucket: Bucket | None = None
    key: str | None = None

    @property
    def api(self) -> Api:
        return self.access.api

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``fn(*args, **kw)`` on a worker thread (the Api blocks)."""
        return await run_in_threadpool(fn, *args, **kw)

    @property
    def the_bucket(self) -> Bucket:
        assert self.bucket is not None
        return self.bucket

    @property
    def the_key(self) -> str:
        assert self.key is not None
        return self.key

    async def snapshot(self) -> Snapshot:
        return await self.run(open_bucket, self.api, self.the_bucket)
