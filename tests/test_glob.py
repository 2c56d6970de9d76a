"""Glob patterns: matching takes time linear in the path for any pattern, patterns have size
limits, and a glob request never stalls the server. ``tests/glob_oracle.py`` (the backtracking
translation haathi used before) is the reference the new matcher must agree with."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import haathi
from haathi.errors import InvalidArgument
from haathi.models.glob import (
    MAX_GLOB_ALTERNATIVES,
    MAX_GLOB_LENGTH,
    MAX_GLOB_NESTING,
    MAX_GLOB_WILDCARDS,
    Glob,
    compile_glob,
    compile_input_glob,
)
from loopback.servers import haathi_serve
from tests import glob_oracle
from tests.conftest import Cli

DEEP = "/" + "/".join(["abc"] * 30)  # a 30-level path
STARS_500 = "**/" * 500 + "x"  # froze the server for minutes before
STARS_AT_LIMIT = "**/" * MAX_GLOB_WILDCARDS + "x"
Compile = Callable[[str], Glob]
T = TypeVar("T")


def fast(fn: Callable[[], T], seconds: float = 2.0) -> T:
    """``fn()``, which must return within ``seconds``."""
    start = time.monotonic()
    result = fn()
    assert time.monotonic() - start < seconds, f"took {time.monotonic() - start:.1f} s"
    return result


# linear time ------------------------------------------------------------------------------


FLAT = "/" + "a" * 1000  # one long component


@pytest.mark.parametrize("compile_", [compile_glob, compile_input_glob])
@pytest.mark.parametrize(
    ("pattern", "miss", "hit"),
    [
        ("**/" * 10 + "x", DEEP, DEEP + "/x"),  # 59 s with the backtracking translation
        (STARS_AT_LIMIT, DEEP, DEEP + "/x"),
        ("{a,**/}" * 32 + "x", DEEP, DEEP + "/x"),
        ("/" + "**" * MAX_GLOB_WILDCARDS + "x", DEEP, DEEP + "/x"),
        ("*a" * (MAX_GLOB_WILDCARDS // 2) + "x", FLAT, FLAT + "x"),
        ("?*" * (MAX_GLOB_WILDCARDS // 2) + "x", FLAT, FLAT + "x"),
    ],
    ids=["stars10", "stars-at-limit", "braces", "no-slash", "star-a", "any-star"],
)
def test_pathological_patterns_match_fast(
    compile_: Compile, pattern: str, miss: str, hit: str
) -> None:
    g = compile_(pattern)
    assert fast(lambda: g.match(miss)) is None
    found = fast(lambda: g.match(hit))
    assert found is not None and found.path == hit


def test_pathological_negations_match_fast() -> None:
    # the backtracking translation ran the lookahead's 20 '**/' from every split of '(**)'
    g = compile_input_glob("/(**)/!(" + "**/" * 20 + "x)/**/z")
    assert fast(lambda: g.match(DEEP)) is None
    assert fast(lambda: g.match(DEEP + "/z")) is not None
    g = compile_input_glob("/(**)/!(abc|" + "**/" * 40 + "x)/" + "**/" * 20 + "y")
    # RE2's match gives !(...) an 'abc', which breaks it: the NFA looks for another (none)
    assert fast(lambda: g.match(DEEP + "/y")) is None
    found = fast(lambda: g.match(DEEP + "/z/y"))
    assert found is not None and found.groups() == (DEEP[1:], "z")
    # RE2's match gives !(a*) the last 'a...' but one; the NFA finds the 'b' 100 levels up
    g = compile_input_glob("/(**)/!(a*)/**")
    a100 = "/".join(["a" * 50] * 100)
    found = fast(lambda: g.match(f"/{a100}/b/{a100}"))
    assert found is not None and found.groups() == (a100, "b")


def test_negation_takes_the_match_a_backtracking_matcher_takes() -> None:
    """The leftmost-first match that keeps every ``!(...)``: ``(**)`` gives up ``c`` so that
    ``!(b)`` can take it, as Python's ``re`` did."""
    g = compile_input_glob("/(**)/!(b)/**")
    found = g.match("/a/c/b/d")
    assert found is not None and found.groups() == ("a", "c")
    assert g.match("/a/b/c") is None
    g = compile_input_glob("/x/!(a*|b)/(*)")
    found = g.match("/x/bb/d")
    assert found is not None and found.groups() == ("bb", "d")
    assert g.match("/x/ab/d") is None and g.match("/x/b/d") is None
    assert compile_input_glob("!(**)").match("/foo") is None
    assert compile_input_glob("/!(tmp)/**").match("/tmp/a") is None  # no other match to try
    assert compile_input_glob("/!(tmp)/**").match("/tmpx/a") is not None
    assert compile_input_glob("/!(a/b)/*").match("/a/b") is None  # alternatives may span '/'
    assert compile_input_glob("/!(a/b)/*").match("/a/c") is not None


