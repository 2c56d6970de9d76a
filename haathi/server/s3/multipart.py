"""Multipart uploads in progress: their parts spooled to files on the server until
CompleteMultipartUpload writes the whole object as one commit.

Uploads live as long as the server process (a restart drops them, as an abort would). Each
upload has a directory under the gateway's spool directory; a part re-uploaded under the same
number replaces the earlier one.

What they may hold is bounded (:class:`UploadLimits`): how many are open on the server and per
caller, how many bytes of parts are spooled at once (a part's room is reserved from its
declared length before its body is read), and how long an upload may go without a new part
before it is aborted (an abandoned upload's parts do not stay on disk for ever). Past a bound,
a request is S3's ``SlowDown`` (503), which names the bound.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from haathi.models.auth import Caller
from haathi.server.s3.backend import BucketRef
from haathi.server.s3.errors import s3_error

MAX_PART_NUMBER = 10000
GiB = 1024**3
DEFAULT_SPOOL_BYTES = 64 * GiB


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Bounds on the multipart uploads of one gateway."""

    max_uploads: int = 1000  # open on the server
    max_uploads_per_caller: int = 100  # open per caller (with auth on; off, callers are one)
    max_spool_bytes: int = DEFAULT_SPOOL_BYTES  # bytes of parts on disk, all uploads together
    idle_s: float = 24 * 3600.0  # an upload with no new part for this long is aborted


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    file: Path
    size: int
    etag: str  # quoted hex MD5 of the part, as S3 gives
    uploaded: datetime


@dataclass
class Upload:
    id: str
    bucket: BucketRef
    key: str
    path: str
    owner: Caller | None  # who started it (None with auth off): only they may add to it
    directory: Path
    initiated: datetime
    parts: dict[int, Part] = field(default_factory=dict)
    completing: bool = False
    touched: float = field(default_factory=time.monotonic)  # its last new part (or creation)


def part_number(text: str | None) -> int:
    try:
        n = int(text or "")
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_PART_NUMBER:
        raise s3_error(
            "InvalidArgument", f"part number must be an integer between 1 and {MAX_PART_NUMBER}"
        )
    return n


