"""Blobs: immutable byte strings named by their BLAKE3 hash, compressed and stored in packs.

A pack is one object holding many blobs (file chunks and tree nodes alike) followed by a footer
that lists them. A pack is made durable in the object store *before* its rows enter the blob
index, so a crash can leave an orphan pack but never an index row pointing at nothing. Every
read re-hashes the blob: corrupt data raises :class:`Corrupt` naming the blob, never returns.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import blake3
import msgpack
import zstandard

from haathi.errors import Corrupt, NotFound, StorageError
from haathi.storage import chunker as chunking
from haathi.storage.cache import BlobCache
from haathi.storage.objects import LocalObjectStore, ObjectStore, OpenObject, check_length
from haathi.storage.readahead import ReadAhead, RunReader

RAW = 0
ZSTD = 1
PACK_MAGIC = b"HAATHIPK"
FOOTER = struct.Struct(">Q8s")
PACK_TARGET = 64 * 1024 * 1024
CHECK_BATCH_BYTES = 4 * 1024 * 1024
CHECK_BATCH_COUNT = 2048
ZSTD_LEVEL = 1
LOCATE_BATCH = 2048  # blobs located in one query at most by a long read (iter_blobs)
RANGE_MIN = 64 * 1024  # a smaller blob is sent as bytes (iter_stored)
KNOWN_KEPT = 65536  # digests a writer remembers finding indexed (duplicates cost no lookup)


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where one blob lives: its pack, byte range, raw size and codec."""

    digest: bytes
    pack: str
    offset: int
    length: int
    raw_length: int
    codec: int


@dataclass(frozen=True, slots=True)
class StoredRange:
    """``length`` bytes at ``offset`` of a pack open in ``pack``, verified: bytes of a blob
    stored raw in a local pack, hashed when they were read. A server sends them from the file
    (``os.sendfile``) instead of through memory. The bytes it sends are the bytes checked:
    a pack is never changed once written (a repair or a test replaces the whole file, and
    ``pack`` stays open on the one that was read; gc deletes whole files); only a write into
    the file in place, behind haathi's back, could change them in between."""

    pack: OpenObject
    offset: int
    length: int

    def then(self, after: StoredRange) -> StoredRange | None:
        """These bytes and ``after`` as one range, if ``after`` follows them in the pack."""
        if after.pack is not self.pack or after.offset != self.offset + self.length:
            return None
        return StoredRange(self.pack, self.offset, self.length + after.length)

    def part(self, skip: int, n: int) -> StoredRange:
        """Bytes ``[skip, skip + n)`` of these, cut to the ones there are (as a slice)."""
        start = min(max(skip, 0), self.length)
        return StoredRange(self.pack, self.offset + start, min(max(n, 0), self.length - start))


class BlobIndex(Protocol):
    """The blob index (kept in the metadata database by ``meta``)."""

    def locate(self, digests: Sequence[bytes]) -> dict[bytes, BlobLocation]:
        """Locations of those ``digests`` that are indexed."""

    def known(self, digests: Sequence[bytes]) -> set[bytes]:
        """The subset of ``digests`` already indexed."""

    def add_pack(
        self, pack: str, size: int, rows: Sequence[BlobLocation], check: Callable[[], None]
    ) -> None:
        """Record a durable pack and its blobs in one transaction (existing digests kept);
        ``check`` runs inside it and raises if the pack's object has gone."""


def pack_key(pack: str) -> str:
    return f"packs/{pack[:2]}/{pack}"


def digest_of(data: bytes | memoryview) -> bytes:
    return blake3.blake3(data).digest()


_codecs = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_codecs, "compressor", None)
    if c is None:
        c = _codecs.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_codecs, "decompressor", None)
    if d is None:
        d = _codecs.decompressor = zstandard.ZstdDecompressor()
    return d


def encode(data: bytes | memoryview) -> tuple[int, bytes]:
    """Compress with zstd unless it does not pay."""
    compressed = _compressor().compress(data)
    if len(compressed) < len(data) - len(data) // 32:
        return ZSTD, compressed
    return RAW, bytes(data)


def decode(codec: int, payload: bytes, raw_length: int) -> bytes:
    if codec == RAW:
        return payload
    if codec == ZSTD:
        return _decompressor().decompress(payload, max_output_size=raw_length)
    raise Corrupt(f"unknown blob codec {codec}")


