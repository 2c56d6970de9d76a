"""Path collisions: a path that would be a file and a directory at once, or one name written
in two Unicode spellings.

A tree maps paths to files and directories are implied, so nothing in the tree itself stops
``/e`` and ``/e/f`` from both being files; no file system can hold them (``get file -r`` would
fail). Pachyderm fails such a commit when it is finished ("file / directory path
collision"); here the write itself is refused, before anything is stored. Names are kept byte
for byte, as written; but a name
whose NFC and NFD spellings differ (``é`` as one code point, or ``e`` and a combining accent)
is refused beside its other spelling: the two look alike, and macOS's file systems take them
for one file.

The check sees the tree a write would make (a base tree and the ordered changes on it)
without building it, and costs O(depth · log n) per written path: a point lookup of each
directory above it, one seek for ``path + "/"``, and for a non-ASCII name lookups of its
other spellings.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection

from haathi.errors import FailedPrecondition
from haathi.models import paths
from haathi.pfs import staging
from haathi.tree import prolly
from haathi.tree.prolly import NodeStore

_FORMS: tuple[Literal["NFC"], Literal["NFD"]] = ("NFC", "NFD")


def _self_and_above(path: str) -> list[str]:
    """``/a/b`` -> ``["/", "/a", "/a/b"]``."""
    if path == "/":
        return ["/"]
    parts = path.split("/")
    return ["/", *("/".join(parts[:i]) for i in range(2, len(parts) + 1))]


class ChangeView:
    """The files of the tree ``base`` with ``changes`` applied in order, asked point by point.

    Only the changes' op and path matter (their entries may be None).
    """

    def __init__(
        self, base: bytes | None, changes: Iterable[staging.Change], nodes: NodeStore
    ) -> None:
        self.base, self.nodes = base, nodes
        self._last: dict[str, tuple[int, bool]] = {}  # path -> (index, a file after it?)
        self._rdeleted: dict[str, int] = {}  # path -> index of its latest recursive delete
        self._deleted: set[str] = set()  # paths deleted (not recursively) at some point
        self._base_holds: dict[str, bool] = {}  # directory -> any file below it in base?
        written: set[str] = set()
        for i, ch in enumerate(changes):
            if ch.op == staging.RDELETE:
                self._rdeleted[ch.path] = i
            elif ch.op == staging.DELETE:
                self._last[ch.path] = (i, False)
                self._deleted.add(ch.path)
            else:
                self._last[ch.path] = (i, True)
                written.add(ch.path)
        self._written = sorted(written)

    def _rdeletes_over(self, path: str) -> list[tuple[str, int]]:
        """Recursive deletes of ``path`` or a directory above it, outermost first."""
        if not self._rdeleted:
            return []
        return [(a, self._rdeleted[a]) for a in _self_and_above(path) if a in self._rdeleted]

    def is_file(self, path: str) -> bool:
        over = max((i for _, i in self._rdeletes_over(path)), default=-1)
        last = self._last.get(path)
        if last is not None and last[0] > over:
            return last[1]
        if over >= 0:
            return False
        return prolly.get(self.base, path, self.nodes) is not None

    def _base_holds_in(self, directory: str) -> bool:
        """Whether the base may hold a file below ``directory``: false if its parent holds
        none (one seek per parent directory, for the many files written into new ones)."""
        parent = directory[: directory.rfind("/")]
        if not parent:
            return self.base is not None
        holds = self._base_holds.get(parent)
        if holds is None:
            e = prolly.first_from(self.base, parent + "/", self.nodes)
            holds = self._base_holds[parent] = e is not None and e.path.startswith(parent + "/")
        return holds

    def file_below(self, directory: str) -> str | None:
        """Some file below ``directory`` (None if it holds none): O(log n) unless the changes
        deleted files there, then one seek per deletion at most."""
        prefix = paths.dir_prefix(directory)
        i = bisect.bisect_left(self._written, prefix)
        while i < len(self._written) and self._written[i].startswith(prefix):
            if self.is_file(self._written[i]):
                return self._written[i]
            i += 1
        # the base's files, unless a change deleted them (rewritten ones were seen above)
        if self._rdeletes_over(directory) or not self._base_holds_in(directory):
            return None
        cursor = prefix
        while True:
            e = prolly.first_from(self.base, cursor, self.nodes)
            if e is None or not e.path.startswith(prefix):
                return None
            over = self._rdeletes_over(e.path)
            if over and over[0][0] != e.path:
                cursor = over[0][0] + "0"  # '0' follows '/': past everything below it
            elif over or e.path in self._deleted:
                cursor = e.path + "\x00"
            else:
                return e.path


@dataclass(frozen=True, slots=True)
class Clash:
    """Two paths that cannot both be in a tree: the file ``upper`` would also be a directory
    (``other`` is a file below it), or ``upper`` and ``other`` are spellings of one name.
    ``upper_written``: the check was of ``upper`` (else of a path at or below ``other``)."""

    upper: str
    other: str
    spelling: bool = False
    upper_written: bool = False

    @property
    def message(self) -> str:
        """What is wrong, as a tree holding both would be."""
        if self.spelling:
            return (
                f"{self.upper!a} and {self.other!a} are two Unicode spellings "
                f"({_form(self.upper)} and {_form(self.other)}) of one name"
            )
        return (
            f"file / directory path collision: {self.upper} is a file and a directory "
            f"({self.other} is a file in it)"
        )

    @property
    def refusal(self) -> str:
        """Why a write is refused."""
        if self.spelling:
            return (
                f"{self.message}: {self.other!a} exists, and haathi keeps names as written "
                "but refuses a look-alike of an existing name"
            )
        if self.upper_written:
            return (
                f"file / directory path collision: {self.upper} is a directory ({self.other} "
                "is a file in it), so it cannot be a file too"
            )
        return (
            f"file / directory path collision: {self.upper} is a file, so {self.other} "
            "cannot be a file below it"
        )


def _form(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return next((f for f in _FORMS if unicodedata.is_normalized(f, name)), "mixed")


def _spellings(name: str) -> list[str]:
    """The other normal forms of a name (none for ASCII)."""
    if name.isascii():
        return []
    return [alt for alt in {unicodedata.normalize(f, name) for f in _FORMS} if alt != name]


def find_clashes(view: ChangeView, written: Iterable[str]) -> Iterator[Clash]:
    """The clashes that the files at ``written`` paths take part in, in ``view``."""
    dirs_ok: set[str] = set()  # directories known not to be files
    spelled: set[str] = set()  # paths whose names' spellings were checked
    for path in written:
        if not view.is_file(path):
            continue  # written, then deleted again
        parent = path[: path.rfind("/")]
        above = [] if parent in dirs_ok else _self_and_above(path)[1:-1]
        for d in above:  # (every directory above a known one is known)
            if d not in dirs_ok:
                if view.is_file(d):
                    yield Clash(d, path)
                    continue
                dirs_ok.add(d)
        below = view.file_below(path)
        if below is not None:
            yield Clash(path, below, upper_written=True)
        if path.isascii():
            continue
        for p in _self_and_above(path)[1:]:
            if p in spelled:
                continue
            spelled.add(p)
            head, _, name = p.rpartition("/")
            for alt in _spellings(name):
                other = f"{head}/{alt}"
                if view.is_file(other) or view.file_below(other) is not None:
                    yield Clash(p, other, spelling=True, upper_written=True)


class SortedPuts:
    """The clashes of files written in strictly increasing path order onto the tree ``base``,
    when nothing is deleted: what :func:`find_clashes` finds for such changes, found as each
    path comes (so a stream of puts is refused before the bytes of the path that clashes).

    It holds the written files that later paths could lie below (prefixes of the latest path),
    the directories above the latest path, and the written names that have another Unicode
    spelling (usually none); a base seek per new directory that the base holds files in.
    A name whose other spelling is ASCII (only with U+212A KELVIN SIGN, U+037E GREEK QUESTION
    MARK or U+1FEF GREEK VARIA in it) may clash with an earlier ASCII path, which is not kept:
    then ``complete`` turns false, and the caller checks the whole change list.
    """

    def __init__(self, base: bytes | None, nodes: NodeStore) -> None:
        self.base, self.nodes = base, nodes
        self.last: str | None = None
        self._open: list[str] = []  # written files a later path could lie below
        self._dirs: list[tuple[str, bool]] = []  # above ``last``: (directory, base holds below?)
        self._spelled: set[str] = set()  # written paths and directories with non-ASCII names
        self._spelling_of: dict[str, str] = {}  # another spelling of one of those -> it
        self.complete = True

    def ordered(self, path: str) -> bool:
        """Whether ``path`` comes after every path so far (once one does not, the check is
        over, and incomplete)."""
        if self.complete and (self.last is None or path > self.last):
            return True
        self.complete = False
        return False

    def clash(self, path: str) -> Clash | None:
        """The first clash the file ``path`` makes with the base and the earlier paths."""
        if self.last is not None and path <= self.last:
            raise ValueError(f"{path} does not follow {self.last}")
        self.last = path
        while self._open:  # a written file is a prefix of the paths below it and of those
            top = self._open[-1]  # sorting between it and them ("/a", "/a-b", "/a/c")
            if path.startswith(top) and path[len(top)] <= "/":
                break
            self._open.pop()
        if self._open and path[len(self._open[-1])] == "/":
            return Clash(self._open[-1], path)
        self._open.append(path)
        found = self._check_base(path)
        if found is None and not path.isascii():
            found = self._check_spellings(path)
        return found

    def _holds(self, directory: str) -> bool:
        """Whether the base holds a file below ``directory`` (a seek)."""
        e = prolly.first_from(self.base, directory + "/", self.nodes)
        return e is not None and e.path.startswith(directory + "/")

    def _check_base(self, path: str) -> Clash | None:
        if self.base is None:
            return None
        above = _self_and_above(path)[1:-1]
        keep = 0
        while keep < min(len(above), len(self._dirs)) and self._dirs[keep][0] == above[keep]:
            keep += 1
        del self._dirs[keep:]
        holds = self._dirs[-1][1] if self._dirs else self.base is not None
        for d in above[keep:]:  # new directories: a file of the base, or holding some?
            if holds:
                if prolly.get(self.base, d, self.nodes) is not None:
                    return Clash(d, path)
                holds = self._holds(d)
            self._dirs.append((d, holds))
        if holds and self._holds(path):
            below = prolly.first_from(self.base, path + "/", self.nodes)
            assert below is not None
            return Clash(path, below.path, upper_written=True)
        return None

    def _check_spellings(self, path: str) -> Clash | None:
        for p in _self_and_above(path)[1:]:
            if p in self._spelled:
                continue
            self._spelled.add(p)
            other = self._spelling_of.get(p)
            if other is not None:
                return Clash(p, other, spelling=True, upper_written=True)
            head, _, name = p.rpartition("/")
            for alt in _spellings(name):
                other = f"{head}/{alt}"
                self._spelling_of.setdefault(other, p)
                self.complete = self.complete and not alt.isascii()
                in_base = prolly.get(self.base, other, self.nodes) is not None or (
                    self._holds(other)
                )
                if other in self._spelled or in_base:
                    return Clash(p, other, spelling=True, upper_written=True)
        return None


def is_sorted_puts(changes: Iterable[staging.Change]) -> bool:
    """Whether ``changes`` only write files, each path after the one before."""
    last = None
    for ch in changes:
        if ch.op not in (staging.PUT, staging.APPEND) or (last is not None and ch.path <= last):
            return False
        last = ch.path
    return True


def check_sorted_puts(
    base: bytes | None,
    written: Callable[[], Iterable[str]],
    nodes: NodeStore,
    outcome: str = "nothing was written",
) -> None:
    """Refuse files written at the paths ``written()`` gives (strictly increasing; nothing
    deleted) onto ``base`` if they make a clash: :func:`check_changes` for such changes, in one
    pass (two in the rare case :class:`SortedPuts` leaves incomplete)."""
    check = SortedPuts(base, nodes)
    for path in written():
        refuse(check.clash(path), outcome)
    if not check.complete:
        check_changes(base, [staging.Change(staging.PUT, p) for p in written()], nodes, outcome)


def refuse(clash: Clash | None, outcome: str = "nothing was written") -> None:
    """Raise the error of a clash a write would make (``outcome``: what became of it)."""
    if clash is not None:
        raise FailedPrecondition(f"{clash.refusal}; {outcome}", path=clash.upper, other=clash.other)


def written_paths(changes: Sequence[staging.Change]) -> list[str]:
    return [ch.path for ch in changes if ch.op in (staging.PUT, staging.APPEND)]


def check_changes(
    base: bytes | None,
    changes: Sequence[staging.Change],
    nodes: NodeStore,
    outcome: str = "nothing was written",
) -> None:
    """Refuse ``changes`` if applying them to ``base`` makes a clash."""
    view = ChangeView(base, changes, nodes)
    refuse(next(find_clashes(view, written_paths(changes)), None), outcome)


def check_staged(
    conn: Connection,
    repo_id: int,
    commit_id: str,
    base: bytes | None,
    changes: Sequence[staging.Change],
    nodes: NodeStore,
) -> None:
    """Refuse ``changes`` to an open commit (on ``base``, its parent's tree) if, after the
    changes it has staged, they make a clash. Reads only the staged changes near the
    written paths; run it in the transaction that stages ``changes``."""
    written = written_paths(changes)
    if not written:
        return
    exact: set[str] = set()
    below: set[str] = set()
    for path in written:
        exact.update(_self_and_above(path))
        below.add(path)
        if not path.isascii():
            parts = path.split("/")
            for i in range(1, len(parts)):
                head = "/".join(parts[:i])
                for alt in _spellings(parts[i]):
                    exact.add(f"{head}/{alt}")
                    below.add(f"{head}/{alt}")
    earlier = staging.staged_near(conn, repo_id, commit_id, exact, below)
    view = ChangeView(base, [*earlier, *changes], nodes)
    refuse(next(find_clashes(view, written), None))
