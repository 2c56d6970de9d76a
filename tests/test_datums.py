"""Datum formation, ported from Pachyderm's ``TestIterators`` and ``TestJoinTrailingSlash``
(src/server/worker/datum/iterator_test.go), over an in-memory glob that behaves like a glob
over a commit: every file and every proper ancestor directory (``/dir/``) is an entry, and the
root ``/`` is matched only by the glob ``/``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import blake3
import pytest

from haathi.errors import InvalidArgument
from haathi.pps.datums import (
    Datum,
    DatumInput,
    Match,
    compile_input_glob,
    datum_id,
    expand_template,
    form_datums,
)
from haathi.pps.input_spec import (
    CronInput,
    CrossInput,
    GroupInput,
    Input,
    JoinInput,
    PfsInput,
    UnionInput,
)


def _hash(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


class Repos:
    """Repos of ``{path: content}``, globbed as PFS globs a commit."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.entries = {name: self._entries(files) for name, files in repos.items()}
        self.calls: list[PfsInput] = []

    @staticmethod
    def _entries(files: dict[str, bytes]) -> list[Match]:
        entries = {p: Match(p, _hash(data), len(data), False) for p, data in files.items()}
        dirs: dict[str, list[str]] = {"/": []}
        for path in files:
            parts = path.strip("/").split("/")
            for depth in range(len(parts)):
                parent = "/" + "".join(f"{p}/" for p in parts[:depth])
                child = "/" + "/".join(parts[: depth + 1]) + ("/" if depth < len(parts) - 1 else "")
                dirs.setdefault(parent, []).append(child)
        for d in sorted(dirs, key=len, reverse=True):  # children before parents
            kids = [entries[c] for c in sorted(set(dirs[d]))]
            digest = _hash("".join(k.hash for k in kids).encode())
            entries[d] = Match(d, digest, sum(k.size for k in kids), True)
        return sorted(entries.values(), key=lambda m: m.path)

    def commit(self, repo: str) -> str:
        return _hash(repo.encode())[:32]

    def glob(self, inp: PfsInput) -> tuple[str, list[Match]]:
        self.calls.append(inp)
        pattern = compile_input_glob(inp.glob)
        root_glob = pattern.pattern == "/"
        hits = [
            m
            for m in self.entries[inp.repo]
            if (m.path == "/") == root_glob and pattern.match(m.path.rstrip("/") or "/")
        ]
        return self.commit(inp.repo), hits


DATA = Repos({"data": {f"/foo{i}": b"input" for i in range(50)}})


def pfs(glob: str, name: str = "data", **opts: object) -> PfsInput:
    return PfsInput(name=name, repo="data", glob=glob, **opts)  # type: ignore[arg-type]


def paths(inp: Input, repos: Repos = DATA) -> list[str]:
    """Each datum as its inputs' paths concatenated, as Pachyderm's test writes them."""
    return ["".join(i.path for i in d.inputs) for d in form_datums(inp, repos.glob)]


def stable(keys: list[str]) -> list[str]:
    """Pachyderm's ``computeStableKey``: a datum's path components, sorted (order-free)."""
    return sorted("/".join(sorted(k.split("/"))) for k in keys)


# Pachyderm's inputs, named after their variables in iterator_test.go.
IN0 = pfs("!(**)")
IN1 = pfs("/foo?1", "a")
IN2 = pfs("/foo*2", "b")
IN3 = UnionInput((IN1, IN2))
IN4 = CrossInput((IN1, IN2))
CROSS_4 = [
    f"{x}{y}"
    for x in ("/foo11", "/foo21", "/foo31", "/foo41")
    for y in ("/foo12", "/foo2", "/foo22", "/foo32", "/foo42")
]


def test_zero_datums() -> None:
    assert paths(IN0) == []


def test_basic() -> None:
    assert paths(IN1) == ["/foo11", "/foo21", "/foo31", "/foo41"]
    assert paths(IN2) == ["/foo12", "/foo2", "/foo22", "/foo32", "/foo42"]


def test_union_concatenates_children_in_order() -> None:
    expected = [
        "/foo11",
        "/foo12",
        "/foo2",
        "/foo21",
        "/foo22",
        "/foo31",
        "/foo32",
        "/foo41",
        "/foo42",
    ]
    got = paths(IN3)
    assert stable(got) == stable(expected)
    assert got == paths(IN1) + paths(IN2)
    assert [d.inputs[0].name for d in form_datums(IN3, DATA.glob)] == ["a"] * 4 + ["b"] * 5


