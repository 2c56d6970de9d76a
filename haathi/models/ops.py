"""File modification requests: the operations one ``modify`` call applies atomically."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from haathi.errors import InvalidArgument
from haathi.models.refspec import FileSpec

Opener = Callable[[], BinaryIO]


@dataclass(frozen=True, slots=True)
class LocalOpener:
    """Opens the local file ``path`` (an :data:`Opener`); a write may instead read a small
    one whole at once (:meth:`read_small`)."""

    path: str

    def _cannot(self, exc: OSError) -> InvalidArgument:
        why = exc.strerror or exc
        return InvalidArgument(f"cannot read {self.path}: {why}; nothing was written")

    def __call__(self) -> BinaryIO:
        try:
            return open(self.path, "rb", buffering=0)  # read in large blocks: no buffer needed
        except OSError as exc:
            raise self._cannot(exc) from exc

    def read_small(self, size: int) -> bytes | None:
        """The file's bytes when it is a regular file of at most ``size`` bytes (the size it
        was seen with), in one read: a third of the system time of opening it as a stream
        (a million small files are mostly that); None when it is not (then it is opened)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                data = os.read(fd, size + 1)  # a short read is the end of a regular file
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._cannot(exc) from exc
        return data if len(data) <= size else None


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
