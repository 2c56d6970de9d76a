"""Object syntax: ``[project/]repo@branch-or-commit:/path`` with Pachyderm's ancestry suffixes.

The repo is a key (:func:`haathi.models.ids.repo_key`): a bare name is in the current project
(``project`` given to the parsers), ``project/repo`` names its project explicitly.

``master^`` / ``master^^`` / ``master^3`` / ``master~3`` go up parents; ``master.1`` is the first
commit of the branch's history, ``master.-1`` the head's parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from haathi.errors import InvalidArgument
from haathi.models import paths
from haathi.models.ids import DEFAULT_PROJECT, qualify, validate_project_name, validate_repo_key
from haathi.models.text import check_text

_ANCESTRY_RE = re.compile(r"(\^+\d*|~+\d*|\.-?\d+)\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Ancestry:
    """A parsed ref: ``base`` plus either ``up`` parents or the ``nth`` commit from the root."""

    base: str
    up: int = 0
    nth: int | None = None


def parse_ancestry(ref: str) -> Ancestry:
    """Split ``master^^`` into base ``master`` and two steps up (suffixes may repeat)."""
    if not ref:
        raise InvalidArgument("empty branch or commit")
    up = 0
    nth: int | None = None
    rest = ref
    while True:
        m = _ANCESTRY_RE.search(rest)
        if not m or m.start() == 0:
            break
        token = m.group(1)
        rest = rest[: m.start()]
        if token[0] in "^~":
            stripped = token.lstrip(token[0])
            marks = len(token) - len(stripped)
            step = int(stripped) if stripped else 1
            up += marks - 1 + step
        else:
            n = int(token[1:])
            if n == 0:
                raise InvalidArgument(f"invalid ancestry in {ref!r}: '.0' (commits count from 1)")
            if n < 0:
                up += -n
            else:
                if nth is not None or up:
                    raise InvalidArgument(f"invalid ancestry in {ref!r}")
                nth = n
    return Ancestry(base=rest, up=up, nth=nth)


@dataclass(frozen=True, slots=True)
class CommitSpec:
    """``repo@ref`` (``ref`` None means the default branch ``master``)."""

    repo: str
    ref: str | None = None

    @property
    def ref_or_default(self) -> str:
        return self.ref or "master"

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}" if self.ref else self.repo


@dataclass(frozen=True, slots=True)
class FileSpec:
    """``repo@ref:/path`` with a normalized path (``/`` when omitted)."""

    commit: CommitSpec
    path: str = "/"
    has_path: bool = False

    def __str__(self) -> str:
        return f"{self.commit}:{self.path}"


def parse_commit(text: str, project: str | None = None) -> CommitSpec:
    """Parse ``repo`` or ``repo@ref`` (``project/repo``...); a bare repo is in ``project``
    (None: the default project)."""
    if not isinstance(text, str) or not text:
        raise InvalidArgument("expected repo[@branch-or-commit]")
    if ":" in text:
        raise InvalidArgument(f"{text!r}: expected repo@branch-or-commit, without a path")
    repo, sep, ref = text.partition("@")
    repo = validate_repo_key(repo) if project is None else qualify(repo, project)
    if sep and not ref:
        raise InvalidArgument(f"{text!r}: missing branch or commit after '@'")
    if ref:
        check_text(ref, f"branch or commit {ref!r}")
        if _CONTROL.search(ref):
            raise InvalidArgument(
                f"invalid branch or commit {ref!r}: control characters are not allowed"
            )
    return CommitSpec(repo, ref or None)


def parse_file(text: str, *, for_write: bool = False, project: str | None = None) -> FileSpec:
    """Parse ``repo@ref:/path`` (path optional; ``project`` as :func:`parse_commit`)."""
    if not isinstance(text, str) or not text:
        raise InvalidArgument("expected repo@branch-or-commit:/path")
    head, sep, path = text.partition(":")
    commit = parse_commit(head, project)
    if not sep:
        return FileSpec(commit)
    norm = paths.normalize_for_write(path) if for_write else paths.normalize(path)
    return FileSpec(commit, norm, has_path=True)


def qualify_text(text: str, project: str) -> str:
    """``repo@ref:/path`` text with a bare repo put in ``project`` (``project/repo@...``); a
    repo already naming its project, or ``project`` default, leaves it as it is. For texts
    parsed further on (lineage targets, copy sources)."""
    validate_project_name(project)
    if project == DEFAULT_PROJECT:
        return text
    end = min((i for i in (text.find("@"), text.find(":")) if i >= 0), default=len(text))
    return text if "/" in text[:end] else f"{project}/{text}"
