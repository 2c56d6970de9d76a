"""File-level lineage through the Client and the CLI, on both backends.

The DAG (issue 5's acceptance): raw -> clean (``/*``, one file in, one out) -> features (a
``join`` of clean with labels on the file's letter) -> model (a ``group`` of features by letter,
``cross``ed with params). Lineage of one model file must name exactly the raw files that reached
it; after one raw file changes, its downstream lineage must name exactly the outputs that were
reprocessed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from haathi.client import Client
from haathi.errors import NotFound
from haathi.models.info import DatumState
from haathi.models.lineage import LineageNode
from tests.conftest import Cli, put_all

RAW = {
    "/a-1.csv": "1\n",
    "/a-2.csv": "2\n",
    "/b-1.csv": "3\n",
    "/b-2.csv": "4\n",
    "/c-1.csv": "5\n",
}
LABELS = {"/a.txt": "apple\n", "/b.txt": "banana\n", "/d.txt": "date\n"}

CLEAN = {
    "pipeline": {"name": "clean"},
    "input": {"pfs": {"repo": "raw", "glob": "/*"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            "for f in /pfs/raw/*; do tr -d ' ' < $f > /pfs/out/$(basename $f); done",
        ]
    },
}
FEATURES = {
    "pipeline": {"name": "features"},
    "input": {
        "join": [
            {"pfs": {"repo": "clean", "glob": "/(*)-*", "join_on": "$1"}},
            {"pfs": {"repo": "labels", "glob": "/(*).txt", "join_on": "$1"}},
        ]
    },
    "transform": {
        "cmd": [
            "sh",
            "-c",
            "for f in /pfs/clean/*; do cat $f /pfs/labels/* > "
            "/pfs/out/$(basename $f .csv).feat; done",
        ]
    },
}
MODEL = {
    "pipeline": {"name": "model"},
    "input": {
        "cross": [
            {"group": [{"pfs": {"repo": "features", "glob": "/(*)-*", "group_by": "$1"}}]},
            {"pfs": {"repo": "params", "glob": "/"}},
        ]
    },
    "transform": {
        "cmd": [
            "sh",
            "-c",
            "cat /pfs/features/* /pfs/params/* > /pfs/out/model-$PACH_DATUM_features_GROUP_BY",
        ]
    },
}


@pytest.fixture
def dag(client: Client) -> Client:
    for repo in ("raw", "labels", "params"):
        client.create_repo(repo)
    put_all(client, "raw", RAW)
    put_all(client, "labels", LABELS)
    put_all(client, "params", {"/p.txt": "k=2\n"})
    for spec in (CLEAN, FEATURES, MODEL):
        client.create_pipeline(spec)
    assert client.get_file("model@master:/model-a") == b"1\napple\n2\napple\nk=2\n"
    return client


def sources(node: LineageNode) -> set[str]:
    """The user files a lineage tree reaches, as repo:/path."""
    return {f"{n.repo}:{n.path}" for n in node.walk() if n.origin == "USER"}


def derived(node: LineageNode) -> set[str]:
    return {f"{n.repo}:{n.path}" for n in node.walk() if n is not node}


@pytest.mark.every_shape
def test_upstream_names_exactly_the_files_that_reached_it(dag: Client) -> None:
    [model_a] = dag.lineage("model@master:/model-a")
    assert sources(model_a) == {"raw:/a-1.csv", "raw:/a-2.csv", "labels:/a.txt", "params:/p.txt"}
    [model_b] = dag.lineage("model@master:/model-b")
    assert sources(model_b) == {"raw:/b-1.csv", "raw:/b-2.csv", "labels:/b.txt", "params:/p.txt"}
    # raw c has no label: the inner join drops it, so no model exists for it
    assert {f.path for f in dag.list_file("model@master:/")} == {"/model-a", "/model-b"}


def test_each_hop_names_datum_job_spec_and_input_versions(dag: Client) -> None:
    [model_a] = dag.lineage("model@master:/model-a")
    head = dag.inspect_commit("model@master")
    assert (model_a.repo, model_a.commit, model_a.origin) == ("model", head.id, "AUTO")
    assert model_a.hash == dag.inspect_file("model@master:/model-a").hash
    assert model_a.job == f"model@{head.id}" and model_a.spec_version == 1
    datum = dag.inspect_datum(model_a.job, model_a.datum or "")
    assert {(i["repo"], i["path"]) for i in datum.inputs} == {
        ("features", "/a-1.feat"),
        ("features", "/a-2.feat"),
        ("params", "/"),
    }
    by_repo = {n.repo: n for n in model_a.inputs}
    assert set(by_repo) == {"features", "params"}
    raw_a1 = next(n for n in model_a.walk() if n.path == "/a-1.csv" and n.repo == "raw")
    assert raw_a1.commit == dag.inspect_commit("raw@master").id
    assert raw_a1.hash == dag.inspect_file("raw@master:/a-1.csv").hash
    assert raw_a1.datum is None and raw_a1.inputs == ()


@pytest.mark.every_shape
def test_downstream_names_exactly_the_reprocessed_outputs(dag: Client) -> None:
    cid = dag.put_file("raw@master:/a-2.csv", b"22\n")
    [node] = dag.lineage("raw@master:/a-2.csv", downstream=True)
    assert derived(node) == {"clean:/a-2.csv", "features:/a-2.feat", "model:/model-a"}
    reprocessed = set()
    for job in dag.list_job(job=cid):
        assert job.data_processed >= 1
        for d in dag.list_datum(f"{job.pipeline}@{job.id}"):
            if d.state == DatumState.SUCCESS:
                reprocessed |= {f"{job.pipeline}:{o['path']}" for o in d.outputs}
    assert derived(node) == reprocessed
    # an untouched raw file's outputs were skipped, and still derive from it
    [b1] = dag.lineage("raw@master:/b-1.csv", downstream=True)
    assert derived(b1) == {"clean:/b-1.csv", "features:/b-1.feat", "model:/model-b"}
    # a file no datum joined reaches nothing past clean
    [c1] = dag.lineage("raw@master:/c-1.csv", downstream=True)
    assert derived(c1) == {"clean:/c-1.csv"}


def test_downstream_at_a_commit_set(dag: Client) -> None:
    first = dag.put_file("raw@master:/a-3.csv", b"7\n")
    second = dag.put_file("raw@master:/c-1.csv", b"8\n")
    expected = {"clean:/a-3.csv", "features:/a-3.feat", "model:/model-a"}
    [at_heads] = dag.lineage("raw@master:/a-3.csv", downstream=True)
    assert derived(at_heads) == expected
    assert {n.commit for n in at_heads.walk()} == {second}
    [then] = dag.lineage(f"raw@{first}:/a-3.csv", downstream=True, at=first)
    assert derived(then) == expected
    assert {n.commit for n in then.walk()} == {first}


def test_skipped_datums_keep_the_job_that_ran_them(dag: Client) -> None:
    before = dag.lineage("clean@master:/b-1.csv")[0]
    spec = json.loads(json.dumps(CLEAN))
    spec["transform"]["cmd"][2] += " # v2"
    dag.update_pipeline(spec)  # no --reprocess: every datum is skipped
    after = dag.lineage("clean@master:/b-1.csv")[0]
    assert after.commit != before.commit
    assert (after.job, after.spec_version) == (before.job, 1)


def test_directories_and_globs(dag: Client) -> None:
    nodes = dag.lineage("features@master:/")
    assert {n.path for n in nodes} == {"/a-1.feat", "/a-2.feat", "/b-1.feat", "/b-2.feat"}
    nodes = dag.lineage("features@master:/a-*")
    assert {n.path for n in nodes} == {"/a-1.feat", "/a-2.feat"}
    nodes = dag.lineage("raw@master:/b-*", downstream=True)
    assert {n.path for n in nodes} == {"/b-1.csv", "/b-2.csv"}


def test_user_files_are_their_own_source_and_missing_files_are_not_found(dag: Client) -> None:
    [raw] = dag.lineage("raw@master:/a-1.csv")
    assert (raw.origin, raw.inputs, raw.datum) == ("USER", (), None)
    for target in ("raw@master:/nope.csv", "ghost@master:/a", "raw@nobranch:/a-1.csv"):
        with pytest.raises(NotFound):
            dag.lineage(target)


def test_graph_has_each_file_once_and_edges_follow_the_data(dag: Client) -> None:
    g = dag.lineage_graph("model@master:/model-a")
    refs = [n.ref for n in g.nodes]
    assert len(refs) == len(set(refs))
    model = next(n.ref for n in g.nodes if n.repo == "model")
    assert {a for a, b in g.edges if b == model} == {
        n.ref for n in g.nodes if n.repo in ("features", "params")
    }
    assert all(b != n.ref for n in g.nodes if n.origin == "USER" for _, b in g.edges)


def test_cli_lineage(cli: Cli, tmp_path: Path) -> None:
    for repo in ("raw", "labels", "params"):
        cli("create", "repo", repo)
    for repo, content in (("raw", RAW), ("labels", LABELS), ("params", {"/p.txt": "k\n"})):
        for path, text in content.items():
            (tmp_path / repo).mkdir(exist_ok=True)
            (tmp_path / repo / path[1:]).write_text(text)
        cli("put", "file", f"{repo}@master:/", "-r", "-f", str(tmp_path / repo))
    for spec in (CLEAN, FEATURES, MODEL):
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        cli("create", "pipeline", "-f", "spec.json")

    tree = cli("lineage", "model@master:/model-a").out
    for name in ("/model-a", "/a-1.feat", "/a-2.feat", "/a-1.csv", "/a-2.csv", "/a.txt", "/p.txt"):
        assert name in tree
    assert "/b-1.csv" not in tree and "user commit" in tree
    [root] = cli("lineage", "model@master:/model-a", "-o", "json").json()
    node = LineageNode.from_dict(root)
    assert sources(node) == {"raw:/a-1.csv", "raw:/a-2.csv", "labels:/a.txt", "params:/p.txt"}

    down = cli("lineage", "raw@master:/b-2.csv", "--downstream", "-o", "json").json()
    assert derived(LineageNode.from_dict(down[0])) == {
        "clean:/b-2.csv",
        "features:/b-2.feat",
        "model:/model-b",
    }

    graph: dict[str, Any] = cli(
        "draw", "lineage", "model@master:/model-b", "--format", "json"
    ).json()
    assert {n["path"] for n in graph["nodes"]} >= {"/model-b", "/b-1.csv", "/b.txt", "/p.txt"}
    dot = cli("draw", "lineage", "model@master:/model-b").out
    assert dot.startswith("digraph lineage {") and dot.count("->") == len(graph["edges"])
    mermaid = cli("draw", "lineage", "model@master:/model-b", "--format", "mermaid").out
    assert mermaid.startswith("graph LR") and mermaid.count("-->") == len(graph["edges"])

    err = cli.fails("lineage", "raw@master:/missing.csv").err
    assert err.startswith("error:") and "missing.csv" in err
    cli.fails("lineage", "raw@master:/a/../b")
