"""Sources at URLs: ``http(s)://`` through httpx, ``s3://bucket/key`` through obstore.

``put file -f URL`` (and ``-i``, a list of paths and URLs), ``create pipeline -f URL`` and
``--jsonnet URL`` read here. A download is a stream: each put reads it in blocks as it stores
them, never whole; a download that fails (refused, an HTTP error, a body cut short of its
``Content-Length`` or of the object's size) fails the put, and nothing is committed.

The client fetches, never the server: a server is sent the bytes as it is sent a local
file's, so a remote user cannot make it reach hosts that only it can reach.

``s3://`` takes its endpoint and credentials from the standard AWS variables:
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT``; else AWS itself),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` /
``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from haathi.errors import HaathiError, InvalidArgument, NotFound
from haathi.models import paths
from haathi.models.ops import PutOp

if TYPE_CHECKING:
    import httpx

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
SCHEMES = ("http", "https", "s3")
TEXT_LIMIT = 16 << 20  # a spec, template or list of sources read from a URL, at most
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


def is_url(source: str) -> bool:
    """Whether ``source`` is a URL (``scheme://...``) rather than a local path."""
    return bool(_URL.match(source))


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise InvalidArgument(f"{url}: unsupported URL scheme {scheme!r} (use http, https or s3)")
    return scheme


def _s3_parts(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``."""
    bucket, _, key = url.partition("://")[2].partition("/")
    if not bucket:
        raise InvalidArgument(f"{url}: no bucket (s3://bucket/key)")
    return bucket, key


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def name_of(url: str) -> str:
    """The last segment of the URL's path (its host or bucket when it has none): the name
    ``put file`` gives what it downloads, as pachctl does (``filepath.Base``)."""
    parts = urlsplit(url)
    segment = unquote(parts.path).rstrip("/").rpartition("/")[2]
    return segment or parts.netloc


class _Download(io.RawIOBase):
    """A download as a binary stream: its bytes as they come, checked against the size the
    server announced. A failure raises the error ``fail`` makes of its reason."""

    def __init__(
        self,
        pieces: Iterator[Any],
        expected: int | None,
        received: Callable[[], int],
        close: Callable[[], None],
        fail: Callable[[str, type[HaathiError]], HaathiError],
    ) -> None:
        super().__init__()
        self._pieces = pieces
        self._expected = expected
        self._received = received
        self._close = close
        self._fail = fail
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._done:
            try:
                piece = next(self._pieces, None)
            except HaathiError:
                raise
            except Exception as exc:  # httpx's or obstore's, mid-body
                why = _first_line(exc)
                if "bytes" not in why:
                    why += f" (after {self._received():,} bytes)"
                raise self._fail(why, InvalidArgument) from exc
            if piece is None:
                self._done = True
                got = self._received()
                if self._expected is not None and got != self._expected:
                    raise self._fail(
                        f"the body ended after {got:,} of {self._expected:,} bytes",
                        InvalidArgument,
                    )
                break
            self._pending = memoryview(piece).cast("B")
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._close()
        super().close()


class Fetcher:
    """Opens URLs as streams, with one HTTP connection pool and one S3 client per bucket
    (safe to share between the threads of one put). Close it when done (a context manager)."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def open(self, url: str, *, outcome: str = "") -> BinaryIO:
        """A stream of the bytes at ``url``; a failure is an error naming the URL and why
        (NotFound for HTTP 404 or a missing object), ``outcome`` added to its message."""

        def fail(why: str, cls: type[HaathiError] = InvalidArgument) -> HaathiError:
            return cls(f"cannot download {url}: {why}{outcome}", url=url)

        if _scheme(url) == "s3":
            return self._open_s3(url, fail)
        return self._open_http(url, fail)

    def read_text(self, url: str, *, limit: int = TEXT_LIMIT) -> str:
        """The text at ``url`` (UTF-8), at most ``limit`` bytes."""
        with self.open(url) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{url} is larger than {limit:,} bytes")
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"{url} is not UTF-8 text") from exc

    # http(s) -------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    timeout=httpx.Timeout(self._timeout), follow_redirects=True
                )
            return self._http

    def _open_http(self, url: str, fail: Callable[..., HaathiError]) -> BinaryIO:
        import httpx

        client = self._client()
        try:
            response = client.send(client.build_request("GET", url), stream=True)
        except httpx.InvalidURL as exc:
            raise InvalidArgument(f"{url}: not a valid URL ({exc})") from exc
        except httpx.HTTPError as exc:
            raise fail(_first_line(exc)) from exc
        if response.status_code >= 400:
            response.close()
            status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
            raise fail(status, NotFound if response.status_code in (404, 410) else InvalidArgument)
        length = response.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        stream = _Download(
            response.iter_bytes(), expected, lambda: response.num_bytes_downloaded,
            response.close, fail,
        )  # fmt: skip
        return stream  # type: ignore[return-value]  # a RawIOBase is a binary stream

    # s3 ------------------------------------------------------------------------------------

    def _store(self, bucket: str) -> Any:
        from obstore.store import S3Store

        with self._lock:
            if bucket not in self._stores:
                endpoint = next((os.environ[v] for v in ENDPOINT_VARS if os.environ.get(v)), None)
                config: dict[str, Any] = {} if endpoint is None else {"endpoint": endpoint}
                self._stores[bucket] = S3Store(
                    bucket,
                    config=config,  # type: ignore[arg-type]  # the rest from AWS_* variables
                    client_options={
                        "allow_http": bool(endpoint and endpoint.startswith("http://")),
                        "connect_timeout": f"{self._timeout:.0f}s",
                        "timeout": "168h",  # a whole GET, body included: the largest objects
                    },
                    retry_config={
                        "max_retries": 3,
                        "retry_timeout": timedelta(seconds=self._timeout),
                        "backoff": {
                            "init_backoff": timedelta(milliseconds=100),
                            "max_backoff": timedelta(seconds=2),
                            "base": 2,
                        },
                    },
                )
            return self._stores[bucket]

    def _s3_error(self, exc: BaseException, fail: Callable[..., HaathiError]) -> HaathiError:
        text = str(exc)
        if "NoSuchBucket" in text:
            return fail("no such bucket", NotFound)
        if isinstance(exc, FileNotFoundError) or "NoSuchKey" in text:
            return fail("no such object", NotFound)
        why = _first_line(exc).partition("<?xml")[0].rstrip(" :")
        return fail(why, InvalidArgument)

    def _open_s3(self, url: str, fail: Callable[..., HaathiError]) -> BinaryIO:
        import obstore
        from obstore.exceptions import BaseError

        bucket, key = _s3_parts(url)
        if not key or key.endswith("/"):
            raise InvalidArgument(f"{url} names no object: use -r to put every object under it")
        try:
            result = obstore.get(self._store(bucket), key)
        except (BaseError, OSError, ValueError) as exc:
            raise self._s3_error(exc, fail) from exc
        received = [0]

        def pieces() -> Iterator[Any]:
            for piece in result.stream(min_chunk_size=1 << 20):
                received[0] += len(piece)
                yield piece

        stream = _Download(pieces(), int(result.meta["size"]), lambda: received[0],
                           lambda: None, fail)  # fmt: skip
        return stream  # type: ignore[return-value]

    def list_s3(self, url: str) -> list[tuple[str, int]]:
        """(key, size) of every object whose key starts with the URL's key (a string prefix,
        as S3 lists: ``s3://b/dir`` holds ``dir/a`` and ``dirx/b``), in key order; "folder"
        markers (keys ending in ``/``) left out."""
        import obstore
        from obstore.exceptions import BaseError

        bucket, prefix = _s3_parts(url)
        base = prefix.rpartition("/")[0]  # obstore lists whole segments
        found: list[tuple[str, int]] = []
        try:
            for batch in obstore.list(self._store(bucket), prefix=base or None):
                for meta in batch:
                    key = str(meta["path"])
                    if key.startswith(prefix) and not key.endswith("/"):
                        found.append((key, int(meta["size"])))
        except (BaseError, OSError, ValueError) as exc:
            raise self._s3_error(exc, lambda why, cls: cls(f"cannot list {url}: {why}")) from exc
        return sorted(found)