class Uploads:
    """The multipart uploads of one gateway (thread-safe)."""

    def __init__(self, limits: UploadLimits | None = None, root: Path | None = None) -> None:
        self.limits = limits or UploadLimits()
        self.root = Path(tempfile.mkdtemp(prefix="haathi-s3-uploads-", dir=root))
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()
        self._spooled = 0  # bytes of the parts of every upload
        self._reserved = 0  # bytes reserved for parts being received

    @property
    def spooled_bytes(self) -> int:
        with self._lock:
            return self._spooled + self._reserved

    def _slow_down(self, why: str) -> Exception:
        idle = f"{self.limits.idle_s / 3600:g} hours"
        return s3_error("SlowDown", f"{why}: complete or abort uploads in progress (one with "
                        f"no new part for {idle} is aborted), then try again")  # fmt: skip

    def _expire(self) -> None:
        """Abort the uploads with no new part for longer than the limit."""
        deadline = time.monotonic() - self.limits.idle_s
        with self._lock:
            idle = [u for u in self._uploads.values() if u.touched < deadline]
            gone = [u for u in idle if not u.completing and self._drop(u)]
        for upload in gone:
            shutil.rmtree(upload.directory, ignore_errors=True)

    def _drop(self, upload: Upload) -> bool:
        """Forget an upload and count its parts off the spool (lock held); whether it was
        still there."""
        if self._uploads.pop(upload.id, None) is not upload:
            return False
        self._spooled -= sum(p.size for p in upload.parts.values())
        return True

    def create(self, bucket: BucketRef, key: str, path: str, owner: Caller | None) -> Upload:
        upload_id = uuid.uuid4().hex
        limits = self.limits
        self._expire()
        with self._lock:
            if len(self._uploads) >= limits.max_uploads:
                raise self._slow_down(f"this server has {limits.max_uploads} multipart uploads in "
                                 "progress, its most")  # fmt: skip
            mine = sum(1 for u in self._uploads.values() if u.owner == owner)
            if owner is not None and mine >= limits.max_uploads_per_caller:
                raise self._slow_down(f"{owner.subject} has {limits.max_uploads_per_caller} "
                                 "multipart uploads in progress, the most per caller")  # fmt: skip
            directory = self.root / upload_id
            directory.mkdir()
            upload = Upload(upload_id, bucket, key, path, owner, directory, datetime.now(UTC))
            self._uploads[upload_id] = upload
        return upload

    def get(self, upload_id: str, bucket: BucketRef, key: str, owner: Caller | None) -> Upload:
        self._expire()
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key or upload.completing:
            raise s3_error(
                "NoSuchUpload", f"no multipart upload {upload_id} of {key} in {bucket.name}: "
                "it may have been aborted or completed", upload=upload_id,
            )  # fmt: skip
        if upload.owner != owner:
            raise s3_error("AccessDenied", f"multipart upload {upload_id} is someone else's")
        return upload

    def of_bucket(self, bucket: BucketRef) -> list[Upload]:
        self._expire()
        with self._lock:
            found = [u for u in self._uploads.values() if u.bucket == bucket and not u.completing]
        return sorted(found, key=lambda u: (u.key, u.initiated))

    def parts(self, upload: Upload) -> list[Part]:
        """The upload's parts now, by number."""
        with self._lock:
            return [upload.parts[n] for n in sorted(upload.parts)]

    def size_without(self, upload: Upload, number: int) -> int:
        """The bytes of the upload's parts but part ``number``."""
        return sum(p.size for p in self.parts(upload) if p.number != number)

    def spool_file(self, upload: Upload, number: int) -> Path:
        """A fresh file to receive part ``number`` into (see :meth:`add_part`)."""
        return upload.directory / f"{number}.{uuid.uuid4().hex}.part"

    def reserve(self, upload: Upload, declared: int | None, room: int | None) -> int:
        """Reserve spool room for a part of ``upload`` of ``declared`` bytes (None: not known:
        then all the room left, at most ``room``, the upload's own); the bytes reserved, which
        the part may not pass, to :meth:`release` once it is received or refused."""
        self._expire()
        with self._lock:
            if self._uploads.get(upload.id) is not upload:
                raise s3_error("NoSuchUpload", f"multipart upload {upload.id} has ended")
            upload.touched = time.monotonic()  # (not aborted while a part arrives)
            free = self.limits.max_spool_bytes - self._spooled - self._reserved
            want = declared if declared is not None else free if room is None else min(free, room)
            if want > free or (declared is None and want <= 0):
                raise self._slow_down(
                    f"this server holds at most {self.limits.max_spool_bytes} "
                    "bytes of multipart parts, and has no room for this part"
                )
            self._reserved += want
            return want

    def release(self, reserved: int) -> None:
        with self._lock:
            self._reserved -= reserved

    def add_part(self, upload: Upload, part: Part) -> None:
        with self._lock:
            if upload.completing or self._uploads.get(upload.id) is not upload:
                part.file.unlink(missing_ok=True)
                raise s3_error("NoSuchUpload", f"multipart upload {upload.id} has ended")
            old = upload.parts.get(part.number)
            upload.parts[part.number] = part
            upload.touched = time.monotonic()
            self._spooled += part.size - (0 if old is None else old.size)
        if old is not None:
            old.file.unlink(missing_ok=True)

    def start_completing(self, upload: Upload, chosen: list[tuple[int, str]]) -> list[Part]:
        """The parts a CompleteMultipartUpload lists, checked (ascending numbers, each
        uploaded, ETags matching); no part can change until :meth:`finish` or
        :meth:`resume`."""
        numbers = [n for n, _ in chosen]
        if numbers != sorted(set(numbers)):
            raise s3_error("InvalidPartOrder", "the list of parts was not in ascending order")
        with self._lock:
            if upload.completing:
                raise s3_error("NoSuchUpload", f"multipart upload {upload.id} is completing")
            parts = []
            for number, etag in chosen:
                part = upload.parts.get(number)
                if part is None or (etag and etag.strip('"') != part.etag.strip('"')):
                    raise s3_error(
                        "InvalidPart", f"part {number} was not uploaded or its ETag differs"
                    )
                parts.append(part)
            upload.completing = True
        return parts

    def resume(self, upload: Upload) -> None:
        """A completion failed: the upload takes parts again."""
        with self._lock:
            upload.completing = False

    def finish(self, upload: Upload) -> None:
        """Forget an upload (completed or aborted) and delete its parts."""
        with self._lock:
            self._drop(upload)
        shutil.rmtree(upload.directory, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._uploads.clear()
            self._spooled = 0
        shutil.rmtree(self.root, ignore_errors=True)


class Concatenated(io.RawIOBase):
    """The part files one after another, as one stream."""

    def __init__(self, files: list[Path]) -> None:
        super().__init__()
        self._files = iter(files)
        self._current: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self._current is None:
                nxt = next(self._files, None)
                if nxt is None:
                    return 0
                self._current = open(nxt, "rb")  # noqa: SIM115 - closed at its end or close()
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()
