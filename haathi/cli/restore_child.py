"""The writer process of a restore: it creates the small files the restore reads and verifies.

Run as ``python -I -S restore_child.py OUT`` (the standard library only: it starts in about
10 ms). It reads records from stdin, each ``<HI`` (the path's length, the data's length), the
path (relative to OUT, as bytes), then the data, and writes each as a file with
:func:`write_out` (which the restore uses for the files it writes itself); a record cut short
(the restore stopped) is dropped, never written in part. When a file cannot be written, it
prints ``PATH\\0REASON`` on stdout and exits with status 1, writing nothing more.

A process of its own, not a thread: creating a file is a few system calls, and from threads
each one hands Python's lock to and fro with the thread that reads and verifies (the restore of
20,000 small files took twice the CPU time that way).
"""

from __future__ import annotations

import os
import secrets
import signal
import struct
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

HEADER = struct.Struct("<HI")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def write_out(path: str | bytes | os.PathLike[str], blocks: Iterable[bytes]) -> None:
    """Write ``blocks`` to ``path``; a read that fails (damaged data) leaves no partial file.
    A new file is written in place; an existing one is replaced only once the new bytes are
    all written, through a temporary file (create + rename costs 7x a create: a restore into
    an empty directory, the usual case, does without)."""
    path = os.fsencode(path)
    try:
        _write_new(path, blocks)
    except FileExistsError:
        # a short name: the file's own may already be as long as a name can be
        tmp = os.path.join(os.path.dirname(path), b".haathi-%s.tmp" % secrets.token_hex(8).encode())
        try:
            _write_new(tmp, blocks)
            os.replace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)


def _write_new(path: bytes, blocks: Iterable[bytes]) -> None:
    """Create ``path`` (FileExistsError if it exists) holding ``blocks``; removed again if
    they fail."""
    fd = os.open(path, _CREATE, 0o666)
    try:
        for block in blocks:
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def main() -> int:
    # ^C reaches the whole process group: the restore stops sending, and this process
    # writes the files it was sent, then ends (never a file in part)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir(sys.argv[1])
    source = os.fdopen(0, "rb", buffering=1 << 20)
    while header := source.read(HEADER.size):
        if len(header) < HEADER.size:
            return 0
        path_len, data_len = HEADER.unpack(header)
        path = source.read(path_len)
        data = source.read(data_len)
        if len(path) < path_len or len(data) < data_len:
            return 0  # cut short: the restore stopped
        try:
            write_out(path, (data,))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            sys.stdout.buffer.write(path + b"\0" + reason.encode(errors="replace"))
            sys.stdout.flush()
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
