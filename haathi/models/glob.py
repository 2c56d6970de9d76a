"""Pachyderm glob patterns: their syntax, their size limits, and matching in linear time.

``*`` matches within one path component, ``**`` across components, ``?`` one character,
``[...]`` a class (``[!...]`` negated), ``{a,b}`` alternatives, and ``(...)`` a capture group
whose value feeds ``join_on`` / ``group_by`` templates (``$1``). Pipeline inputs also take
ohmyglob's ``!(a|b)`` (:func:`compile_input_glob`).

A pattern is parsed into a :mod:`~haathi.models.nfa` tree, checked against the limits below,
and matched by RE2, whose time is linear in the path for any pattern (no backtracking). RE2
has no lookahead, so ``!(...)`` is checked separately (see :class:`Glob`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import re2
from re2 import _re2

from haathi.errors import InvalidArgument
from haathi.models.nfa import (
    Alt,
    Assertion,
    CharSet,
    Concat,
    Group,
    Node,
    Opt,
    Program,
    Star,
    reverse,
)

MAX_GLOB_LENGTH = 4096
"""Characters in a pattern: PATH_MAX, so a glob may name any path literally."""
MAX_GLOB_WILDCARDS = 64
"""``*``, ``**``, ``?``, ``[...]`` and ``!(...)`` in a pattern: real globs use a handful."""
MAX_GLOB_ALTERNATIVES = 256
"""Alternatives of all ``{a,b}`` and ``!(a|b)`` together: room for a brace listing names."""
MAX_GLOB_NESTING = 16
"""How deep ``{...}`` and ``(...)`` nest."""

_SLASH = CharSet.of("/")
_NOT_SLASH = CharSet(((ord("/"), ord("/")),), negated=True)  # * and ?
_ANY = CharSet(((ord("\n"), ord("\n")),), negated=True)  # ** (re's and RE2's ".")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_START = _re2.RE2.Anchor.ANCHOR_START


@dataclass(frozen=True, slots=True)
class GlobMatch:
    """A path a glob matched, and its capture groups (None: in an alternative not taken)."""

    path: str
    captures: tuple[str | None, ...]

    def group(self, index: int) -> str | None:
        """Group ``index`` (0: the whole path), as ``re.Match.group``."""
        return self.path if index == 0 else self.captures[index - 1]

    def groups(self) -> tuple[str | None, ...]:
        return self.captures


class Glob:
    """A compiled glob: ``match`` takes a normalized path (``/`` for the root).

    RE2 matches the pattern with each ``!(...)`` read as ``(*)``. When the text that match
    gives each ``!(...)`` passes its negation (RE2 again: no alternative matches from its
    start up to a ``/`` or the end), it is the answer: the leftmost-first match a backtracking
    engine finds. Otherwise a lower-priority match may honour the negations, and
    :class:`~haathi.models.nfa.Program` finds it, unless the broken ``!(...)`` starts at the
    same place in every match (:func:`_fixed_starts`). Every step is linear in the path.
    """

    def __init__(
        self, pattern: str, tree: Concat, groups: int, negations: list[tuple[int, Node]]
    ) -> None:
        self.pattern = pattern
        self.literal_prefix = _literal_prefix(tree)
        """The longest prefix every matching path has (narrows the scan)."""
        self._tree, self._groups = tree, groups
        self._negation_groups = [group for group, _ in negations]
        self._fixed = _fixed_starts(tree, set(self._negation_groups))
        self._reversed = [Program(reverse(options)) for _, options in negations]
        try:
            self._regex = _Re2(_to_re2(tree))
            self._negated = [_Re2(_to_re2(options) + "(?:/|$)") for _, options in negations]
        except re2.error as exc:  # its memory budget; the limits keep real patterns far below
            raise InvalidArgument(f"invalid glob {_shown(pattern)}: too complex") from exc

    def match(self, path: str) -> GlobMatch | None:
        data = path.encode()
        spans = self._regex.match(data, _BOTH)
        if spans is None:
            return None
        broken = [
            group for group, negated in zip(self._negation_groups, self._negated, strict=True)
            if spans[group][0] >= 0 and negated.match(data, _START, spans[group][0]) is not None
        ]  # fmt: skip
        if broken:
            if not self._fixed.isdisjoint(broken):  # every match breaks it: there is none
                return None
            return self._nfa_match(path, self._negations_at(path))
        if len(data) == len(path):  # ASCII: byte offsets are character offsets
            return GlobMatch(path, tuple(None if a < 0 else path[a:b] for a, b in spans[1:]))
        return GlobMatch(path, tuple(None if a < 0 else data[a:b].decode() for a, b in spans[1:]))

    def _nfa_match(self, path: str, holds: Callable[[int, int], bool]) -> GlobMatch | None:
        slots = self._program.fullmatch(path, holds)
        if slots is None:
            return None
        pairs = zip(slots[::2], slots[1::2], strict=True)
        return GlobMatch(path, tuple(None if a < 0 else path[a:b] for a, b in pairs))

    @functools.cached_property
    def _program(self) -> Program:
        return Program(self._tree, self._groups)

    def _negations_at(self, path: str) -> Callable[[int, int], bool]:
        """``holds(k, p)``: whether no alternative of negation ``k`` matches ``path[p:q]``
        with ``q`` the end or a ``/`` (the old ``(?!(?:alts)(?:/|$))``), for every ``p`` in
        one pass: read backwards, a match of the reversed alternatives that ends at ``n - p``
        and starts at the start or after a ``/``."""
        back = path[::-1]
        n = len(path)
        ends = [
            program.ends(back, lambda s: s == 0 or back[s - 1] == "/")
            for program in self._reversed
        ]  # fmt: skip
        return lambda k, p: not ends[k][n - p]


class _Re2:
    """An RE2 regex over UTF-8, called through the binding's C++-shaped ``RE2.Match``: a
    match costs ~1.5 µs there and ~8 µs through the ``re``-like wrapper."""

    def __init__(self, pattern: str) -> None:
        self._regex = _re2.RE2(pattern.encode(), _RE2_OPTIONS)
        if not self._regex.ok():
            raise re2.error(self._regex.error())

    def match(self, data: bytes, anchor: Any, pos: int = 0) -> list[tuple[int, int]] | None:
        """Byte spans of the match and each group ((-1, -1): not taken), or None."""
        spans: list[tuple[int, int]] = self._regex.Match(anchor, data, pos, len(data))
        return None if spans[0][0] < 0 else spans


def compile_glob(pattern: str) -> Glob:
    """Compile a Pachyderm glob; a leading ``/`` is implied, a trailing ``/`` ignored."""
    return _compile(pattern, False)


def compile_input_glob(pattern: str) -> Glob:
    """:func:`compile_glob` plus ohmyglob's ``!(a|b)`` ("anything but") at a component's end.

    ``!(...)`` is a capture group (as in ohmyglob) and must end a path component (be followed
    by ``/`` or the end of the pattern); ``!(**)`` therefore matches nothing.
    """
    return _compile(pattern, True)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, negation: bool) -> Glob:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidArgument("empty glob pattern")
    if len(pattern) > MAX_GLOB_LENGTH:
        raise InvalidArgument(
            f"invalid glob {_shown(pattern)}: longer than {MAX_GLOB_LENGTH} characters "
            f"({len(pattern)})"
        )
    if any(ord(c) < 0x20 for c in pattern):
        raise InvalidArgument(f"invalid glob {_shown(pattern)}: control characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in pattern):
        raise InvalidArgument(f"invalid glob {_shown(pattern)}: lone surrogate (not UTF-8)")
    normalized = "/" + pattern.strip("/") if pattern.strip("/") else "/"
    parser = _Parser(pattern, normalized, negation)
    tree = parser.sequence(0, in_brace=False, in_group=False)
    return Glob(normalized, tree, parser.groups, parser.negations)


def _shown(pattern: str) -> str:
    """The pattern as an error message quotes it: a long one cut short."""
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:60]) + "..."


# ------------------------------------------------------------------------------ syntax


class _Parser:
    """Glob syntax to a tree, counting what :data:`MAX_GLOB_WILDCARDS` and its siblings
    bound. ``pattern`` is what the user wrote (for messages), ``text`` what is parsed."""

    def __init__(self, pattern: str, text: str, negation: bool) -> None:
        self.pattern, self.text, self.negation = pattern, text, negation
        self.i = 0
        self.groups = 0
        self.negations: list[tuple[int, Node]] = []  # (its capture group, its alternatives)
        self.wildcards = 0
        self.alternatives = 0

    def fail(self, reason: str) -> NoReturn:
        raise InvalidArgument(f"invalid glob {_shown(self.pattern)}: {reason}")

    def sequence(self, depth: int, *, in_brace: bool, in_group: bool) -> Concat:
        """Items up to the end, or to the ``,``/``}`` of an open brace or ``)`` of a group."""
        items: list[Node] = []
        text = self.text
        while self.i < len(text):
            ch = text[self.i]
            if (in_brace and ch in ",}") or (in_group and ch == ")"):
                break
            items.append(self.item(depth, in_brace=in_brace, in_group=in_group))
        return Concat(tuple(items))

    def item(self, depth: int, *, in_brace: bool, in_group: bool) -> Node:
        text, i = self.text, self.i
        ch = text[i]
        self.i += 1
        if ch == "*":
            self.wildcard()
            if not text.startswith("*", i + 1):
                return Star(_NOT_SLASH)
            self.i += 1
            if text.startswith("/", i + 2):
                self.i += 1
                return Opt(Concat((Star(_ANY), _SLASH)))
            return Star(_ANY)
        if ch == "?":
            self.wildcard()
            return _NOT_SLASH
        if ch == "[":
            self.wildcard()
            return self.char_class(i)
        if ch == "{":
            return self.braces(self.nested(depth), in_group=in_group)
        if ch == "!" and self.negation and text.startswith("(", i + 1):
            return self.negated(i)
        if ch == "(":
            return self.group(self.nested(depth), in_brace=in_brace)
        if ch == ")":
            self.fail("unmatched ')'")
        if ch == "\\" and i + 1 < len(text):
            self.i += 1
            return CharSet.of(text[i + 1])
        return CharSet.of(ch)

    def wildcard(self) -> None:
        self.wildcards += 1
        if self.wildcards > MAX_GLOB_WILDCARDS:
            self.fail(f"more than {MAX_GLOB_WILDCARDS} wildcards (*, **, ?, [...], !(...))")

    def alternative(self) -> None:
        self.alternatives += 1
        if self.alternatives > MAX_GLOB_ALTERNATIVES:
            self.fail(f"more than {MAX_GLOB_ALTERNATIVES} alternatives ({{a,b}}, !(a|b))")

    def nested(self, depth: int) -> int:
        if depth >= MAX_GLOB_NESTING:
            self.fail(f"'{{...}}' and '(...)' nested more than {MAX_GLOB_NESTING} deep")
        return depth + 1

    def char_class(self, start: int) -> CharSet:
        """``[...]`` at ``start``, read as Python's ``re`` reads a set (``a-z`` ranges; a
        leading or trailing ``-`` and a backslash stand for themselves)."""
        text = self.text
        first = start + 2 if text[start + 1 : start + 2] in ("!", "^") else start + 1
        end = text.find("]", first)
        if end < 0:
            self.fail("unclosed '['")
        body = text[start + 1 : end]
        negated = body[:1] in ("!", "^")
        body = body[1:] if negated else body
        if not body:
            self.fail("empty '[]'")
        ranges: list[tuple[int, int]] = []
        k = 0
        while k < len(body):
            if k + 2 < len(body) and body[k + 1] == "-":
                lo, hi = body[k], body[k + 2]
                if lo > hi:
                    self.fail(f"bad character range {lo}-{hi}")
                ranges.append((ord(lo), ord(hi)))
                k += 3
            else:
                ranges.append((ord(body[k]), ord(body[k])))
                k += 1
        self.i = end + 1
        return CharSet(tuple(ranges), negated)

    def braces(self, depth: int, *, in_group: bool) -> Alt:
        options: list[Node] = []
        while True:
            self.alternative()
            options.append(self.sequence(depth, in_brace=True, in_group=in_group))
            if self.i >= len(self.text) or self.text[self.i] == ")":
                self.fail("unclosed '{'")
            self.i += 1
            if self.text[self.i - 1] == "}":
                return Alt(tuple(options))

    def group(self, depth: int, *, in_brace: bool) -> Group:
        self.groups += 1
        index = self.groups
        body = self.sequence(depth, in_brace=in_brace, in_group=True)
        if self.i >= len(self.text) or self.text[self.i] != ")":
            self.fail("unclosed '('")
        self.i += 1
        return Group(index, body)

    def negated(self, start: int) -> Group:
        """``!(a|b)`` at ``start``: the rest of a path component, captured, that none of the
        alternatives (globs) matches."""
        text = self.text
        end = text.find(")", start + 2)
        if end < 0:
            self.fail("unclosed '!('")
        if text[end + 1 : end + 2] not in ("", "/"):
            self.fail("'!(...)' must end a path component")
        body = text[start + 2 : end]
        if "(" in body:
            self.fail("groups inside '!(...)'")
        self.wildcard()
        options: list[Node] = []
        for option in body.split("|"):
            self.alternative()
            options.append(self.alone(option.strip("/")))
        self.groups += 1
        self.negations.append((self.groups, Alt(tuple(options))))
        self.i = end + 1
        return Group(self.groups, Concat((Assertion(len(self.negations) - 1), Star(_NOT_SLASH))))

    def alone(self, text: str) -> Node:
        """``text`` parsed as a pattern of its own, counted against this one's limits."""
        outer = self.text, self.i, self.negation
        self.text, self.i, self.negation = text, 0, False
        try:
            return self.sequence(0, in_brace=False, in_group=False)
        finally:
            self.text, self.i, self.negation = outer