def test_capture_groups_feed_templates() -> None:
    found = compile_glob("/foo(?)(?)").match("/foo12")
    assert found is not None and found.group(0) == "/foo12" and found.groups() == ("1", "2")
    found = compile_glob("/{(a)b,(a)c}").match("/ac")
    assert found is not None and found.groups() == (None, "a")  # a group not taken: None


def test_literal_prefix_narrows_the_scan() -> None:
    assert compile_glob("/a/b*/c").literal_prefix == "/a/b"
    assert compile_glob("/a\\*b/*").literal_prefix == "/a*b/"  # an escaped character is literal
    assert compile_input_glob("/x/!(a)").literal_prefix == "/x/"
    assert compile_glob("/x/!(a)").literal_prefix == "/x/!"  # glob file: '!' is a character


# limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compile_", [compile_glob, compile_input_glob])
def test_patterns_over_a_limit_are_refused_naming_it(compile_: Compile) -> None:
    def refused(pattern: str, limit: str) -> None:
        with pytest.raises(InvalidArgument, match=limit) as err:
            fast(lambda: compile_(pattern), 1.0)
        assert str(err.value).startswith("invalid glob '") and len(str(err.value)) < 200

    refused(STARS_500, f"more than {MAX_GLOB_WILDCARDS} wildcards")
    refused("/" + "a" * MAX_GLOB_LENGTH, f"longer than {MAX_GLOB_LENGTH} characters")
    refused("?" * (MAX_GLOB_WILDCARDS + 1), "wildcards")
    refused("[ab]" * (MAX_GLOB_WILDCARDS + 1), "wildcards")
    too_many = ",".join(["a"] * (MAX_GLOB_ALTERNATIVES + 1))
    refused("{" + too_many + "}", f"more than {MAX_GLOB_ALTERNATIVES} alternatives")
    refused("{" * (MAX_GLOB_NESTING + 1), f"nested more than {MAX_GLOB_NESTING} deep")
    refused("(" * (MAX_GLOB_NESTING + 1), "nested")
    refused("/" + "(" * 4000, "nested")  # no RecursionError
    # at the limits, a pattern compiles and matches
    compile_("/" + "a" * (MAX_GLOB_LENGTH - 1))
    compile_("{" * MAX_GLOB_NESTING + "a" + "}" * MAX_GLOB_NESTING)
    assert compile_("{" + ",".join(["a"] * MAX_GLOB_ALTERNATIVES) + "}").match("/a") is not None


