"""Branch triggers, as Pachyderm's: ``create branch repo@b --trigger T [--trigger-size 1MB]
[--trigger-commits N] [--trigger-cron SPEC] [--trigger-all]``.

A triggered branch follows another branch of its repo. When a commit finishes without error
on the branch it follows (a one-off ``put file`` commit, a finished ``start commit``, a job's
output commit), the trigger's conditions are checked in the same transaction: ``size`` (data
added since the triggered branch's head, in go-units' decimal sizes), ``commits`` (commits
since its head), ``rate_limit_spec`` (the next tick of a schedule after its head finished has
passed) — any of them, or all with ``all``. When they hold, the branch moves to that commit
and whatever reads it (a pipeline) gets a job. Triggers chain (``b`` follows ``a``, ``c``
follows ``b``). A ``cron_spec`` trigger moves the branch at each tick instead, while a worker
runs; its first tick follows the head commit's start, so the schedule survives a restart.

Most tests port Pachyderm's own: ``TestTrigger``'s subtests and ``TestTriggerValidation``
(src/server/pfs/server/testing/server_test.go), ``TestPipelineInputTriggerSimple``
(src/server/pachyderm_test.go), and the command sequence of its docs
(build-dags/branch-operations/set-branch-triggers.md), with ``pachctl`` replaced by
``haathi``. Pachyderm's cron and rate-limit tests wait minutes; these tick every few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import haathi
from haathi.client import Client
from haathi.errors import AlreadyExists, InvalidArgument, NotFound
from haathi.meta.database import Database
from haathi.models.info import JobState
from haathi.models.trigger import Trigger
from loopback.waiting import wait_for
from tests.conftest import Cli
from tests.in_process import InProcessServer
from tests.test_store_identity import SINCE_0015

RATE = 3  # seconds: the rate-limit interval (a test's commits without a wait fit inside it)


def head(client: Client, branch: str) -> str | None:
    return client.inspect_branch(branch).head


def put(client: Client, target: str, data: bytes = b"x") -> str:
    """A one-off commit of ``data`` at ``repo@branch:/path``; the branch's new head."""
    client.put_file(target, data)
    return head(client, target.split(":")[0]) or ""


def commit(client: Client, branch: str, path: str, data: bytes) -> str:
    """A commit made with start commit and finish commit; its ID."""
    with client.start_commit(branch) as c:
        c.put_file(path, data)
    return c.id


@contextlib.contextmanager
def worker(client: Client) -> Iterator[None]:
    """Cron triggers fire while a worker runs: a remote client's server runs one; an embedded
    client runs one here, in a thread (``haathi run worker``)."""
    if hasattr(client, "server_api"):  # remote: the server's worker (tests/conftest.py)
        yield
        return
    stop = threading.Event()
    t = threading.Thread(target=client.run_worker, args=(stop,), daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=60)


def staged(client: Client, repo: str, trigger: Trigger | dict[str, Any]) -> None:
    """Pachyderm's set-up: ``repo`` with a branch ``staging`` and ``master`` following it."""
    client.create_repo(repo)
    client.create_branch(f"{repo}@staging")
    client.create_branch(f"{repo}@master", trigger=trigger)


# ---- the docs' command sequence ------------------------------------------------------------


def test_the_docs_command_sequence_runs_with_haathi(cli: Cli) -> None:
    """set-branch-triggers.md, step by step (``dd if=/dev/urandom bs=1M count=1 |`` gives
    1,048,576 bytes: at least 1MB, which is 10^6 bytes as go-units reads it)."""
    cli("create", "repo", "data")
    cli("create", "branch", "data@staging")
    cli("create", "branch", "data@master", "--trigger", "staging", "--trigger-size", "1MB")
    rows = [line.split() for line in cli("list", "branch", "data").out.splitlines()]
    assert rows == [
        ["BRANCH", "HEAD", "TRIGGER"],
        ["master", "-", "staging", "on", "Size(1MB)"],
        ["staging", "-", "-"],
    ]
    cli("put", "file", "data@staging:/file", input=os.urandom(1 << 20))
    rows = [line.split() for line in cli("list", "branch", "data").out.splitlines()]
    staging = rows[2][1]
    assert rows[1] == ["master", staging, "staging", "on", "Size(1MB)"]
    assert rows[2] == ["staging", staging, "-"]
    # "How to manually trigger master": a branch moved by hand keeps its trigger
    cli("put", "file", "data@staging:/small", input=b"tiny")
    cli("create", "branch", "data@master", "--head", "staging")
    master = cli("inspect", "branch", "data@master", "-o", "json").json()
    assert master["head"] == cli("inspect", "branch", "data@staging", "-o", "json").json()["head"]
    assert master["trigger"] == {"branch": "staging", "size": "1MB"}
    assert "Trigger: staging on Size(1MB)" in cli("inspect", "branch", "data@master").out


