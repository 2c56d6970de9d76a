"""Regular-expression trees matched in time linear in the text: a Thompson NFA run as a Pike VM.

:mod:`haathi.models.glob` parses glob syntax into these trees and gives most of them to RE2;
this engine runs what RE2 cannot: trees holding an :class:`Assertion`, a zero-width test the
caller decides per position (a glob's ``!(...)``). It keeps at most one thread per
instruction, so a match costs O(len(text) x len(program)) whatever the pattern (Russ Cox,
"Regular Expression Matching: the Virtual Machine Approach"), and capture groups get the
values a backtracking matcher (Python's ``re``, RE2) gives: the leftmost-first match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

Holds = Callable[[int, int], bool]
"""``holds(assertion_index, position)``: whether an :class:`Assertion` holds there."""


@dataclass(frozen=True, slots=True)
class CharSet:
    """One character: one in ``ranges`` (inclusive code points), or with ``negated`` any other."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    @classmethod
    def of(cls, ch: str) -> CharSet:
        return cls(((ord(ch), ord(ch)),))

    @property
    def literal(self) -> str | None:
        """The one character this set holds, if it holds exactly one."""
        if self.negated or len(self.ranges) != 1 or self.ranges[0][0] != self.ranges[0][1]:
            return None
        return chr(self.ranges[0][0])

    def __contains__(self, ch: str) -> bool:
        code = ord(ch)
        return any(lo <= code <= hi for lo, hi in self.ranges) is not self.negated


@dataclass(frozen=True, slots=True)
class Concat:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    """The first option that leads to a match wins (leftmost-first)."""

    options: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Star:
    """Any number of characters of ``item``, as many as possible first (greedy)."""

    item: CharSet


@dataclass(frozen=True, slots=True)
class Opt:
    """``item`` or nothing, ``item`` first (greedy)."""

    item: Node


@dataclass(frozen=True, slots=True)
class Group:
    """Capture group ``index`` (from 1)."""

    index: int
    item: Node


@dataclass(frozen=True, slots=True)
class Assertion:
    """Matches the empty string where ``holds(index, position)``."""

    index: int


Node = CharSet | Concat | Alt | Star | Opt | Group | Assertion


def reverse(node: Node) -> Node:
    """A tree matching the reversed strings ``node`` matches."""
    if isinstance(node, Concat):
        return Concat(tuple(reverse(item) for item in reversed(node.items)))
    if isinstance(node, Alt):
        return Alt(tuple(reverse(option) for option in node.options))
    if isinstance(node, Opt):
        return Opt(reverse(node.item))
    if isinstance(node, Group):
        return Group(node.index, reverse(node.item))
    return node


# ------------------------------------------------------------------------------ the program

_CHAR, _SPLIT, _JMP, _SAVE, _ASSERT, _MATCH = range(6)


_NOTHING = CharSet(())


@dataclass(slots=True)
class _Inst:
    op: int
    x: int = 0  # SPLIT/JMP: target (SPLIT: the preferred one); SAVE: slot; ASSERT: index
    y: int = 0  # SPLIT: the other target
    chars: CharSet = _NOTHING  # CHAR: the character it reads


Thread = tuple[int, tuple[int, ...]]  # (instruction, capture slots)


class Program:
    """``node`` compiled to NFA instructions; ``groups`` is the number of capture groups."""

    def __init__(self, node: Node, groups: int = 0) -> None:
        self.groups = groups
        self._insts: list[_Inst] = []
        self._emit(node)
        self._insts.append(_Inst(_MATCH))

    def _emit(self, node: Node) -> None:
        insts = self._insts
        if isinstance(node, CharSet):
            insts.append(_Inst(_CHAR, chars=node))
        elif isinstance(node, Concat):
            for item in node.items:
                self._emit(item)
        elif isinstance(node, Alt):
            jumps: list[_Inst] = []
            for option in node.options[:-1]:
                split = _Inst(_SPLIT, x=len(insts) + 1)
                insts.append(split)
                self._emit(option)
                jumps.append(_Inst(_JMP))
                insts.append(jumps[-1])
                split.y = len(insts)
            self._emit(node.options[-1])
            for jump in jumps:
                jump.x = len(insts)
        elif isinstance(node, Star):
            start = len(insts)
            insts.append(_Inst(_SPLIT, x=start + 1, y=start + 3))
            insts.append(_Inst(_CHAR, chars=node.item))
            insts.append(_Inst(_JMP, x=start))
        elif isinstance(node, Opt):
            split = _Inst(_SPLIT, x=len(insts) + 1)
            insts.append(split)
            self._emit(node.item)
            split.y = len(insts)
        elif isinstance(node, Group):
            insts.append(_Inst(_SAVE, x=2 * node.index - 2))
            self._emit(node.item)
            insts.append(_Inst(_SAVE, x=2 * node.index - 1))
        else:
            insts.append(_Inst(_ASSERT, x=node.index))

    def _closure(self, threads: Iterable[Thread], pos: int, holds: Holds | None) -> list[Thread]:
        """The threads' CHAR and MATCH instructions reachable without reading, in priority
        order, each instruction once (taken by its highest-priority thread)."""
        out: list[Thread] = []
        seen: set[int] = set()
        stack = list(threads)
        stack.reverse()
        while stack:
            pc, slots = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            inst = self._insts[pc]
            if inst.op == _JMP:
                stack.append((inst.x, slots))
            elif inst.op == _SPLIT:
                stack.append((inst.y, slots))
                stack.append((inst.x, slots))
            elif inst.op == _SAVE:
                stack.append((pc + 1, (*slots[: inst.x], pos, *slots[inst.x + 1 :])))
            elif inst.op == _ASSERT:
                if holds is not None and holds(inst.x, pos):
                    stack.append((pc + 1, slots))
            else:
                out.append((pc, slots))
        return out

    def _step(self, threads: list[Thread], ch: str) -> list[Thread]:
        insts = self._insts
        return [(pc + 1, slots) for pc, slots in threads if ch in insts[pc].chars]

    def fullmatch(self, text: str, holds: Holds | None = None) -> tuple[int, ...] | None:
        """The capture slots (start, end per group; -1 for a group not taken) of the
        leftmost-first match of all of ``text``, or None."""
        threads = self._closure([(0, (-1,) * (2 * self.groups))], 0, holds)
        for pos, ch in enumerate(text, 1):
            threads = self._closure(self._step(threads, ch), pos, holds)
            if not threads:
                return None
        for pc, slots in threads:
            if self._insts[pc].op == _MATCH:
                return slots
        return None

    def ends(self, text: str, starts: Callable[[int], bool]) -> list[bool]:
        """For each position ``e`` of ``text`` (0 to len), whether ``text[s:e]`` matches for
        some ``s <= e`` with ``starts(s)``: every start is run at once, in one pass."""
        done = len(self._insts) - 1
        out: list[bool] = []
        threads: list[Thread] = []
        for pos in range(len(text) + 1):
            if starts(pos):
                threads = self._closure([*threads, (0, ())], pos, None)
            out.append(any(pc == done for pc, _ in threads))
            if pos < len(text):
                threads = self._closure(self._step(threads, text[pos]), pos + 1, None)
        return out
