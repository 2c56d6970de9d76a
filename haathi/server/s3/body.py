"""Receiving a request body into a file: never whole in memory, size-limited, verified.

The body is decoded when it is ``aws-chunked`` (chunk signatures checked when a chain is
given), counted against the server's upload limit, and checked against every digest the
request names: ``x-amz-content-sha256`` (a hex hash), ``Content-MD5`` and the
``x-amz-checksum-crc32`` / ``-sha1`` / ``-sha256`` headers or trailers. Any failure raises
before the caller applies anything, so a bad upload writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from haathi.server.s3 import sigv4
from haathi.server.s3.chunked import ChunkedDecoder
from haathi.server.s3.errors import s3_error

FLUSH_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Received:
    path: Path
    size: int
    md5: str  # hex


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    """zlib's CRC-32 with a hashlib-like face (``x-amz-checksum-crc32`` is its 4 big-endian
    bytes, base64)."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


_CHECKSUMS: dict[str, Callable[[], _Hash]] = {
    "x-amz-checksum-crc32": _Crc32,
    "x-amz-checksum-sha1": hashlib.sha1,
    "x-amz-checksum-sha256": hashlib.sha256,
}


class _Digests:
    """The digests one body must match, updated as its bytes are written."""

    def __init__(self, request: Request) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        claimed = request.headers.get("x-amz-content-sha256", "")
        self.want_sha256 = claimed if sigv4.is_sha256_hex(claimed) else None
        declared = request.headers.get("x-amz-trailer", "").lower()
        self.checks: dict[str, _Hash] = {
            name: make() for name, make in _CHECKSUMS.items()
            if name in request.headers or name in declared
        }  # fmt: skip

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        if self.want_sha256 is not None:
            self.sha256.update(data)
        for h in self.checks.values():
            h.update(data)

    def verify(self, request: Request, trailers: dict[str, str]) -> None:
        if self.want_sha256 is not None and self.sha256.hexdigest() != self.want_sha256:
            raise s3_error(
                "XAmzContentSHA256Mismatch",
                "the x-amz-content-sha256 you specified did not match what we received",
            )
        md5 = request.headers.get("content-md5")
        if md5 is not None:
            try:
                claimed = base64.b64decode(md5, validate=True)
            except binascii.Error:
                claimed = b""
            if len(claimed) != 16:
                raise s3_error("InvalidDigest", "the Content-MD5 you specified is not valid")
            if claimed != self.md5.digest():
                raise s3_error("BadDigest", "the Content-MD5 you specified did not match what "
                               "we received")  # fmt: skip
        for name, h in self.checks.items():
            value = trailers.get(name, request.headers.get(name))
            got = base64.b64encode(h.digest()).decode()
            if value is not None and value != got:
                raise s3_error("BadDigest", f"the {name} you specified did not match what we "
                               "received")  # fmt: skip


def _declared_size(request: Request, chunked: bool) -> int | None:
    """The payload size the request announces (an aws-chunked body's decoded size)."""
    value = request.headers.get("x-amz-decoded-content-length" if chunked else "content-length")
    return int(value) if value is not None and value.isdigit() else None


def declared_size(request: Request) -> int | None:
    """The payload size the request announces (None: it does not say)."""
    return _declared_size(request, is_chunked(request))


def unread_body(request: Request) -> bool:
    """Whether the request has a body no one read (then its connection cannot carry another
    request: a client that asked ``Expect: 100-continue`` may never send it)."""
    if getattr(request.state, "body_read", False):
        return False
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


def is_chunked(request: Request) -> bool:
    encoding = request.headers.get("content-encoding", "").lower()
    payload = request.headers.get("x-amz-content-sha256", "")
    return payload in sigv4.STREAMING or "aws-chunked" in encoding


def _too_large(limit: int) -> Exception:
    return s3_error(
        "EntityTooLarge", f"your proposed upload exceeds the maximum allowed size ({limit} "
        "bytes); nothing was written", limit=limit,
    )  # fmt: skip


def _write(fh: BinaryIO, digests: _Digests, data: bytes) -> None:
    digests.update(data)
    fh.write(data)


async def receive(
    request: Request, dest: Path, *, limit: int | None, chain: sigv4.ChunkChain | None = None
) -> Received:
    """Write the request's payload to ``dest``; raises (S3 errors) when it is too large,
    truncated, mis-signed or does not match a digest it names."""
    chunked = is_chunked(request)
    declared = _declared_size(request, chunked)
    if limit is not None and declared is not None and declared > limit:
        raise _too_large(limit)
    payload = request.headers.get("x-amz-content-sha256", "")
    decoder = (
        ChunkedDecoder(chain=chain, signed=payload.startswith("STREAMING-AWS4"))
        if chunked else None
    )  # fmt: skip
    digests = _Digests(request)
    size = 0
    pending = bytearray()
    with open(dest, "wb") as fh:
        try:
            async for raw in request.stream():
                pieces = decoder.feed(raw) if decoder is not None else [raw]
                for piece in pieces:
                    size += len(piece)
                    if limit is not None and size > limit:
                        raise _too_large(limit)
                    pending += piece
                if len(pending) >= FLUSH_BYTES:
                    await run_in_threadpool(_write, fh, digests, bytes(pending))
                    pending.clear()
        except ClientDisconnect as exc:
            raise s3_error("IncompleteBody", "the client closed the connection before the "
                           "body ended; nothing was written") from exc  # fmt: skip
        if pending:
            await run_in_threadpool(_write, fh, digests, bytes(pending))
    request.state.body_read = True
    trailers = decoder.finish() if decoder is not None else {}
    if declared is not None and size != declared:
        raise s3_error("IncompleteBody", f"the body has {size} bytes, not the {declared} its "
                       "Content-Length declares; nothing was written")  # fmt: skip
    digests.verify(request, trailers)
    return Received(dest, size, digests.md5.hexdigest())


@contextmanager
def temporary_dir() -> Iterator[Path]:
    """A directory for one request's spooled body (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="haathi-s3-") as tmp:
        yield Path(tmp)
