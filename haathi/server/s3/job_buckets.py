"""A job's buckets, as its S3 sidecar serves them (:mod:`haathi.server.sidecar`).

- One read-only bucket per s3 input, named by the input: the current datum's files of it
  (its glob is ``/``: the input commit), read from the store as a datum's inputs are.
- With ``s3_out``, the bucket ``out``: the datum's output directory on this host, which the
  worker collects after each run as it collects ``/pfs/out``. A write lands there atomically
  (received into a spool directory on the same file system, then renamed into place); reads,
  listings and deletes see the files there now.

Nothing else can be named: no repo, branch or commit, no other job's data; a bucket that is
not the job's is ``NoSuchBucket``, and none can be made. User code owns the output directory
(it may also write ``/pfs/out`` directly), so the gateway never follows a symbolic link
there: every path is opened one name at a time below the directory, without following links.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import hmac
import os
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from haathi.errors import NotFound
from haathi.models import paths
from haathi.models.info import FileInfo, FileType
from haathi.pfs import files
from haathi.pfs.context import PfsContext
from haathi.pps.sidecars import S3Bucket
from haathi.server.s3 import sigv4
from haathi.server.s3.backend import Access, BucketRef, View
from haathi.server.s3.errors import s3_error
from haathi.tree.entry import FileEntry, content_hash, iter_chunks

OUT = "out"
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class JobBucket:
    name: str
    writable: bool
    exists: bool = True

    def require_writable(self) -> None:
        if not self.exists:
            raise _no_bucket(self.name)
        if not self.writable:
            raise s3_error(
                "AccessDenied", f"bucket {self.name} is an input of the job: it is read-only "
                f"(write the output to bucket {OUT}, with s3_out)", bucket=self.name,
            )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobView:
    bucket: JobBucket
    time: datetime


def _no_bucket(name: str) -> Exception:
    return s3_error(
        "NoSuchBucket", f"no bucket {name}: this job's gateway serves its s3 inputs (by name) "
        f"and, with s3_out, {OUT}", bucket=name,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Input:
    """An input bucket's files: paths in order, and their entries."""

    commit: str
    paths: list[str]
    entries: dict[str, FileEntry]

    @classmethod
    def of(cls, bucket: S3Bucket) -> _Input:
        entries = {}
        for path, chunks in bucket.files:
            size = sum(n for _, n in iter_chunks(chunks))
            entries[path] = FileEntry(path, size, content_hash(chunks), chunks)
        return cls(bucket.commit, sorted(entries), entries)


def _bucket_of(view: View) -> JobBucket:
    assert isinstance(view, JobView)
    return view.bucket


