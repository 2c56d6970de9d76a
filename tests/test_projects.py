"""Projects (Pachyderm 2.5+): every repo and pipeline is in one; ``default`` exists from the
start and is never deleted; ``--project``, ``project/repo`` and the client's context choose
the project of bare names; ``-A`` lists every project's; a pipeline may read another
project's repos.

The CLI tests replay Pachyderm's own (``src/server/pfs/cmds/cmds_test.go`` TestProject,
TestDeleteProject, TestCmdListRepo, TestDeleteAllRepos[AllProjects];
``src/server/pps/cmds/cmds_test.go`` TestListJobWithProject; ``pachyderm_test.go``
TestCrossProjectPipeline) with ``pachctl`` replaced by ``haathi``. A store of schema 0010 (made
before projects) upgrades with everything in ``default``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import haathi
from haathi.client import Client
from haathi.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.conftest import Cli
from tests.in_process import InProcessServer
from tests.internals import inner
from tests.test_store_identity import SINCE_0010, run_sql

pytestmark = pytest.mark.usefixtures("own_config")  # (tests/conftest.py)


def copy_spec(name: str, repo: str) -> dict[str, Any]:
    """A pipeline copying each file of ``repo`` (``/pfs/<bare repo name>``), printing it."""
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f"cp -r /pfs/{repo}/* /pfs/out/; cat /pfs/{repo}/*"]},
    }


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.strip().splitlines()[1:]]


# ---- the CLI, as pachctl's tests run it ------------------------------------------------------


@pytest.mark.every_backend
def test_project_commands_as_pachctl(cli: Cli) -> None:
    """TestProject: list, create (twice fails), update, inspect, delete, inspect fails."""
    listed = " ".join(cli("list", "project").out.split())
    assert re.fullmatch(r"ACTIVE PROJECT CREATED DESCRIPTION \* default ([^-]+ ago) -", listed)
    cli("create", "project", "foo")
    assert re.search(r"foo\s+([^-]+ ago)\s+-", cli("list", "project").out)
    assert cli.fails("create", "project", "foo").code == 4
    cli("update", "project", "foo", "-d", "bar")
    shown = " ".join(cli("inspect", "project", "foo").out.split())
    assert shown.startswith("Name: foo Description: bar")
    cli("delete", "project", "foo")
    assert cli.fails("inspect", "project", "foo").code == 3
    listed = " ".join(cli("list", "project").out.split())
    assert re.fullmatch(r"ACTIVE PROJECT CREATED DESCRIPTION \* default ([^-]+ ago) -", listed)
    cli("create", "project", "foo")
    [foo] = [p for p in cli("list", "project", "-o", "json").json() if p["name"] == "foo"]
    assert foo["description"] == "" and foo["created_by"] is None


@pytest.mark.every_backend
def test_delete_project_asks_before_deleting_what_it_holds(cli: Cli, tmp_path: Path) -> None:
    """TestDeleteProject: no answer refuses (and deletes nothing); ``yes`` deletes the
    project with its pipeline and repos; ``-f`` does not ask."""
    cli("create", "project", "p")
    cli("create", "repo", "r", "--project", "p")
    cli("put", "file", "--project", "p", "r@master:/file", "-f", "-", input=b"This is a test\n")
    spec = json.dumps(copy_spec("copy", "r"))
    cli("create", "pipeline", "--project", "p", "-f", "-", input=spec.encode())
    refused = cli.fails("delete", "project", "p", input=b"")
    assert refused.code == 6 and "holds 1 pipelines and 2 repos" in refused.err
    assert cli("get", "file", "p/copy@master:/file").out == "This is a test\n"
    cli("delete", "project", "p", input=b"y\ny\ny\n")
    assert [p[1] for p in rows(cli("list", "project").out)] == ["default"]
    assert cli("list", "repo", "-A", "-o", "json").json() == []
    assert cli.fails("inspect", "repo", "p/r").code == 3
    cli("create", "project", "q")
    cli("create", "repo", "q/r")
    cli("delete", "project", "q", "-f")
    assert cli("list", "repo", "-A", "-o", "json").json() == []


def test_list_repo_by_project_and_delete_all(cli: Cli) -> None:
    """TestCmdListRepo, TestDeleteAllRepos and TestDeleteAllReposAllProjects."""
    cli("create", "project", "proj")
    cli("create", "repo", "--project", "default", "repo1")
    cli("create", "repo", "--project", "proj", "repo2")
    assert "repo1" in cli("list", "repo").out and "repo2" not in cli("list", "repo").out
    assert "repo2" in cli("list", "repo", "--project", "proj").out
    every = cli("list", "repo", "--all-projects").out
    assert [r[:2] for r in rows(every)] == [["default", "repo1"], ["proj", "repo2"]]
    cli("delete", "repo", "--all")
    assert [r[:2] for r in rows(cli("list", "repo", "-A").out)] == [["proj", "repo2"]]
    cli("create", "repo", "repo1")
    cli("create", "project", "proj2")
    cli("create", "repo", "repo1", "--project", "proj2")
    cli("delete", "repo", "--all", "--all-projects")
    assert rows(cli("list", "repo", "-A").out) == []
    assert cli.fails("delete", "repo").code == 2  # a name, or --all
    assert cli.fails("delete", "repo", "x", "-A").code == 2


def test_list_job_with_project(cli: Cli) -> None:
    """TestListJobWithProject: pipeline1 (default) reads data; pipeline2 (in project p,
    named by its spec) reads pipeline1's output; list job filters by project."""
    cli("create", "repo", "data")
    one = copy_spec("pipeline1", "data")
    one["pipeline"]["project"] = {"name": "default"}
    one["input"]["pfs"] |= {"name": "in", "project": "default"}
    one["transform"]["cmd"] = ["cp", "/pfs/in/file", "/pfs/out"]
    cli("create", "pipeline", "-f", "-", input=json.dumps(one).encode())
    cli("create", "project", "p")
    two = json.loads(json.dumps(one))
    two["pipeline"] = {"name": "pipeline2", "project": {"name": "p"}}
    two["input"]["pfs"]["repo"] = "pipeline1"
    cli("create", "pipeline", "-f", "-", input=json.dumps(two).encode())
    cli("put", "file", "data@master:/file", "-f", "-", input=b"This is a test\n")

    def pipelines(*args: str) -> set[str]:
        return {j["pipeline"] for j in cli("list", "job", *args, "-o", "json").json()}

    assert pipelines("--all-projects") == {"pipeline1", "p/pipeline2"}
    assert pipelines() == {"pipeline1"}
    assert pipelines("--project", "p") == {"p/pipeline2"}
    assert pipelines("--project", "notmyproject") == set()  # an unknown project: empty, exit 0
    table = rows(cli("list", "job", "-A").out)
    assert {(r[0], r[1]) for r in table} == {("default", "pipeline1"), ("p", "pipeline2")}
    assert cli("get", "file", "p/pipeline2@master:/file").out == "This is a test\n"
    job = cli("list", "job", "-p", "pipeline2", "--project", "p", "-o", "json").json()[0]
    assert job["project"] == "p" and job["output_commit"] == f"p/pipeline2@{job['id']}"


