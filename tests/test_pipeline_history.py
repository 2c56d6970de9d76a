"""Pipeline history: each create, update, rerun and rollback of a pipeline stores a spec
version (its effective spec and its salt).

- ``list pipeline [NAME] --history N|all|none`` lists each pipeline's current version and the
  N before it, newest first; ``list job --history`` the jobs those versions ran (with ``-p``
  the CLI's default is ``none``: the current version's jobs, as pachctl's).
- ``inspect pipeline NAME@vN`` (or Pachyderm's ``NAME^k`` / ``NAME~k``) shows one version.
- ``rerun pipeline NAME [--reprocess]`` (Pachyderm 2.x): the current spec as a new version;
  its job skips what succeeded unless ``--reprocess`` (a new salt).
- ``rollback pipeline NAME[@vN|^k] [--reprocess]`` (haathi's; Pachyderm has none): an
  earlier version's spec *and salt* as a new version. Datum hashes leave the code out, as
  Pachyderm's, so the job skips the datums whose hash the last successful job had: after
  plain updates (same salt) the outputs stay unless ``--reprocess``; after a ``--reprocess``
  update (a new salt) every datum runs the restored code again.

The datum hash includes the salt, so equal hashes of the same datum in two jobs show that
they ran with the same salt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import haathi
from haathi.client import Client
from haathi.errors import HaathiError, InvalidArgument, NotFound
from haathi.models.info import FileType, JobInfo, JobState
from tests.conftest import Cli, put_all
from tests.in_process import InProcessServer


def stamp(word: str, repo: str = "inputs", name: str = "stamp") -> dict[str, Any]:
    """One datum per file of ``repo``: writes ``word`` to the file's name in the output."""
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f'echo {word} > "/pfs/out/$(basename "${repo}")"']},
    }


def outputs(client: Client, repo: str = "stamp") -> dict[str, bytes]:
    return {
        f.path: client.get_file(f"{repo}@master:{f.path}")
        for f in client.walk_file(f"{repo}@master:/")
        if f.type == FileType.FILE
    }


def counts(job: JobInfo) -> tuple[int, int, int]:
    """(datums, processed, skipped) of a successful job."""
    assert job.state == JobState.SUCCESS, job.reason
    return job.data_total, job.data_processed, job.data_skipped


def hashes(client: Client, pipeline: str, job: str) -> dict[str, str]:
    """Each datum's hash in a job (it includes the salt of the job's version)."""
    return {d.id: d.hash for d in client.list_datum(f"{pipeline}@{job}")}


# ---- history: versions and their jobs --------------------------------------------------------


def echo(word: str, name: str = "hist") -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"cmd": ["sh"], "stdin": [f"echo {word} > /pfs/out/file"]},
    }


@pytest.mark.every_shape
def test_list_job_and_list_pipeline_by_history_as_pachyderms_test_pipeline_history(
    client: Client,
) -> None:
    """Pachyderm's TestPipelineHistory (src/server/pachyderm_test.go), job counts and all:
    creating a pipeline runs a job (over the empty input), so does each update."""
    client.create_repo("data")
    client.create_pipeline(echo("foo"))
    client.put_file("data@master:/file", b"1", append=True)
    assert len(client.list_job("hist", history=0)) == 2

    client.update_pipeline(echo("bar"))
    client.put_file("data@master:/file", b"2", append=True)
    assert len(client.list_commit("hist@master")) == 4
    assert [len(client.list_job("hist", history=h)) for h in (0, 1, -1)] == [2, 4, 4]
    assert [len(client.list_job("hist", history=h)) for h in ("none", "1", "all")] == [2, 4, 4]

    client.update_pipeline(echo("buzz"))
    assert [len(client.list_job("hist", history=h)) for h in (0, 1, 2, -1)] == [1, 3, 5, 5]

    # another pipeline changes none of that
    client.create_pipeline(echo("foo", name="hist2"))
    assert [len(client.list_job("hist", history=h)) for h in (0, 1, 2, -1)] == [1, 3, 5, 5]
    assert [j.version for j in client.list_job("hist")] == [3, 2, 2, 1, 1]
    # without a pipeline: the jobs of every pipeline's current version
    assert sorted((j.pipeline, j.version) for j in client.list_job(history=0)) == [
        ("hist", 3),
        ("hist2", 1),
    ]

    # list pipeline --history: each pipeline's versions, newest first, each with its own spec
    listed = client.list_pipeline(history="all")
    assert [(p.name, p.version, p.state, p.last_job) for p in listed] == [
        ("hist", 3, "RUNNING", "SUCCESS"),
        ("hist", 2, "SUPERSEDED", "SUCCESS"),
        ("hist", 1, "SUPERSEDED", "SUCCESS"),
        ("hist2", 1, "RUNNING", "SUCCESS"),
    ]
    assert [p.spec["transform"]["stdin"] for p in listed[:3]] == [
        ["echo buzz > /pfs/out/file"],
        ["echo bar > /pfs/out/file"],
        ["echo foo > /pfs/out/file"],
    ]
    assert listed[0].updated > listed[1].updated > listed[2].updated
    assert [p.version for p in client.list_pipeline("hist", history=1)] == [3, 2]
    assert [p.version for p in client.list_pipeline("hist", history=7)] == [3, 2, 1]
    assert [p.version for p in client.list_pipeline("hist")] == [3]
    assert [(p.name, p.version) for p in client.list_pipeline()] == [("hist", 3), ("hist2", 1)]


