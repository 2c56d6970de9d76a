"""Reading many blobs in order, fast on a remote store: the byte ranges of upcoming blobs that
lie close together in one pack are merged into *runs* (one ranged read, an S3 GET, each), and
the runs are fetched ahead of the reader, several at once, within a bound on the bytes held.

Blobs are planned a batch at a time (the batches the blob index is asked in). A restore reads
blobs in path order, which need not be the order they were written in, so a batch's blobs are
sorted by pack and offset before their ranges are merged; the runs are then fetched in the
order the reader first needs them, and the reader gets every blob in its own order.

Bounds: at most ``concurrency`` reads in flight, and no further run is started while the runs
fetched and not yet consumed hold ``window`` bytes or more. The run the reader needs next is
always fetched: a run is released once all its blobs are consumed, and one batch may hold
blobs that are far apart in the reader's order, so the bytes held stay below ``window`` plus one
batch's runs. A stream stopped early cancels the reads not yet started and waits for those in
flight (at most ``concurrency`` ranged reads): it leaves no thread behind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from haathi.errors import NotFound

# A run: blobs of one pack read together, across gaps (other blobs) of up to RUN_GAP bytes,
# at most RUN_BYTES in all (a larger blob is read on its own).
RUN_BYTES = 8 * 1024 * 1024
RUN_GAP = 64 * 1024
# How many blobs (of a fully cached stream, say) may be planned ahead of the reader.
MAX_PLANNED = 16384


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """How a stream of blob reads runs ahead of its reader: ``concurrency`` ranged reads in
    flight (1: each run is read when first needed, in the reader's thread), while the runs
    fetched and not yet consumed hold less than ``window`` bytes; blobs of ``alone`` bytes
    or more each read by itself."""

    concurrency: int = 1
    window: int = 32 * 1024 * 1024
    # a blob of at least this many bytes is read on its own, never in a run with others (a
    # blob of a run is copied out of its bytes: on a local disk a read costs less than that)
    alone: int | None = None


class Located(Protocol):
    """Where a blob's stored bytes are (a :class:`~haathi.storage.blobs.BlobLocation`)."""

    @property
    def pack(self) -> str: ...

    @property
    def offset(self) -> int: ...

    @property
    def length(self) -> int: ...


T = TypeVar("T", bound=Located)
# reads ``length`` bytes at ``offset`` of a pack (NotFound: the pack is missing or too short)
ReadRange = Callable[[str, int, int], bytes]


@dataclass(eq=False, slots=True)
class _Run:
    pack: str
    offset: int
    end: int
    pending: int = 0  # the reader's items still to be given out of it
    fetch: Future[bytes] | None = None
    data: bytes | None = field(default=None, repr=False)
    queued: bool = False  # on the reader's list of runs to fetch
    missing: bool = False  # its read was NotFound: each of its blobs is read alone

    @property
    def length(self) -> int:
        return self.end - self.offset


class _Failed:
    """An error met while planning ahead, raised when the reader gets to where it was met."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _plan_runs(
    batch: Sequence[T], skip: Callable[[T], bool] | None, alone: int | None = None
) -> list[_Run | None]:
    """The run each blob of ``batch`` is read in (None: skipped, the reader reads it); a blob
    of ``alone`` bytes or more in a run of its own."""
    wanted = [i for i, loc in enumerate(batch) if skip is None or not skip(loc)]
    wanted.sort(key=lambda i: (batch[i].pack, batch[i].offset))
    runs: list[_Run | None] = [None] * len(batch)
    run: _Run | None = None
    for i in wanted:
        loc = batch[i]
        end = loc.offset + loc.length
        own = alone is not None and loc.length >= alone
        if (
            run is None
            or own
            or loc.pack != run.pack
            or loc.offset - run.end > RUN_GAP
            or max(run.end, end) - run.offset > RUN_BYTES
        ):
            run = _Run(loc.pack, loc.offset, end)
        elif end > run.end:
            run.end = end
        run.pending += 1
        runs[i] = run
        if own:
            run = None  # nothing joins it: read whole, its bytes are the blob's, not copied
    return runs


class RunReader(Generic[T]):
    """The blobs of ``batches`` in order, each with its stored bytes (None: the caller reads
    it alone: a ``skip``'d blob, or one whose run's read was NotFound, so that the caller
    meets the error that names it). ``close()`` ends the reads ahead."""

    def __init__(
        self,
        batches: Iterator[Sequence[T]],
        read: ReadRange,
        policy: ReadAhead,
        *,
        skip: Callable[[T], bool] | None = None,
    ) -> None:
        self._batches = batches
        self._read = read
        self._policy = policy
        self._skip = skip
        self._queue: deque[tuple[T, _Run | None] | _Failed] = deque()  # in the reader's order
        self._unsent: deque[_Run] = deque()  # runs not yet fetched, in order of first need
        self._held = 0  # bytes of the runs fetched (or being fetched) and not yet consumed
        self._exhausted = False
        self._pool = (
            ThreadPoolExecutor(policy.concurrency, thread_name_prefix="haathi-read")
            if policy.concurrency > 1
            else None
        )

    def __iter__(self) -> Iterator[tuple[T, bytes | None]]:
        queue, ahead = self._queue, self._pool is not None
        while True:
            if ahead:
                self._send()
            if not queue:
                if self._exhausted:
                    return
                self._plan()
                continue
            entry = queue.popleft()
            if isinstance(entry, _Failed):
                raise entry.error
            loc, run = entry
            if run is None:
                yield loc, None
                continue
            data = run.data
            if data is None and not run.missing:
                data = self._fetch(run)
            run.pending -= 1
            if not run.pending:
                run.data = None
                self._held -= run.length
            if data is None:
                yield loc, None
            else:
                start = loc.offset - run.offset
                yield loc, data[start : start + loc.length]

    def _plan(self) -> bool:
        """Plan the next batch; False when there is none."""
        if self._exhausted:
            return False
        try:
            batch = next(self._batches, None)
        except Exception as exc:  # met where the reader gets to it, after what comes before
            self._queue.append(_Failed(exc))
            self._exhausted = True
            return False
        if batch is None:
            self._exhausted = True
            return False
        runs = _plan_runs(batch, self._skip, self._policy.alone)
        for run in runs:  # in order of first need
            if run is not None and not run.queued:
                run.queued = True
                self._unsent.append(run)
        self._queue.extend(zip(batch, runs, strict=True))
        return True

    def _send(self) -> None:
        """Start reads of upcoming runs while the window has room."""
        while True:
            if not self._unsent:
                full = self._held >= self._policy.window or len(self._queue) >= MAX_PLANNED
                if full or not self._plan():
                    return
                continue
            run = self._unsent[0]
            if self._held and self._held + run.length > self._policy.window:
                return
            self._start(self._unsent.popleft())

    def _start(self, run: _Run) -> None:
        assert self._pool is not None
        run.fetch = self._pool.submit(self._read, run.pack, run.offset, run.length)
        self._held += run.length

    def _fetch(self, run: _Run) -> bytes | None:
        """The run's bytes, read now if no read was started (the next one needed always is);
        None if its read was NotFound."""
        if run.fetch is None:
            self._unsent.remove(run)  # the first of them: every run before it was needed
            if self._pool is not None:
                self._start(run)
            else:
                self._held += run.length
        try:
            if run.fetch is not None:
                run.data = run.fetch.result()
            else:
                run.data = self._read(run.pack, run.offset, run.length)
        except NotFound:
            run.missing = True
        run.fetch = None
        return run.data

    def close(self) -> None:
        """Cancel the reads not started; wait for those in flight."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