def test_pipelines_of_one_name_in_two_projects(cli: Cli) -> None:
    """TestRerunPipeline's set-up: pipeline P in default and in project Q, both reading
    default's data; each is addressed by --project (or Q/P)."""
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/file", "-f", "-", input=b"This is a test\n")
    spec = copy_spec("p", "data")
    cli("create", "pipeline", "-f", "-", input=json.dumps(spec).encode())
    cli("create", "project", "q")
    spec["input"]["pfs"]["project"] = "default"
    cli("create", "pipeline", "--project", "q", "-f", "-", input=json.dumps(spec).encode())
    [mine] = cli("list", "job", "-p", "p", "--project", "q", "-o", "json").json()
    shown = cli("inspect", "job", f"p@{mine['id']}", "--project", "q").out
    assert mine["id"] in shown and "Job: q/p@" in shown
    assert cli("inspect", "pipeline", "q/p", "-o", "json").json()["version"] == 1
    assert cli("inspect", "pipeline", "p", "-o", "json").json()["project"] == "default"
    assert cli("get", "file", "p@master:/file", "--project", "q").out == "This is a test\n"
    cli("delete", "pipeline", "p", "--project", "q")
    assert [p["name"] for p in cli("list", "pipeline", "-A", "-o", "json").json()] == ["p"]


