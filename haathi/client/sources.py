"""Local sources for ``put file``: files, directories, stdin, tar archives, bytes."""

from __future__ import annotations

import io
import os
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from haathi.errors import InvalidArgument, NotFound
from haathi.models import paths
from haathi.models.ops import LocalOpener, PutOp


def _local_file_op(path: str, dest: str, append: bool, size: int | None) -> PutOp:
    return PutOp(dest, LocalOpener(path), append, path, size)


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


_STAT = struct.Struct("<qqqQQ")


def stat_key(
    size: int, mtime_ns: int, ctime_ns: int, inode: int, device: int
) -> bytes:  # fmt: skip
    """What ``stat()`` says of a file's identity and version, as scans and the stat cache keep
    it (40 bytes)."""
    return _STAT.pack(size, mtime_ns, ctime_ns, inode, device)


def stat_fields(key: bytes) -> tuple[int, int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode, device) of a :func:`stat_key`."""
    size, mtime, ctime, inode, device = _STAT.unpack(key)
    return size, mtime, ctime, inode, device


class LocalFile(NamedTuple):
    """A regular file a scan found: its path below the scanned directory ('/'-separated) and
    what ``stat()`` said of it (:func:`stat_key`). A pair, and no more: a scan makes one per
    file, a million for a million files."""

    rel: str
    stat: bytes

    @property
    def size(self) -> int:
        return int.from_bytes(self.stat[:8], "little", signed=True)


@dataclass(frozen=True, slots=True)
class DirScan:
    """The regular files below a local directory (symlinks followed), each stat'ed once, to be
    put below ``dest``. ``started_ns`` is the clock when the scan began, before the first
    stat: the stat cache trusts only what had settled by then
    (:mod:`haathi.client.statcache`)."""

    root: str
    dest: str
    files: list[LocalFile]
    started_ns: int
    size: int  # of all the files

    def dest_of(self, f: LocalFile) -> str:
        """Where ``f`` goes (checked only when it is put)."""
        return f"{self.dest}/{f.rel}" if self.dest != "/" else f"/{f.rel}"

    def op(self, f: LocalFile, append: bool = False) -> PutOp:
        """The op putting ``f`` (its destination checked now)."""
        dest = paths.normalize_for_write(self.dest_of(f))
        return _local_file_op(os.path.join(self.root, f.rel), dest, append, f.size)

    def ops(self, append: bool = False) -> list[PutOp]:
        return [self.op(f, append) for f in self.files]


def scan_dir(root: Path, dest_dir: str) -> DirScan:
    """Every regular file below ``root`` (symlinks followed), placed below ``dest_dir``, in the
    order of their paths in the tree: their chunks are stored in that order, so a restore
    reads them back in long runs."""
    from haathi.allocator import collector_paused  # (a million files: ~20% of the scan)

    dest = paths.normalize(dest_dir)
    started = time.time_ns()
    found: list[LocalFile] = []
    size = 0
    pack = _STAT.pack
    with collector_paused():
        stack = [iter(_entries(str(root), ""))]
        while stack:
            for rel, e in stack[-1]:
                if e.is_dir():
                    stack.append(iter(_entries(e.path, f"{rel}/")))
                    break
                if e.is_file():
                    st = e.stat()
                    key = pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
                    found.append(LocalFile(rel, key))
                    size += st.st_size
            else:
                stack.pop()
    return DirScan(str(root), dest, found, started, size)


def _entries(local: str, prefix: str) -> list[tuple[str, os.DirEntry[str]]]:
    """A directory's entries with their paths (``prefix`` and the name), in path order (a
    directory's files sort as if its name ended in "/", as their paths do)."""
    try:
        found = [(prefix + e.name, e) for e in os.scandir(local)]
    except OSError as exc:
        raise InvalidArgument(f"cannot read directory {local}: {exc.strerror}") from exc
    return sorted(found, key=lambda t: t[0] + "/" if t[1].is_dir() else t[0])


def walk_dir(root: Path, dest_dir: str, append: bool = False) -> Iterator[PutOp]:
    """One op per file below ``root`` (symlinks followed), placed below ``dest_dir``, in the
    order of their paths in the tree (see :func:`scan_dir`)."""
    scan = scan_dir(root, dest_dir)
    for f in scan.files:
        yield scan.op(f, append)


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
) -> Sequence[PutOp | DirScan]:
    """Ops for one ``-f`` source (a path or ``-`` for stdin); a directory put without
    ``append`` is a :class:`DirScan` (its unchanged files need not be read again)."""
    if source == "-":
        if recursive:  # (pachctl's refusal)
            raise InvalidArgument("cannot set -r and read from stdin (must also set -f or -i)")
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
        scan = scan_dir(path, target)
        return scan.ops(append=True) if append else [scan]
    if dest is None or dest == "/":
        target = paths.join("/", path.name)
    elif dest_is_dir:
        target = paths.join(dest, path.name)
    else:
        target = dest
    return [file_op(path, target, append)]
