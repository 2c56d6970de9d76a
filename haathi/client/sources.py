"""Local sources for ``put file``: files, directories, stdin, tar archives, bytes."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from haathi.errors import InvalidArgument, NotFound
from haathi.models import paths
from haathi.models.ops import PutOp


def _local_file_op(path: str, dest: str, append: bool, size: int | None) -> PutOp:
    def open_file() -> BinaryIO:
        try:
            return open(path, "rb", buffering=0)  # read in large blocks: no buffer needed
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read {path}: {exc.strerror or exc}; nothing was written"
            ) from exc

    return PutOp(dest, open_file, append, path, size)


def file_op(path: Path, dest: str, append: bool = False) -> PutOp:
    """Put the local file ``path`` at ``dest``."""
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None  # reported when the file is opened
    return _local_file_op(str(path), paths.normalize_for_write(dest), append, size)


def bytes_op(data: bytes, dest: str, append: bool = False) -> PutOp:
    return PutOp(paths.normalize_for_write(dest), lambda: io.BytesIO(data), append, "", len(data))


def stream_op(stream: BinaryIO, dest: str, append: bool = False) -> PutOp:
    class _Borrowed(io.RawIOBase):
        """Reads the caller's stream without closing it."""

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            data = stream.read(len(b))
            n = len(data)
            b[:n] = data
            return n

    return PutOp(paths.normalize_for_write(dest), lambda: _Borrowed(), append)  # type: ignore[arg-type, return-value]


def walk_dir(root: Path, dest_dir: str, append: bool = False) -> Iterator[PutOp]:
    """One op per file below ``root`` (symlinks followed), placed below ``dest_dir``, in the
    order of their paths in the tree: their chunks are stored in that order, so a restore
    reads them back in long runs."""
    base = paths.normalize(dest_dir).rstrip("/")
    stack = [iter(_entries(str(root), base))]
    while stack:
        for target, e in stack[-1]:
            if e.is_dir():
                stack.append(iter(_entries(e.path, target)))
                break
            if e.is_file():
                size = e.stat().st_size
                yield _local_file_op(e.path, paths.normalize_for_write(target), append, size)
        else:
            stack.pop()


def _entries(local: str, dest: str) -> list[tuple[str, os.DirEntry[str]]]:
    """A directory's entries with their paths below ``dest``, in path order (a directory's
    files sort as if its name ended in "/", as their paths do)."""
    try:
        found = [(f"{dest}/{e.name}", e) for e in os.scandir(local)]
    except OSError as exc:
        raise InvalidArgument(f"cannot read directory {local}: {exc.strerror}") from exc
    return sorted(found, key=lambda t: t[0] + "/" if t[1].is_dir() else t[0])


def tar_ops(source: Path | BinaryIO, dest_dir: str) -> list[PutOp]:
    """One op per regular file of a tar archive (``.tar``, ``.tar.gz``, ``.tgz``)."""
    import tarfile  # ~4 ms: only ``put file --untar`` pays it

    try:
        data = source.read_bytes() if isinstance(source, Path) else source.read()
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as exc:
        raise InvalidArgument(f"cannot read tar archive {source}: {exc}") from exc
    ops: list[PutOp] = []
    with tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            fh = tf.extractfile(m)
            if fh is None:
                continue
            ops.append(bytes_op(fh.read(), paths.join(dest_dir, m.name)))
    return ops


def local_ops(
    source: str,
    dest: str | None,
    *,
    recursive: bool,
    append: bool,
    untar: bool,
    dest_is_dir: bool,
) -> list[PutOp]:
    """Ops for one ``-f`` source (a path or ``-`` for stdin)."""
    if source == "-":
        if untar:
            return tar_ops(sys.stdin.buffer, dest or "/")
        if not dest or dest == "/":
            raise InvalidArgument("put file from stdin needs a destination path (repo@b:/path)")
        return [stream_op(sys.stdin.buffer, dest, append)]
    path = Path(source)
    if not path.exists():
        raise NotFound(f"{source}: no such file or directory")
    if untar:
        return tar_ops(path, dest or "/")
    if path.is_dir():
        if not recursive:
            raise InvalidArgument(f"{source} is a directory: use -r to put it recursively")
        target = dest if dest else paths.join("/", path.resolve().name)
        return list(walk_dir(path, target, append))
    if dest is None or dest == "/":
        target = paths.join("/", path.name)
    elif dest_is_dir:
        target = paths.join(dest, path.name)
    else:
        target = dest
    return [file_op(path, target, append)]