def test_every_command_with_project_sees_only_that_projects_repo(cli: Cli) -> None:
    """default/data and p2/data hold different files, and a pipeline ``copy`` of each reads
    its own: every PFS and PPS command given ``--project p2`` (or ``p2/...``) reads and
    writes p2's, and leaves default's as it was."""
    c = haathi.connect(str(cli.store))
    c.create_project("p2")
    for project, marker in (("default", b"DEFAULT\n"), ("p2", b"PROJECT2\n")):
        c.project = project
        c.create_repo("data")
        c.put_file("data@master:/f", marker)
        c.create_pipeline(copy_spec("copy", "data"))
    c.project = "default"
    default_before = _state(c)
    p2 = "--project", "p2"
    head = c.inspect_commit("p2/data@master").id
    job = c.list_job("p2/copy")[0].id

    def out(*args: str) -> str:
        return cli(*args, *p2).out

    reads: dict[tuple[str, ...], Any] = {
        ("inspect", "repo", "data", "-o", "json"): lambda o: json.loads(o)["name"] == "p2/data",
        ("list", "branch", "data", "-o", "json"): lambda o: json.loads(o)[0]["repo"] == "p2/data",
        ("inspect", "branch", "data@master"): lambda o: head in o,
        ("list", "commit", "data@master", "-o", "json"): lambda o: json.loads(o)[0]["id"] == head,
        ("inspect", "commit", "data@master"): lambda o: f"p2/data@{head}" in o,
        ("wait", "commit", "data@master", "-o", "json"): lambda o: json.loads(o)[0]["id"] == head,
        ("find", "commit", "data@master:/f", "-o", "json"): lambda o: (
            json.loads(o)[0]["id"] == head
        ),
        ("list", "file", "data@master:/", "-o", "json"): lambda o: (
            json.loads(o)[0]["repo"] == "p2/data"
        ),
        ("glob", "file", "data@master:/*", "-o", "json"): lambda o: (
            json.loads(o)[0]["commit"] == head
        ),
        ("inspect", "file", "data@master:/f", "-o", "json"): lambda o: (
            json.loads(o)["commit"] == head
        ),
        ("get", "file", "data@master:/f"): lambda o: o == "PROJECT2\n",
        ("diff", "file", "data@master", "--name-only"): lambda o: o.split() == ["/f"],
        ("lineage", "copy@master:/f", "-o", "json"): lambda o: (
            json.loads(o)[0]["inputs"][0]["repo"] == "p2/data"
        ),
        ("inspect", "pipeline", "copy", "-o", "json"): lambda o: (
            json.loads(o)["inputs"] == ["p2/data@master"]
        ),
        ("list", "pipeline", "-o", "json"): lambda o: (
            [p["name"] for p in json.loads(o)] == ["p2/copy"]
        ),
        ("list", "job", "-p", "copy", "-o", "json"): lambda o: json.loads(o)[0]["id"] == job,
        ("inspect", "job", f"copy@{job}", "-o", "json"): lambda o: (
            json.loads(o)["inputs"] == [f"p2/data@{head}"]
        ),
        ("wait", "job", f"copy@{job}", "-o", "json"): lambda o: (
            json.loads(o)[0]["pipeline"] == "p2/copy"
        ),
        ("list", "datum", f"copy@{job}", "-o", "json"): lambda o: (
            json.loads(o)[0]["inputs"][0]["repo"] == "p2/data"
        ),
        ("logs", "-p", "copy"): lambda o: "PROJECT2" in o and "DEFAULT" not in o,
        ("reproduce", "file", "copy@master:/f", "-o", "json"): lambda o: json.loads(o)["ok"],
        ("draw", "pipeline"): lambda o: "p2/data" in o and "p2/copy" in o,
    }
    for args, check in reads.items():
        got = out(*args)
        assert check(got), f"haathi {' '.join(args)} --project p2: {got}"
    assert cli("get", "file", "p2/data@master:/f").out == "PROJECT2\n"  # p2/... wins
    assert cli("get", "file", "p2/data@master:/f", "--project", "default").out == "PROJECT2\n"
    datum = c.list_datum(f"p2/copy@{job}")[0].id
    assert datum in out("inspect", "datum", f"copy@{job}", datum)
    spec = json.dumps(copy_spec("copy", "data")).encode()
    [preview] = cli("list", "datum", "-f", "-", "-o", "json", *p2, input=spec).json()
    assert preview["inputs"][0]["repo"] == "p2/data"
    [checked] = cli("validate", "pipeline", "-f", "-", "-o", "json", *p2, input=spec).json()
    assert checked["spec"]["pipeline"] == {"name": "copy", "project": {"name": "p2"}}

    writes: list[tuple[tuple[str, ...], Any]] = [
        (("put", "file", "data@master:/g", "-f", "-"), lambda: c.get_file("p2/copy@master:/g")),
        (
            ("copy", "file", "data@master:/g", "data@master:/h"),
            lambda: c.get_file("p2/data@master:/h"),
        ),
        (("delete", "file", "data@master:/h"), lambda: "/h" not in _files(c, "p2/data")),
        (
            ("create", "branch", "data@dev", "--head", "master"),
            lambda: c.inspect_branch("p2/data@dev"),
        ),
        (("delete", "branch", "data@dev"), lambda: "dev" not in _branches(c, "p2/data")),
        (("start", "commit", "data@dev"), lambda: c.inspect_commit("p2/data@dev").finished is None),
        (("finish", "commit", "data@dev"), lambda: c.inspect_commit("p2/data@dev").finished),
        (("delete", "commit", "data@dev"), lambda: c.inspect_branch("p2/data@dev").head is None),
        (
            ("edit", "metadata", "repo", "data", "add", "k=v"),
            lambda: c.inspect_repo("p2/data").metadata == {"k": "v"},
        ),
        (
            ("update", "repo", "data", "-d", "two"),
            lambda: c.inspect_repo("p2/data").description == "two",
        ),
        (("stop", "pipeline", "copy"), lambda: c.inspect_pipeline("p2/copy").state == "PAUSED"),
        (("start", "pipeline", "copy"), lambda: c.inspect_pipeline("p2/copy").state == "RUNNING"),
        (("update", "pipeline", "-f", "-"), lambda: c.inspect_pipeline("p2/copy").version == 2),
        (("delete", "pipeline", "copy"), lambda: c.list_pipeline(project="p2") == []),
        (("squash", "commit", "data@master^"), lambda: squashed not in _ids(c, "p2/data@master")),
        (("delete", "repo", "data"), lambda: c.list_repo(project="p2") == []),
    ]
    squashed = ""
    for args, effect in writes:
        given = spec if args[:2] == ("update", "pipeline") else b"new\n"
        if args[0] == "squash":
            squashed = c.inspect_commit("p2/data@master^").id
        cli(*args, *p2, input=given)
        assert effect(), f"haathi {' '.join(args)} --project p2"
        assert _state(c) == default_before, f"haathi {' '.join(args)} --project p2 changed default"
    c.close()


