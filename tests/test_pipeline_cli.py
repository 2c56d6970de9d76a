"""Pipelines, jobs, datums and logs through the real ``haathi`` command (pachctl's grammar).

The CLI runs the jobs a command starts before it exits, unless ``--no-wait``; then
``haathi run worker`` runs them. Errors are one line on stderr with a non-zero exit code,
and a bad request creates nothing. These run on the embedded store only: the Client tests
in ``test_pipeline_examples.py`` cover both backend pairs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli


@pytest.fixture
def backend() -> str:
    """The CLI tests use the embedded store only."""
    return "local"


EDGES_YAML = """\
pipeline:
  name: edges
description: edge detection, shell-only
input:
  pfs:
    repo: images
    glob: "/*"
transform:
  cmd: ["sh"]
  stdin:
    - 'echo "edge of $(basename "$images")"'
    - 'tr a-z A-Z < "$images" > "/pfs/out/$(basename "$images")"'
datumTries: 1
---
pipeline:
  name: montage
input:
  cross:
    - pfs: {repo: images, glob: "/"}
    - pfs: {repo: edges, glob: "/"}
transform:
  cmd: ["sh"]
  stdin:
    - "cat /pfs/images/* /pfs/edges/* > /pfs/out/montage"
parallelismSpec: {constant: 1}
reprocessSpec: until_success
"""


def copy_spec(name: str, repo: str = "images", **extra: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f'cp "${repo}" /pfs/out/'], **extra},
    }


def write(tmp_path: Path, name: str, content: str | dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def images(cli: Cli, tmp_path: Path, *names: str) -> None:
    """Repo ``images`` with files ``names`` (content: the first letter), in one commit."""
    src = tmp_path / "images"
    src.mkdir()
    for n in names:
        (src / n).write_text(f"{n[0]}\n")
    cli("create", "repo", "images")
    cli("put", "file", "images@master:/", "-r", "-f", str(src))


def dag(cli: Cli, tmp_path: Path) -> None:
    """images (a.txt, b.txt) -> edges -> montage (a cross of images and edges)."""
    images(cli, tmp_path, "a.txt", "b.txt")
    cli("create", "pipeline", "-f", write(tmp_path, "dag.yaml", EDGES_YAML))


def newest_job(cli: Cli, pipeline: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = cli("list", "job", "-p", pipeline, "-o", "json").json()
    return jobs[0]


# ---- creating, validating, listing, drawing ------------------------------------------------


def test_create_pipelines_from_a_multi_document_yaml(cli: Cli, tmp_path: Path) -> None:
    dag(cli, tmp_path)
    assert cli("get", "file", "edges@master:/a.txt").out == "A\n"
    assert cli("get", "file", "montage@master:/montage").out == "a\nb\nA\nB\n"

    table = cli("list", "pipeline").out
    assert "edges" in table and "montage" in table and "images@master, edges@master" in table
    listed = cli("list", "pipeline", "-o", "json").json()
    assert [p["name"] for p in listed] == ["edges", "montage"]
    assert all(p["state"] == "RUNNING" and p["last_job"] == "SUCCESS" for p in listed)

    info = cli("inspect", "pipeline", "edges", "-o", "json").json()
    assert info["name"] == "edges" and info["version"] == 1 and info["inputs"] == ["images@master"]
    assert info["spec"]["input"]["pfs"]["glob"] == "/*"
    assert info["spec"]["datum_tries"] == 1  # camelCase in, the effective spec out
    assert "image" not in info["spec"]["transform"] and info["notes"] == []
    montage = cli("inspect", "pipeline", "montage", "-o", "json").json()
    assert montage["inputs"] == ["images@master", "edges@master"]
    assert montage["spec"]["input"]["cross"][1]["pfs"]["repo"] == "edges"
    assert "Inputs: images@master, edges@master" in cli("inspect", "pipeline", "montage").out

    drawn = cli("draw", "pipeline").out.splitlines()
    assert drawn[0] == "images"
    edges_line = next(i for i, ln in enumerate(drawn) if ln.endswith("edges (pipeline)"))
    assert drawn[edges_line + 1].strip().endswith("montage (pipeline)")  # edges -> montage
    assert drawn[edges_line + 1].index("montage") > drawn[edges_line].index("edges")
    assert sum(ln.endswith("montage (pipeline)") for ln in drawn) == 2  # and images -> montage


def test_create_and_update_pipeline_from_json(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    spec = copy_spec("copy")
    cli("create", "pipeline", "-f", write(tmp_path, "copy.json", spec))
    assert cli("get", "file", "copy@master:/a.txt").out == "a\n"
    # Two JSON objects in one file: two pipelines.
    two = json.dumps(copy_spec("c1")) + "\n" + json.dumps(copy_spec("c2"))
    cli("create", "pipeline", "-f", write(tmp_path, "two.json", two))
    assert [p["name"] for p in cli("list", "pipeline", "-o", "json").json()] == [
        "c1",
        "c2",
        "copy",
    ]
    # Creating an existing pipeline is refused; update replaces it (datums skipped).
    res = cli.fails("create", "pipeline", "-f", write(tmp_path, "copy.json", spec))
    assert res.code == 4 and "update" in res.err
    spec["transform"]["cmd"] = ["sh", "-c", 'cp "$images" /pfs/out/; echo v2']
    cli("update", "pipeline", "-f", write(tmp_path, "copy.json", spec))
    job = newest_job(cli, "copy")
    assert (job["state"], job["version"], job["data_skipped"]) == ("SUCCESS", 2, 1)
    cli("update", "pipeline", "-f", write(tmp_path, "copy.json", spec), "--reprocess")
    job = newest_job(cli, "copy")
    assert (job["version"], job["data_processed"], job["data_skipped"]) == (3, 1, 0)
    assert cli("logs", "-p", "copy").out.strip().endswith("v2")


def test_create_pipeline_from_stdin(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    cli("create", "pipeline", "-f", "-", input=json.dumps(copy_spec("copy")).encode())
    assert cli("get", "file", "copy@master:/a.txt").out == "a\n"


def test_validate_pipeline(cli: Cli, tmp_path: Path) -> None:
    # A spec-only check: it needs no store content and creates nothing.
    res = cli("validate", "pipeline", "-f", write(tmp_path, "dag.yaml", EDGES_YAML))
    assert "pipeline edges: valid" in res.out and "pipeline montage: valid" in res.out
    res = cli("validate", "pipeline", "-f", "-", input=json.dumps(copy_spec("copy")).encode())
    assert "pipeline copy: valid" in res.out
    effective = cli(
        "validate", "pipeline", "-f", write(tmp_path, "c.json", copy_spec("copy")), "-o", "json"
    ).json()
    assert effective[0]["spec"]["datum_tries"] == 3  # defaults applied

    bad = copy_spec("copy") | {"bogus": 1}
    res = cli.fails("validate", "pipeline", "-f", write(tmp_path, "bad.json", bad))
    assert res.code == 2 and "bogus" in res.err
    nested = copy_spec("copy")
    nested["input"]["pfs"]["lazzy"] = True
    res = cli.fails("validate", "pipeline", "-f", write(tmp_path, "bad2.json", nested))
    assert "input.pfs.lazzy" in res.err
    assert cli("list", "pipeline", "-o", "json").json() == []
    assert cli("list", "repo", "-o", "json").json() == []


# ---- jobs, datums, logs --------------------------------------------------------------------


def test_jobs_datums_and_logs(cli: Cli, tmp_path: Path) -> None:
    dag(cli, tmp_path)
    cli("put", "file", "images@master:/c.txt", "-f", write(tmp_path, "c.txt", "c\n"))
    cid = cli("inspect", "commit", "images@master", "-o", "json").json()["id"]

    table = cli("list", "job").out
    assert table.count("SUCCESS") == 4 and cid in table
    jobs = cli("list", "job", "-o", "json").json()
    assert [(j["pipeline"], j["state"]) for j in jobs[:2]] == [
        ("montage", "SUCCESS"),
        ("edges", "SUCCESS"),
    ]
    edges_jobs = cli("list", "job", "-p", "edges", "-o", "json").json()
    assert len(edges_jobs) == 2 and edges_jobs[0]["id"] == cid
    assert {j["pipeline"] for j in cli("list", "job", cid, "-o", "json").json()} == {
        "edges",
        "montage",
    }

    text = cli("inspect", "job", f"edges@{cid}").out
    assert "State: SUCCESS" in text
    assert "Datums: 3 total, 1 processed, 2 skipped, 0 failed, 0 recovered" in text
    job = cli("inspect", "job", f"edges@{cid}", "-o", "json").json()
    assert (job["data_total"], job["data_processed"], job["data_skipped"]) == (3, 1, 2)
    assert job["inputs"] == [f"images@{cid}"] and job["output_commit"] == f"edges@{cid}"

    waited = cli("wait", "job", cid, "-o", "json").json()
    assert {(j["pipeline"], j["state"]) for j in waited} == {
        ("edges", "SUCCESS"),
        ("montage", "SUCCESS"),
    }
    commits = cli("wait", "commit", cid, "-o", "json").json()
    assert {(c["repo"], c["state"]) for c in commits if c["id"] == cid} == {
        ("images", "FINISHED"),
        ("edges", "FINISHED"),
        ("montage", "FINISHED"),
    }
    in_set = cli("list", "commit", cid, "-o", "json").json()
    assert {c["repo"] for c in in_set if c["id"] == cid} == {"images", "edges", "montage"}

    datums = cli("list", "datum", f"edges@{cid}", "-o", "json").json()
    assert sorted((d["inputs"][0]["path"], d["state"]) for d in datums) == [
        ("/a.txt", "SKIPPED"),
        ("/b.txt", "SKIPPED"),
        ("/c.txt", "SUCCESS"),
    ]
    table = cli("list", "datum", f"edges@{cid}").out
    assert "SKIPPED" in table and "SUCCESS" in table and "/c.txt" in table
    new = next(d for d in datums if d["state"] == "SUCCESS")
    info = cli("inspect", "datum", f"edges@{cid}", new["id"], "-o", "json").json()
    assert info["id"] == new["id"] and info["attempts"] == 1 and info["state"] == "SUCCESS"
    [inp] = info["inputs"]
    assert (inp["name"], inp["repo"], inp["commit"], inp["path"]) == (
        "images",
        "images",
        cid,
        "/c.txt",
    )
    assert inp["hash"]
    assert info["env"]["PACH_JOB_ID"] == cid and info["env"]["images"] == "/pfs/images/c.txt"
    assert info["env"]["PACH_DATUM_ID"] == new["id"]
    assert [o["path"] for o in info["outputs"]] == ["/c.txt"]
    text = cli("inspect", "datum", f"edges@{cid}", new["id"][:12]).out
    assert "Attempts: 1" in text and f"images@{cid}:/c.txt" in text
    assert f"PACH_JOB_ID={cid}" in text

    logs = cli("logs", "-p", "edges").out
    assert "edge of c.txt" in logs and "edge of a.txt" not in logs  # the newest job
    assert cli("logs", "-p", "edges", "--datum", new["id"]).out == "edge of c.txt\n"
    first = edges_jobs[1]["id"]
    old = cli("logs", "-p", "edges", "-j", first).out
    assert "edge of a.txt" in old and "edge of b.txt" in old


def test_failed_job_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    spec = copy_spec("fragile") | {"datum_tries": 2}
    spec["transform"] = {"cmd": ["sh", "-c", 'echo "trying $images"; exit 1']}
    res = cli("create", "pipeline", "-f", write(tmp_path, "f.json", spec), ok=False)
    job = newest_job(cli, "fragile")
    assert job["state"] == "FAILURE" and job["data_failed"] == 1
    assert "FAILURE" in res.err
    [d] = cli("list", "datum", f"fragile@{job['id']}", "-o", "json").json()
    assert d["state"] == "FAILED" and d["attempts"] == 2 and d["id"] in job["reason"]
    assert "Attempts: 2" in cli("inspect", "datum", f"fragile@{job['id']}", d["id"]).out
    logs = cli("logs", "-p", "fragile", "--datum", d["id"]).out
    assert logs.count("trying /pfs/images/a.txt") == 2
    assert cli("inspect", "commit", f"fragile@{job['id']}", "-o", "json").json()["error"]
    assert "FAILURE" in cli("inspect", "job", f"fragile@{job['id']}").out


# ---- queueing, workers, stopping -----------------------------------------------------------


def test_put_file_no_wait_shows_the_queued_jobs(cli: Cli, tmp_path: Path) -> None:
    dag(cli, tmp_path)
    res = cli(
        "put", "file", "images@master:/c.txt", "-f", write(tmp_path, "c.txt", "c\n"), "--no-wait"
    )
    assert "queued" in res.err
    cid = cli("inspect", "commit", "images@master", "-o", "json").json()["id"]
    queued = cli("list", "job", cid, "-o", "json").json()
    assert {(j["pipeline"], j["state"]) for j in queued} == {
        ("edges", "CREATED"),
        ("montage", "CREATED"),
    }
    assert "CREATED" in cli("list", "job").out


def test_no_wait_then_run_worker_once(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    res = cli("create", "pipeline", "-f", write(tmp_path, "c.json", copy_spec("copy")), "--no-wait")
    assert "queued" in res.err and "run worker" in res.err
    [job] = cli("list", "job", "-o", "json").json()
    assert job["state"] == "CREATED"
    assert "CREATED" in cli("list", "job", "-p", "copy").out
    assert cli("inspect", "commit", f"copy@{job['id']}", "-o", "json").json()["state"] != (
        "FINISHED"
    )

    cli("put", "file", "images@master:/b.txt", "-f", write(tmp_path, "b.txt", "b\n"), "--no-wait")
    cid = cli("inspect", "commit", "images@master", "-o", "json").json()["id"]
    res = cli("run", "worker", "--once")
    assert "SUCCESS" in res.err
    jobs = cli("list", "job", "-p", "copy", "-o", "json").json()
    assert {j["state"] for j in jobs} == {"SUCCESS"}
    assert jobs[0]["id"] == cid
    assert cli("get", "file", "copy@master:/b.txt").out == "b\n"
    assert cli("list", "job", "-o", "json").json() == jobs


def test_stop_a_queued_job(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    cli("create", "pipeline", "-f", write(tmp_path, "c.json", copy_spec("copy")), "--no-wait")
    jid = newest_job(cli, "copy")["id"]
    cli("stop", "job", f"copy@{jid}")
    job = cli("inspect", "job", f"copy@{jid}", "-o", "json").json()
    assert job["state"] == "KILLED"
    assert cli("inspect", "commit", f"copy@{jid}", "-o", "json").json()["error"]
    cli("run", "worker", "--once")
    assert newest_job(cli, "copy")["state"] == "KILLED"


def test_stop_a_running_job(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    spec = copy_spec("slow")
    spec["transform"] = {"cmd": ["sh", "-c", "echo started; sleep 60"]}
    cli("create", "pipeline", "-f", write(tmp_path, "s.json", spec), "--no-wait")
    jid = newest_job(cli, "slow")["id"]
    env = dict(os.environ, HAATHI_ADDRESS=str(cli.store))
    t0 = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "haathi", "run", "worker", "--once"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while cli("inspect", "job", f"slow@{jid}", "-o", "json").json()["state"] != "RUNNING":
            assert time.monotonic() - t0 < 30, "the worker never started the job"
            time.sleep(0.2)
        cli("stop", "job", f"slow@{jid}")
        # (the datum sleeps 60 s from when it ran: a worker that waited for it would not end
        # within these 30 s, however quick or slow the machine)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
        worker.wait()
    job = cli("inspect", "job", f"slow@{jid}", "-o", "json").json()
    assert job["state"] == "KILLED" and "stop" in job["reason"]
    assert cli("inspect", "commit", f"slow@{jid}", "-o", "json").json()["error"]


def test_stop_start_and_delete_pipeline(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    cli("create", "pipeline", "-f", write(tmp_path, "c.json", copy_spec("copy")))
    cli("stop", "pipeline", "copy")
    assert cli("inspect", "pipeline", "copy", "-o", "json").json()["state"] == "PAUSED"
    cli("put", "file", "images@master:/b.txt", "-f", write(tmp_path, "b.txt", "b\n"))
    assert [j["state"] for j in cli("list", "job", "-p", "copy", "-o", "json").json()] in (
        ["SUCCESS"],
        ["CREATED", "SUCCESS"],
    )
    cli.fails("get", "file", "copy@master:/b.txt")
    cli("start", "pipeline", "copy")
    assert cli("get", "file", "copy@master:/b.txt").out == "b\n"
    assert newest_job(cli, "copy")["state"] == "SUCCESS"

    cli("delete", "pipeline", "copy", "--keep-repo")
    assert cli("list", "pipeline", "-o", "json").json() == []
    assert "copy" in {r["name"] for r in cli("list", "repo", "-o", "json").json()}
    assert cli("get", "file", "copy@master:/a.txt").out == "a\n"
    res = cli.fails("delete", "pipeline", "copy")
    assert res.code == 3
    res = cli.fails("list", "job", "-p", "copy")
    assert res.code == 3

    cli("create", "pipeline", "-f", write(tmp_path, "d.json", copy_spec("copy2")))
    cli("delete", "pipeline", "copy2")
    assert "copy2" not in {r["name"] for r in cli("list", "repo", "-o", "json").json()}


# ---- bad input -----------------------------------------------------------------------------


def test_bad_requests_are_one_line_errors_and_create_nothing(cli: Cli, tmp_path: Path) -> None:
    images(cli, tmp_path, "a.txt")
    cli("create", "repo", "taken")
    repos = cli("list", "repo", "-o", "json").json()

    def nothing_created() -> None:
        assert cli("list", "pipeline", "-o", "json").json() == []
        assert cli("list", "repo", "-o", "json").json() == repos
        assert cli("list", "job", "-o", "json").json() == []

    res = cli.fails("create", "pipeline", "-f", write(tmp_path, "bad.json", '{"pipeline": {'))
    assert res.code == 2 and "JSON" in res.err and "bad.json" in res.err
    res = cli.fails("create", "pipeline", "-f", write(tmp_path, "bad.yaml", "pipeline: [\n"))
    assert res.code == 2
    res = cli.fails(
        "create", "pipeline", "-f", write(tmp_path, "u.json", copy_spec("x") | {"bogus": 1})
    )
    assert res.code == 2 and "bogus" in res.err
    res = cli.fails("create", "pipeline", "-f", write(tmp_path, "m.json", copy_spec("x", "nope")))
    assert res.code == 3 and "nope" in res.err
    res = cli.fails("create", "pipeline", "-f", write(tmp_path, "t.json", copy_spec("taken")))
    assert res.code == 4 and "taken" in res.err
    res = cli.fails("create", "pipeline", "-f", str(tmp_path / "missing.json"))
    assert res.code == 2 and "missing.json" in res.err
    no_transform = {"pipeline": {"name": "x"}, "input": {"pfs": {"repo": "images", "glob": "/"}}}
    cli.fails("create", "pipeline", "-f", write(tmp_path, "n.json", no_transform))
    nothing_created()

    res = cli.fails("inspect", "job", "nope@123")
    assert res.code == 3 and "nope" in res.err
    res = cli.fails("inspect", "job", "nope")
    assert res.code == 2
    res = cli.fails("list", "datum")
    assert res.code == 2
    res = cli.fails("list", "datum", "nope@123")
    assert res.code == 3
    res = cli.fails("inspect", "pipeline", "nope")
    assert res.code == 3
    res = cli.fails("logs", "-p", "nope")
    assert res.code == 3
    res = cli.fails("wait", "job", "0123456789abcdef0123456789abcdef")
    assert res.code == 3


def test_an_update_whose_jobs_cannot_run_here_changes_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything is checked before anything is written: an update whose job cannot run here
    (the sandbox or executor it asks for cannot start) exits non-zero and leaves the spec
    version and the jobs as they were; the next update works."""
    images(cli, tmp_path, "a.txt")
    spec = write(tmp_path, "copy.json", copy_spec("copy"))
    cli("create", "pipeline", "-f", spec)
    before = cli("list", "job", "-o", "json").json()
    assert [j["state"] for j in before] == ["SUCCESS"]

    empty = tmp_path / "no-bwrap"
    empty.mkdir()
    process = Cli(cli.store, cli.cwd, process=True)  # a new process probes for bwrap afresh
    with monkeypatch.context() as m:
        m.setenv("PATH", str(empty))  # bubblewrap is not found
        res = process.fails("--sandbox", "bwrap", "update", "pipeline", "-f", spec)
        assert res.code == 2 and "bubblewrap (bwrap)" in res.err
        # a worker that cannot run jobs here says so and exits, claiming nothing
        assert process("--sandbox", "bwrap", "run", "worker", ok=False).code == 2
    res = cli.fails("--executor", "carrier-pigeon://coop", "update", "pipeline", "-f", spec)
    assert res.code == 2 and "carrier-pigeon" in res.err
    res = cli.fails(
        "--sandbox",
        "bwrap",
        "--executor",
        "bogus://x",
        "create",
        "pipeline",
        "-f",
        write(tmp_path, "new.json", copy_spec("new")),
    )
    assert res.code == 2
    assert cli("inspect", "pipeline", "copy", "-o", "json").json()["version"] == 1
    assert cli("list", "job", "-o", "json").json() == before
    assert [p["name"] for p in cli("list", "pipeline", "-o", "json").json()] == ["copy"]
    assert "new" not in {r["name"] for r in cli("list", "repo", "-o", "json").json()}

    res = cli("update", "pipeline", "-f", spec, "--reprocess")
    assert "queued" not in res.err
    assert cli("inspect", "pipeline", "copy", "-o", "json").json()["version"] == 2
    assert newest_job(cli, "copy")["state"] == "SUCCESS"
    assert newest_job(cli, "copy")["data_processed"] == 1

    # a write is not refused for it: it commits, and the job it starts fails, saying why
    with monkeypatch.context() as m:
        m.setenv("PATH", str(empty))
        process(
            "--sandbox",
            "bwrap",
            "put",
            "file",
            "images@master:/b.txt",
            "-f",
            "-",
            input=b"b\n",
            ok=False,
        )
    assert cli("get", "file", "images@master:/b.txt").out == "b\n"
    job = newest_job(cli, "copy")
    assert job["state"] == "FAILURE" and "bubblewrap (bwrap)" in job["reason"]
