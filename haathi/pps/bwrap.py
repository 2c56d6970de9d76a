"""The host sandbox's bubblewrap: its command line, and how its launcher starts in it.

:func:`bwrap_argv` builds the ``bwrap`` options that show the host as a
:class:`~haathi.pps.hostview.Layout` says, with ``/pfs``, ``/tmp``, ``/dev`` and ``/proc`` of
the sandbox's own; :class:`HostLaunch` starts :mod:`haathi.pps.launcher` in it, with the
host's Python. What the sandbox guarantees is :mod:`haathi.pps.sandbox`'s docstring.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from haathi.pps.hostview import SYSTEM_DIRS, Layout
from haathi.pps.session import SOCKET_DIR, SOCKET_MOUNT, Launch, launcher_argv

UNPRIVILEGED = (65534, 65534)
"""The user and group (``nobody``/``nogroup``) user code runs as in a bwrap sandbox when
haathi runs as root."""

EMPTY = ".empty"  # in the scratch directory: an empty directory that masks hidden ones
_PATH_ARGS = 2  # a command's program and its script: checked for host files the sandbox hides


def bwrap_argv(
    bwrap: str, scratch: Path, layout: Layout, mounts: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """bwrap and its options for a sandbox on ``scratch``; the command follows ``--``.

    The host shows through as ``layout`` says (:mod:`haathi.pps.hostview`). ``/pfs`` is a
    read-only view of ``S/pfs``, so the inputs the host puts there for each datum show inside;
    ``/pfs/out`` is ``S/pfs/out`` (the host empties it in place: the mount holds that
    directory). ``mounts``: (host directory, path inside) shown read-only (secrets' files).
    ``S/.sock`` shows read-only at :data:`~haathi.pps.session.SOCKET_MOUNT`: the sockets
    haathi serves the sandbox (a job's S3 gateway), reached through the launcher's relays.
    """
    argv = [bwrap, *layout.base_args()]
    pfs = scratch / "pfs"
    argv += ["--dev", "/dev", "--proc", "/proc", "--bind", str(scratch / "tmp"), "/tmp"]
    argv += layout.late_args(str(scratch / EMPTY))
    argv += ["--ro-bind", str(pfs), "/pfs", "--bind", str(pfs / "out"), "/pfs/out"]
    argv += mount_args(mounts, [*SYSTEM_DIRS, *layout.shown, "/tmp"])
    argv += ["--perms", "0755", "--dir", "/.haathi"]  # (the launcher may run as nobody)
    argv += ["--ro-bind", str(scratch / SOCKET_DIR), SOCKET_MOUNT, "--remount-ro", "/"]
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--die-with-parent", "--as-pid-1", "--chdir", "/"]
    if os.geteuid() == 0:  # the launcher needs these to become UNPRIVILEGED, then has none
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return argv


def mount_args(mounts: Sequence[tuple[str, str]], present: Sequence[str]) -> list[str]:
    """bubblewrap options showing each (host directory, path inside) read-only; a missing
    parent of a path inside (one not below ``present``) is made first, 0755 (bubblewrap would
    make it 0700, closed to an unprivileged user)."""
    args: list[str] = []
    made: set[str] = set()
    for host, inside in mounts:
        parts = inside.strip("/").split("/")[:-1]
        for parent in ("/" + "/".join(parts[: i + 1]) for i in range(len(parts))):
            below = any(parent == p or parent.startswith(p.rstrip("/") + "/") for p in present)
            if parent not in made and not below:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", host, inside]
    return args


def _sandbox_cwd(working_dir: str | None, layout: Layout, as_user: bool) -> str:
    """The working directory inside the bwrap sandbox: ``working_dir``, else the caller's when
    the sandbox shows it (and, ``as_user``, :data:`UNPRIVILEGED` may enter it), else ``/``."""
    if working_dir:
        return working_dir
    try:
        cwd = os.getcwd()
        enterable = not as_user or os.stat(cwd).st_mode & 0o001
    except OSError:
        return "/"
    return cwd if enterable and layout.visible(cwd) else "/"


class HostLaunch(Launch):
    """bwrap showing the host as ``layout`` says, the host's Python running the launcher."""

    kind = "bwrap"

    def __init__(
        self,
        bwrap: str,
        layout: Layout,
        user: tuple[int, int] | None,
        mounts: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.bwrap, self.layout, self.user = bwrap, layout, user
        self.owner = user
        self.mounts = tuple(mounts)

    def argv(self, scratch: Path, sock_fd: int, info_fd: int) -> list[str]:
        argv = bwrap_argv(self.bwrap, scratch, self.layout, self.mounts)
        argv += ["--info-fd", str(info_fd), "--"]
        return argv + launcher_argv([sys.executable], str(sock_fd), self.user)

    def cwd(self, working_dir: str | None) -> str:
        return _sandbox_cwd(working_dir, self.layout, self.user is not None)

    def hidden(self, argv: Sequence[str]) -> str:
        for arg in argv[:_PATH_ARGS]:
            on_host = arg.startswith("/") and not arg.startswith("/pfs") and os.path.exists(arg)
            if on_host and not self.layout.visible(os.path.normpath(arg)):
                return arg
        return ""