def test_negations_count_against_the_limits() -> None:
    with pytest.raises(InvalidArgument, match="wildcards"):
        compile_input_glob("/!(" + "?" * MAX_GLOB_WILDCARDS + ")")
    with pytest.raises(InvalidArgument, match="alternatives"):
        compile_input_glob("/!(" + "|".join(["a"] * (MAX_GLOB_ALTERNATIVES + 1)) + ")")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("/[ab", "unclosed '\\['"),
        ("/{a,b", "unclosed '{'"),
        ("/(a", "unclosed '\\('"),
        ("/a)", "unmatched '\\)'"),
        ("/[z-a]", "bad character range z-a"),
        ("/[]", "empty"),
        ("/{a,(b,c)}", "unclosed '\\('"),  # a group may not straddle a brace's alternatives
        ("/a\x01", "control characters"),
        ("/a\udc80", "lone surrogate"),
        ("/!(a", "unclosed '!\\('"),
        ("/!(a)b", "must end a path component"),
        ("/!((a)", "groups inside"),
    ],
)
def test_bad_patterns_are_refused_in_one_line(pattern: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        compile_input_glob(pattern)


# agreement with the backtracking translation --------------------------------------------------

_ATOMS = [
    "a",
    "b",
    "/",
    "*",
    "**",
    "**/",
    "?",
    "[ab]",
    "[!a]",
    "[a-b]",
    "\\*",
    "]",
    "!",
    ".",
    "-",
    "[!-b]",
]
_NEGATED = ["a", "b*", "**", "a/b", "", "{a,b}", "?", "[!b]", "**/a"]


def _patterns(negation: bool) -> st.SearchStrategy[str]:
    atoms = st.sampled_from(_ATOMS)
    if negation:
        options = st.lists(st.sampled_from(_NEGATED), min_size=1, max_size=3).map("|".join)
        atoms = atoms | options.map(lambda body: "!(" + body + ")/")

    def wrap(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return (
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: "{" + ",".join(xs) + "}")
            | inner.map(lambda x: "(" + x + ")")
            | st.lists(inner, min_size=1, max_size=4).map("".join)
        )

    return st.recursive(atoms, wrap, max_leaves=8)


_PATHS = st.lists(st.text("abc", min_size=1, max_size=3), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


def _agree(compile_new: Compile, compile_old: Callable[[str], object], pattern: str,
           paths: list[str]) -> None:  # fmt: skip
    assume(pattern.count("**") <= 3)  # the old translation is exponential in '**'
    try:
        old = compile_old(pattern)
    except InvalidArgument:
        with pytest.raises(InvalidArgument):
            compile_new(pattern)
        return
    new = compile_new(pattern)
    assert new.pattern == old.pattern  # type: ignore[attr-defined]
    assert new.literal_prefix.startswith(old.literal_prefix.replace("\\", ""))  # type: ignore[attr-defined]
    for path in paths:
        want = old.match(path)  # type: ignore[attr-defined]
        want = None if want is None else (want.group(0), want.groups())
        got = new.match(path)
        assert (None if got is None else (got.path, got.groups())) == want, (pattern, path)
        # the NFA alone (it runs only when RE2's match breaks a negation) agrees too
        got = new._nfa_match(path, new._negations_at(path))
        assert (None if got is None else (got.path, got.groups())) == want, (pattern, path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_patterns(negation=False), st.lists(_PATHS, min_size=1, max_size=6))
def test_glob_agrees_with_the_backtracking_translation(pattern: str, paths: list[str]) -> None:
    _agree(compile_glob, glob_oracle.compile_glob, pattern, paths)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_patterns(negation=True), st.lists(_PATHS, min_size=1, max_size=6))
def test_input_glob_agrees_with_the_backtracking_translation(
    pattern: str, paths: list[str]
) -> None:
    _agree(compile_input_glob, glob_oracle.compile_input_glob, pattern, paths)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("*?[]{},()!|\\/-^"),
               max_size=40), _PATHS)  # fmt: skip
def test_any_text_compiles_or_is_refused_in_one_line(pattern: str, path: str) -> None:
    for compile_ in (compile_glob, compile_input_glob):
        try:
            g = compile_(pattern)
        except InvalidArgument as exc:
            assert str(exc).startswith(("invalid glob", "empty glob")) and "\n" not in str(exc)
            continue
        g.match(path)
        g.match("/" + pattern.strip("/"))


# the CLI ------------------------------------------------------------------------------------


