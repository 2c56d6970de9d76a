"""The path collision check (``haathi.pfs.collisions``) answers about the tree a write would
make without building it: checked against brute force on random trees and change lists, on
tall trees (tiny fanouts) as well as the real one."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haathi.errors import FailedPrecondition
from haathi.pfs import staging
from haathi.pfs.collisions import ChangeView, SortedPuts, check_sorted_puts, find_clashes
from haathi.tree import prolly
from tests.test_tree import FANOUTS, PROPERTY, MemorySink, fanout, make_entry

# few names, so that random trees are dense; "a-" and "a0" sort around "a/" (a naive
# prefix scan or skip trips on them)
NAMES = ["a", "a-", "a0"]
UNIVERSE = sorted("/" + "/".join(p) for n in (1, 2, 3) for p in itertools.product(NAMES, repeat=n))
OPS = [staging.PUT, staging.APPEND, staging.DELETE, staging.RDELETE]


def apply(files: set[str], changes: list[staging.Change]) -> set[str]:
    """What the changes make of a set of file paths (the semantics of ``edits_for``)."""
    out = set(files)
    for ch in changes:
        if ch.op in (staging.PUT, staging.APPEND):
            out.add(ch.path)
        elif ch.op == staging.DELETE:
            out.discard(ch.path)
        else:
            out = {p for p in out if p != ch.path and not p.startswith(ch.path + "/")}
    return out


@pytest.mark.parametrize("bits", FANOUTS)
@settings(PROPERTY, max_examples=400)
@given(data=st.data())
def test_the_view_answers_as_the_tree_the_changes_make(
    bits: int | None, data: st.DataObject
) -> None:
    with fanout(bits):
        base = data.draw(st.sets(st.sampled_from(UNIVERSE), max_size=16), label="base")
        changes = [
            staging.Change(op, path)
            for op, path in data.draw(
                st.lists(st.tuples(st.sampled_from(OPS), st.sampled_from(UNIVERSE)), max_size=8),
                label="changes",
            )
        ]
        sink = MemorySink()
        store = sink.store()
        root = prolly.build([make_entry(p) for p in sorted(base)], store, sink)
        final = apply(base, changes)
        view = ChangeView(root, changes, store)
        for path in UNIVERSE:
            assert view.is_file(path) == (path in final), path
            below = view.file_below(path)
            holds = [p for p in final if p.startswith(path + "/")]
            assert (below in holds) if holds else below is None, path
            first = prolly.first_from(root, path, store)
            at_or_after = [p for p in sorted(base) if p >= path]
            assert (first.path if first else None) == (at_or_after[0] if at_or_after else None)
        written = {ch.path for ch in changes if ch.op in (staging.PUT, staging.APPEND)}
        clashes = list(find_clashes(view, sorted(written)))
        expected = {
            (f, g) for f in final for g in final
            if g.startswith(f + "/") and (f in written or g in written)
        }  # fmt: skip
        assert bool(clashes) == bool(expected)
        for c in clashes:
            assert c.upper in final and c.other in final and c.other.startswith(c.upper + "/")


# names in both Unicode spellings ("é" as one code point and as "e" + an accent), "ệ" and a
# mixed spelling of it (which sorts first, and is a spelling of "ệ" but not the other way
# round), and the KELVIN SIGN, whose other spelling is the ASCII "K" (it sorts before it)
SPELLED = ["a", "a-", "\u00e9", "e\u0301", "\u1ec7", "\u1eb9\u0302", "K", "\u212a"]
SPELLED_UNIVERSE = sorted(
    "/" + "/".join(p) for n in (1, 2, 3) for p in itertools.product(SPELLED, repeat=n)
)


@pytest.mark.parametrize("bits", FANOUTS)
@settings(PROPERTY, max_examples=400)
@given(data=st.data())
def test_sorted_puts_are_checked_as_they_come_as_the_whole_list_is(
    bits: int | None, data: st.DataObject
) -> None:
    """A stream of puts in path order (``put file -r``) is checked one path at a time, holding
    only the latest path's surroundings: it refuses exactly what the check of the whole change
    list refuses, and each clash it names is one the final tree would hold."""
    universe = data.draw(st.sampled_from([UNIVERSE, SPELLED_UNIVERSE]), label="names")
    with fanout(bits):
        base = data.draw(st.sets(st.sampled_from(universe), max_size=12), label="base")
        written = sorted(data.draw(st.sets(st.sampled_from(universe), max_size=8), label="puts"))
        sink = MemorySink()
        store = sink.store()
        root = prolly.build([make_entry(p) for p in sorted(base)], store, sink)
        changes = [staging.Change(staging.PUT, p) for p in written]
        whole = next(find_clashes(ChangeView(root, changes, store), written), None)
        check = SortedPuts(root, store)
        found = next(filter(None, map(check.clash, written)), None)
        if check.complete:
            assert (found is None) == (whole is None)
        else:
            assert found is None or whole is not None
        final = base | set(written)
        if found is not None:
            assert found.upper in final or any(p.startswith(found.upper + "/") for p in final)
            if not found.spelling:
                assert found.upper in final and found.other.startswith(found.upper + "/")
        with pytest.raises(FailedPrecondition) if whole else contextlib.nullcontext():
            check_sorted_puts(root, lambda: written, store)


def test_sorted_puts_leave_an_ascii_spelling_to_the_whole_check() -> None:
    """ "K" comes before KELVIN SIGN "K" in path order, and is not kept: the one-pass check says
    it is incomplete, and the check of the whole list refuses them."""
    store = MemorySink().store()
    check = SortedPuts(None, store)
    assert check.clash("/K") is None
    assert check.clash("/\u212a") is None
    assert not check.complete
    with pytest.raises(FailedPrecondition, match="two Unicode spellings"):
        check_sorted_puts(None, lambda: ["/K", "/\u212a"], store)


def test_sorted_puts_refuse_a_path_out_of_order() -> None:
    check = SortedPuts(None, MemorySink().store())
    assert check.clash("/b") is None
    with pytest.raises(ValueError, match="/a does not follow /b"):
        check.clash("/a")
