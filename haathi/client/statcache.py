"""The stat cache: what each file of a local directory was when it was last put, so that
putting the directory again reads only the files that changed (as git's index and restic's
parent snapshot do).

One cache file per (source directory, repo, destination directory) names a commit and maps
each file's path below the directory to its stat (size, mtime, ctime, inode, device: a
:func:`~haathi.client.sources.stat_key`) when it was put. It asserts: that commit holds, at
the file's destination, the bytes the file held while its stat was this one. A finished commit never
changes, and a commit ID is a random UUID (one store's commit is never found in another), so
the assertion stays true; whether the destination still holds those bytes is then a ``diff``
between the commit and the destination's head (:mod:`haathi.client.dirput`).

Any write to a file moves its mtime and ctime; ``touch -d``, ``cp -p`` or ``tar`` can set the
mtime back, but never the ctime; a file replaced by another has another inode. So a file whose
stat is the one recorded still holds the bytes recorded, but for one case (git's "racy"
files): an edit in the same tick of the file system's clock as the recorded stat leaves the
timestamps as they were. An entry is therefore recorded only for a file whose mtime and ctime
are a whole tick older than the scan that stat'ed it (:func:`settled`): any later write then
shows. A file edited just before a put is read again the next time, and recorded then.
Timestamps are compared with this machine's clock: a file system whose clock runs behind it
by more than :data:`FINE_TICK_NS` (a network file system) narrows that guard; ``--rehash``
reads every file.

The file is written whole under a temporary name and renamed into place; one that cannot be
read, is of another format or fails its checksum counts as empty (it is replaced at the next
put that records anything).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import blake3
import msgpack

from haathi.client.sources import stat_fields

MAGIC = b"haathi statcache 1\n"
SUFFIX = ".stat"
KEY_SIZE = 40  # bytes of a stat_key
# A file system whose ctimes carry fractions of a second ticks at most every 10 ms (exFAT;
# ext4, XFS, btrfs and tmpfs stamp files with the kernel's tick, 1-10 ms behind the clock).
FINE_TICK_NS = 100_000_000
# Whole seconds (ext3, HFS+, many NFS servers) or FAT's two seconds, plus the kernel's tick.
COARSE_TICK_NS = 2_100_000_000
# A cache file not used for this long is removed (when another one is written).
UNUSED_NS = 90 * 24 * 3600 * 10**9


def settled(stat: bytes, started_ns: int) -> bool:
    """Whether ``stat`` (taken during a scan that began at ``started_ns``) may be recorded: its
    mtime and ctime are a tick of their file system's clock older than the scan, so that any
    write after the scan gives the file another mtime. A ctime with a fraction of a second
    shows a fine clock; whole seconds, a coarse one."""
    _, mtime, ctime, _, _ = stat_fields(stat)
    tick = FINE_TICK_NS if ctime % 1_000_000_000 else COARSE_TICK_NS
    return max(mtime, ctime) < started_ns - tick


class StatCache:
    """The stat cache of one source directory put into one destination directory of a repo:
    ``commit`` holds, at each file's destination, the bytes the file had with the stat in
    ``entries`` (path below the source directory -> stat)."""

    def __init__(self, path: Path, key: tuple[str, str, str]) -> None:
        self.path = path
        self._key = key
        self.commit: str | None = None
        self.entries: dict[str, bytes] = {}

    @classmethod
    def open(cls, cache_dir: Path, root: str, repo: str, dest: str) -> StatCache:
        """The cache of the directory ``root`` put into ``repo`` at ``dest``; empty if there is
        none or it cannot be read."""
        key = (os.path.realpath(root), repo, dest)
        name = blake3.blake3(msgpack.packb(key, unicode_errors="surrogateescape")).hexdigest()
        cache = cls(cache_dir / f"{name[:32]}{SUFFIX}", key)
        cache._read()
        return cache

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError:
            return
        head = len(MAGIC) + 32
        body = data[head:]
        if not data.startswith(MAGIC) or data[len(MAGIC) : head] != blake3.blake3(body).digest():
            return
        try:
            key, commit, rels, stats = msgpack.unpackb(body, unicode_errors="surrogateescape")
            if tuple(key) != self._key or not isinstance(commit, str):
                return
            if not isinstance(stats, bytes) or len(stats) != len(rels) * KEY_SIZE:
                return
            keys = (stats[i : i + KEY_SIZE] for i in range(0, len(stats), KEY_SIZE))
            entries = dict(zip(rels, keys, strict=True))
        except (ValueError, TypeError, msgpack.UnpackException):
            return
        self.commit, self.entries = commit, entries

    def mark_used(self) -> None:
        """Keep the cache file from being pruned as unused."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def save(self, commit: str, entries: Mapping[str, bytes]) -> None:
        """Replace the cache: ``commit`` holds ``entries`` (a dict is kept, not copied). Best
        effort: a cache that cannot be written stays as it was."""
        body = msgpack.packb(
            (self._key, commit, list(entries), b"".join(entries.values())),
            unicode_errors="surrogateescape",
        )
        tmp = self.path.with_name(f".{uuid.uuid4().hex}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:  # (in pieces: a million files' body is ~100 MB)
                fh.write(MAGIC + blake3.blake3(body).digest())
                fh.write(body)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        self.commit, self.entries = commit, entries if isinstance(entries, dict) else dict(entries)
        _prune(self.path.parent)


def _prune(cache_dir: Path) -> None:
    """Remove the cache files (and leftover temporary files) not used for long."""
    old = time.time_ns() - UNUSED_NS
    with contextlib.suppress(OSError), os.scandir(cache_dir) as found:
        for e in found:
            if e.name.endswith((SUFFIX, ".tmp")) and e.stat().st_mtime_ns < old:
                with contextlib.suppress(OSError):
                    os.unlink(e.path)