def test_cross_first_child_outermost() -> None:
    assert paths(IN4) == CROSS_4
    d = form_datums(IN4, DATA.glob)[0]
    assert [(i.name, i.path) for i in d.inputs] == [("a", "/foo11"), ("b", "/foo12")]


def test_empty_cross() -> None:
    in6 = CrossInput((IN3, IN0, IN2, IN4))
    assert paths(in6) == []


def test_nested_empty_cross() -> None:
    in7 = CrossInput((CrossInput((IN3, IN0, IN2, IN4)), IN1))
    assert paths(in7) == []


def test_join_keys_by_capture_groups() -> None:
    in10 = JoinInput(
        (pfs("/foo(?)(?)", "a", join_on="$1$2"), pfs("/foo(?)(?)", "b", join_on="$2$1"))
    )
    assert paths(in10) == [
        "/foo11/foo11",
        "/foo12/foo21",
        "/foo13/foo31",
        "/foo14/foo41",
        "/foo21/foo12",
        "/foo22/foo22",
        "/foo23/foo32",
        "/foo24/foo42",
        "/foo31/foo13",
        "/foo32/foo23",
        "/foo33/foo33",
        "/foo34/foo43",
        "/foo41/foo14",
        "/foo42/foo24",
        "/foo43/foo34",
        "/foo44/foo44",
    ]
    first = form_datums(in10, DATA.glob)[1]
    assert [(i.name, i.join_on) for i in first.inputs] == [("a", "12"), ("b", "12")]


def test_outer_join_keeps_unmatched_outer_datums() -> None:
    in13 = JoinInput(
        (
            pfs("/foo1(?)", "a", join_on="$1", outer_join=True),
            pfs("/foo(?)1", "b", join_on="$1", outer_join=True),
        )
    )
    assert paths(in13) == [
        "/foo10",
        "/foo11/foo11",
        "/foo12/foo21",
        "/foo13/foo31",
        "/foo14/foo41",
        "/foo15",
        "/foo16",
        "/foo17",
        "/foo18",
        "/foo19",
    ]


def test_join_only_outer_side_survives() -> None:
    inner = JoinInput(
        (
            pfs("/foo1(?)", "a", join_on="$1", outer_join=True),
            pfs("/foo(?)1", "b", join_on="$1"),
        )
    )
    got = form_datums(inner, DATA.glob)
    assert paths(inner) == [
        "/foo10",
        "/foo11/foo11",
        "/foo12/foo21",
        "/foo13/foo31",
        "/foo14/foo41",
        "/foo15",
        "/foo16",
        "/foo17",
        "/foo18",
        "/foo19",
    ]
    assert {i.name for d in got if len(d.inputs) == 1 for i in d.inputs} == {"a"}
    neither = JoinInput((pfs("/foo1(?)", "a", join_on="$1"), pfs("/foo(?)1", "b", join_on="$1")))
    assert paths(neither) == ["/foo11/foo11", "/foo12/foo21", "/foo13/foo31", "/foo14/foo41"]


def test_group_single() -> None:
    in15 = GroupInput((pfs("/foo(?)(?)", group_by="$1"),))
    assert paths(in15) == [
        "/foo10/foo11/foo12/foo13/foo14/foo15/foo16/foo17/foo18/foo19",
        "/foo20/foo21/foo22/foo23/foo24/foo25/foo26/foo27/foo28/foo29",
        "/foo30/foo31/foo32/foo33/foo34/foo35/foo36/foo37/foo38/foo39",
        "/foo40/foo41/foo42/foo43/foo44/foo45/foo46/foo47/foo48/foo49",
    ]


def test_group_doubles_merges_keys_across_children() -> None:
    in18 = GroupInput(
        (pfs("/foo(?)(?)", "a", group_by="$1"), pfs("/foo(?)(?)", "b", group_by="$2"))
    )
    assert paths(in18) == [
        "/foo10/foo20/foo30/foo40",
        "/foo10/foo11/foo12/foo13/foo14/foo15/foo16/foo17/foo18/foo19/foo11/foo21/foo31/foo41",
        "/foo20/foo21/foo22/foo23/foo24/foo25/foo26/foo27/foo28/foo29/foo12/foo22/foo32/foo42",
        "/foo30/foo31/foo32/foo33/foo34/foo35/foo36/foo37/foo38/foo39/foo13/foo23/foo33/foo43",
        "/foo40/foo41/foo42/foo43/foo44/foo45/foo46/foo47/foo48/foo49/foo14/foo24/foo34/foo44",
        "/foo15/foo25/foo35/foo45",
        "/foo16/foo26/foo36/foo46",
        "/foo17/foo27/foo37/foo47",
        "/foo18/foo28/foo38/foo48",
        "/foo19/foo29/foo39/foo49",
    ]
    key1 = form_datums(in18, DATA.glob)[1]
    assert [i.name for i in key1.inputs] == ["a"] * 10 + ["b"] * 4
    assert {i.group_by for i in key1.inputs} == {"1"}


