"""Multipart uploads in progress: their parts spooled to files on the server until
CompleteMultipartUpload writes the whole object as one commit.

Uploads live as long as the server process (a restart drops them, as an abort would). Each
upload has a directory under the gateway's spool directory; a part re-uploaded under the same
number replaces the earlier one.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from haathi.models.auth import Caller
from haathi.server.s3.buckets import Bucket
from haathi.server.s3.errors import s3_error

MAX_PART_NUMBER = 10000


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
    bucket: Bucket
    key: str
    path: str
    owner: Caller | None  # who started it (None with auth off): only they may add to it
    directory: Path
    initiated: datetime
    parts: dict[int, Part] = field(default_factory=dict)
    completing: bool = False


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

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="haathi-s3-uploads-"))
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def create(self, bucket: Bucket, key: str, path: str, owner: Caller | None) -> Upload:
        upload_id = uuid.uuid4().hex
        directory = self.root / upload_id
        directory.mkdir()
        upload = Upload(upload_id, bucket, key, path, owner, directory, datetime.now(UTC))
        with self._lock:
            self._uploads[upload_id] = upload
        return upload

    def get(self, upload_id: str, bucket: Bucket, key: str, owner: Caller | None) -> Upload:
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

    def of_bucket(self, bucket: Bucket) -> list[Upload]:
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

    def add_part(self, upload: Upload, part: Part) -> None:
        with self._lock:
            if upload.completing or self._uploads.get(upload.id) is not upload:
                part.file.unlink(missing_ok=True)
                raise s3_error("NoSuchUpload", f"multipart upload {upload.id} has ended")
            old = upload.parts.get(part.number)
            upload.parts[part.number] = part
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
            self._uploads.pop(upload.id, None)
        shutil.rmtree(upload.directory, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._uploads.clear()
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

