"""``HaathiFileSystem``: an fsspec file system for ``haathi://repo@ref/path``.

``ref`` is a branch or a commit ID (``haathi://repo/path`` is ``master``, Pachyderm's default
branch); ``haathi://`` alone lists the repos. The store is the ``address`` storage option
(a store directory, or a ``haathi serve`` URL), else ``$HAATHI_ADDRESS`` as
:func:`haathi.connect` resolves it, looked up at each call; repos are those of the ``project``
storage option, else of the client configuration's current project (``default`` at
first). Built on the public :class:`~haathi.client.Client` only, so it works embedded and
remote alike::

    pandas.read_csv("haathi://data@master/x.csv", storage_options={"address": "http://..."})

Every write is one commit on the branch: a file written through ``open(..., "wb")`` (spooled,
then written on close), ``pipe_file``, ``put_file``, ``cp_file`` (no bytes copied), and one
``rm`` call (all the paths it names, per branch). Directories are implicit: ``mkdir`` does
nothing, and a directory disappears with its last file. Writing to a finished commit fails.

haathi errors become the builtins fsspec users catch, with the same message (the haathi
error is the ``__cause__``): NotFound -> FileNotFoundError, AlreadyExists ->
FileExistsError, PermissionDenied, Unauthenticated and FailedPrecondition (a finished commit)
-> PermissionError, InvalidArgument stays (it is a ValueError), others -> OSError.

This is the only module (with :mod:`haathi.client.fsfile`) that imports fsspec; it is loaded
by fsspec through the ``fsspec.specs`` entry point, never by ``import haathi.client``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractFileSystem
from fsspec.utils import tokenize

from haathi.client.client import Client, connect
from haathi.client.fsfile import HaathiFile
from haathi.config import resolve_address
from haathi.errors import (
    AlreadyExists,
    FailedPrecondition,
    HaathiError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from haathi.models import paths
from haathi.models.ids import is_commit_id, split_key
from haathi.models.info import FileInfo, FileType
from haathi.models.ops import DeleteOp
from haathi.models.refspec import parse_file

PROTOCOL = "haathi"
DEFAULT_BRANCH = "master"
Entry = dict[str, Any]


@contextmanager
def os_errors(precondition: type[OSError] = PermissionError) -> Iterator[None]:
    """Raise haathi errors as the builtin exceptions fsspec users expect (same message).

    ``precondition`` is what a FailedPrecondition becomes: on writes a finished commit
    (PermissionError), on reads a directory where a file was expected (IsADirectoryError).
    """
    try:
        yield
    except InvalidArgument:
        raise  # already a ValueError
    except HaathiError as exc:
        builtin: type[OSError] = OSError
        if isinstance(exc, NotFound):
            builtin = FileNotFoundError
        elif isinstance(exc, AlreadyExists):
            builtin = FileExistsError
        elif isinstance(exc, (PermissionDenied, Unauthenticated)):
            builtin = PermissionError
        elif isinstance(exc, FailedPrecondition):
            builtin = precondition
        raise builtin(exc.message) from exc


@dataclass(frozen=True, slots=True)
class Location:
    """A file system path: the root (``repo`` empty), or ``repo[@ref]`` and a path in it."""

    head: str  # "repo" or "repo@ref", as written; "" for the root
    repo: str
    ref: str | None
    path: str  # normalized, "/" for the commit's root

    @property
    def commit(self) -> str:
        """The haathi refspec of the commit: ``repo@ref`` (``master`` by default)."""
        return f"{self.repo}@{self.ref or DEFAULT_BRANCH}"

    @property
    def target(self) -> str:
        """The haathi refspec of the path: ``repo@ref:/path``."""
        return f"{self.commit}:{self.path}"

    def name(self, path: str) -> str:
        """The file system name of ``path`` (a path in this commit)."""
        return self.head if path == "/" else self.head + path


def locate(path: str) -> Location:
    """Split a protocol-stripped path (``repo@ref/a/b``) into a :class:`Location`."""
    path = HaathiFileSystem._strip_protocol(path)
    if not path:
        return Location("", "", None, "/")
    head, _, rest = path.partition("/")
    repo, at, ref = head.partition("@")
    if at and not ref:
        raise InvalidArgument(f"{PROTOCOL}://{path}: missing branch or commit after '@'")
    loc = Location(head, repo, ref or None, paths.normalize("/" + rest))
    parse_file(loc.target)  # validates the repo name and the ref
    return loc


class HaathiFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """fsspec's view of a haathi store: repos, their commits and files (see the module)."""

    protocol = PROTOCOL
    root_marker = ""

    def __init__(
        self, address: str | None = None, project: str | None = None, **storage_options: Any
    ) -> None:
        super().__init__(**storage_options)
        self.address = address
        self.project = project
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The Client of ``address``, else of ``$HAATHI_ADDRESS`` now (one per address)."""
        where = resolve_address(self.address)
        with self._lock:
            found = self._clients.get(where)
            if found is None:
                with os_errors():
                    found = self._clients[where] = connect(where, project=self.project)
            return found

    def close(self) -> None:
        """Close the clients this file system opened."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()

    # reading
    def _entry(self, loc: Location, info: FileInfo) -> Entry:
        kind = "file" if info.type == FileType.FILE else "directory"
        return {"name": loc.name(info.path), "size": info.size_bytes, "type": kind,
                "repo": info.repo, "commit": info.commit, "hash": info.hash}  # fmt: skip

    def _is_unborn(self, loc: Location) -> bool:
        """Whether ``loc`` is the root of an existing repo's branch with no commit yet (an
        empty directory: the first write makes the branch)."""
        if loc.path != "/" or (loc.ref is not None and is_commit_id(loc.ref)):
            return False
        try:
            self.client.inspect_repo(loc.repo)
        except NotFound:
            return False
        return True

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Entry] | list[str]:
        """The entries of a directory (or the file itself); the root lists the repos."""
        loc = locate(path)
        if not loc.repo:
            with os_errors():
                repos = self.client.list_repo()
            entries: list[Entry] = [  # (by name: the paths name the project's repos bare)
                {"name": split_key(r.name)[1], "size": r.size_bytes, "type": "directory"}
                for r in repos
            ]
        else:
            try:
                with os_errors():
                    infos = self.client.list_file(loc.target)
            except FileNotFoundError:
                if not self._is_unborn(loc):
                    raise
                infos = []
            entries = [self._entry(loc, i) for i in infos]
        return entries if detail else [str(e["name"]) for e in entries]

    def info(self, path: str, **kwargs: Any) -> Entry:
        """Name, size, type (``file``/``directory``), repo, commit and content hash."""
        loc = locate(path)
        if not loc.repo:
            return {"name": "", "size": 0, "type": "directory"}
        try:
            with os_errors():
                return self._entry(loc, self.client.inspect_file(loc.target))
        except FileNotFoundError:
            if not self._is_unborn(loc):
                raise
            return {"name": loc.head, "size": 0, "type": "directory"}

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> list[str] | dict[str, Entry]:
        """Every file below ``path`` (with ``withdirs``, directories too): one walk request."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        loc = locate(path)
        if not loc.repo:
            return super().find(path, maxdepth, withdirs, detail, **kwargs)  # type: ignore[no-any-return]
        try:
            top = self.info(path)
        except FileNotFoundError:
            return {} if detail else []
        out: dict[str, Entry] = {}
        if top["type"] == "file":
            out[top["name"]] = top
        else:
            if withdirs:
                out[top["name"]] = top
            files: list[FileInfo] = []
            if "commit" in top:  # else the root of a branch with no commit yet
                with os_errors():
                    files = self.client.walk_file(loc.target)
            prefix = paths.dir_prefix(loc.path)
            for f in files:
                parts = f.path[len(prefix) :].split("/")
                if withdirs:
                    for depth in range(1, len(parts)):
                        if maxdepth is not None and depth > maxdepth:
                            break
                        name = loc.name(prefix + "/".join(parts[:depth]))
                        d = out.setdefault(
                            name,
                            {
                                "name": name,
                                "size": 0,
                                "type": "directory",
                                "repo": f.repo,
                                "commit": f.commit,
                            },
                        )
                        d["size"] += f.size_bytes
                if maxdepth is None or len(parts) <= maxdepth:
                    entry = self._entry(loc, f)
                    out[entry["name"]] = entry
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The file's bytes, or those in ``[start, end)`` (negative: from the end); a range
        reads only the chunks that hold it."""
        loc = locate(path)
        start = start or 0
        if start < 0 or (end is not None and end < 0):
            size = int(self.info(path)["size"])
            start = max(0, size + start) if start < 0 else start
            end = max(0, size + end) if end is not None and end < 0 else end
        if end is not None and end <= start:
            return b""
        with os_errors(IsADirectoryError):
            return self.client.get_file(
                loc.target, offset=start, length=None if end is None else end - start
            )

    def _open_stream(self, target: str, offset: int = 0) -> BinaryIO:
        """A streaming reader of ``target`` from ``offset`` (for :class:`HaathiFile`)."""
        with os_errors(IsADirectoryError):
            return self.client.open_file(target, offset=offset)

    def _read(self, stream: BinaryIO, size: int) -> bytes:
        """Read from a stream of :meth:`_open_stream` (a failure is an OSError)."""
        with os_errors():
            return stream.read(size)

    def checksum(self, path: str) -> int:
        """From the file's content hash: equal content, equal checksum, in any commit."""
        return int(tokenize(self.ukey(path)), 16)

    def ukey(self, path: str) -> str:
        """The file's content hash (the commit and name for a directory)."""
        info = self.info(path)
        return str(info.get("hash") or f"{info.get('commit')}:{info['name']}")

    # writing
    def _writable(self, loc: Location) -> None:
        """Fail before any byte is spooled if ``loc`` cannot be written."""
        parse_file(loc.target, for_write=True)
        if loc.ref is not None and is_commit_id(loc.ref):
            with os_errors():
                info = self.client.inspect_commit(loc.commit)
            if info.finished is not None:
                raise PermissionError(
                    f"{loc.commit} is a finished commit: it cannot be written (write to a branch)"
                )

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> HaathiFile:
        loc = locate(path)
        if mode == "rb":
            info = self.info(path)
            if info["type"] != "file":
                raise IsADirectoryError(f"{path} is a directory")
            pinned = f"{loc.repo}@{info['commit']}:{loc.path}"  # reads see one commit
            return HaathiFile(
                self,
                path,
                mode,
                target=pinned,
                size=info["size"],
                block_size=block_size,
                cache_options=cache_options,
                **kwargs,
            )
        if mode not in ("wb", "ab", "xb"):
            raise ValueError(f"mode {mode!r} is not supported: use rb, wb, ab or xb")
        if mode == "xb" and self.exists(path):
            raise FileExistsError(f"{path} exists")
        self._writable(loc)
        return HaathiFile(self, path, mode, target=loc.target, block_size=block_size,
                          autocommit=autocommit, **kwargs)  # fmt: skip

    def _put(self, target: str, source: BinaryIO | Path | bytes, *, append: bool = False) -> str:
        """Write one file as one commit; returns the commit ID."""
        with os_errors():
            return self.client.put_file(target, source, append=append)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write ``value`` to ``path`` as one commit."""
        if mode == "create" and self.exists(path):
            raise FileExistsError(f"{path} exists")
        self._put(locate(path).target, bytes(value))

    def put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        """Upload the local file ``lpath`` to ``rpath`` as one commit (streamed)."""
        if os.path.isdir(lpath):
            return  # directories are implicit
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(f"{rpath} exists")
        size = os.path.getsize(lpath)
        callback.set_size(size)
        self._put(locate(rpath).target, Path(lpath))
        callback.relative_update(size)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy a file as one commit, without copying bytes (a directory: nothing, as
        fsspec's ``copy`` copies its files one by one)."""
        if self.info(path1)["type"] != "file":
            return
        with os_errors():
            self.client.copy_file(locate(path1).target, locate(path2).target)

    def rm_file(self, path: str) -> None:
        """Delete one file as one commit."""
        self.rm(path)

    def _rm(self, path: str) -> None:
        self.rm(path)

    def rm(
        self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None
    ) -> None:
        """Delete files (and with ``recursive``, directories): one commit per branch."""
        matched: dict[str, Entry] = {}
        for p in [path] if isinstance(path, str) else path:
            if any(ch in p for ch in "*?["):
                found = self.glob(p, detail=True)
                if not found:
                    raise FileNotFoundError(f"{p}: nothing matches")
                matched.update(found)
            else:
                matched[self._strip_protocol(p)] = self.info(p)
        ops: dict[str, list[DeleteOp]] = {}
        for name, entry in sorted(matched.items()):
            loc = locate(name)
            if entry["type"] == "file":
                ops.setdefault(loc.commit, []).append(DeleteOp(loc.path))
            elif not recursive:
                raise IsADirectoryError(f"{name} is a directory: use recursive=True")
            elif maxdepth is None:
                ops.setdefault(loc.commit, []).append(DeleteOp(loc.path, recursive=True))
            else:
                for f in self.find(name, maxdepth=maxdepth):
                    ops.setdefault(loc.commit, []).append(DeleteOp(locate(f).path))
        for commit, deletes in ops.items():
            with os_errors():
                self.client.modify_file(commit, _outermost(deletes))


def _outermost(deletes: list[DeleteOp]) -> list[DeleteOp]:
    """The deletes without those inside a directory deleted as a whole (and no repeats)."""
    dirs = [d.path for d in deletes if d.recursive]
    out: dict[str, DeleteOp] = {}
    for d in deletes:
        if not any(d.path != x and d.path.startswith(paths.dir_prefix(x)) for x in dirs):
            out.setdefault(d.path, d)
    return list(out.values())
