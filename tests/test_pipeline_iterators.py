"""Pachyderm's datum-formation cases (``TestIterators`` and ``TestJoinTrailingSlash`` in
src/server/worker/datum/iterator_test.go), through the Client and the CLI on real repos.

Pachyderm's test puts 50 files ``/foo0`` .. ``/foo49`` in one repo and checks the datums of
inputs built over it; so do these, with ``list datum -f`` (``Client.preview_datums``), which
globs the input branches' head commits and creates nothing. A datum is written, as in
Pachyderm's test, as its inputs' paths concatenated. ``tests/test_datums.py`` holds the same
cases against the datum former alone (and the group and trailing-slash join cases that need no
store); these prove the whole path (spec parsing, globbing real commits) gives the same datums,
and that real jobs run exactly them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from haathi.client import Client
from haathi.models.info import DatumInfo, JobState
from tests.conftest import Cli


def pfs(glob: str, name: str, **opts: Any) -> dict[str, Any]:
    return {"pfs": {"repo": "data", "name": name, "glob": glob, **opts}}


def keys(datums: list[DatumInfo]) -> list[str]:
    """Each datum as its inputs' paths concatenated, as Pachyderm's test writes them."""
    return ["".join(i["path"] for i in d.inputs) for d in datums]


def stable(ks: list[str]) -> list[str]:
    """Pachyderm's ``computeStableKey``: a datum's path components, sorted (order-free)."""
    return sorted("/".join(sorted(k.split("/"))) for k in ks)


@pytest.fixture
def data(client: Client) -> Client:
    """The repo of Pachyderm's test: 50 files /foo0 .. /foo49, each ``input``."""
    client.create_repo("data")
    with client.start_commit("data@master") as c:
        for i in range(50):
            c.put_file(f"/foo{i}", b"input")
    return client


IN0 = pfs("!(**)", "data")
IN1 = pfs("/foo?1", "a")
IN2 = pfs("/foo*2", "b")
IN3 = {"union": [IN1, IN2]}
IN4 = {"cross": [IN1, IN2]}
EMPTY_CROSS = [
    IN3,
    pfs("!(**)", "c"),
    pfs("/foo*2", "d"),
    {"cross": [pfs("/foo?1", "e"), pfs("/foo*2", "f")]},
]
JOIN_10 = {"join": [pfs("/foo(?)(?)", "a", join_on="$1$2"), pfs("/foo(?)(?)", "b", join_on="$2$1")]}
GROUP_OF_JOIN = {
    "group": [
        {
            "join": [
                pfs("/foo(?)(?)", "a", join_on="$1$2", group_by="$1"),
                pfs("/foo(?)(?)", "b", join_on="$2$1", group_by="$2"),
            ]
        }
    ]
}

CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "zero datums": (IN0, []),
    "basic": (IN1, ["/foo11", "/foo21", "/foo31", "/foo41"]),
    "basic 2": (IN2, ["/foo12", "/foo2", "/foo22", "/foo32", "/foo42"]),
    "union": (
        IN3,
        ["/foo11", "/foo21", "/foo31", "/foo41", "/foo12", "/foo2", "/foo22", "/foo32", "/foo42"],
    ),
    "cross": (
        IN4,
        [
            f"{x}{y}"
            for x in ("/foo11", "/foo21", "/foo31", "/foo41")
            for y in ("/foo12", "/foo2", "/foo22", "/foo32", "/foo42")
        ],
    ),
    # Pachyderm's test repeats names inside a cross, which its spec validation refuses.
    "empty cross": ({"cross": EMPTY_CROSS}, []),
    "nested empty cross": ({"cross": [{"cross": EMPTY_CROSS}, pfs("/foo?1", "g")]}, []),
    "join": (
        JOIN_10,
        [
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
        ],
    ),
    "outer join": (
        {
            "join": [
                pfs("/foo1(?)", "a", join_on="$1", outer_join=True),
                pfs("/foo(?)1", "b", join_on="$1", outer_join=True),
            ]
        },
        [
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
        ],
    ),
    "inner join": (
        {"join": [pfs("/foo1(?)", "a", join_on="$1"), pfs("/foo(?)1", "b", join_on="$1")]},
        ["/foo11/foo11", "/foo12/foo21", "/foo13/foo31", "/foo14/foo41"],
    ),
    "group": (
        {"group": [pfs("/foo(?)(?)", "data", group_by="$1")]},
        ["".join(f"/foo{t}{u}" for u in range(10)) for t in range(1, 5)],
    ),
    "group doubles": (
        {"group": [pfs("/foo(?)(?)", "a", group_by="$1"), pfs("/foo(?)(?)", "b", group_by="$2")]},
        ["/foo10/foo20/foo30/foo40"]
        + [
            "".join(f"/foo{t}{u}" for u in range(10)) + "".join(f"/foo{s}{t}" for s in range(1, 5))
            for t in range(1, 5)
        ]
        + ["".join(f"/foo{s}{u}" for s in range(1, 5)) for u in range(5, 10)],
    ),
    "group of join": (
        GROUP_OF_JOIN,
        [
            "/foo11/foo11/foo12/foo21/foo13/foo31/foo14/foo41",
            "/foo21/foo12/foo22/foo22/foo23/foo32/foo24/foo42",
            "/foo31/foo13/foo32/foo23/foo33/foo33/foo34/foo43",
            "/foo41/foo14/foo42/foo24/foo43/foo34/foo44/foo44",
        ],
    ),
    "union of group": (
        {
            "union": [
                pfs("/foo(?)(?)", "data"),
                {"group": [pfs("/foo(?)(?)", "grouped", group_by="$2")]},
            ]
        },
        [f"/foo{i}" for i in range(10, 50)]
        + ["".join(f"/foo{t}{u}" for t in range(1, 5)) for u in range(10)],
    ),
}


def test_each_case_previews_pachyderms_datums(data: Client) -> None:
    for case, (spec, expected) in CASES.items():
        got = data.preview_datums({"input": spec})
        assert keys(got) == expected, case
        assert stable(keys(got)) == stable(expected), case
        assert len({d.id for d in got}) == len(got), f"{case}: datum IDs are unique"
    assert [r.name for r in data.list_repo()] == ["data"], "a preview creates nothing"


@pytest.mark.parametrize("case", ["join", "outer join", "group of join", "union of group"])
def test_jobs_run_exactly_the_previewed_datums(data: Client, case: str) -> None:
    spec, expected = CASES[case]
    pipeline = {
        "pipeline": {"name": "iter"},
        "input": spec,
        "transform": {
            "cmd": [
                "sh",
                "-c",
                "find /pfs -type f ! -path '/pfs/out/*' | sort > /pfs/out/$PACH_DATUM_ID",
            ]
        },
    }
    [jid] = data.create_pipeline(pipeline)
    job = data.inspect_job(f"iter@{jid}")
    assert (job.state, job.data_processed) == (JobState.SUCCESS, len(expected))
    ran = data.list_datum(f"iter@{jid}")
    assert stable(keys(ran)) == stable(expected)
    previewed = {d.id: d for d in data.preview_datums(pipeline)}
    assert {d.id for d in ran} == set(previewed)
    for d in ran:
        seen = data.get_file(f"iter@master:/{d.id}").decode().split()
        assert sorted(seen) == sorted(f"/pfs/{i['name']}{i['path']}" for i in d.inputs)


def test_cli_list_datum_f_previews_the_case(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    for i in (11, 21, 12, 2):
        cli("put", "file", f"data@master:/foo{i}", "-f", "-", input=b"input")
    spec, _ = CASES["cross"]
    (tmp_path / "spec.json").write_text(json.dumps({"pipeline": {"name": "p"}, "input": spec}))
    rows = cli("list", "datum", "-f", "spec.json", "-o", "json").json()
    got = ["".join(i["path"] for i in d["inputs"]) for d in rows]
    assert got == ["/foo11/foo12", "/foo11/foo2", "/foo21/foo12", "/foo21/foo2"]
    assert {d["state"] for d in rows} == {"STARTING"}
    assert [r["name"] for r in cli("list", "repo", "-o", "json").json()] == ["data"]