def _files(c: Client, repo: str) -> list[str]:
    return [f.path for f in c.walk_file(f"{repo}@master:/")]


def _ids(c: Client, ref: str) -> list[str]:
    return [x.id for x in c.list_commit(ref)]


def _branches(c: Client, repo: str) -> list[str]:
    return [b.name for b in c.list_branch(repo)]


def _state(c: Client) -> Any:
    """What the default project holds: repos, their branches, commits and files, pipelines."""
    return (
        [r.to_dict() for r in c.list_repo()],
        {r.name: [c.to_dict() for c in c.list_commit(r.name)] for r in c.list_repo()},
        {r.name: _files(c, r.name) for r in c.list_repo()},
        [(p.name, p.version, p.state) for p in c.list_pipeline()],
    )


# ---- the client's context ----------------------------------------------------------------------


def test_the_context_names_the_default_project(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """``config update context --project`` (as pachctl's: not checked) chooses the project of
    bare names; ``$HAATHI_PROJECT`` overrides it, ``--project`` both, ``p/repo`` all."""
    cli("create", "project", "p1")
    cli("create", "project", "p2")
    for project in ("default", "p1", "p2"):
        cli("create", "repo", "r", "--project", project)
        cli("put", "file", f"{project}/r@master:/f", "-f", "-", input=project.encode())
    said = cli("config", "update", "context", "--project", "p1")
    assert said.err.strip() == f'editing the currently active context "{cli.store.resolve()}"'
    assert cli("config", "get", "context").json() == {"project": "p1"}
    assert cli("config", "get", "active-context").out.strip() == str(cli.store.resolve())
    assert cli("get", "file", "r@master:/f").out == "p1"
    [active] = [ln for ln in cli("list", "project").out.splitlines() if re.search(r"\bp1\b", ln)]
    assert active.startswith("*")
    assert cli("get", "file", "r@master:/f", "--project", "p2").out == "p2"
    assert cli("get", "file", "default/r@master:/f", "--project", "p2").out == "default"
    monkeypatch.setenv("HAATHI_PROJECT", "p2")
    assert cli("get", "file", "r@master:/f").out == "p2"
    with haathi.connect(str(cli.store)) as c:
        assert c.project == "p2"
    monkeypatch.delenv("HAATHI_PROJECT")
    with haathi.connect(str(cli.store)) as c:
        assert c.get_file("r@master:/f") == b"p1"
    cli("config", "update", "context", "--project", "nope")  # accepted: later commands fail
    assert "project nope not found" in cli.fails("create", "repo", "x").err
    assert cli("list", "repo", "-o", "json").json() == []
    cli("config", "update", "context", "--project", "p2")
    deleted = cli("delete", "project", "p2", "-f")
    assert "warning: deleted current project p2" in deleted.err
    assert cli.fails("config", "update", "context", "--project", "bad.name").code == 2


# ---- the Client: pipelines across projects (every shape) ------------------------------------


@pytest.mark.every_shape
def test_a_pipeline_reads_another_projects_repo(client: Client) -> None:
    """TestCrossProjectPipeline: data in project ``input``, a pipeline in project
    ``pipeline``; an input commit's commit set holds it and the output commit; the user code
    sees ``/pfs/<bare repo name>``."""
    client.create_project("input")
    client.create_repo("input/data")
    client.put_file("input/data@master:/file", b"foo")
    client.create_project("pipeline")
    client.project = "pipeline"
    spec = copy_spec("copy", "data")
    spec["input"]["pfs"]["project"] = "input"
    client.create_pipeline(spec)
    assert client.get_file("copy@master:/file") == b"foo"
    with client.start_commit("input/data@master") as commit:
        commit.put_file("/file2", b"bar")
    in_set = {c.repo for c in client.wait_commit(commit.id)}
    assert in_set == {"input/data", "pipeline/copy"}
    assert client.get_file(f"pipeline/copy@{commit.id}:/file2") == b"bar"
    info = client.inspect_pipeline("copy")
    assert (info.name, info.project, info.inputs) == (
        "pipeline/copy",
        "pipeline",
        ("input/data@master",),
    )
    assert info.spec["pipeline"] == {"name": "copy", "project": {"name": "pipeline"}}
    assert info.spec["input"]["pfs"]["project"] == "input"
    assert [j.pipeline for j in client.list_job()] == ["pipeline/copy"] * 2
    assert client.list_job(project="input") == []
    client.project = "default"
    assert client.list_pipeline() == [] and len(client.list_pipeline(all_projects=True)) == 1
    with pytest.raises(FailedPrecondition, match="input of pipeline/copy"):
        client.delete_project("input", force=True)  # another project's pipeline reads it
    client.delete_project("pipeline", force=True)
    client.delete_project("input", force=True)
    assert [p.name for p in client.list_project()] == ["default"]


SEEN = 'for f in /pfs/images/*; do { cat "$f"; echo " seen"; } > "/pfs/out/${f##*/}"; done'
EDGES_UNION = {  # examples/opencv/edges-union.pipeline.json, its image swapped for sh
    "pipeline": {"name": "edges"},
    "description": "A union pipeline that performs image edge detection by using the OpenCV "
    "library.",
    "input": {
        "union": [
            {"pfs": {"glob": "/*", "repo": "images"}},
            {"pfs": {"glob": "/*", "repo": "images", "project": "staging"}},
        ]
    },
    "transform": {
        "cmd": ["sh", "-c", SEEN],
    },
}


def test_edges_union_reads_a_repo_of_one_name_in_two_projects(client: Client) -> None:
    """The union of default/images and staging/images: two datums whose IDs differ (the
    key is in the datum ID; Pachyderm's collide), both outputs present."""
    client.create_project("staging")
    client.create_repo("images")
    client.create_repo("staging/images")
    client.put_file("images@master:/a.png", b"default a")
    client.put_file("staging/images@master:/b.png", b"staging b")
    client.create_pipeline(EDGES_UNION)
    assert client.get_file("edges@master:/a.png") == b"default a seen\n"
    assert client.get_file("edges@master:/b.png") == b"staging b seen\n"
    job = client.list_job("edges")[0]
    datums = client.list_datum(f"edges@{job.id}")
    assert sorted(d.inputs[0]["repo"] for d in datums) == ["images", "staging/images"]
    assert len({d.id for d in datums}) == 2
    assert {d.inputs[0]["name"] for d in datums} == {"images"}


def test_the_example_spec_validates_unchanged(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAATHI_IMAGE_PULL_POLICY", "Never")
    example = {
        **EDGES_UNION,
        "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
    }
    [checked] = client.validate_pipeline(example)
    union = checked["spec"]["input"]["union"]
    assert [u["pfs"].get("project") for u in union] == [None, "staging"]


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.every_shape
def test_bad_project_input_is_refused_and_changes_nothing(client: Client) -> None:
    client.create_project("p")
    client.create_repo("p/x")
    before = ([p.to_dict() for p in client.list_project()], client.list_repo(all_projects=True))
    in_nope = copy_spec("c", "x") | {"pipeline": {"name": "c", "project": {"name": "nope"}}}
    reads_nope = copy_spec("c", "x") | {"input": {"pfs": {"repo": "x", "glob": "/*",
                                                          "project": "nope"}}}  # fmt: skip
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: client.create_project("p"), AlreadyExists, "project p already exists"),
        (lambda: client.create_project("default"), AlreadyExists, "project default already exists"),
        (lambda: client.create_project("lenny.123"), InvalidArgument, "name 'lenny.123'"),
        (lambda: client.create_project("_lenny"), InvalidArgument, "invalid project name"),
        (lambda: client.create_project("-lenny"), InvalidArgument, "invalid project name"),
        (lambda: client.create_project("/repo"), InvalidArgument, "invalid project name"),
        (lambda: client.create_project("a" * 52), InvalidArgument, "at most 51 characters"),
        (lambda: client.inspect_project("nope"), NotFound, "project nope not found"),
        (lambda: client.update_project("nope", "d"), NotFound, "project nope not found"),
        (lambda: client.delete_project("nope"), NotFound, "project nope not found"),
        (lambda: client.create_repo("nope/x"), NotFound, "project nope not found"),
        (lambda: client.create_repo("p/x"), AlreadyExists, "repo p/x already exists"),
        (lambda: client.inspect_repo("nope/x"), NotFound, "repo nope/x not found"),
        (lambda: client.create_pipeline(in_nope), NotFound, "project nope not found"),
        (lambda: client.create_pipeline(reads_nope), NotFound, "project nope not found"),
        (lambda: client.delete_project("p"), FailedPrecondition,
         r"project p holds 1 repo \(x\): delete them first, or use --force"),
        (lambda: client.delete_project("default", force=True), FailedPrecondition,
         "the default project cannot be deleted"),
        (lambda: client.get_file("x/y/z@master:/f"), InvalidArgument, "invalid repo name"),
    ]  # fmt: skip
    for call, cls, message in cases:
        with pytest.raises(cls, match=message):
            call()
    assert client.list_repo(project="nope") == []
    assert client.list_job(project="nope") == [] and client.list_pipeline(project="nope") == []
    after = ([p.to_dict() for p in client.list_project()], client.list_repo(all_projects=True))
    assert after == before


