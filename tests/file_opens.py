"""Which files below a directory were opened, as the kernel reports it (inotify ``IN_OPEN``):
by any process, whoever it runs as (root reads files that permissions would hide), and
whatever the access times do (``noatime``, ``relatime``).

    with FileOpens(src) as opens:
        ...
    assert opens.files == set()
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from pathlib import Path
from types import TracebackType

IN_OPEN = 0x00000020
IN_ISDIR = 0x40000000
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = os.O_NONBLOCK
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class FileOpens:
    """The regular files below ``root`` (paths relative to it) opened while in the block."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: set[str] = set()
        self._fd = -1
        self._dirs: dict[int, str] = {}

    def __enter__(self) -> FileOpens:
        self._fd = _libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        for d in [self.root, *(p for p in self.root.rglob("*") if p.is_dir())]:
            wd = _libc.inotify_add_watch(self._fd, os.fsencode(d), IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
            self._dirs[wd] = str(d.relative_to(self.root))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._drain()
        finally:
            os.close(self._fd)

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            pos = 0
            while pos < len(data):
                wd, mask, _, size = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size : pos + _EVENT.size + size].rstrip(b"\0")
                pos += _EVENT.size + size
                if mask & IN_Q_OVERFLOW:
                    raise AssertionError("inotify's queue overflowed: opens were lost")
                if name and not mask & IN_ISDIR:
                    d = self._dirs[wd]
                    name_s = os.fsdecode(name)
                    self.files.add(name_s if d == "." else f"{d}/{name_s}")