# ------------------------------------------------------------------------------ the tree


def _literal_prefix(tree: Concat) -> str:
    out: list[str] = []
    for item in tree.items:
        ch = item.literal if isinstance(item, CharSet) else None
        if ch is None:
            break
        out.append(ch)
    return "".join(out)


def _fixed_starts(tree: Concat, negations: set[int]) -> set[int]:
    """The negation groups that start at the same position in every match of ``tree``: those
    in its top level after nothing but characters and ``*/`` (a ``*`` reads up to the next
    ``/``), e.g. ``/!(tmp)/**`` or ``/*/!(a*|b)/(*)``, not ``/**/!(tmp)`` or ``/*!(b)``."""
    fixed: set[int] = set()
    for item, after in zip(tree.items, (*tree.items[1:], None), strict=True):
        if isinstance(item, Group) and item.index in negations:
            fixed.add(item.index)  # '!(...)' also reads up to the next '/'
        elif not (isinstance(item, CharSet) or (item == Star(_NOT_SLASH) and after == _SLASH)):
            break
    return fixed


def _to_re2(node: Node) -> str:
    """RE2 syntax for ``node``, an :class:`Assertion` read as always holding."""
    if isinstance(node, CharSet):
        return _re2_chars(node)
    if isinstance(node, Concat):
        return "".join(_to_re2(item) for item in node.items)
    if isinstance(node, Alt):
        return "(?:" + "|".join(_to_re2(option) for option in node.options) + ")"
    if isinstance(node, Star):
        return _re2_chars(node.item) + "*"
    if isinstance(node, Opt):
        return "(?:" + _to_re2(node.item) + ")?"
    if isinstance(node, Group):
        return "(" + _to_re2(node.item) + ")"
    return ""


def _re2_chars(chars: CharSet) -> str:
    if chars.literal is not None:
        return _re2_char(chars.literal)
    ranges = "".join(
        _re2_char(chr(lo)) if lo == hi else _re2_char(chr(lo)) + "-" + _re2_char(chr(hi))
        for lo, hi in chars.ranges
    )
    return "[" + ("^" if chars.negated else "") + ranges + "]"


def _re2_char(ch: str) -> str:
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{ord(ch):x}}}"