def test_bad_project_input_over_http_is_a_4xx(app_server: InProcessServer) -> None:
    """A repo route takes the bare name in its path and ``?project=``: an unknown project is
    404, a bad name 400; the key itself is never a path segment."""
    c = app_server.connect()
    c.create_project("p")
    c.create_repo("p/data")
    with httpx.Client(transport=app_server.transport, base_url=app_server.url) as h:
        assert h.get("/v1/repos/data", params={"project": "p"}).json()["name"] == "p/data"
        assert h.get("/v1/repos/data", params={"project": "nope"}).status_code == 404
        assert h.get("/v1/repos/data", params={"project": "bad.name"}).status_code == 400
        assert h.get("/v1/repos/p%2Fdata").status_code == 404
        assert [r["name"] for r in h.get("/v1/repos", params={"project": "p"}).json()] == ["p/data"]
        assert h.get("/v1/projects/nope").status_code == 404
        assert h.post("/v1/projects", json={"name": "p"}).status_code == 409
    c.close()


# ---- a store made before projects -------------------------------------------------------------


@pytest.mark.every_backend
def test_a_store_of_schema_0010_upgrades_with_everything_in_default(
    store: Path, backend: str, cli: Cli
) -> None:
    """Repos, branches, commits, a pipeline with its jobs and datums, and role bindings of a
    store made before projects are all there after the upgrade (no table was rebuilt: a
    rebuild of ``repos`` would have cascaded to every branch and commit), in ``default``."""
    with haathi.connect(str(store)) as c:
        c.create_repo("data")
        c.put_file("data@master:/a", b"one\n")
        c.create_pipeline(copy_spec("copy", "data"))
        c.put_file("data@master:/b", b"two\n")
        c.create_branch("data@dev", head="master^")
        c.auth_activate()
        c.set_repo_roles("data", "repoReader", "user:ana")
        before = {
            "commits": [x.to_dict() for r in ("data", "copy") for x in c.list_commit(r)],
            "branches": [b.to_dict() for b in c.list_branch("data")],
            "jobs": [j.to_dict() for j in c.list_job()],
            "datums": [d.to_dict() for j in c.list_job() for d in c.list_datum(f"copy@{j.id}")],
            "pipeline": c.inspect_pipeline("copy").to_dict(),
        }
    pg = backend == "s3pg"
    run_sql(
        store,
        *SINCE_0010,
        *(["ALTER TABLE repos ALTER COLUMN name TYPE VARCHAR(64)",
           "ALTER TABLE role_bindings ALTER COLUMN resource TYPE VARCHAR(80)"] if pg else []),
        "UPDATE alembic_version SET version_num = '0010'",
    )  # fmt: skip
    with haathi.connect(str(store)) as c:
        assert [p.name for p in c.list_project()] == ["default"]
        assert [(r.name, r.project) for r in c.list_repo()] == [
            ("copy", "default"),
            ("data", "default"),
        ]
        after = {
            "commits": [x.to_dict() for r in ("data", "copy") for x in c.list_commit(r)],
            "branches": [b.to_dict() for b in c.list_branch("data")],
            "jobs": [j.to_dict() for j in c.list_job()],
            "datums": [d.to_dict() for j in c.list_job() for d in c.list_datum(f"copy@{j.id}")],
            "pipeline": c.inspect_pipeline("copy").to_dict(),
        }
        assert after == before
        assert "read" in c.check_repo("data", "user:ana").permissions
        assert [p for p in c.fsck() if p.severity == "error"] == []
        with inner(c).pfs.db.read() as conn:
            assert (
                conn.exec_driver_sql(
                    "SELECT count(*) FROM repos WHERE project = 'default'"
                ).scalar()
                == 2
            )
    assert cli("get", "file", "copy@master:/b").out == "two\n"
    assert rows(cli("list", "repo").out)[0][:2] == ["default", "copy"]