def test_group_of_join() -> None:
    in21 = JoinInput(
        (
            pfs("/foo(?)(?)", "a", join_on="$1$2", group_by="$1"),
            pfs("/foo(?)(?)", "b", join_on="$2$1", group_by="$2"),
        )
    )
    assert paths(GroupInput((in21,))) == [
        "/foo11/foo11/foo12/foo21/foo13/foo31/foo14/foo41",
        "/foo21/foo12/foo22/foo22/foo23/foo32/foo24/foo42",
        "/foo31/foo13/foo32/foo23/foo33/foo33/foo34/foo43",
        "/foo41/foo14/foo42/foo24/foo43/foo34/foo44/foo44",
    ]


def test_union_of_group() -> None:
    in26 = UnionInput((pfs("/foo(?)(?)"), GroupInput((pfs("/foo(?)(?)", group_by="$2"),))))
    expected = [f"/foo1{d}/foo2{d}/foo3{d}/foo4{d}" for d in range(10)]
    expected += [f"/foo{i}" for i in range(10, 50)]
    got = paths(in26)
    assert stable(got) == stable(expected)
    assert got == [f"/foo{i}" for i in range(10, 50)] + expected[:10]


@pytest.mark.parametrize("glob", ["/(*)", "/(*)/"])
def test_join_trailing_slash(glob: str) -> None:
    files = {f"/foo-{j}": b"bar" for j in range(10)}
    repos = Repos({"r0": files, "r1": files})
    join = JoinInput(
        (
            PfsInput(name="r0", repo="r0", glob=glob, join_on="$1"),
            PfsInput(name="r1", repo="r1", glob=glob, join_on="$1"),
        )
    )
    assert paths(join, repos) == [f"/foo-{j}/foo-{j}" for j in range(10)]


# --------------------------------------------------------------------------- beyond the port

TREE = Repos({"t": {"/a/b/c.txt": b"1", "/a/d.txt": b"22", "/e.txt": b"333"}})


def tpaths(glob: str) -> list[str]:
    return paths(PfsInput(name="t", repo="t", glob=glob), TREE)


def test_root_glob_is_one_datum_and_directories_are_datums() -> None:
    assert tpaths("/") == ["/"]
    assert tpaths("/*") == ["/a/", "/e.txt"]
    assert tpaths("/*/*") == ["/a/b/", "/a/d.txt"]
    assert tpaths("/**") == ["/a/", "/a/b/", "/a/b/c.txt", "/a/d.txt", "/e.txt"]
    assert tpaths("/a/!(d*)") == ["/a/b/"]
    root = form_datums(PfsInput(name="t", repo="t", glob="/"), TREE.glob)[0].inputs[0]
    assert root.is_dir and root.size == 6 and root.commit == TREE.commit("t")
    d = form_datums(PfsInput(name="t", repo="t", glob="/*"), TREE.glob)[0].inputs[0]
    assert d.is_dir and d.size == 3 and d.branch == "master"


def test_directory_capture_groups_ignore_trailing_slash() -> None:
    inp = PfsInput(name="t", repo="t", glob="/(*)", group_by="$1", join_on="x$1")
    got = form_datums(inp, TREE.glob)
    assert [(i.path, i.group_by, i.join_on) for d in got for i in d.inputs] == [
        ("/a/", "a", "xa"),
        ("/e.txt", "e.txt", "xe.txt"),
    ]


def test_cron_input_globs_its_tick_repo() -> None:
    ticks = Repos({"p_tick": {"/2024-01-01T00:00:00Z": b"", "/2024-01-01T00:01:00Z": b""}})
    cron = CronInput(name="tick", repo="p_tick", spec="@every 60s")
    got = form_datums(cron, ticks.glob)
    assert [d.inputs[0].path for d in got] == ["/2024-01-01T00:00:00Z", "/2024-01-01T00:01:00Z"]
    assert ticks.calls == [PfsInput(name="tick", repo="p_tick", branch="master", glob="/*")]
    assert got[0].inputs[0].name == "tick"