# ---- TestTrigger -----------------------------------------------------------------------------


@pytest.mark.every_shape
def test_simple(client: Client) -> None:
    """TestTrigger/Simple: a 5-byte commit on staging is at least 1B: master follows, in the
    write's own transaction (nothing runs in between)."""
    staged(client, "test", Trigger("staging", size="1B"))
    new = put(client, "test@staging:/file", b"small")
    assert head(client, "test@master") == new
    assert client.inspect_branch("test@master").trigger == {"branch": "staging", "size": "1B"}
    assert client.inspect_branch("test@staging").trigger is None


def test_size_with_provenance(client: Client) -> None:
    """TestTrigger/SizeWithProvenance, with a pipeline making ``out@staging`` (haathi's
    output branches are written by jobs only): ``out@master`` follows it, and a job's output
    commit fires it."""
    staged(client, "in", Trigger("staging", size="1K"))
    assert [b.name for b in client.list_branch("in")] == ["master", "staging"]
    client.create_pipeline(
        {
            "pipeline": {"name": "out"},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", 'cp "$in" /pfs/out/']},
            "output_branch": "staging",
        }
    )
    client.create_branch("out@master", trigger=Trigger("staging", size="1K"))
    jobs = len(client.list_job(pipeline="out"))

    small = put(client, "in@staging:/file", b"small")  # too small to trigger
    assert head(client, "in@master") != small
    assert len(client.list_job(pipeline="out")) == jobs  # in@master did not move: no job
    assert head(client, "out@master") is None

    big = put(client, "in@staging:/file", b"a" * 1000)  # 1K = 1000 bytes: triggers
    assert head(client, "in@master") == big
    client.wait_commit(f"out@{big}")
    # the output commit extends the set of the commit that fired the trigger
    assert head(client, "out@staging") == big
    assert client.inspect_commit(f"in@{big}").id == big
    # out@staging's new commit (1000 bytes) fires out@master in the job's transaction
    assert head(client, "out@master") == big
    assert client.get_file("out@master:/file") == b"a" * 1000


@pytest.mark.parametrize("every", [1, 2, 3])
def test_count(client: Client, every: int) -> None:
    """TestTrigger/Count1, Count2 and Count3: master moves at every ``every``-th commit on
    staging, one-off ``put file`` commits and finished ``start commit``s alike."""
    staged(client, "count", Trigger("staging", commits=every))
    master = None
    for n in range(1, 5):
        if n % 2:
            new = put(client, f"count@staging:/file{n}", b"foo")
        else:
            new = commit(client, "count@staging", f"/file{n}", b"bar")
        if n % every == 0:
            master = new
        assert head(client, "count@master") == master, f"commit {n}"


def test_or(client: Client) -> None:
    """TestTrigger/Or: any condition fires it (100 bytes, 3 commits, or the rate limit)."""
    staged(
        client, "or", Trigger("staging", rate_limit_spec=f"@every {RATE}s", size="100", commits=3)
    )
    expect = [
        ("file1", 1, False),  # 1 byte, 1 commit: no
        ("file3", 99, True),  # 100 bytes
        ("file4", 1, False),
        ("file5", 1, False),
        ("file6", 1, True),  # the third commit since the last move
        ("file7", 1, False),
    ]
    for name, size, fires in expect:
        before = head(client, "or@master")
        new = put(client, f"or@staging:/{name}", b"a" * size)
        assert head(client, "or@master") == (new if fires else before), name
    time.sleep(RATE + 1)
    new = put(client, "or@staging:/file8", b"a")  # the rate limit's tick has passed
    assert head(client, "or@master") == new