def test_inspect_pipeline_at_a_version(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": ""})
    for word in ("foo", "bar", "baz"):
        client.update_pipeline(stamp(word))  # (update creates a pipeline that is not there)

    first = client.inspect_pipeline("stamp@v1")
    assert (first.name, first.version, first.state, first.last_job) == (
        "stamp",
        1,
        "SUPERSEDED",
        "SUCCESS",
    )
    assert "echo foo" in first.spec["transform"]["cmd"][2]
    assert (
        first.inputs == ("inputs@master",)
        and first.created == client.inspect_pipeline("stamp").created
    )
    # Pachyderm's ancestry, and haathi's NAME.N (as master.N: the N-th from the start)
    for ref in ("stamp^2", "stamp^^", "stamp~2", "stamp.1"):
        assert client.inspect_pipeline(ref) == first, ref
    assert "echo bar" in client.inspect_pipeline("stamp^").spec["transform"]["cmd"][2]
    assert client.inspect_pipeline("stamp@v3") == client.inspect_pipeline("stamp")
    assert client.inspect_pipeline("stamp^0").state == "RUNNING"


# ---- rerun ----------------------------------------------------------------------------------

NONCE = {
    "pipeline": {"name": "nonce"},
    "input": {"pfs": {"repo": "input", "glob": "/"}},
    "transform": {"cmd": ["sh"], "stdin": ["od -An -N8 -tx8 /dev/urandom > /pfs/out/nonce"]},
}


@pytest.mark.every_shape
def test_rerun_pipeline_skips_what_succeeded_unless_reprocess(client: Client) -> None:
    """Pachyderm's TestRerunPipeline (api_server_integration_test.go), a random number in
    place of the date: rerun makes version 2 of the same effective spec, whose job skips the
    datum; with reprocess, version 3 runs it again."""
    client.create_repo("input")
    client.put_file("input@master:/file.txt", b"")
    client.create_pipeline(NONCE)
    created = client.inspect_pipeline("nonce")
    [job] = client.list_job("nonce", history=0)
    assert counts(job) == (1, 1, 0)
    nonce1 = client.get_file("nonce@master:/nonce")

    jid = client.rerun_pipeline("nonce")
    rerun = client.inspect_pipeline("nonce")
    assert rerun.version == 2 and rerun.spec == created.spec
    [job] = client.list_job("nonce", history=0)
    assert job.id == jid and job.version == 2 and counts(job) == (1, 0, 1)
    assert client.get_file("nonce@master:/nonce") == nonce1

    jid = client.rerun_pipeline("nonce", reprocess=True)
    assert client.inspect_pipeline("nonce").version == 3
    [job] = client.list_job("nonce", history=0)
    assert job.id == jid and counts(job) == (1, 1, 0)
    assert client.get_file("nonce@master:/nonce") != nonce1
    assert [j.version for j in client.list_job("nonce")] == [3, 2, 1]


def test_rerun_pipeline_runs_again_the_datums_that_failed(store: Path, tmp_path: Path) -> None:
    """A rerun after a transient failure (here: a file the code needs was missing; the
    sandbox ``none`` lets it see the host's temp dir): the failed datum runs again."""
    ready = tmp_path / "ready"
    spec = {
        "pipeline": {"name": "retry"},
        "input": {"pfs": {"repo": "inputs", "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f'test -e {ready} && cp "$inputs" /pfs/out/']},
        "datum_tries": 1,
    }
    with haathi.connect(str(store), sandbox="none") as client:
        client.create_repo("inputs")
        put_all(client, "inputs", {"/a": "a"})
        [jid] = client.create_pipeline(spec)
        assert client.inspect_job(f"retry@{jid}").state == JobState.FAILURE
        ready.touch()
        jid = client.rerun_pipeline("retry")
        job = client.inspect_job(f"retry@{jid}")
        assert job.version == 2 and counts(job) == (1, 1, 0)
        assert outputs(client, "retry") == {"/a": b"a"}


# ---- rollback -------------------------------------------------------------------------------


@pytest.mark.every_shape
def test_rollback_after_a_reprocess_runs_the_old_code_on_every_datum(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "", "/b": "", "/c": ""})
    [v1_job] = client.create_pipeline(stamp("foo"))
    [v2_job] = client.update_pipeline(stamp("bar"), reprocess=True)
    assert set(outputs(client).values()) == {b"bar\n"}

    jid = client.rollback_pipeline("stamp")  # to the previous version: v1
    current = client.inspect_pipeline("stamp")
    assert current.version == 3 and current.spec == client.inspect_pipeline("stamp@v1").spec
    assert current.spec != client.inspect_pipeline("stamp@v2").spec
    job = client.inspect_job(f"stamp@{jid}")
    assert job.version == 3 and counts(job) == (3, 3, 0)
    assert outputs(client) == {"/a": b"foo\n", "/b": b"foo\n", "/c": b"foo\n"}
    # v1's salt is back: each datum has the hash it had in v1's job
    assert hashes(client, "stamp", jid) == hashes(client, "stamp", v1_job)
    assert hashes(client, "stamp", jid) != hashes(client, "stamp", v2_job)
    assert [p.version for p in client.list_pipeline("stamp", history="all")] == [3, 2, 1]


def test_rollback_after_a_plain_update_keeps_the_outputs_unless_reprocess(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "", "/b": ""})
    [v1_job] = client.create_pipeline(stamp("foo"))
    [v2_job] = client.update_pipeline(stamp("bar"))  # same salt: every datum skipped
    assert counts(client.inspect_job(f"stamp@{v2_job}")) == (2, 0, 2)
    client.put_file("inputs@master:/c", b"")  # a new datum runs v2's code
    assert outputs(client) == {"/a": b"foo\n", "/b": b"foo\n", "/c": b"bar\n"}

    # v1's spec and salt: the datums' hashes are the last job's, so none runs again
    jid = client.rollback_pipeline("stamp@v1")
    job = client.inspect_job(f"stamp@{jid}")
    assert job.version == 3 and counts(job) == (3, 0, 3)
    assert outputs(client) == {"/a": b"foo\n", "/b": b"foo\n", "/c": b"bar\n"}
    v1_hashes = hashes(client, "stamp", v1_job)
    assert {d: h for d, h in hashes(client, "stamp", jid).items() if d in v1_hashes} == v1_hashes

    # with reprocess: a new salt, and every datum runs v1's code
    jid = client.rollback_pipeline("stamp", version=1, reprocess=True)
    job = client.inspect_job(f"stamp@{jid}")
    assert job.version == 4 and counts(job) == (3, 3, 0)
    assert outputs(client) == {"/a": b"foo\n", "/b": b"foo\n", "/c": b"foo\n"}
    assert client.inspect_pipeline("stamp").spec == client.inspect_pipeline("stamp@v1").spec


def test_rollback_restores_the_inputs_of_the_old_version(client: Client) -> None:
    for repo in ("left", "right"):
        client.create_repo(repo)
        client.put_file(f"{repo}@master:/{repo}-1", b"")
    client.create_pipeline(stamp("L", repo="left"))
    client.update_pipeline(stamp("R", repo="right"))
    assert outputs(client) == {"/right-1": b"R\n"}

    client.rollback_pipeline("stamp^")
    assert client.inspect_pipeline("stamp").inputs == ("left@master",)
    assert outputs(client) == {"/left-1": b"L\n"}
    jobs = len(client.list_job("stamp"))
    client.put_file("right@master:/right-2", b"")  # no longer an input: no job
    assert len(client.list_job("stamp")) == jobs
    client.put_file("left@master:/left-2", b"")
    assert len(client.list_job("stamp")) == jobs + 1
    assert outputs(client) == {"/left-1": b"L\n", "/left-2": b"L\n"}


# ---- bad input ------------------------------------------------------------------------------


def _everything(client: Client) -> Any:
    return (
        [p.to_dict() for p in client.list_pipeline(history="all")],
        [j.to_dict() for j in client.list_job()],
    )


def test_unknown_pipelines_and_versions_and_bad_history_are_refused_and_change_nothing(
    client: Client,
) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": ""})
    client.create_pipeline(stamp("foo"))
    client.update_pipeline(stamp("bar"))
    client.create_pipeline(stamp("one", name="single"))
    before = _everything(client)
    refused: list[tuple[Any, type[HaathiError], str]] = [
        (lambda: client.inspect_pipeline("stamp@v9"), NotFound,
         "pipeline stamp has no version 9 (versions 1-2)"),
        (lambda: client.inspect_pipeline("stamp^5"), NotFound,
         'pipeline "stamp" has only 2 versions, not enough to find ancestor 5'),
        (lambda: client.inspect_pipeline("nope@v1"), NotFound, "pipeline nope not found"),
        (lambda: client.inspect_pipeline("stamp@vx"), InvalidArgument,
         "invalid pipeline version 'stamp@vx': name a version as NAME@vN"),
        (lambda: client.inspect_pipeline("stamp@v0"), InvalidArgument, "NAME@vN (N from 1)"),
        (lambda: client.inspect_pipeline("stamp^x"), InvalidArgument, "NAME^k or NAME~k"),
        (lambda: client.list_pipeline("nope", history=1), NotFound, "pipeline nope not found"),
        (lambda: client.list_pipeline(history="foo"), InvalidArgument, "invalid history 'foo'"),
        (lambda: client.list_pipeline(history=-2), InvalidArgument, "invalid history -2"),
        (lambda: client.list_job("stamp", history="1.5"), InvalidArgument, "invalid history"),
        (lambda: client.rerun_pipeline("nope"), NotFound, "pipeline nope not found"),
        (lambda: client.rerun_pipeline("stamp@v1"), InvalidArgument,
         "use rollback pipeline"),
        (lambda: client.rollback_pipeline("nope"), NotFound, "pipeline nope not found"),
        (lambda: client.rollback_pipeline("stamp@v2"), InvalidArgument,
         "stamp@v2 is the current version: use rerun pipeline"),
        (lambda: client.rollback_pipeline("stamp", version=2), InvalidArgument,
         "stamp@v2 is the current version"),
        (lambda: client.rollback_pipeline("stamp@v9"), NotFound, "has no version 9"),
        (lambda: client.rollback_pipeline("stamp^2"), NotFound, "not enough to find ancestor 2"),
        (lambda: client.rollback_pipeline("stamp@v1", version=1), InvalidArgument,
         "name the version once"),
        (lambda: client.rollback_pipeline("single"), NotFound,
         "pipeline single has one version: there is none to roll back to"),
    ]  # fmt: skip
    for call, cls, message in refused:
        with pytest.raises(cls) as exc:
            call()
        assert message in str(exc.value)
    assert _everything(client) == before


def test_a_rollback_to_a_version_whose_secret_is_gone_is_refused(client: Client) -> None:
    """Rerun and rollback check a version's spec as update pipeline does: here, that the
    secret it names exists."""
    token = {"metadata": {"name": "token"}, "stringData": {"TOKEN": "t"}}
    client.create_secret(token)
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": ""})
    with_secret = stamp("foo")
    with_secret["transform"]["secrets"] = [{"name": "token", "env_var": "TOKEN", "key": "TOKEN"}]
    client.create_pipeline(with_secret)
    client.update_pipeline(stamp("bar"))
    client.delete_secret("token")
    before = _everything(client)
    with pytest.raises(NotFound, match="missing secret token"):
        client.rollback_pipeline("stamp@v1")
    assert _everything(client) == before
    client.create_secret(token)
    client.rollback_pipeline("stamp@v1")
    assert client.inspect_pipeline("stamp").spec == client.inspect_pipeline("stamp@v1").spec


def test_the_routes_answer_unknown_versions_404_and_bad_values_400(
    app_server: InProcessServer,
) -> None:
    with app_server.connect() as client:
        client.create_repo("inputs")
        put_all(client, "inputs", {"/a": ""})
        client.create_pipeline(stamp("foo"))
        client.update_pipeline(stamp("bar"))
        before = _everything(client)
        with httpx.Client(transport=app_server.transport, base_url=app_server.url) as h:
            answers = {
                "GET stamp?version=9": h.get("/v1/pipelines/stamp", params={"version": 9}),
                "GET stamp?back=2": h.get("/v1/pipelines/stamp", params={"back": 2}),
                "GET stamp?back=-1": h.get("/v1/pipelines/stamp", params={"back": -1}),
                "GET nope?version=1": h.get("/v1/pipelines/nope", params={"version": 1}),
                "GET ?history=foo": h.get("/v1/pipelines", params={"history": "foo"}),
                "GET ?history=-2": h.get("/v1/pipelines", params={"history": -2}),
                "GET ?name=nope": h.get("/v1/pipelines", params={"name": "nope"}),
                "GET jobs?history=-3": h.get("/v1/jobs", params={"history": -3}),
                "POST nope/rerun": h.post("/v1/pipelines/nope/rerun"),
                "POST stamp/rollback {version: 2}": h.post(
                    "/v1/pipelines/stamp/rollback", json={"version": 2}
                ),
                "POST stamp/rollback {version: 9}": h.post(
                    "/v1/pipelines/stamp/rollback", json={"version": 9}
                ),
                "POST stamp/rollback {version: 1, back: 1}": h.post(
                    "/v1/pipelines/stamp/rollback", json={"version": 1, "back": 1}
                ),
            }
            assert {k: (r.status_code, r.json()["code"]) for k, r in answers.items()} == {
                "GET stamp?version=9": (404, "not_found"),
                "GET stamp?back=2": (404, "not_found"),
                "GET stamp?back=-1": (400, "invalid_argument"),
                "GET nope?version=1": (404, "not_found"),
                "GET ?history=foo": (400, "invalid_argument"),
                "GET ?history=-2": (400, "invalid_argument"),
                "GET ?name=nope": (404, "not_found"),
                "GET jobs?history=-3": (400, "invalid_argument"),
                "POST nope/rerun": (404, "not_found"),
                "POST stamp/rollback {version: 2}": (400, "invalid_argument"),
                "POST stamp/rollback {version: 9}": (404, "not_found"),
                "POST stamp/rollback {version: 1, back: 1}": (400, "invalid_argument"),
            }
            assert _everything(client) == before

            # a rerun needs no body; the server runs its job
            job = h.post("/v1/pipelines/stamp/rerun").json()["job"]
            client.run_jobs()
            assert client.inspect_job(f"stamp@{job}").version == 3
            versions = h.get("/v1/pipelines", params={"name": "stamp", "history": -1}).json()
            assert [p["version"] for p in versions] == [3, 2, 1]
            assert h.get("/v1/pipelines/stamp", params={"back": 2}).json()["version"] == 1


# ---- the command line -----------------------------------------------------------------------


def _spec_file(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / f"{spec['transform']['cmd'][2].split()[1]}.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_the_command_line_lists_inspects_reruns_and_rolls_back(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "inputs")
    cli("put", "file", "inputs@master:/a", "-f", "-", input=b"")
    cli("create", "pipeline", "-f", _spec_file(tmp_path, stamp("foo")))
    cli("update", "pipeline", "-f", _spec_file(tmp_path, stamp("bar")), "--reprocess")
    assert cli("get", "file", "stamp@master:/a").out == "bar\n"

    table = cli("list", "pipeline", "stamp", "--history", "all").out.splitlines()
    assert table[0].split()[:5] == ["PROJECT", "NAME", "VERSION", "INPUT", "CREATED"]
    assert [(r.split()[:4], r.split("ago")[1].split()) for r in table[1:]] == [
        (["default", "stamp", "2", "inputs@master"], ["running", "/", "success"]),
        (["default", "stamp", "1", "inputs@master"], ["superseded", "/", "success"]),
    ]
    assert [p["version"] for p in cli("list", "pipeline", "-o", "json").json()] == [2]
    listed = cli("list", "pipeline", "--history", "1", "-o", "json").json()
    assert [(p["version"], p["state"]) for p in listed] == [(2, "RUNNING"), (1, "SUPERSEDED")]

    shown = cli("inspect", "pipeline", "stamp@v1").out
    assert "Version: 1\nState: SUPERSEDED\n" in shown and "echo foo" in shown
    assert cli("inspect", "pipeline", "stamp^", "-o", "json").json() == listed[1]

    cli("rollback", "pipeline", "stamp")
    assert cli("get", "file", "stamp@master:/a").out == "foo\n"
    # list job -p: the current version's jobs (pachctl's default --history none)
    assert [j["version"] for j in cli("list", "job", "-p", "stamp", "-o", "json").json()] == [3]
    jobs = cli("list", "job", "-p", "stamp", "--history", "1", "-o", "json").json()
    assert [j["version"] for j in jobs] == [3, 2]
    jobs = cli("list", "job", "-p", "stamp", "--history", "all", "-o", "json").json()
    assert [j["version"] for j in jobs] == [3, 2, 1]
    assert len(cli("list", "job", "-o", "json").json()) == 3  # without -p: all, as before

    # TestRerunPipeline (pps/cmds/cmds_test.go): rerun makes the next version
    cli("rerun", "pipeline", "stamp")
    assert cli("inspect", "pipeline", "stamp", "-o", "json").json()["version"] == 4
    [job] = cli("list", "job", "-p", "stamp", "-o", "json").json()
    assert (job["data_processed"], job["data_skipped"]) == (0, 1)
    cli("rerun", "pipeline", "stamp", "--reprocess")
    [job] = cli("list", "job", "-p", "stamp", "-o", "json").json()
    assert (job["version"], job["data_processed"], job["data_skipped"]) == (5, 1, 0)

    # the pachctl way back to a spec: list pipeline --spec, then update pipeline -f -
    specs = cli("list", "pipeline", "stamp", "--history", "all", "--spec").json()
    assert len(specs) == 5 and "echo bar" in specs[3]["transform"]["cmd"][2]
    cli("update", "pipeline", "-f", "-", input=json.dumps(specs[3]).encode())
    assert cli("get", "file", "stamp@master:/a").out == "foo\n"  # (same salt: skipped)
    cli("rollback", "pipeline", "stamp", "--version", "2", "--reprocess")
    assert cli("get", "file", "stamp@master:/a").out == "bar\n"
    assert cli("inspect", "pipeline", "stamp", "-o", "json").json()["version"] == 7


REFUSED_COMMANDS = [
    (("inspect", "pipeline", "stamp@v9"), 3, "pipeline stamp has no version 9 (versions 1-2)"),
    (("inspect", "pipeline", "nope"), 3, "pipeline nope not found"),
    (("inspect", "pipeline", "stamp@vx"), 2, "invalid pipeline version 'stamp@vx'"),
    (("list", "pipeline", "--history", "foo"), 2, "invalid history 'foo'"),
    (("list", "pipeline", "nope", "--history", "all"), 3, "pipeline nope not found"),
    (("list", "job", "-p", "stamp", "--history", "-2"), 2, "invalid history '-2'"),
    (("rerun", "pipeline", "nope"), 3, "pipeline nope not found"),
    (("rollback", "pipeline", "nope"), 3, "pipeline nope not found"),
    (("rollback", "pipeline", "stamp@v2"), 2, "stamp@v2 is the current version"),
    (("rollback", "pipeline", "stamp", "--version", "9"), 3, "has no version 9"),
]


def test_the_command_line_refuses_bad_input_in_one_line_and_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    cli("create", "repo", "inputs")
    cli("put", "file", "inputs@master:/a", "-f", "-", input=b"")
    cli("create", "pipeline", "-f", _spec_file(tmp_path, stamp("foo")))
    cli("update", "pipeline", "-f", _spec_file(tmp_path, stamp("bar")))
    before = cli("list", "pipeline", "--history", "all", "-o", "json").out
    for args, code, message in REFUSED_COMMANDS:
        res = cli.fails(*args)
        assert (res.code, message in res.err) == (code, True), (args, res.err)
    assert cli("list", "pipeline", "--history", "all", "-o", "json").out == before
