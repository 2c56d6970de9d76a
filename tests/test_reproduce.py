"""``reproduce``: recorded datums re-run from their recorded inputs, outputs compared by hash.

Through the Client on both backends, and the CLI. ``upper`` is deterministic; each of its
datums also writes the variables it ran with (job ID, input commit, datum ID), so a re-run
matches only if it sees exactly what the recorded run saw. ``stamp`` writes the clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import haathi
from haathi.client import Client
from haathi.errors import InvalidArgument, NotFound
from haathi.meta.schema import datums
from haathi.models.reproduce import EnvChange, ReproduceReport
from tests.conftest import Cli, put_all
from tests.internals import inner

UPPER = {
    "pipeline": {"name": "upper"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            """
for f in /pfs/data/*; do
  n=$(basename $f)
  tr a-z A-Z < $f > /pfs/out/$n
  echo "$PACH_JOB_ID $data_COMMIT $PACH_DATUM_ID" > /pfs/out/$n.env
done""",
        ]
    },
}
STAMP = {
    "pipeline": {"name": "stamp"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            """
for f in /pfs/data/*; do
  n=$(basename $f)
  cp $f /pfs/out/$n
  date +%s%N > /pfs/out/$n.time
done""",
        ]
    },
}


@pytest.fixture
def data(client: Client) -> Client:
    client.create_repo("data")
    put_all(client, "data", {"/a.txt": "apple\n", "/b.txt": "banana\n"})
    return client


def mismatched(report: ReproduceReport) -> set[str]:
    return {f.path for _, f in report.mismatches}


@pytest.mark.every_shape
def test_a_deterministic_pipeline_reproduces(data: Client) -> None:
    data.create_pipeline(UPPER)
    head = data.inspect_commit("upper@master")
    report = data.reproduce("upper@master:/a.txt")
    assert report.ok and report.mismatches == ()
    assert report.commit == f"upper@{head.id}" and report.datums_total == 1
    [d] = report.datums
    [node] = data.lineage("upper@master:/a.txt")
    assert d.datum == node.datum and d.job == f"upper@{head.id}" and d.spec_version == 1
    assert d.state == "SUCCESS" and d.env_differs == ()
    assert d.inputs == (f"data@{data.inspect_commit('data@master').id}:/a.txt",)
    # the datum is the unit that re-runs: every file it wrote is checked
    assert [(f.path, f.status) for f in d.files] == [("/a.txt", "match"), ("/a.txt.env", "match")]
    stored = data.inspect_file("upper@master:/a.txt")
    assert d.files[0].stored_hash == d.files[0].reproduced_hash == stored.hash
    assert data.reproduce("upper@master:/").ok  # a directory: both datums
    assert len(data.reproduce("upper@master:/*.env").datums) == 2  # a glob


# Whole-repo inputs (glob "/"): the datum's input is a directory, recorded by a content hash
# over its files. A parameters repo crossed with the data, and a reduce over a whole repo.
WITH_PARAMS = {
    "pipeline": {"name": "scaled"},
    "input": {
        "cross": [
            {"pfs": {"repo": "data", "glob": "/*"}},
            {"pfs": {"repo": "params", "glob": "/"}},
        ]
    },
    "transform": {
        "cmd": [
            "sh",
            "-c",
            """
for f in /pfs/data/*; do
  n=$(basename $f)
  { cat $f /pfs/params/scale /pfs/params/sub/offset; echo "$data $params"; } > /pfs/out/$n
done""",
        ]
    },
}
REDUCE = {
    "pipeline": {"name": "total"},
    "input": {"pfs": {"repo": "data", "glob": "/"}},
    "transform": {"cmd": ["sh", "-c", "cat /pfs/data/* | wc -l > /pfs/out/lines"]},
}


@pytest.fixture
def params(data: Client) -> Client:
    data.create_repo("params")
    put_all(data, "params", {"/scale": "2\n", "/sub/offset": "7\n"})
    return data


def test_whole_repo_inputs_reproduce(params: Client) -> None:
    params.create_pipeline(WITH_PARAMS)
    params.create_pipeline(REDUCE)
    assert params.get_file("scaled@master:/a.txt") == b"apple\n2\n7\n/pfs/data/a.txt /pfs/params\n"
    cross = params.reproduce_commit("scaled@master")
    assert cross.ok and len(cross.datums) == 2, cross.to_dict()
    p = params.inspect_commit("params@master").id
    assert all(d.inputs[1] == f"params@{p}:/" for d in cross.datums)
    reduce = params.reproduce("total@master:/lines")
    assert reduce.ok and [f.status for f in reduce.files] == ["match"], reduce.to_dict()
    # a directory below the root is a directory input too
    params.create_pipeline(
        {
            **REDUCE,
            "pipeline": {"name": "sub"},
            "input": {"pfs": {"repo": "params", "glob": "/sub"}},
        }
    )
    assert params.reproduce_commit("sub@master").ok
    assert all(d.env_changes == () for r in (cross, reduce) for d in r.datums)


def test_a_whole_repo_input_whose_recorded_content_differs_is_not_rerun(params: Client) -> None:
    """The check still works: a directory input whose files are not the ones recorded (here
    the recorded content hash is altered, as a store restored from another copy might) is
    named, and the datum is not re-run."""
    params.create_pipeline(WITH_PARAMS)
    db = inner(params).pfs.db
    with db.write() as conn:
        for job, did, raw in conn.execute(
            select(datums.c.job_id, datums.c.datum_id, datums.c.inputs)
        ).all():
            recorded = json.loads(raw)
            recorded[1]["hash"] = "0" * 64
            conn.execute(
                update(datums)
                .where(datums.c.job_id == job, datums.c.datum_id == did)
                .values(inputs=json.dumps(recorded))
            )
    report = params.reproduce("scaled@master:/a.txt")
    [d] = report.datums
    p = params.inspect_commit("params@master").id
    assert not report.ok and d.state == "UNRUNNABLE"
    assert d.reason == f"input params@{p}:/ no longer has the recorded content"
    assert mismatched(report) == {"/a.txt"}


def test_the_environment_warning_names_only_what_really_differs(tmp_path: Path) -> None:
    """Without bwrap, /pfs is a scratch directory that differs from run to run: that is not a
    difference. A re-run in another sandbox than the recorded one is, and is named."""
    store = str(tmp_path / "store")
    with haathi.connect(store, sandbox="none") as c:
        c.create_repo("data")
        c.create_repo("params")
        put_all(c, "data", {"/a.txt": "apple\n"})
        put_all(c, "params", {"/scale": "2\n", "/sub/offset": "7\n"})
        cmd = "cat $data /pfs/params/scale > /pfs/out/o"  # writes no path: /pfs varies
        c.create_pipeline({**WITH_PARAMS, "transform": {"cmd": ["sh", "-c", cmd]}})
        same = c.reproduce_commit("scaled@master")
        assert same.ok and same.datums[0].sandbox == "none"
        assert same.datums[0].env_changes == () and same.datums[0].env_differs == ()
    with haathi.connect(store, sandbox="bwrap") as c:
        other = c.reproduce_commit("scaled@master")
    [d] = other.datums
    assert other.ok and d.env_changes == (EnvChange("sandbox", "none", "bwrap", variable=False),)
    assert str(d.env_changes[0]) == "sandbox was 'none', now 'bwrap'"
    assert ReproduceReport.from_dict(other.to_dict()) == other


def test_a_pipeline_writing_the_time_does_not_reproduce_and_names_the_file(data: Client) -> None:
    data.create_pipeline(STAMP)
    report = data.reproduce("stamp@master:/a.txt")
    assert not report.ok
    assert mismatched(report) == {"/a.txt.time"}
    [d] = report.datums
    assert d.state == "SUCCESS"  # it ran fine; its output differs
    by_path = {f.path: f for f in d.files}
    assert by_path["/a.txt"].match
    t = by_path["/a.txt.time"]
    assert t.status == "differs" and t.stored_hash and t.reproduced_hash
    assert t.stored_hash != t.reproduced_hash
    whole = data.reproduce_commit("stamp@master")
    assert mismatched(whole) == {"/a.txt.time", "/b.txt.time"}
    assert whole.to_dict()["files_mismatched"] == 2 and whole.to_dict()["files_matched"] == 2


@pytest.mark.every_shape
def test_reproduction_uses_the_recorded_input_commits_after_the_branch_moved_on(
    data: Client,
) -> None:
    data.create_pipeline(UPPER)
    first_in = data.inspect_commit("data@master").id
    first_out = data.inspect_commit("upper@master").id
    data.put_file("data@master:/a.txt", b"apricot\n")
    assert data.get_file("upper@master:/a.txt") == b"APRICOT\n"
    old = data.reproduce(f"upper@{first_out}:/a.txt")
    assert old.ok and old.datums[0].inputs == (f"data@{first_in}:/a.txt",)
    assert old.datums[0].job == f"upper@{first_out}"
    # b.txt was SKIPPED by the new job: it re-runs as the first job ran it
    skipped = data.reproduce("upper@master:/b.txt")
    assert skipped.ok and skipped.datums[0].job == f"upper@{first_out}"
    assert skipped.datums[0].inputs == (f"data@{first_in}:/b.txt",)
    new = data.reproduce("upper@master:/a.txt")
    assert new.ok and new.datums[0].job != f"upper@{first_out}"


def test_skipped_datums_reproduce_with_the_spec_version_that_ran_them(data: Client) -> None:
    data.create_pipeline(UPPER)
    v2 = json.loads(json.dumps(UPPER))
    v2["transform"]["cmd"][2] = v2["transform"]["cmd"][2].replace("a-z A-Z", "a-z a-z")
    data.update_pipeline(v2)  # no --reprocess: a.txt and b.txt are SKIPPED
    assert data.get_file("upper@master:/a.txt") == b"APPLE\n"
    report = data.reproduce_commit("upper@master")
    assert report.ok and {d.spec_version for d in report.datums} == {1}
    data.put_file("data@master:/c.txt", b"cherry\n")  # runs with v2
    assert data.get_file("upper@master:/c.txt") == b"cherry\n"
    report = data.reproduce_commit("upper@master")
    versions = {d.files[0].path: d.spec_version for d in report.datums}
    assert versions == {"/a.txt": 1, "/b.txt": 1, "/c.txt": 2}


def test_a_failed_re_run_lists_its_files_as_not_written_with_its_log(
    data: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = json.loads(json.dumps(UPPER))
    spec["datum_tries"] = 1
    spec["transform"]["cmd"][2] = (
        '[ "$TZ" != Fail/Here ] || { echo "boom: TZ=$TZ"; exit 3; }\n' + spec["transform"]["cmd"][2]
    )
    data.create_pipeline(spec)
    monkeypatch.setenv("TZ", "Fail/Here")  # the host's TZ reaches user code
    report = data.reproduce("upper@master:/a.txt")
    assert not report.ok
    [d] = report.datums
    assert d.state == "FAILED" and "exit code 3" in (d.reason or "")
    assert "boom: TZ=Fail/Here" in d.log_tail
    assert [(f.path, f.status) for f in d.files] == [
        ("/a.txt", "missing"),
        ("/a.txt.env", "missing"),
    ]
    assert report.failed_datums == (d,) and mismatched(report) == {"/a.txt", "/a.txt.env"}


def test_sample_reproduces_that_many_datums_of_a_commit(client: Client) -> None:
    client.create_repo("data")
    put_all(client, "data", {f"/{c}.txt": f"{c}\n" for c in "abcde"})
    client.create_pipeline(UPPER)
    full = client.reproduce_commit("upper@master")
    assert full.ok and len(full.datums) == full.datums_total == 5 and not full.sampled
    assert len(full.files) == 10
    some = client.reproduce_commit("upper@master", sample=2, seed=7)
    assert len(some.datums) == 2 and some.datums_total == 5 and some.sampled and some.ok
    assert (some.sample, some.seed) == (2, 7)
    again = client.reproduce_commit("upper@master", sample=2, seed=7)
    assert [d.datum for d in again.datums] == [d.datum for d in some.datums]
    assert len(client.reproduce_commit("upper@master", sample=9).datums) == 5


def snapshot(client: Client) -> list[Any]:
    """Every branch, commit, job and datum the store holds."""
    out: list[Any] = [client.list_repo()]
    for r in client.list_repo():
        out += [client.list_branch(r.name), client.list_commit(r.name)]
    for j in client.list_job():
        out += [j, client.list_datum(f"{j.pipeline}@{j.id}")]
    return out


def test_reproduce_changes_no_branch_commit_job_or_datum(data: Client) -> None:
    data.create_pipeline(UPPER)
    data.create_pipeline(STAMP)
    data.put_file("data@master:/a.txt", b"apricot\n")
    before = snapshot(data)
    data.reproduce("upper@master:/")
    data.reproduce_commit("stamp@master")
    data.reproduce_commit("upper@master^", sample=1)
    assert snapshot(data) == before
    assert data.run_jobs().ran == {}


def test_bad_targets(data: Client) -> None:
    data.create_pipeline(UPPER)
    with pytest.raises(InvalidArgument, match="not a pipeline output"):
        data.reproduce("data@master:/a.txt")
    with pytest.raises(InvalidArgument, match="not a pipeline output"):
        data.reproduce_commit("data@master")
    with pytest.raises(NotFound, match="nope"):
        data.reproduce("upper@master:/nope")
    with pytest.raises(NotFound):
        data.reproduce("missing@master:/a.txt")
    with pytest.raises(NotFound):
        data.reproduce_commit("upper@" + "0" * 32)
    with pytest.raises(InvalidArgument, match="sample"):
        data.reproduce_commit("upper@master", sample=0)


def test_cli_reproduce(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    (tmp_path / "in").mkdir()
    for name, text in (("a.txt", "apple\n"), ("b.txt", "banana\n")):
        (tmp_path / "in" / name).write_text(text)
    cli("put", "file", "data@master:/", "-r", "-f", str(tmp_path / "in"))
    for spec in (UPPER, STAMP):
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        cli("create", "pipeline", "-f", "spec.json")

    good = cli("reproduce", "upper@master:/a.txt")
    assert "✓" in good.out and "✗" not in good.out and "/a.txt.env" in good.out
    assert "reproduce" in good.out
    assert cli("reproduce", "file", "upper@master:/", "-o", "json").json()["ok"] is True

    assert "environment" not in good.out

    bad = cli("reproduce", "stamp@master:/a.txt", ok=False)
    assert bad.code == 1 and "✗" in bad.out and "/a.txt.time" in bad.out
    assert bad.out.strip().splitlines()[-1].endswith("/a.txt.time")
    doc = cli(
        "reproduce",
        "commit",
        "stamp@master",
        "--sample",
        "1",
        "--seed",
        "3",
        "-o",
        "json",
        ok=False,
    )
    assert doc.code == 1
    report = ReproduceReport.from_dict(doc.json())
    assert report.datums_total == 2 and len(report.datums) == 1 and report.sampled
    assert doc.json()["mismatches"] == [
        {
            "datum": report.datums[0].datum,
            "path": report.datums[0].files[1].path,
            "status": "differs",
        }
    ]
    assert "sample of 1 of 2" in cli("reproduce", "commit", "upper@master", "-n", "1").out

    err = cli.fails("reproduce", "data@master:/a.txt").err
    assert err.startswith("error:") and "not a pipeline output" in err
    assert cli.fails("reproduce", "commit", "data@master").code == 2
    assert "nope" in cli.fails("reproduce", "upper@master:/nope").err
    assert cli.fails("reproduce", "commit", "upper@master", "--sample", "0").code == 2