def test_and(client: Client) -> None:
    """TestTrigger/And: with ``all``, every condition must hold."""
    staged(
        client,
        "and",
        Trigger("staging", all=True, rate_limit_spec=f"@every {RATE}s", size="100", commits=3),
    )
    master = None
    for n, (wait, fires) in enumerate(
        [(False, False), (False, False), (True, True), (False, False), (False, False)], 1
    ):
        if wait:
            time.sleep(RATE + 1)
        new = put(client, f"and@staging:/file{n}", b"a" * 100)
        master = new if fires else master
        assert head(client, "and@master") == master, f"file{n}"
    new = put(client, "and@staging:/file6", b"a" * 100)  # 3 commits, 300 bytes: not the time
    assert head(client, "and@master") == master
    time.sleep(RATE + 1)
    new = put(client, "and@staging:/file7", b"a" * 100)
    assert head(client, "and@master") == new


def test_chain(client: Client) -> None:
    """TestTrigger/Chain: b follows a (100 bytes), c follows b (200 bytes); d follows z, out
    of the chain, and never moves."""
    client.create_repo("chain")
    client.create_branch("chain@a")
    client.create_branch("chain@b", trigger=Trigger("a", size="100"))
    client.create_branch("chain@c", trigger=Trigger("b", size="200"))
    client.create_branch("chain@z")
    client.create_branch("chain@d", trigger=Trigger("z", size="100"))
    moves = [(), ("b",), (), ("b", "c"), ()]  # what each 50-byte commit on a moves
    for n, moved in enumerate(moves, 1):
        new = put(client, f"chain@a:/file{n}", b"a" * 50)
        for branch in "bc":
            assert (head(client, f"chain@{branch}") == new) == (branch in moved), (n, branch)
        assert head(client, "chain@d") is None


def test_a_chain_fires_in_one_transaction_and_the_pipelines_reading_it_run_once_each(
    client: Client,
) -> None:
    """Both branches of a chain move with the commit; a pipeline reading the last one runs a
    job for that commit's set."""
    client.create_repo("data")
    client.create_branch("data@raw")
    client.create_branch("data@staging", trigger=Trigger("raw", commits=1))
    client.create_branch("data@master", trigger=Trigger("staging", commits=1))
    client.create_pipeline(
        {
            "pipeline": {"name": "copy"},
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", 'cp "$data" /pfs/out/']},
        }
    )
    new = put(client, "data@raw:/a", b"A")
    assert head(client, "data@staging") == head(client, "data@master") == new
    assert client.wait_commit(f"copy@{new}")[0].error is None
    assert client.get_file("copy@master:/a") == b"A"


def test_branch_movement(client: Client) -> None:
    """TestTrigger/BranchMovement: moving the branch a trigger follows by hand (create
    branch --head) fires nothing; only a commit finishing does."""
    client.create_repo("bm")
    client.create_branch("bm@a")
    client.create_branch("bm@b")
    client.create_branch("bm@c", trigger=Trigger("b", size="100"))
    for n in range(1, 4):
        a = put(client, f"bm@a:/file{n}", b"a" * 50)
        client.create_branch("bm@b", "a")
        assert head(client, "bm@b") == a
        assert head(client, "bm@c") is None