def test_glob_file_list_datum_and_validate_refuse_an_oversized_glob_fast(
    cli: Cli, tmp_path: Path
) -> None:
    cli("create", "repo", "deep")
    cli("put", "file", f"deep@master:{DEEP}/x", "-f", "-", input=b"x")
    cli("put", "file", f"deep@master:{DEEP}/y", "-f", "-", input=b"y")

    def spec(glob: str) -> str:
        path = tmp_path / f"{len(glob)}.json"
        path.write_text(json.dumps({
            "pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
            "input": {"pfs": {"repo": "deep", "glob": glob}},
        }))  # fmt: skip
        return str(path)

    for args in (["glob", "file", f"deep@master:{STARS_500}"],
                 ["list", "datum", "-f", spec(STARS_500)],
                 ["validate", "pipeline", "-f", spec(STARS_500)]):  # fmt: skip
        res = fast(functools.partial(cli.fails, *args), 30)
        assert res.code == 2 and f"more than {MAX_GLOB_WILDCARDS} wildcards" in res.err
    # at the limit: answered at once (the backtracking translation never finished)
    found = fast(lambda: cli("glob", "file", f"deep@master:{STARS_AT_LIMIT}", "-o", "json"), 30)
    assert [f["path"] for f in found.json()] == [DEEP + "/x"]
    datums = fast(lambda: cli("list", "datum", "-f", spec(STARS_AT_LIMIT), "-o", "json"), 30)
    assert [d["inputs"][0]["path"] for d in datums.json()] == [DEEP + "/x"]


# the server -----------------------------------------------------------------------------------


@pytest.fixture
def backend() -> str:
    """The server test is about requests, not storage: one backend pair."""
    return "local"


@pytest.fixture
def served(store: Path) -> Iterator[tuple[str, str]]:
    """``haathi serve`` of the store in its own process (a stalled server cannot stall the
    test): its URL and its S3 gateway's. Killed at the end."""
    with haathi_serve(store) as (_proc, url, s3):
        assert s3 is not None
        yield url, s3


@pytest.mark.parametrize(
    ("pattern", "status"), [(STARS_500, 400), (STARS_AT_LIMIT, 200)], ids=["500", "at-limit"]
)
def test_a_pathological_glob_never_stalls_the_server(
    served: tuple[str, str], pattern: str, status: int
) -> None:
    url, s3 = served
    with haathi.connect(url) as c:
        c.create_repo("deep")
        with c.start_commit("deep@master") as commit:
            commit.put_file(DEEP + "/x", b"x")
            commit.put_file(DEEP + "/y", b"y")  # no match: the old translation backtracked
    glob: dict[str, httpx.Response | Exception | float] = {}

    def run_glob() -> None:
        start = time.monotonic()
        try:
            glob["response"] = httpx.get(
                f"{url}/v1/repos/deep/commits/master/glob", params={"pattern": pattern},
                timeout=60,
            )  # fmt: skip
        except httpx.TimeoutException as exc:
            glob["response"] = exc
        glob["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=run_glob)
    thread.start()
    try:
        time.sleep(0.3)  # the glob request is in flight
        for probe in (f"{url}/v1/repos/deep", f"{s3}/"):
            start = time.monotonic()
            try:
                answer = httpx.get(probe, timeout=10)
            except httpx.TimeoutException:
                pytest.fail(f"GET {probe} did not answer within 10 s while a glob ran")
            took = time.monotonic() - start
            assert answer.status_code < 500, answer.text
            assert took < 5, f"GET {probe} took {took:.1f} s while a glob ran"
    finally:
        thread.join(timeout=70)
    response, seconds = glob["response"], glob["seconds"]
    assert isinstance(response, httpx.Response), f"the glob request failed: {response!r}"
    assert isinstance(seconds, float) and seconds < 5, f"the glob request took {seconds:.1f} s"
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["code"] == "invalid_argument"
        assert f"more than {MAX_GLOB_WILDCARDS} wildcards" in response.json()["message"]
    else:
        assert [f["path"] for f in response.json()] == [DEEP + "/x"]
