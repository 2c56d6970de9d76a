"""Reads a framed ``modify`` body (see :mod:`haathi.models.wire`) into ops.

The bytes of each ``put`` are spooled to a temporary file as they arrive (never a whole file
in memory); the ops open those files. A truncated body, a malformed header or a body over
the size limit raises before any op is applied, so nothing is committed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool

from haathi.errors import InvalidArgument, TooLarge
from haathi.models import paths
from haathi.models.ops import CopyOp, DeleteOp, Op, PutOp
from haathi.models.refspec import parse_file
from haathi.models.wire import FRAME, MAX_FRAME, MAX_HEADER

FLUSH_BYTES = 1024 * 1024


class _Body:
    """Exact reads over a stream of byte chunks, counting against a limit."""

    def __init__(self, stream: AsyncIterator[bytes], limit: int | None) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._limit = limit
        self.total = 0

    async def _more(self) -> bool:
        async for chunk in self._stream:
            if not chunk:
                continue
            self.total += len(chunk)
            if self._limit is not None and self.total > self._limit:
                raise TooLarge(
                    f"upload is larger than this server accepts ({self._limit} bytes); "
                    "nothing was written", limit=self._limit,
                )
            self._buf += chunk
            return True
        return False

    async def exactly(self, n: int, what: str) -> bytes:
        while len(self._buf) < n:
            if not await self._more():
                raise InvalidArgument(f"upload truncated in {what}; nothing was written")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def line(self, limit: int) -> bytes:
        while b"\n" not in self._buf:
            if len(self._buf) > limit or not await self._more():
                raise InvalidArgument("upload has no header; nothing was written")
        head, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return head

    async def at_end(self) -> bool:
        return not self._buf and not await self._more()


def _header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"upload header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("ops"), list):
        raise InvalidArgument("upload header must be an object with a list of ops")
    return header


def _flag(op: dict[str, Any], key: str) -> bool:
    value = op.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"op field {key!r} must be true or false")
    return value


def _text(op: dict[str, Any], key: str) -> str:
    value = op.get(key)
    if not isinstance(value, str):
        raise InvalidArgument(f"op field {key!r} must be a string")
    return value


def _opener(path: Path) -> Any:
    def open_spool() -> BinaryIO:
        return open(path, "rb")

    return open_spool


async def _spool(body: _Body, dest: Path) -> int:
    size = 0
    with open(dest, "wb") as fh:
        pending = bytearray()
        while True:
            (n,) = FRAME.unpack(await body.exactly(FRAME.size, "a frame length"))
            if n == 0:
                break
            if n > MAX_FRAME:
                raise InvalidArgument(f"upload frame of {n} bytes is too large")
            pending += await body.exactly(n, "file data")
            size += n
            if len(pending) >= FLUSH_BYTES:
                await run_in_threadpool(fh.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(fh.write, bytes(pending))
    return size


async def read_ops(
    stream: AsyncIterator[bytes], spool_dir: Path, *, limit: int | None
) -> tuple[list[Op], str]:
    """(ops, description) of a framed body; put bytes spooled into ``spool_dir``."""
    body = _Body(stream, limit)
    length = await body.line(32)
    try:
        n = int(length)
    except ValueError as exc:
        raise InvalidArgument("upload must start with the header length") from exc
    if not 0 < n <= MAX_HEADER:
        raise InvalidArgument(f"upload header length {n} is out of range")
    header = _header(await body.exactly(n, "the header"))
    ops: list[Op] = []
    for i, op in enumerate(header["ops"]):
        if not isinstance(op, dict):
            raise InvalidArgument("each upload op must be an object")
        kind = op.get("op")
        if kind == "put":
            dest = paths.normalize_for_write(_text(op, "path"))
            spool = spool_dir / f"{i}.put"
            size = await _spool(body, spool)
            ops.append(PutOp(dest, _opener(spool), _flag(op, "append"), "", size))
        elif kind == "delete":
            ops.append(DeleteOp(paths.normalize(_text(op, "path")), _flag(op, "recursive")))
        elif kind == "copy":
            ops.append(CopyOp(
                parse_file(_text(op, "source")), paths.normalize_for_write(_text(op, "path")),
                _flag(op, "append"),
            ))  # fmt: skip
        else:
            raise InvalidArgument(f"unknown upload op {kind!r}: use put, delete or copy")
    if not await body.at_end():
        raise InvalidArgument("upload has bytes after its last op; nothing was written")
    description = header.get("description", "")
    if not isinstance(description, str):
        raise InvalidArgument("upload description must be a string")
    return ops, description


def spool_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="haathi-upload-", dir=os.environ.get("TMPDIR"))
