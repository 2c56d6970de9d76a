"""Where a gateway's buckets live: what its S3 operations ask of them (:class:`Buckets`), and
who a request acts as (:class:`Backend`, :class:`Access`).

The operations (:mod:`~haathi.server.s3.objects`, :mod:`~haathi.server.s3.listing`,
:mod:`~haathi.server.s3.uploads`, :mod:`~haathi.server.s3.routing`) speak S3: requests, bodies,
signatures, pages, multipart uploads. The buckets they name are a backend's:

- :class:`~haathi.server.s3.repo_buckets.RepoBuckets`, ``haathi serve``'s gateway: the branches
  and commits of every repo the caller may read, through the Api;
- :class:`~haathi.server.s3.job_buckets.JobBuckets`, a job's sidecar
  (:mod:`haathi.server.sidecar`): its input buckets and ``out``, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from haathi.models.auth import Caller
from haathi.models.info import FileInfo
from haathi.server.s3 import sigv4


class BucketRef(Protocol):
    """A bucket a request names (hashable: multipart uploads are kept by bucket and key)."""

    @property
    def name(self) -> str: ...

    def require_writable(self) -> None:
        """Raise ``AccessDenied`` for a read-only bucket."""


class View(Protocol):
    """What reads of a bucket see, fixed for one request: every object reports ``time`` as
    its LastModified."""

    @property
    def bucket(self) -> BucketRef: ...

    @property
    def time(self) -> datetime: ...


class Buckets(Protocol):
    """The buckets one request may use, as its caller sees them. Every method blocks (the
    operations call them on a worker thread) and raises haathi errors, S3 codes attached
    where only S3 has a name (:func:`~haathi.server.s3.errors.s3_error`)."""

    def bucket(self, name: str) -> BucketRef:
        """The bucket ``name`` names (``InvalidBucketName`` when it names none)."""

    def list_buckets(self) -> list[tuple[str, datetime]]:
        """(name, created) of every bucket the caller may read, by name."""

    def create_bucket(self, bucket: BucketRef) -> None: ...

    def open(self, bucket: BucketRef) -> View:
        """The bucket's content now (``NoSuchBucket``)."""

    def find(self, view: View, key: str, path: str | None) -> FileInfo:
        """The object ``key`` (the file ``path``; None: a key no file can have), or
        ``NoSuchKey``."""

    def read(self, view: View, path: str, offset: int, length: int | None) -> Iterator[bytes]:
        """The bytes of the file ``path`` from ``offset``, at most ``length`` of them."""

    def walk(self, view: View, directory: str, start: str, limit: int) -> list[FileInfo]:
        """The files below ``directory`` (a normalized path) from the path ``start`` on, in
        path order, at most ``limit`` of them (none when there is no such directory)."""

    def authorize_write(self, bucket: BucketRef) -> None:
        """Refuse (``AccessDenied``) before a body is received, unless the caller may write."""

    def spool(self) -> AbstractContextManager[Path]:
        """A directory to receive one request's body into (removed afterwards)."""

    def write(
        self, bucket: BucketRef, path: str, parts: Sequence[Path], size: int, md5: str | None,
        what: str,
    ) -> FileInfo:  # fmt: skip
        """Write the file ``path`` as the concatenation of ``parts`` (``size`` bytes; ``md5``:
        their hex MD5 when known); ``what`` describes the request (a commit's description)."""

    def copy(
        self, bucket: BucketRef, path: str, source: View, source_path: str, what: str
    ) -> tuple[FileInfo, datetime]:
        """Copy the file ``source_path`` of ``source`` to ``path``; the copy, and when it was
        made."""

    def delete(self, bucket: BucketRef, paths: Sequence[str], what: str) -> None:
        """Delete those of the files ``paths`` that exist (at once)."""


@dataclass(frozen=True)
class Access:
    """The buckets a request may use, who it acts as (None: no one in particular), and the
    signature chain of its aws-chunked body (when signed and checked)."""

    buckets: Buckets
    caller: Caller | None = None
    chain: sigv4.ChunkChain | None = None


class Backend(Protocol):
    """A gateway's buckets, and how a request proves who it acts as."""

    def authenticate(
        self, method: str, raw_path: str, raw_query: str, headers: sigv4.Headers
    ) -> Access:
        """The request's :class:`Access`, or an S3 error refusing it."""

    def close(self) -> None: ...