@dataclass(frozen=True, slots=True)
class UrlOpener:
    """Opens a URL for a put (an :data:`~haathi.models.ops.Opener`)."""

    fetcher: Fetcher
    url: str

    def __call__(self) -> BinaryIO:
        return self.fetcher.open(self.url, outcome="; nothing was written")


def url_ops(
    fetcher: Fetcher,
    url: str,
    dest: str | None,
    *,
    recursive: bool = False,
    append: bool = False,
    dest_is_dir: bool = False,
    many: bool = False,
) -> list[PutOp]:
    """The puts of one URL source, placed as pachctl places them. ``dest``: the target's path
    (None: none given); ``dest_is_dir``: the target ends in ``/`` or several sources are put;
    ``many``: several sources are put.

    One file is put at ``dest``, or below it under its URL's last segment (no ``dest``, or
    ``dest_is_dir``). With ``recursive``, an ``s3://bucket/prefix`` puts every object whose
    key starts with the prefix, at ``dest`` (else ``/<last segment>``) followed by the rest
    of its key; nothing under the prefix is an error."""
    scheme = _scheme(url)
    name = name_of(url)
    if scheme == "s3" and recursive:
        root = dest if dest is not None and not many else paths.join(dest or "/", name)
        bucket, prefix = _s3_parts(url)
        objects = fetcher.list_s3(url)
        if not objects:
            raise NotFound(f"no objects under {url}", url=url)
        ops = []
        for key, size in objects:
            rest = key[len(prefix) :]
            target = paths.normalize_for_write(f"{root}/{rest}" if rest else root)
            source = f"s3://{bucket}/{key}"
            ops.append(PutOp(target, UrlOpener(fetcher, source), append, source, size))
        return ops
    if dest is None or dest == "/":
        target = paths.join("/", name)
    elif dest_is_dir:
        target = paths.join(dest, name)
    else:
        target = dest
    return [PutOp(paths.normalize_for_write(target), UrlOpener(fetcher, url), append, url)]


def read_text(source: str, fetcher: Fetcher | None = None) -> str:
    """The text of a spec, template or list of sources: a local path, ``-`` (stdin) or a
    URL."""
    if source == "-":
        return sys.stdin.read()
    if is_url(source):
        if fetcher is not None:
            return fetcher.read_text(source)
        with Fetcher() as own:
            return own.read_text(source)
    try:
        return Path(source).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"cannot read {source}: not UTF-8 text") from exc
