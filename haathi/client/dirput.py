"""Putting local directories through the stat cache (:mod:`haathi.client.statcache`).

A put of a :class:`~haathi.client.sources.DirScan` leaves out each file whose stat is the one
recorded when it was last put, unless its destination changed since the commit the cache
names: a look at the destination's head commit and one ``diff_file`` between it and that
commit (which costs what changed, not the size of the directory) tell. Everything else is
put as before. What is left out is decided against the destination as the put begins.

After a one-off commit, the cache records the files put, and names that commit. A put into an
open commit uses the cache but records nothing (other writers may write the same paths into
it before it is finished).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from haathi.client.sources import DirScan, LocalFile
from haathi.client.statcache import StatCache, settled
from haathi.errors import NotFound
from haathi.models.contract import ApiContract
from haathi.models.info import CommitInfo, CommitState
from haathi.models.ops import Op, Ops, ProgressFn, PutOp
from haathi.models.refspec import CommitSpec, FileSpec


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a put did: the commit written to, how many files were read and sent, and how many
    were left out as unchanged."""

    commit: str
    sent: int
    unchanged: int


@dataclass(slots=True, eq=False)
class _Dir:
    scan: DirScan
    cache: StatCache
    sent: list[LocalFile] = field(default_factory=list)
    unchanged: list[LocalFile] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class DirPut:
    """The ops of one put, without the files the stat cache showed unchanged."""

    spec: CommitSpec
    sources: Sequence[Op | DirScan]
    dirs: list[_Dir]
    head: CommitInfo | None  # the destination's head the unchanged files were checked against

    def ops(self) -> Ops:
        """The ops: made one by one as the write takes them when every source puts (a
        million files make no list of a million ops), else a list."""
        if all(isinstance(s, (PutOp, DirScan)) for s in self.sources):
            return self._puts()
        return list(self._each())

    def _each(self) -> Iterator[Op]:
        dirs = iter(self.dirs)
        for s in self.sources:
            if isinstance(s, DirScan):
                d = next(dirs)
                yield from map(d.scan.op, d.sent)
            else:
                yield s

    def _puts(self) -> Iterator[PutOp]:
        for op in self._each():
            assert isinstance(op, PutOp)
            yield op

    def _later(self) -> dict[str, int]:
        """Per path put by more than one source, the last source putting it."""
        if len(self.sources) < 2:
            return {}
        last: dict[str, int] = {}
        dirs = iter(self.dirs)
        for i, s in enumerate(self.sources):
            if isinstance(s, DirScan):
                d = next(dirs)
                last.update((d.scan.dest_of(f), i) for f in d.sent)
            elif isinstance(s, PutOp):
                last[s.path] = i
        return last

    def report_unchanged(self, progress: ProgressFn) -> None:
        """Count the files left out as done."""
        files = [f for d in self.dirs for f in d.unchanged]
        if files:
            progress(sum(f.size for f in files), len(files))

    def remember(self, api: ApiContract, commit: str) -> PutResult:
        """Record in the stat cache what ``commit`` holds, if this put made it: a one-off
        commit, finished as it was made (``started`` = ``finished``). A commit that was open
        may hold other writers' bytes at the paths put."""
        sent = sum(len(d.sent) for d in self.dirs)
        unchanged = sum(len(d.unchanged) for d in self.dirs)
        puts = sum(isinstance(s, PutOp) for s in self.sources)
        result = PutResult(commit, sent + puts, unchanged)
        for d in self.dirs:
            if not d.sent:
                d.cache.mark_used()
        if not sent or (self.head is not None and self.head.state != CommitState.FINISHED):
            return result
        spec = CommitSpec(self.spec.repo, commit)
        info = _commit(api, spec)
        if info is None or info.state != CommitState.FINISHED or info.finished != info.started:
            return result
        last_writer = self._later()  # (a file is its path's last writer unless it says another)
        where = {id(s): i for i, s in enumerate(self.sources)}
        for d in self.dirs:
            if not d.sent:
                continue
            me = where[id(d.scan)]
            entries: dict[str, bytes] = {}
            if d.unchanged and self.head is not None:
                # Another commit may have come between the head checked and this one.
                moved: set[str] | None = set()
                if info.parent != self.head.id:
                    moved = _changed(api, FileSpec(spec, d.scan.dest), self.head.id)
                if moved is not None:
                    dest_of = d.scan.dest_of
                    entries.update((f.rel, f.stat) for f in d.unchanged if dest_of(f) not in moved)
            for f in d.sent:
                mine = last_writer.get(d.scan.dest_of(f), me) == me
                if mine and settled(f.stat, d.scan.started_ns):
                    entries[f.rel] = f.stat
            d.cache.save(commit, entries)
        return result


def plan(
    api: ApiContract,
    spec: CommitSpec,
    sources: Sequence[Op | DirScan],
    cache_dir: Path,
    *,
    rehash: bool = False,
) -> DirPut:
    """The ops that put ``sources`` into ``spec``, without the files the stat cache shows
    unchanged (none are left out with ``rehash``)."""
    dirs = [
        _Dir(s, StatCache.open(cache_dir, s.root, spec.repo, s.dest))
        for s in sources
        if isinstance(s, DirScan)
    ]
    # Another op of the put that is not a plain put may touch any path: then read everything.
    plain = all(isinstance(s, (PutOp, DirScan)) for s in sources)
    usable = not rehash and plain and any(d.cache.commit and d.cache.entries for d in dirs)
    head = _commit(api, spec) if usable else None
    for d in dirs:
        changed = None
        if head is not None and d.cache.commit and d.cache.entries:
            changed = _changed(api, FileSpec(CommitSpec(spec.repo, head.id), d.scan.dest),
                               d.cache.commit)  # fmt: skip
        if changed is None:
            d.sent = list(d.scan.files)
            continue
        recorded = d.cache.entries.get
        for f in d.scan.files:
            if recorded(f.rel) == f.stat and not (changed and d.scan.dest_of(f) in changed):
                d.unchanged.append(f)
            else:
                d.sent.append(f)
    # A path another source of this put writes must be written by the file too: the last
    # write wins, as when every file is put.
    if len(sources) > 1 and any(d.unchanged for d in dirs):
        busy = {s.path for s in sources if isinstance(s, PutOp)}
        busy.update(d.scan.dest_of(f) for d in dirs for f in d.sent)
        for d in dirs:
            clash = {f.rel for f in d.unchanged if d.scan.dest_of(f) in busy}
            if clash:
                d.sent += [f for f in d.unchanged if f.rel in clash]
                d.unchanged = [f for f in d.unchanged if f.rel not in clash]
    return DirPut(spec, sources, dirs, head)


def _commit(api: ApiContract, spec: CommitSpec) -> CommitInfo | None:
    """The commit ``spec`` names now (None: none, or no more). ``list_commit`` of one commit:
    ``inspect_commit`` would also walk its provenance and subvenance."""
    try:
        found = api.list_commit(spec.repo, spec.ref_or_default, 1)
    except NotFound:
        return None
    return found[0] if found else None


def _changed(api: ApiContract, new: FileSpec, old_commit: str) -> set[str] | None:
    """The paths at or below ``new``'s path that differ between ``old_commit`` and ``new``
    (None when ``old_commit`` is gone)."""
    if new.commit.ref == old_commit:
        return set()
    old = FileSpec(CommitSpec(new.commit.repo, old_commit), new.path)
    try:
        return {e.path for e in api.diff_file(new, old)}
    except NotFound:
        return None
