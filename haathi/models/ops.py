"""File modification requests: the operations one ``modify`` call applies atomically."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from haathi.models.refspec import FileSpec

Opener = Callable[[], BinaryIO]


@dataclass(frozen=True, slots=True)
class PutOp:
    """Write ``path`` from the stream ``open()`` returns (``append`` adds to existing bytes)."""

    path: str
    open: Opener
    append: bool = False
    label: str = ""
    size_hint: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteOp:
    """Delete the file ``path`` or, with ``recursive``, the directory ``path`` and all below."""

    path: str
    recursive: bool = False


@dataclass(frozen=True, slots=True)
class CopyOp:
    """Copy a file or directory from another commit (metadata only: no bytes are copied)."""

    source: FileSpec
    path: str
    append: bool = False


Op = PutOp | DeleteOp | CopyOp
Ops = Sequence[Op] | Iterator[PutOp]
"""What one ``modify`` applies: a sequence of any ops, every path checked before any byte is
read; or an iterator of puts, streamed (``put file -r`` of a directory of millions of files),
each path checked before its own bytes are read."""
ProgressFn = Callable[[int, int], None]
"""Called with (bytes, files) done since the previous call."""
