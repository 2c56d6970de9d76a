"""The backtracking translation of globs to Python ``re`` that haathi used before RE2: an
oracle for property tests (``tests/test_glob.py``). Fast on small patterns and paths only:
``**/`` repeated backtracks exponentially."""

from __future__ import annotations

import re
from dataclasses import dataclass

from haathi.errors import InvalidArgument

_SPECIAL = frozenset("*?[{(")


@dataclass(frozen=True, slots=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]

    def match(self, path: str) -> re.Match[str] | None:
        """Match a normalized path (``/`` for the root)."""
        return self.regex.fullmatch(path)

    @property
    def literal_prefix(self) -> str:
        """The longest prefix without special characters (narrows the scan)."""
        for i, ch in enumerate(self.pattern):
            if ch in _SPECIAL:
                return self.pattern[:i]
        return self.pattern


def _translate(pat: str, i: int, in_brace: bool) -> tuple[str, int]:
    out: list[str] = []
    n = len(pat)
    while i < n:
        ch = pat[i]
        if ch == "*":
            if i + 1 < n and pat[i + 1] == "*":
                i += 2
                if i < n and pat[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = pat.find("]", i + 2 if i + 1 < n and pat[i + 1] in "!^" else i + 1)
            if j < 0:
                raise InvalidArgument(f"invalid glob {pat!r}: unclosed '['")
            body = pat[i + 1 : j]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        elif ch == "{":
            alts: list[str] = []
            i += 1
            while True:
                part, i = _translate(pat, i, True)
                alts.append(part)
                if i >= n:
                    raise InvalidArgument(f"invalid glob {pat!r}: unclosed '{{'")
                if pat[i] == "}":
                    break
                i += 1  # skip ','
            out.append("(?:" + "|".join(alts) + ")")
        elif in_brace and ch in ",}":
            return "".join(out), i
        elif ch == "(":
            out.append("(")
        elif ch == ")":
            out.append(")")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pat[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out), i


def compile_glob(pattern: str) -> Glob:
    """Compile a Pachyderm glob; a leading ``/`` is implied, a trailing ``/`` ignored."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidArgument("empty glob pattern")
    if any(ord(c) < 0x20 for c in pattern):
        raise InvalidArgument(f"invalid glob {pattern!r}: control characters")
    pat = "/" + pattern.strip("/") if pattern.strip("/") else "/"
    body, _ = _translate(pat, 0, False)
    try:
        regex = re.compile(body)
    except re.error as exc:
        raise InvalidArgument(f"invalid glob {pattern!r}: {exc}") from exc
    return Glob(pat, regex)


class _ExtGlob(Glob):
    """A glob whose pattern holds ``!(...)``: the literal prefix stops before the ``!``."""

    __slots__ = ()

    @property
    def literal_prefix(self) -> str:
        prefix = super().literal_prefix
        cut = self.pattern.find("!(")
        return prefix if cut < 0 else prefix[:cut]


def compile_input_glob(pattern: str) -> Glob:
    """:func:`compile_glob` plus ohmyglob's ``!(a|b)`` ("anything but") at a component's end.

    ``!(...)`` is a capture group (as in ohmyglob) and must end a path component (be followed
    by ``/`` or the end of the pattern); ``!(**)`` therefore matches nothing.
    """
    if "!(" not in pattern:
        return compile_glob(pattern)
    pieces: list[str] = []
    negations: list[str] = []
    pos = 0
    while (start := pattern.find("!(", pos)) >= 0:
        if start > 0 and pattern[start - 1] in "\\[":
            pieces.append(pattern[pos : start + 2])
            pos = start + 2
            continue
        end = pattern.find(")", start + 2)
        if end < 0:
            raise InvalidArgument(f"invalid glob {pattern!r}: unclosed '!('")
        if pattern[end + 1 : end + 2] not in ("", "/"):
            raise InvalidArgument(f"invalid glob {pattern!r}: '!(...)' must end a path component")
        negations.append(_negation(pattern, pattern[start + 2 : end]))
        pieces.append(pattern[pos:start] + chr(0xE000 + len(negations) - 1))
        pos = end + 1
    pieces.append(pattern[pos:])
    regex = compile_glob("".join(pieces)).regex.pattern
    for i, negation in enumerate(negations):
        regex = regex.replace(chr(0xE000 + i), negation)
    return _ExtGlob("/" + pattern.strip("/"), re.compile(regex))


def _negation(pattern: str, body: str) -> str:
    if "(" in body:
        raise InvalidArgument(f"invalid glob {pattern!r}: groups inside '!(...)'")
    alts = [
        compile_glob(alt).regex.pattern[1:] if alt.strip("/") else "" for alt in body.split("|")
    ]
    return "((?!(?:" + "|".join(alts) + ")(?:/|$))[^/]*)"