class JobBuckets:
    """The buckets of one datum set's gateway: :meth:`serve` names the current datum's
    inputs; ``out_dir`` is bucket ``out`` (None: no ``s3_out``). Files the gateway makes there
    are given to ``owner`` (user code's user, when haathi runs as root)."""

    def __init__(
        self,
        ctx: PfsContext,
        out_dir: Path | None,
        spool_dir: Path,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.ctx, self.out_dir, self.spool_dir, self.owner = ctx, out_dir, spool_dir, owner
        self.started = datetime.now(UTC)
        self._inputs: dict[str, _Input] = {}
        self._lock = threading.Lock()
        self._md5: dict[str, tuple[tuple[int, int, int], str]] = {}  # path -> (stat key, md5)

    def serve(self, inputs: Sequence[S3Bucket]) -> None:
        """Serve these buckets from now on (an input of the same commit as before is kept:
        crossed with a /pfs input, every datum has the same s3 input)."""
        with self._lock:
            before = self._inputs
        made = {}
        for b in inputs:
            kept = before.get(b.name)
            same = kept is not None and kept.commit == b.commit and len(kept.paths) == len(b.files)
            made[b.name] = kept if same and kept is not None else _Input.of(b)
        with self._lock:
            self._inputs = made

    def _input(self, name: str) -> _Input:
        with self._lock:
            found = self._inputs.get(name)
        if found is None:
            raise _no_bucket(name)
        return found

    # -- the Buckets protocol (haathi.server.s3.backend) --------------------------------

    def bucket(self, name: str) -> JobBucket:
        if name == OUT and self.out_dir is not None:
            return JobBucket(name, writable=True)
        with self._lock:
            known = name in self._inputs
        return JobBucket(name, writable=False, exists=known)

    def list_buckets(self) -> list[tuple[str, datetime]]:
        with self._lock:
            names = list(self._inputs)
        if self.out_dir is not None:
            names.append(OUT)
        return sorted((name, self.started) for name in names)

    def create_bucket(self, bucket: BucketRef) -> None:
        raise s3_error(
            "AccessDenied", f"cannot create bucket {bucket.name}: a job's gateway serves the "
            "job's own buckets and makes none",
        )  # fmt: skip

    def open(self, bucket: BucketRef) -> JobView:
        assert isinstance(bucket, JobBucket)
        if not bucket.exists:
            raise _no_bucket(bucket.name)
        if bucket.writable:
            return JobView(bucket, datetime.now(UTC))
        self._input(bucket.name)  # (still the datum's)
        return JobView(bucket, self.started)

    def find(self, view: View, key: str, path: str | None) -> FileInfo:
        bucket = _bucket_of(view)
        info = None if path is None else self._stat(bucket, path)
        if info is None:
            raise s3_error("NoSuchKey", f"no key {key!r} in bucket {bucket.name}", key=key)
        return info

    def _stat(self, bucket: JobBucket, path: str) -> FileInfo | None:
        if not bucket.writable:
            found = self._input(bucket.name)
            entry = found.entries.get(path)
            return None if entry is None else _input_info(bucket.name, found.commit, entry)
        try:
            fd = self._open_out(path)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            return self._out_info(path, st, fd)
        finally:
            os.close(fd)

    def read(self, view: View, path: str, offset: int, length: int | None) -> Iterator[bytes]:
        bucket = _bucket_of(view)
        if not bucket.writable:
            entry = self._input(bucket.name).entries.get(path)
            if entry is None:
                raise NotFound(f"no key {path[1:]!r} in bucket {bucket.name}")
            end = entry.size if length is None else min(entry.size, offset + length)
            return files.read_content(self.ctx, entry, offset, end)
        try:
            fd = self._open_out(path)
        except OSError as exc:
            raise NotFound(f"no key {path[1:]!r} in bucket {OUT}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotFound(f"no key {path[1:]!r} in bucket {OUT}")
        return _read_fd(fd, offset, length)

    def walk(self, view: View, directory: str, start: str, limit: int) -> list[FileInfo]:
        bucket = _bucket_of(view)
        prefix = paths.dir_prefix(directory)
        if not bucket.writable:
            found = self._input(bucket.name)
            names = found.paths
            at = bisect.bisect_left(names, max(start, prefix))
            taken = [p for p in names[at : at + limit] if p.startswith(prefix)]
            return [_input_info(bucket.name, found.commit, found.entries[p]) for p in taken]
        listed = sorted(p for p in self._out_files() if p.startswith(prefix) and p >= start)
        out = []
        for path in listed[:limit]:
            info = self._stat(bucket, path)
            if info is not None:
                out.append(info)
        return out

    def authorize_write(self, bucket: BucketRef) -> None:
        bucket.require_writable()

    @contextlib.contextmanager
    def spool(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="put-", dir=self.spool_dir) as tmp:
            yield Path(tmp)

    def write(
        self, bucket: BucketRef, path: str, parts: Sequence[Path], size: int, md5: str | None,
        what: str,
    ) -> FileInfo:  # fmt: skip
        bucket.require_writable()
        if len(parts) == 1 and md5 is not None:  # a body received in self.spool(): moved
            return self._land(path, parts[0], md5)
        with self.spool() as tmp:
            return self._land(path, tmp / "body", _concatenate(parts, tmp / "body"))

    def copy(
        self, bucket: BucketRef, path: str, source: View, source_path: str, what: str
    ) -> tuple[FileInfo, datetime]:
        bucket.require_writable()
        with self.spool() as tmp:
            body = tmp / "body"
            digest = hashlib.md5(usedforsecurity=False)
            with open(body, "wb") as out:
                for piece in self.read(source, source_path, 0, None):
                    out.write(piece)
                    digest.update(piece)
            info = self._land(path, body, digest.hexdigest())
        return info, datetime.now(UTC)

    def delete(self, bucket: BucketRef, paths: Sequence[str], what: str) -> None:
        bucket.require_writable()
        for path in paths:
            parent, name = self._parent(path, make=False)
            if parent is None:
                continue
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    os.unlink(name, dir_fd=parent)
            except FileNotFoundError:
                pass
            finally:
                os.close(parent)

    # -- the output directory -----------------------------------------------------------

    def _parent(self, path: str, *, make: bool) -> tuple[int | None, str]:
        """A descriptor of the directory holding ``path`` in the output directory (made if
        ``make``), opened one name at a time without following links; None when it is not
        there. A file where a directory must be is a path collision."""
        assert self.out_dir is not None
        names = path.strip("/").split("/")
        fd = os.open(self.out_dir, _DIR_FLAGS)
        try:
            for i, name in enumerate(names[:-1]):
                try:
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not make:
                        os.close(fd)
                        return None, names[-1]
                    os.mkdir(name, 0o755, dir_fd=fd)
                    self._give(name, fd)
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except (NotADirectoryError, OSError) as exc:
                    if not make:
                        os.close(fd)
                        return None, names[-1]
                    above = "/" + "/".join(names[: i + 1])
                    raise _collision(path, above) from exc
                os.close(fd)
                fd = nxt
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return fd, names[-1]

    def _open_out(self, path: str) -> int:
        """The file ``path`` of the output directory, open for reading (never a link
        followed; never blocking, should user code have left a pipe there)."""
        parent, name = self._parent(path, make=False)
        if parent is None:
            raise FileNotFoundError(path)
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            return os.open(name, flags, dir_fd=parent)
        finally:
            os.close(parent)

    def _give(self, name: str, dir_fd: int) -> None:
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)

    def _land(self, path: str, body: Path, md5: str) -> FileInfo:
        """Move the received ``body`` into place at ``path`` (atomically: a rename)."""
        os.chmod(body, 0o644)
        if self.owner is not None:
            os.chown(body, *self.owner)
        parent, name = self._parent(path, make=True)
        assert parent is not None
        try:
            try:
                if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                    raise _collision(path, path)
            except FileNotFoundError:
                pass
            os.rename(body, name, dst_dir_fd=parent)
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
        with self._lock:
            self._md5[path] = (_stat_key(st), md5)
        return _out_file(path, st.st_size, md5)

    def _out_info(self, path: str, st: os.stat_result, fd: int) -> FileInfo:
        key = _stat_key(st)
        with self._lock:
            known = self._md5.get(path)
        if known is not None and known[0] == key:
            md5 = known[1]
        else:  # written through /pfs/out, or changed there since
            digest = hashlib.md5(usedforsecurity=False)
            for piece in _read_fd(os.dup(fd), 0, None):
                digest.update(piece)
            md5 = digest.hexdigest()
            with self._lock:
                self._md5[path] = (key, md5)
        return _out_file(path, st.st_size, md5)

    def _out_files(self) -> Iterator[str]:
        """Every regular file's path in the output directory (links not followed)."""
        assert self.out_dir is not None
        root = str(self.out_dir)
        for top, dirs, names in os.walk(root, followlinks=False):
            rel = top[len(root) :]
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
            for name in names:
                if stat.S_ISREG(os.lstat(os.path.join(top, name)).st_mode):
                    yield f"{rel}/{name}"


class JobBackend:
    """A job's buckets, to requests signed with the job's token (the access key ID and the
    secret access key both, as Pachyderm's sidecar has it): unsigned is ``AccessDenied``,
    another key ``InvalidAccessKeyId``, a wrong signature ``SignatureDoesNotMatch``."""

    def __init__(self, buckets: JobBuckets, token: str) -> None:
        self.buckets, self._token = buckets, token

    def authenticate(
        self, method: str, raw_path: str, raw_query: str, headers: sigv4.Headers
    ) -> Access:
        signed = sigv4.parse(headers, raw_query)
        if signed is None:
            raise s3_error(
                "AccessDenied", "sign requests with the job's credentials: $AWS_ACCESS_KEY_ID "
                "and $AWS_SECRET_ACCESS_KEY",
            )  # fmt: skip
        if not hmac.compare_digest(signed.credential.access_key.encode(), self._token.encode()):
            raise s3_error(
                "InvalidAccessKeyId", "the access key ID is not this job's: use "
                "$AWS_ACCESS_KEY_ID (a job's credentials work only while it runs)",
            )  # fmt: skip
        key = sigv4.verify(method, raw_path, raw_query, headers, signed, self._token)
        streaming = signed.payload_hash in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER)
        return Access(self.buckets, None, sigv4.ChunkChain(key, signed) if streaming else None)

    def close(self) -> None:
        pass


def _input_info(bucket: str, commit: str, entry: FileEntry) -> FileInfo:
    return FileInfo(
        bucket, commit, entry.path, FileType.FILE, entry.size, entry.hash.hex(),
        entry.chunk_count,
    )  # fmt: skip


def _out_file(path: str, size: int, md5: str) -> FileInfo:
    return FileInfo(OUT, "", path, FileType.FILE, size, md5)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _collision(path: str, where: str) -> Exception:
    return s3_error(
        "InvalidRequest", f"file / directory path collision: {path} (at {where}: a key cannot "
        "be an object and hold objects)", key=path[1:],
    )  # fmt: skip


def _read_fd(fd: int, offset: int, length: int | None) -> Iterator[bytes]:
    """Bytes of the open file ``fd`` from ``offset``, at most ``length`` (closes ``fd``)."""
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        left = length
        while left is None or left > 0:
            data = os.read(fd, _CHUNK if left is None else min(_CHUNK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data
    finally:
        os.close(fd)


def _concatenate(parts: Sequence[Path], dest: Path) -> str:
    """Write ``parts`` one after another to ``dest``; their hex MD5."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while data := f.read(_CHUNK):
                    out.write(data)
                    digest.update(data)
    return digest.hexdigest()