def test_lazy_and_empty_files_flags_reach_the_datum() -> None:
    inp = pfs("/foo1", lazy=True, empty_files=True)
    (d,) = form_datums(inp, DATA.glob)
    assert d.inputs[0].lazy and d.inputs[0].empty_files
    assert d.inputs[0].join_on is None and d.inputs[0].group_by is None


def test_repeated_datum_ids_are_dropped() -> None:
    assert paths(UnionInput((IN1, IN1))) == paths(IN1)


def test_extglob_negation() -> None:
    g = compile_input_glob("/x/!(a*|b)/(*)")
    assert g.match("/x/c/d") is not None and g.match("/x/bb/d") is not None
    assert g.match("/x/ab/d") is None and g.match("/x/b/d") is None
    assert g.literal_prefix == "/x/"
    assert compile_input_glob("!(**)").match("/foo") is None
    with pytest.raises(InvalidArgument, match="end a path component"):
        compile_input_glob("/!(a)b")


def test_expand_template() -> None:
    groups = ["/foo12", "1", "2"]
    assert expand_template("$1$2", groups) == "12"
    assert expand_template("${2}-${1}", groups) == "2-1"
    assert expand_template("$0", groups) == "/foo12"
    assert expand_template("$$1", groups) == "$1"
    assert expand_template("$9|$x|${1", groups) == "|$x|${1"
    assert expand_template("plain", groups) == "plain"


# --------------------------------------------------------------------------- identity and hash


def _input(path: str = "/a", content: str = "h1", **kw: object) -> DatumInput:
    base = DatumInput(
        name="in",
        repo="r",
        branch="master",
        commit="c" * 32,
        path=path,
        hash=_hash(content.encode()),
        size=1,
        is_dir=False,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_datum_id_is_pachyderms_formula_with_blake3() -> None:
    inputs = [_input("/a"), _input("/b/", name="other", repo="s", branch="dev")]
    h = blake3.blake3()
    for i in inputs:
        for part in (i.name, i.repo, i.branch, i.path):
            h.update(part.encode() + len(part.encode()).to_bytes(8, "big"))
    assert datum_id(inputs) == h.hexdigest() == Datum(tuple(inputs)).id


def test_datum_id_is_path_based_and_hash_is_content_based() -> None:
    old = Datum((_input("/a", "v1"),))
    new = Datum((_input("/a", "v2", commit="d" * 32, size=9),))
    assert old.id == new.id
    assert old.hash("salt") != new.hash("salt")
    assert old.hash("salt") == Datum((_input("/a", "v1"),)).hash("salt")
    assert old.hash("salt") != old.hash("pepper")
    assert Datum((_input("/b", "v1"),)).id != old.id
    assert Datum((_input("/a", name="x"),)).id != old.id


def test_datum_hash_formula() -> None:
    d = Datum((_input("/a", "v1"), _input("/b", "v2")))
    expected = blake3.blake3(
        d.id.encode() + d.inputs[0].hash.encode() + d.inputs[1].hash.encode() + b"s"
    ).hexdigest()
    assert d.hash("s") == expected


def test_ids_survive_content_changes_in_a_real_glob() -> None:
    before = Repos({"data": {"/x": b"1", "/y": b"2"}})
    after = Repos({"data": {"/x": b"1", "/y": b"changed"}})
    inp = pfs("/*")
    b, a = form_datums(inp, before.glob), form_datums(inp, after.glob)
    assert [d.id for d in b] == [d.id for d in a]
    assert b[0].hash("s") == a[0].hash("s") and b[1].hash("s") != a[1].hash("s")


def test_an_input_as_json_is_what_json_dumps_makes_of_its_fields() -> None:
    # a job records its datums' inputs as JSON made by hand (a third of json.dumps's time)
    inputs = [
        DatumInput("in", "in", "master", "c" * 32, "/f", "h" * 64, 60, False),
        DatumInput(
            "naïve",
            "r-2",
            "dev",
            "c" * 32,
            '/dir "q"\\\n/é€😀\x01',
            "",
            0,
            True,
            join_on="$1",
            group_by="k",
            lazy=True,
            empty_files=True,
            outer_join=True,
        ),
    ]
    for i in inputs:
        assert [f.name for f in dataclasses.fields(i)] == list(json.loads(i.to_json()))
        assert i.to_json() == json.dumps(dataclasses.asdict(i))
