"""Naming a pipeline's spec versions: ``NAME@vN`` (version N, as ``inspect commit`` shows an
output commit's ``pipeline_version``), Pachyderm's ancestry ``NAME^`` / ``NAME^k`` /
``NAME~k`` (k versions before the current one) and ``NAME.N`` (version N, as ``master.N`` is
a branch's N-th commit), and the ``--history N|all|none`` of ``list pipeline`` and ``list
job`` (pachctl's ``cmdutil.ParseHistory``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from haathi.errors import InvalidArgument
from haathi.models.refspec import parse_ancestry

_VERSION_RE = re.compile(r"v([0-9]+)")
ALL_HISTORY = -1


@dataclass(frozen=True, slots=True)
class PipelineRef:
    """A pipeline and one of its versions: ``version`` N, or ``back`` versions before the
    current one (neither: the current version)."""

    name: str
    version: int | None = None
    back: int = 0


def parse_pipeline_ref(text: str) -> PipelineRef:
    """``NAME``, ``NAME@vN``, ``NAME^``, ``NAME^k``, ``NAME~k`` or ``NAME.N``."""
    name, at, suffix = text.partition("@")
    if at:
        m = _VERSION_RE.fullmatch(suffix)
        if not name or m is None or int(m.group(1)) < 1:
            raise InvalidArgument(
                f"invalid pipeline version {text!r}: name a version as NAME@vN (N from 1)"
            )
        return PipelineRef(name, version=int(m.group(1)))
    bad = InvalidArgument(f"invalid pipeline version {text!r}: use NAME@vN, NAME^k or NAME~k")
    try:
        ancestry = parse_ancestry(text)
    except InvalidArgument:
        raise bad from None
    if not ancestry.base or any(c in ancestry.base for c in "^~."):
        raise bad
    if ancestry.nth is not None:
        return PipelineRef(ancestry.base, version=ancestry.nth)
    return PipelineRef(ancestry.base, back=ancestry.up)


def parse_history(value: str) -> int:
    """``--history``: how many versions before the current one to include; ``all`` (or -1):
    every version, ``none`` (or 0): the current one only."""
    text = value.strip()
    if text == "all":
        return ALL_HISTORY
    if text == "none":
        return 0
    try:
        n = int(text)
    except ValueError:
        n = ALL_HISTORY - 1
    return check_history(n, shown=value)


def check_history(history: int, *, shown: object = None) -> int:
    """``history`` if it is a count of versions (0 or more) or -1 (all of them)."""
    if history < ALL_HISTORY:
        what = history if shown is None else shown
        raise InvalidArgument(
            f"invalid history {what!r}: a number of versions before the current one, "
            "all (-1) or none (0)"
        )
    return history