class _PackSpool:
    """A pack being written to a local temp file."""

    def __init__(self, spool_dir: Path) -> None:
        self.id = uuid.uuid4().hex
        self.path = spool_dir / f".tmp-pack-{self.id}"
        self.fh: BinaryIO = open(self.path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in seal()/abort()
        self.fh.write(PACK_MAGIC)
        self.size = len(PACK_MAGIC)
        self.rows: list[BlobLocation] = []
        self.digests: set[bytes] = set()

    def append(self, digest: bytes, codec: int, payload: bytes, raw_length: int) -> None:
        self.fh.write(payload)
        self.rows.append(BlobLocation(digest, self.id, self.size, len(payload), raw_length, codec))
        self.digests.add(digest)
        self.size += len(payload)

    def seal(self) -> None:
        footer = msgpack.packb(
            [[r.digest, r.offset, r.length, r.raw_length, r.codec] for r in self.rows]
        )
        self.fh.write(footer)
        self.fh.write(FOOTER.pack(len(footer), PACK_MAGIC))
        self.size += len(footer) + FOOTER.size
        self.fh.close()

    def abort(self) -> None:
        self.fh.close()
        self.path.unlink(missing_ok=True)


class BlobWriter:
    """Adds blobs to packs; thread-safe. ``flush()`` makes everything added so far durable.

    Its memory does not grow with the blobs written: it remembers the digests of the blobs
    not yet indexed (pending, in the pack being written, in packs being stored) and a few
    thousand found indexed, and 32 bytes per blob it was given (:meth:`iter_referenced`).
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._pending_digests: set[bytes] = set()
        self._known: set[bytes] = set()  # recently found indexed (cleared when it grows)
        self._referenced = bytearray()  # the digests given or told of, 32 bytes each
        self._pending: list[tuple[bytes, int, bytes, int]] = []
        self._pending_bytes = 0
        self._spool: _PackSpool | None = None
        self._sealer: ThreadPoolExecutor | None = None
        self._inflight: list[tuple[Future[None], _PackSpool]] = []
        self.bytes_written = 0
        self.chunker = store.chunker

    def _has_locked(self, digest: bytes) -> bool:
        """Whether the blob is known indexed, or added and not yet indexed."""
        return (
            digest in self._pending_digests
            or digest in self._known
            or (self._spool is not None and digest in self._spool.digests)
            or any(digest in spool.digests for _, spool in self._inflight)
        )

    def put(self, data: bytes | memoryview) -> bytes:
        """Add one blob; returns its digest. Duplicates (in this writer or indexed) cost nothing."""
        digest = digest_of(data)
        with self._lock:
            self._referenced += digest
            if self._has_locked(digest):
                return digest
        codec, payload = encode(data)
        with self._lock:
            self._add_locked(digest, codec, payload, len(data))
        return digest

    def put_encoded(self, digest: bytes, codec: int, payload: bytes, raw_length: int) -> bytes:
        """Add one blob already hashed and encoded (by :mod:`haathi.storage.encoder`)."""
        with self._lock:
            self._referenced += digest
            self._add_locked(digest, codec, payload, raw_length)
        return digest

    def _add_locked(self, digest: bytes, codec: int, payload: bytes, raw_length: int) -> None:
        if self._has_locked(digest):
            return
        self._pending_digests.add(digest)
        self._pending.append((digest, codec, payload, raw_length))
        self._pending_bytes += len(payload)
        if self._pending_bytes >= CHECK_BATCH_BYTES or len(self._pending) >= CHECK_BATCH_COUNT:
            self._drain_locked()

    @property
    def referenced(self) -> frozenset[bytes]:
        """Every digest this writer was given or told of: what a commit built with it uses."""
        return frozenset(self.iter_referenced())

    def iter_referenced(self) -> Iterator[bytes]:
        """:attr:`referenced`, one digest at a time (some maybe more than once)."""
        with self._lock:
            refs = bytes(self._referenced)
        for i in range(0, len(refs), 32):
            yield refs[i : i + 32]

    def track(self, digests: Iterable[bytes]) -> None:
        """Count existing blobs (e.g. of copied files) as used by this writer's commit."""
        with self._lock:
            for d in digests:
                self._referenced += d

    def _drain_locked(self) -> None:
        if not self._pending:
            return
        known = self._store.index.known([p[0] for p in self._pending])
        if len(self._known) + len(known) > KNOWN_KEPT:
            self._known.clear()
        self._known.update(known)
        self._pending_digests.clear()
        for digest, codec, payload, raw_length in self._pending:
            if digest in known:
                continue
            if self._spool is None:
                self._spool = _PackSpool(self._store.spool_dir)
            self._spool.append(digest, codec, payload, raw_length)
            self.bytes_written += len(payload)
            if self._spool.size >= self._store.pack_target:
                self._seal_in_background_locked()
        self._pending.clear()
        self._pending_bytes = 0

    def _store_pack(self, spool: _PackSpool) -> None:
        spool.seal()
        key = pack_key(spool.id)
        try:
            self._store.objects.put_file(key, spool.path)
        finally:
            spool.path.unlink(missing_ok=True)  # stored (and usually moved) or failed

        def check() -> None:
            if not self._store.objects.exists(key):
                raise StorageError(f"pack {spool.id} was removed while being stored; retry")

        self._store.index.add_pack(spool.id, spool.size, spool.rows, check)

    def _seal_in_background_locked(self) -> None:
        """Hand a full pack to the sealing thread, so storing it overlaps further chunking."""
        spool, self._spool = self._spool, None
        if spool is None:
            return
        if self._sealer is None:
            self._sealer = ThreadPoolExecutor(1, thread_name_prefix="haathi-pack")
        try:
            while len(self._inflight) >= 2:
                self._inflight[0][0].result()
                self._inflight.pop(0)  # indexed: the index knows its blobs now
        except BaseException:
            spool.abort()  # an earlier upload failed: this pack will never be stored
            raise
        self._inflight.append((self._sealer.submit(self._store_pack, spool), spool))

    def _wait_inflight_locked(self) -> None:
        try:
            for fut, _ in self._inflight:
                fut.result()
        finally:
            self._inflight.clear()
            if self._sealer is not None:
                self._sealer.shutdown()
                self._sealer = None

    def flush(self) -> None:
        """Write out pending blobs and seal the current pack: all added blobs become readable."""
        with self._lock:
            self._drain_locked()
            spool, self._spool = self._spool, None
            try:
                if spool is not None:
                    self._store_pack(spool)
            finally:
                self._wait_inflight_locked()

    def abort(self) -> None:
        """Drop unsealed blobs (they were never indexed)."""
        with self._lock:
            self._pending.clear()
            self._pending_digests.clear()
            if self._spool is not None:
                self._spool.abort()
                self._spool = None
            with contextlib.suppress(Exception):
                self._wait_inflight_locked()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.abort()


class BlobStore:
    """Reads and writes blobs over an object store and a blob index."""

    def __init__(
        self,
        objects: ObjectStore,
        index: BlobIndex,
        spool_dir: Path,
        *,
        pack_target: int = PACK_TARGET,
        cache: BlobCache | None = None,
        chunker: str = chunking.DEFAULT,
        read_ahead: ReadAhead = ReadAhead(),
    ) -> None:
        self.objects = objects
        self.index = index
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.pack_target = pack_target
        self.cache = cache
        self.chunker = chunking.check_chunker(chunker)  # how this store cuts files into chunks
        self.read_ahead = read_ahead

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def read_location(
        self, loc: BlobLocation, payload: bytes | None = None, *, keep: bool = True
    ) -> bytes:
        """Read and verify one located blob (from the cache when it holds a good copy; else
        from ``payload``, its stored bytes when already read, or from its pack, and then kept
        in the cache unless ``keep`` is False)."""
        if self.cache is not None and payload is None:
            cached = self.cache.get(loc.digest)
            if cached is not None:
                with contextlib.suppress(zstandard.ZstdError, Corrupt):
                    data = decode(loc.codec, cached, loc.raw_length)
                    if len(data) == loc.raw_length and digest_of(data) == loc.digest:
                        return data
                self.cache.discard(loc.digest)
        payload, data = self.read_stored(loc, payload)
        if self.cache is not None and keep:
            self.cache.put(loc.digest, payload)
        return data

    def read_stored(self, loc: BlobLocation, payload: bytes | None = None) -> tuple[bytes, bytes]:
        """(stored payload, verified data) of one blob, from the object store (or from
        ``payload``, its bytes already read with the rest of its pack)."""
        try:
            if payload is None:
                payload = self.objects.get_range(pack_key(loc.pack), loc.offset, loc.length)
            data = decode(loc.codec, payload, loc.raw_length)
        except NotFound as exc:
            raise _unreadable(loc, exc) from exc
        except zstandard.ZstdError as exc:
            raise Corrupt(
                f"blob {loc.digest.hex()} in pack {loc.pack} is corrupt: {exc}",
                blob=loc.digest.hex(),
                pack=loc.pack,
            ) from exc
        _check_digest(loc, data)
        return payload, data

    def iter_stored(
        self, digests: Iterable[bytes], *, batch: int = 256, keep: bool = False
    ) -> Iterator[bytes | StoredRange]:
        """As :meth:`iter_blobs`, but on a local store a blob stored raw, of
        :data:`RANGE_MIN` bytes or more, comes as the :class:`StoredRange` of its bytes in its
        pack: read into one buffer reused for every blob and verified there, for a server to
        send from the file (no copy through memory, no allocation per blob). Every other blob
        comes as its bytes."""
        objects = self.objects
        if not isinstance(objects, LocalObjectStore):
            yield from self.iter_blobs(digests, batch=batch, keep=keep)
            return
        buf = bytearray()
        pack: OpenObject | None = None
        for chunk in _batched(digests, batch, max(batch, LOCATE_BATCH)):
            for loc in self._located(chunk):
                if loc.codec != RAW or loc.length < RANGE_MIN or self._cached(loc.digest):
                    yield self.read_location(loc, keep=keep)
                    continue
                key = pack_key(loc.pack)
                try:
                    if pack is None or pack.key != key:
                        pack = objects.open(key)
                    if len(buf) < loc.length:
                        buf = bytearray(loc.length)
                    view = memoryview(buf)[: loc.length]
                    try:
                        got = os.preadv(pack.fd, [view], loc.offset)
                    except OSError as exc:
                        raise StorageError(
                            f"cannot read object {key}: {exc.strerror or exc}"
                        ) from exc
                    check_length(key, loc.offset, loc.length, view[:got])
                except NotFound as exc:
                    raise _unreadable(loc, exc) from exc
                _check_digest(loc, view)
                yield StoredRange(pack, loc.offset, loc.length)

    def locate(self, digests: Sequence[bytes]) -> dict[bytes, BlobLocation]:
        """Locations of ``digests``; Corrupt if any is missing from the index."""
        found = self.index.locate(digests)
        for d in digests:
            if d not in found:
                raise Corrupt(f"blob {d.hex()} is missing from the blob index", blob=d.hex())
        return found

    def get(self, digest: bytes) -> bytes:
        """Read one blob, verified."""
        return self.read_location(self.locate([digest])[digest])

    def check_readable(self, digests: Sequence[bytes], *, batch: int = LOCATE_BATCH) -> None:
        """Corrupt unless every blob is indexed and its pack is there and long enough to hold
        it (or the local cache holds it): what can be known without reading data."""
        sizes: dict[str, int] = {}
        for i in range(0, len(digests), batch):
            for loc in self.locate(list(dict.fromkeys(digests[i : i + batch]))).values():
                if self._cached(loc.digest):
                    continue
                if loc.pack not in sizes:
                    try:
                        sizes[loc.pack] = self.objects.size(pack_key(loc.pack))
                    except NotFound as exc:
                        raise Corrupt(
                            f"blob {loc.digest.hex()} is unreadable: pack {loc.pack} is missing "
                            "from the object store", blob=loc.digest.hex(), pack=loc.pack,
                        ) from exc  # fmt: skip
                if loc.offset + loc.length > sizes[loc.pack]:
                    raise Corrupt(
                        f"blob {loc.digest.hex()} is unreadable: pack {loc.pack} is truncated "
                        f"({sizes[loc.pack]} bytes; the blob needs bytes {loc.offset}-"
                        f"{loc.offset + loc.length - 1})", blob=loc.digest.hex(), pack=loc.pack,
                    )  # fmt: skip

    def iter_blobs(
        self, digests: Iterable[bytes], *, batch: int = 256, keep: bool = False
    ) -> Iterator[bytes]:
        """Read many blobs in order, verified: located in batches (of ``batch``, growing to
        LOCATE_BATCH), the stored bytes of those
        close together in a pack read together, runs ahead read in parallel as
        ``read_ahead`` allows (:mod:`haathi.storage.readahead`). Kept in the cache only with
        ``keep``: a stream (a restore, a large file) passes it by, as it would only evict
        what the cache holds, and writing each blob twice costs as much as the read."""
        batches = _batched(digests, batch, max(batch, LOCATE_BATCH))
        located = (self._located(chunk) for chunk in batches)
        cache = self.cache
        skip = None if cache is None else lambda loc: cache.has(loc.digest)
        reader = RunReader(located, self._read_range, self.read_ahead, skip=skip)
        try:
            for loc, payload in reader:
                yield self.read_location(loc, payload, keep=keep)
        finally:  # also when a blob is found corrupt: the reads ahead end at once
            reader.close()

    def _located(self, digests: list[bytes]) -> list[BlobLocation]:
        locs = self.locate(list(dict.fromkeys(digests)))
        return [locs[d] for d in digests]

    def _read_range(self, pack: str, offset: int, length: int) -> bytes:
        return self.objects.get_range(pack_key(pack), offset, length)

    def _cached(self, digest: bytes) -> bool:
        return self.cache is not None and self.cache.has(digest)


def _unreadable(loc: BlobLocation, exc: NotFound) -> Corrupt:
    return Corrupt(f"blob {loc.digest.hex()} is unreadable: {exc}", blob=loc.digest.hex())


def _check_digest(loc: BlobLocation, data: bytes | memoryview) -> None:
    """Corrupt unless ``data`` are the blob's bytes."""
    if len(data) != loc.raw_length or digest_of(data) != loc.digest:
        raise Corrupt(
            f"blob {loc.digest.hex()} in pack {loc.pack} is corrupt: hash mismatch",
            blob=loc.digest.hex(),
            pack=loc.pack,
        )


def _batched(items: Iterable[bytes], first: int, most: int) -> Iterator[list[bytes]]:
    """``items`` in batches of ``first``, then twice as many each time up to ``most``: a short
    read waits for no more than it needs, a long one asks the index in few queries."""
    batch: list[bytes] = []
    n = first
    for item in items:
        batch.append(item)
        if len(batch) >= n:
            yield batch
            batch = []
            n = min(2 * n, most)
    if batch:
        yield batch


def check_pack_layout(pack: str, data: bytes) -> tuple[list[BlobLocation], list[str]]:
    """The blobs a whole pack lists in its footer, and every way ``data`` departs from the
    layout a pack is written in: the magic, the blobs back to back, the footer listing them
    (byte for byte as ``seal`` wrote it), then the trailer (footer length and magic). With the
    listed blobs' hashes checked too, every byte of the pack is verified."""
    issues: list[str] = []
    head, size = len(PACK_MAGIC), len(data)
    if data[:head] != PACK_MAGIC:
        issues.append(f"its header (bytes 0-{head - 1}) is not the pack magic")
    if size < head + FOOTER.size:
        return [], [*issues, f"it is {size} bytes, too short to be a pack"]
    footer_len, magic = FOOTER.unpack(data[size - FOOTER.size :])
    if magic != PACK_MAGIC:
        tail = f"bytes {size - len(PACK_MAGIC)}-{size - 1}"
        issues.append(f"its trailer ({tail}) is not the pack magic")
    start = size - FOOTER.size - footer_len
    if start < head:
        return [], [*issues, f"its trailer gives an impossible footer length ({footer_len})"]
    raw = data[start : size - FOOTER.size]
    where = f"bytes {start}-{size - FOOTER.size - 1}"
    try:
        rows = msgpack.unpackb(raw)
        listed = [
            BlobLocation(bytes(r[0]), pack, int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in rows
        ]
    except (ValueError, TypeError, IndexError, msgpack.UnpackException):
        return [], [*issues, f"its footer ({where}, the list of its blobs) cannot be read"]
    if msgpack.packb(rows) != raw:
        issues.append(f"its footer ({where}, the list of its blobs) is not as written")
    pos = head
    for loc in sorted(listed, key=lambda b: b.offset):
        if loc.offset != pos:
            what = "overlap" if loc.offset < pos else "are in no blob"
            issues.append(f"bytes {min(pos, loc.offset)}-{max(pos, loc.offset) - 1} {what}")
        pos = max(pos, loc.offset + loc.length)
    if pos != start:
        issues.append(f"its blobs end at byte {pos} but its footer starts at byte {start}")
    return listed, issues


def remove_stale_spools(spool_dir: Path, max_age_s: float = 3600.0) -> int:
    """Delete temp pack files older than ``max_age_s`` (left by killed writers)."""
    removed = 0
    now = time.time()
    for p in Path(spool_dir).glob(".tmp-pack-*"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed += 1
        except OSError:
            pass
    return removed


__all__ = ["BlobIndex", "BlobLocation", "BlobStore", "BlobWriter"]