def test_cron(client: Client) -> None:
    """TestTrigger/Cron: while a worker runs, master moves to staging's head at each tick;
    a tick with nothing new changes nothing (no commit, no job downstream)."""
    staged(client, "cron", Trigger("staging", cron_spec="@every 2s"))
    client.create_pipeline(
        {
            "pipeline": {"name": "copy"},
            "input": {"pfs": {"repo": "cron", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", 'cp "$cron" /pfs/out/']},
        }
    )
    first = put(client, "cron@staging:/file1", b"foo")
    assert head(client, "cron@master") is None  # a cron trigger waits for its tick
    with worker(client):
        wait_for(lambda: head(client, "cron@master") == first, what="the first tick")
        wait_for(lambda: client.list_job(pipeline="copy")[0].id == first, what="its job")
        jobs = [(j.id, j.state) for j in client.list_job(pipeline="copy")]
        wait_for(lambda: client.list_job(pipeline="copy")[0].state == JobState.SUCCESS)
        time.sleep(4.5)  # two ticks with nothing new
        assert head(client, "cron@master") == first
        assert [j.id for j in client.list_job(pipeline="copy")] == [j for j, _ in jobs]
        second = put(client, "cron@staging:/file2", b"bar")
        wait_for(lambda: head(client, "cron@master") == second, what="the next tick")
        wait_for(lambda: client.list_job(pipeline="copy")[0].id == second, what="its job")
        wait_for(lambda: client.list_job(pipeline="copy")[0].state == JobState.SUCCESS)
    assert client.get_file("copy@master:/file2") == b"bar"


def test_cron_update(client: Client) -> None:
    """TestTrigger/CronUpdate: creating the branch again with another trigger replaces its
    schedule (and keeps its head)."""
    staged(client, "cu", Trigger("staging", cron_spec="@every 2s"))
    client.create_branch("cu@master", trigger=Trigger("staging", cron_spec="@yearly"))
    new = put(client, "cu@staging:/file1", b"foo")
    with worker(client):
        time.sleep(4)
        assert head(client, "cu@master") is None
        client.create_branch("cu@master", trigger={"branch": "staging", "cron_spec": "@every 2s"})
        wait_for(lambda: head(client, "cu@master") == new, what="the tick")
    assert client.inspect_branch("cu@master").trigger == {
        "branch": "staging",
        "cron_spec": "@every 2s",
    }


# ---- the cron schedule survives a restart ------------------------------------------------------


def _worker(store: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "haathi", "run", "worker"],
        env=dict(os.environ, HAATHI_ADDRESS=str(store)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _heads(cli: Cli) -> dict[str, str | None]:
    return {b["name"]: b["head"] for b in cli("list", "branch", "data", "-o", "json").json()}


def test_a_cron_trigger_survives_a_worker_restart(cli: Cli) -> None:
    """The clock is the head commit's start time, not the worker's memory: a worker killed
    outright (SIGKILL) fires nothing more, and a new one fires at the first tick after the
    head's start (here at once: it is past)."""
    cli("create", "repo", "data")
    cli("create", "branch", "data@staging")
    cli("create", "branch", "data@master", "-t", "staging", "--trigger-cron", "@every 3s")
    cli("put", "file", "data@staging:/a", input=b"A")
    first = _heads(cli)["staging"]
    w = _worker(cli.store)
    try:
        wait_for(lambda: _heads(cli)["master"] == first, what="the first worker's tick")
    finally:
        os.killpg(w.pid, signal.SIGKILL)
        w.wait()
    cli("put", "file", "data@staging:/b", input=b"B")
    second = _heads(cli)["staging"]
    time.sleep(4)  # a tick is due, but no worker runs
    assert _heads(cli)["master"] == first
    w = _worker(cli.store)
    try:
        wait_for(lambda: _heads(cli)["master"] == second, what="the new worker's tick")
    finally:
        os.killpg(w.pid, signal.SIGINT)
        w.wait(timeout=60)
    assert cli("get", "file", "data@master:/b").raw == b"B"


# ---- what a trigger keeps, and where one cannot be -------------------------------------------


def test_create_branch_keeps_the_trigger_and_a_new_trigger_keeps_the_head(client: Client) -> None:
    """As Pachyderm's: ``--head`` without trigger flags keeps the trigger; a trigger given
    to an existing branch replaces its trigger and keeps its head; clearing one means
    deleting the branch and creating it again."""
    staged(client, "keep", Trigger("staging", commits=1))
    first = put(client, "keep@staging:/a")
    second = put(client, "keep@staging:/b")
    client.create_branch("keep@master", first)
    assert client.inspect_branch("keep@master").trigger == {"branch": "staging", "commits": 1}
    client.create_branch("keep@master", trigger=Trigger("staging", size="1MB"))
    info = client.inspect_branch("keep@master")
    assert (info.head, info.trigger) == (first, {"branch": "staging", "size": "1MB"})
    assert second != first
    with pytest.raises(AlreadyExists):  # neither a head nor a trigger: nothing to change
        client.create_branch("keep@master")
    client.delete_branch("keep@master")
    client.create_branch("keep@master", first)
    assert client.inspect_branch("keep@master").trigger is None


def test_a_pipelines_output_branch_cannot_have_a_trigger(client: Client) -> None:
    """Pachyderm: "a branch cannot have both provenance and a trigger"."""
    client.create_repo("data")
    client.create_pipeline(
        {
            "pipeline": {"name": "copy"},
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"cmd": ["true"]},
        }
    )
    client.create_branch("copy@staging")
    with pytest.raises(InvalidArgument, match="both provenance and a trigger"):
        client.create_branch("copy@master", trigger=Trigger("staging", commits=1))
    assert client.inspect_branch("copy@master").trigger is None


def test_a_failed_commit_fires_nothing(client: Client) -> None:
    """A job that fails finishes its output commit with an error: as in Pachyderm, a commit
    with an error sets no trigger off."""
    client.create_repo("data")
    client.create_pipeline(
        {
            "pipeline": {"name": "flaky"},
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", 'grep -q ok "$data" && cp "$data" /pfs/out/']},
            "datum_tries": 1,
        }
    )
    client.create_branch("flaky@release", trigger=Trigger("master", commits=1))
    bad = put(client, "data@master:/a", b"no")
    assert client.wait_commit(f"flaky@{bad}")[0].error
    assert head(client, "flaky@release") != bad
    client.delete_file("data@master:/a")
    good = put(client, "data@master:/b", b"ok")
    assert client.wait_commit(f"flaky@{good}")[0].error is None
    assert head(client, "flaky@release") == good


# ---- TestTriggerValidation and bad input -------------------------------------------------------


def test_trigger_validation(client: Client) -> None:
    """TestTriggerValidation, and the rest of Pachyderm's ``validateTrigger``: each refused
    with a clear error, and nothing changed (no branch made, no trigger set)."""
    client.create_repo("repo")
    client.create_branch("repo@master")
    client.create_branch("repo@a")
    client.create_branch("repo@b", trigger=Trigger("a", size="1K"))
    cases: list[tuple[str, Trigger | dict[str, Any], type[Exception], str]] = [
        ("master", Trigger("", size="1K"), InvalidArgument, "must specify a branch"),
        ("master", Trigger("master", size="1K"), InvalidArgument, "cannot form a loop"),
        ("trigger", Trigger("master", size="this is not a size"), InvalidArgument, "size"),
        ("trigger", Trigger("master", size="1XB"), InvalidArgument, "invalid trigger size"),
        ("trigger", Trigger("master", commits=-1), InvalidArgument, "negative number"),
        ("a", Trigger("b", size="1K"), InvalidArgument, "cannot form a loop"),
        ("trigger", Trigger("master", cron_spec="this is not a cron spec"), InvalidArgument,
         "invalid trigger cron spec"),
        ("trigger", Trigger("master", cron_spec="@every 100ms"), InvalidArgument, "at least 1s"),
        ("trigger", Trigger("master", rate_limit_spec="nope"), InvalidArgument,
         "invalid trigger rate limit spec"),
        ("trigger", Trigger("staging", size="1K"), NotFound, "branch staging not found"),
        ("trigger", Trigger("bad name!", size="1K"), InvalidArgument, "bad name"),
        ("trigger", {"branch": "master", "sise": "1K"}, InvalidArgument, "sise"),
        ("trigger", {"branch": "master", "commits": "ten"}, InvalidArgument, "integer"),
    ]  # fmt: skip
    before = [(b.name, b.head, b.trigger) for b in client.list_branch("repo")]
    for branch, trigger, error, message in cases:
        with pytest.raises(error, match=message):
            client.create_branch(f"repo@{branch}", trigger=trigger)
    assert [(b.name, b.head, b.trigger) for b in client.list_branch("repo")] == before


def test_bad_input_on_the_command_line_is_one_line_and_changes_nothing(cli: Cli) -> None:
    cli("create", "repo", "data")
    cli("create", "branch", "data@staging")
    cli("create", "branch", "data@b", "-t", "staging", "--trigger-commits", "1")
    cases = [
        (["--trigger-size", "1MB"], 2, "specify a branch with --trigger"),
        (["--trigger-all"], 2, "specify a branch with --trigger"),
        (["-t", "staging", "--trigger-size", "1XB"], 2, "invalid trigger size '1XB'"),
        (["-t", "staging", "--trigger-cron", "bad"], 2, "invalid trigger cron spec"),
        (["-t", "staging", "--trigger-cron", "@every 100ms"], 2, "at least 1s"),
        (["-t", "staging", "--trigger-commits", "-1"], 2, "negative number of commits"),
        (["-t", "nope", "--trigger-size", "1"], 3, "branch nope not found in repo data"),
    ]
    for args, code, message in cases:
        res = cli.fails("create", "branch", "data@master", *args)
        assert (res.code, message in res.err) == (code, True), res.err
    res = cli.fails("create", "branch", "data@staging", "-t", "b", "--trigger-size", "1")
    assert (res.code, "triggers cannot form a loop" in res.err) == (2, True)
    assert [b["name"] for b in cli("list", "branch", "data", "-o", "json").json()] == [
        "b",
        "staging",
    ]
    assert cli("inspect", "branch", "data@staging", "-o", "json").json()["trigger"] is None


def test_the_route_takes_a_trigger_and_answers_bad_ones_4xx(app_server: InProcessServer) -> None:
    with httpx.Client(transport=app_server.transport, base_url=app_server.url) as h:
        assert h.post("/v1/repos", json={"name": "data"}).status_code == 201
        assert h.post("/v1/repos/data/branches", json={"branch": "staging"}).status_code == 201
        ok = h.post(
            "/v1/repos/data/branches",
            json={"branch": "master", "trigger": {"branch": "staging", "size": "1MB"}},
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["trigger"] == {"branch": "staging", "size": "1MB"}
        for trigger, status in [
            ({"branch": "staging", "size": "1XB"}, 400),
            ({"branch": "staging", "commits": -1}, 400),
            ({"branch": "staging", "cronSpec": "@every 100ms"}, 400),
            ({"size": "1MB"}, 400),
            ({"branch": "nope", "size": "1MB"}, 404),
            ({"branch": "staging", "what": 1}, 400),
        ]:
            r = h.post("/v1/repos/data/branches", json={"branch": "x", "trigger": trigger})
            assert r.status_code == status, (trigger, r.text)
        names = [b["name"] for b in h.get("/v1/repos/data/branches").json()]
        assert names == ["master", "staging"]


# ---- pipeline inputs with a trigger ------------------------------------------------------------


def test_pipeline_input_trigger_simple(client: Client) -> None:
    """TestPipelineInputTriggerSimple: an input branch with a trigger, created with the
    pipeline; a commit on the branch it follows fires it, and the pipeline runs. (haathi has
    no empty commits: toMove starts as a branch with no head, not at master's empty one.)"""
    client.create_repo("data")
    client.create_branch("data@master")
    client.create_branch("data@toMove")
    client.create_pipeline(
        {
            "pipeline": {"name": "pipeline"},
            "transform": {"cmd": ["bash"], "stdin": ["cp /pfs/trigger/* /pfs/out/"]},
            "input": {
                "pfs": {
                    "name": "trigger",
                    "repo": "data",
                    "branch": "trigger",
                    "glob": "/*",
                    "trigger": {"branch": "toMove", "commits": 1},
                }
            },
        }
    )
    assert client.inspect_branch("data@trigger").trigger == {"branch": "toMove", "commits": 1}
    new = put(client, "data@toMove:/foo", b"bar")
    client.wait_commit(f"pipeline@{new}")
    assert [f.path for f in client.list_file("data@trigger:/")] == ["/foo"]
    assert client.get_file("pipeline@master:/foo") == b"bar"


def test_a_pipeline_runs_only_when_its_input_trigger_fires(client: Client) -> None:
    """An input with a trigger and no branch reads ``<pipeline>-trigger-<n>`` (n counting per
    repo from 1, as Pachyderm's), which follows ``master`` unless the trigger names another
    branch; the spec keeps both. Jobs run only for the commits that fire it."""
    client.create_repo("data")
    client.create_repo("labels")
    spec = {
        "pipeline": {"name": "batch"},
        "input": {
            "union": [
                {"pfs": {"repo": "data", "glob": "/", "trigger": {"size": "1K"}}},
                {"pfs": {"name": "again", "repo": "data", "glob": "/", "trigger": {
                    "branch": "master", "commits": 100}}},
                {"pfs": {"repo": "labels", "glob": "/", "trigger": {"cronSpec": "@daily"}}},
            ]
        },
        "transform": {"cmd": ["sh", "-c", "ls /pfs/data > /pfs/out/seen"]},
    }  # fmt: skip
    client.create_pipeline(spec)
    pfs = [i["pfs"] for i in client.inspect_pipeline("batch").spec["input"]["union"]]
    assert [(p["branch"], p["trigger"]) for p in pfs] == [
        ("batch-trigger-1", {"branch": "master", "size": "1K"}),
        ("batch-trigger-2", {"branch": "master", "commits": 100}),
        ("batch-trigger-1", {"branch": "master", "cron_spec": "@daily"}),
    ]
    assert client.inspect_pipeline("batch").inputs == (
        "data@batch-trigger-1",
        "data@batch-trigger-2",
        "labels@batch-trigger-1",
    )
    assert head(client, "labels@master") is None  # made, empty, to be followed
    jobs = len(client.list_job(pipeline="batch"))
    for n in range(3):  # 400 bytes each: the third passes 1K
        new = put(client, f"data@master:/f{n}", b"a" * 400)
        fired = head(client, "data@batch-trigger-1") == new
        assert fired == (n == 2)
        assert len(client.list_job(pipeline="batch")) == jobs + fired
    assert client.list_job(pipeline="batch")[0].id == new
    assert client.wait_commit(f"batch@{new}")[0].error is None
    # each input read its own branch: "again" (batch-trigger-2) has no head yet, no datum
    assert [d.inputs[0]["branch"] for d in client.list_datum(f"batch@{new}")] == ["batch-trigger-1"]
    assert client.get_file("batch@master:/seen") == b"f0\nf1\nf2\n"
    client.update_pipeline(spec)  # the triggers stay, and the branches their heads
    assert head(client, "data@batch-trigger-1") == new


def test_a_pipeline_reading_two_branches_of_a_repo_reads_each_ones_head(client: Client) -> None:
    """A triggered branch, like one moved with ``create branch --head``, points at commits
    made on another branch: an output commit records which input branch each input commit
    was the head of, and the job reads each input at its own branch's head."""
    client.create_repo("data")
    first = put(client, "data@master:/a", b"A")
    put(client, "data@master:/b", b"B")
    client.create_branch("data@old", first)
    client.create_pipeline(
        {
            "pipeline": {"name": "both"},
            "input": {
                "cross": [
                    {"pfs": {"name": "now", "repo": "data", "glob": "/"}},
                    {"pfs": {"name": "then", "repo": "data", "branch": "old", "glob": "/"}},
                ]
            },
            "transform": {
                "cmd": ["sh", "-c", "ls /pfs/now > /pfs/out/now; ls /pfs/then > /pfs/out/then"]
            },
        }
    )
    assert client.get_file("both@master:/now") == b"a\nb\n"
    assert client.get_file("both@master:/then") == b"a\n"


def test_an_input_trigger_needs_a_valid_trigger_and_nothing_is_created(client: Client) -> None:
    client.create_repo("data")
    bad = [
        ({"size": "1XB"}, "invalid trigger size"),
        ({"commits": -1}, "negative number of commits"),
        ({"branch": "master", "cron_spec": "@every 100ms"}, "at least 1s"),
        ({"branch": "p-trigger-1", "size": "1"}, "cannot form a loop"),
        ({"sise": "1"}, "sise"),
    ]
    for trigger, message in bad:
        spec = {
            "pipeline": {"name": "p"},
            "input": {"pfs": {"repo": "data", "glob": "/*", "trigger": trigger}},
            "transform": {"cmd": ["true"]},
        }
        with pytest.raises(InvalidArgument, match=message):
            client.create_pipeline(spec)
    assert client.list_pipeline() == []
    assert client.list_branch("data") == []


def test_a_trigger_on_an_output_branch_is_fired_by_job_output_commits(client: Client) -> None:
    """A pipeline reading another pipeline's output through a trigger (every 2 commits): each
    upstream job's output commit finishing is a commit on the branch it follows."""
    client.create_repo("data")
    client.create_pipeline(
        {
            "pipeline": {"name": "first"},
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", 'cp "$data" /pfs/out/']},
        }
    )
    client.create_pipeline(
        {
            "pipeline": {"name": "second"},
            "input": {"pfs": {"repo": "first", "glob": "/", "trigger": {"commits": 2}}},
            "transform": {"cmd": ["sh", "-c", "ls /pfs/first > /pfs/out/seen"]},
        }
    )
    jobs = len(client.list_job(pipeline="second"))
    ran = []
    for n in range(4):
        new = put(client, f"data@master:/f{n}", b"x")
        client.wait_commit(f"first@{new}")
        if head(client, "first@second-trigger-1") == new:
            ran.append(n)
            assert client.wait_commit(f"second@{new}")[-1].error is None
    # first@master's first commit is its job at creation (on no data): f0's is the second
    assert ran == [0, 2]
    assert len(client.list_job(pipeline="second")) == jobs + 2
    assert client.get_file("second@master:/seen") == b"f0\nf1\nf2\n"  # not f3: not yet


# ---- stores made before triggers ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # (it edits meta.db)
def test_a_store_made_before_triggers_gets_the_columns(store: Path) -> None:
    """Migration 0013: branches get a trigger column, and output commits record which input
    branches each input commit was the head of; the jobs of output commits made before then
    find their inputs as before (by the branch each input commit was made on)."""
    spec = {
        "pipeline": {"name": "copy"},
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", 'cp "$data" /pfs/out/']},
    }
    with haathi.connect(str(store), run_jobs=False) as c:
        c.create_repo("data")
        c.create_branch("data@staging")
        c.put_file("data@master:/a", b"A")
        c.create_pipeline(spec)
    db = Database(f"sqlite:///{store / 'meta.db'}")
    with db.engine.begin() as conn:
        for sql in SINCE_0015:  # (and what the migrations after 0012 add)
            conn.execute(text(sql))
        conn.execute(text("ALTER TABLE branches DROP COLUMN trigger"))
        conn.execute(text("ALTER TABLE commit_provenance DROP COLUMN from_branches"))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN egress"))  # what 0015 adds
        conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
    db.dispose()
    with haathi.connect(str(store)) as c:
        c.run_jobs()  # the job queued before the migration reads master's head
        assert c.get_file("copy@master:/a") == b"A"
        assert c.inspect_branch("data@staging").trigger is None
        c.create_branch("data@master", trigger=Trigger("staging", commits=1))
        new = put(c, "data@staging:/b", b"B")
        assert head(c, "data@master") == new
        assert c.get_file("copy@master:/b") == b"B"


def test_list_branch_json(cli: Cli) -> None:
    cli("create", "repo", "data")
    cli("create", "branch", "data@staging")
    cli("create", "branch", "data@master", "-t", "staging", "--trigger-cron", "@every 1h")
    cli("create", "branch", "data@rare", "-t", "staging", "--trigger-size", "100M",
        "--trigger-commits", "10", "--trigger-all")  # fmt: skip
    out = {
        b["name"]: b["trigger"] for b in json.loads(cli("list", "branch", "data", "-o", "json").out)
    }
    assert out == {
        "master": {"branch": "staging", "cron_spec": "@every 1h"},
        "rare": {"branch": "staging", "size": "100M", "commits": 10, "all": True},
        "staging": None,
    }
    table = cli("list", "branch", "data").out
    assert "staging on Cron(@every 1h)" in table
    assert "staging on Size(100M) and Commits(10)" in table
