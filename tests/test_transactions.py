"""Transactions (Pachyderm's ``start transaction`` ... ``finish transaction``): the requests
added while one is active are checked by a dry run as they come and applied together at
finish, or not at all; branch moves are propagated once at the end, so a pipeline over
several moved inputs runs one job, whose output commit names all of their new heads.

The CLI tests replay Pachyderm's own (``src/server/transaction/cmds/cmds_test.go``
TestTransaction, TestDeleteActiveTransaction, TestDeleteInactiveTransaction; the steps of
``examples/transactions/README.md`` with a shell transform instead of sklearn, which
``tests/test_pipeline_examples_run.py`` runs as they are, with the example's own spec and
data), and the Client tests ``pachyderm_test.go`` TestUpdateMultiplePipelinesInTransaction,
with ``pachctl`` replaced by ``haathi``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from tests.conftest import Cli
from tests.in_process import InProcessServer

pytestmark = pytest.mark.usefixtures("own_config")  # (tests/conftest.py)


def copy_spec(name: str, *repos: str) -> dict[str, Any]:
    """A pipeline copying every file of ``repos`` (crossed, if several) into its output."""
    leaves = [{"pfs": {"repo": r, "glob": "/"}} for r in repos]
    sources = " ".join(f"/pfs/{r}/." for r in repos)
    return {
        "pipeline": {"name": name},
        "input": leaves[0] if len(leaves) == 1 else {"cross": leaves},
        "transform": {"cmd": ["sh", "-c", f"cp -r {sources} /pfs/out/"]},
    }


def last_word(text: str) -> str:
    return text.split()[-1].strip('"')


def state(c: Client) -> Any:
    """Every repo with its branches (and heads) and commits, every pipeline and job."""
    return (
        [(r.name, r.branches) for r in c.list_repo(all_projects=True)],
        {
            r.name: (
                [(b.name, b.head) for b in c.list_branch(r.name)],
                [(x.id, x.finished is not None) for x in c.list_commit(r.name)],
            )
            for r in c.list_repo(all_projects=True)
        },
        [(p.name, p.version) for p in c.list_pipeline(all_projects=True)],
        sorted((j.pipeline, j.id) for j in c.list_job(all_projects=True)),
    )


# ---- the CLI, as pachctl's tests and example run it ------------------------------------------


def test_transaction_as_pachctl(cli: Cli) -> None:
    """TestTransaction: requests added to a started transaction take effect at finish only.
    (Pachyderm then runs ``inspect commit R@B``: its new branch gets an empty commit, a
    haathi branch has no head until its first commit, so ``inspect branch`` here.)"""
    started = cli("start", "transaction").out
    assert re.fullmatch(r'started new transaction: "[0-9a-f]{32}"\n', started)
    txn = last_word(started)
    assert cli("create", "repo", "r").out == f"Added to transaction: {txn}\n"
    out = cli("create", "branch", "r@b").out
    assert last_word(out) == txn
    assert cli.fails("inspect", "repo", "r").code == 3  # not yet
    shown = cli("inspect", "transaction").out.splitlines()
    assert shown[0] == f"ID: {txn}" and shown[1].startswith("Started: ")
    assert shown[2:] == ["Requests:", "  create repo r", "  create branch r@b"]
    [row] = cli("list", "transaction").out.splitlines()[1:]
    assert row.split()[0] == txn and row.split()[-1] == "2"
    done = cli("finish", "transaction", txn).out
    assert done == f"Completed transaction with 2 requests: {txn}\n"
    cli("inspect", "repo", "r")
    assert cli("inspect", "branch", "r@b", "-o", "json").json()["head"] is None
    assert cli("list", "transaction", "-o", "json").json() == []
    assert cli("create", "repo", "s").out == ""  # no active transaction: it acts


def test_delete_active_and_inactive_transactions(cli: Cli) -> None:
    """TestDeleteActiveTransaction and TestDeleteInactiveTransaction, with stop and resume."""
    txn = last_word(cli("start", "transaction").out)
    cli("delete", "transaction")
    gone = cli.fails("inspect", "transaction", txn)
    assert gone.code == 3 and gone.err.strip() == f"error: transaction {txn} not found"

    txn = last_word(cli("start", "transaction").out)
    cli("create", "repo", "r")
    assert cli("stop", "transaction").out == f"Cleared active transaction: {txn}\n"
    assert cli("create", "repo", "s").out == ""  # acts again
    assert cli("resume", "transaction", txn).out == (
        f"Resuming existing transaction with 1 requests: {txn}\n"
    )
    assert cli("create", "repo", "t").out == f"Added to transaction: {txn}\n"
    cli("stop", "transaction")
    cli("delete", "transaction", txn)
    assert "not found" in cli.fails("inspect", "transaction", txn).err
    assert [r["name"] for r in cli("list", "repo", "-o", "json").json()] == ["s"]


def test_transaction_commands_refuse_bad_input(cli: Cli) -> None:
    """No active transaction: FailedPrecondition (pachctl's message); one already active:
    start refuses; an unknown ID: NotFound; a request whose dry run fails is not added."""
    for verb in ("stop", "finish", "delete", "inspect"):
        res = cli.fails(verb, "transaction")
        assert (res.code, res.err.strip()) == (6, "error: no active transaction")
    unknown = "0" * 32
    for args in (("finish",), ("delete",), ("inspect",), ("resume",)):
        res = cli.fails(*args, "transaction", unknown)
        assert (res.code, res.err.strip()) == (3, f"error: transaction {unknown} not found")
    txn = last_word(cli("start", "transaction").out)
    again = cli.fails("start", "transaction")
    assert again.code == 6 and again.err.strip() == (
        f'error: cannot start a new transaction, since transaction with ID "{txn}" already exists'
    )
    missing = cli.fails("create", "branch", "nope@master")
    assert missing.code == 3
    assert missing.err.strip() == (f"error: repo nope not found (not added to transaction {txn})")
    cli("create", "repo", "r")
    cli("start", "commit", "r@master")
    twice = cli.fails("start", "commit", "r@dev")  # the commits of a transaction take its ID
    assert twice.code == 4 and f"repo r already has commit {txn}" in twice.err
    assert cli("inspect", "transaction").out.splitlines()[3:] == [
        "  create repo r",
        f"  start commit r@master ({txn})",
    ]


def test_the_transactions_example(cli: Cli, tmp_path: Path) -> None:
    """examples/transactions/README.md: a ``model`` pipeline crosses ``raw_data`` with two
    sets of parameters; one transaction starts a commit in both repos, so the pipeline runs
    ONE job for the pair, waiting until both commits are finished (sklearn's training swapped
    for a line count: the example itself runs in test_pipeline_examples_run.py)."""
    for name, values in (("c_parameters", "0.031\n0.125\n"), ("gamma_parameters", "0.001\n")):
        folder = tmp_path / name
        folder.mkdir()
        for i, value in enumerate(values.splitlines()):
            (folder / f"x{i}").write_text(value + "\n")
    cli("create", "repo", "raw_data")
    cli("create", "repo", "parameters")
    cli(
        "put", "file", "-r", "parameters@master:/c_parameters", "-f", str(tmp_path / "c_parameters")
    )
    cli(
        "put", "file", "-r", "parameters@master:/gamma_parameters",
        "-f", str(tmp_path / "gamma_parameters"),
    )  # fmt: skip
    model = {
        "pipeline": {"name": "model"},
        "transform": {
            "cmd": ["sh"],
            "stdin": [
                "for cf in /pfs/c-parameters/c_parameters/*", "do",
                "for gf in /pfs/gamma-parameters/gamma_parameters/*", "do",
                "cparam=`cat $cf`", "gammaparam=`cat $gf`",
                "wc -l < /pfs/raw_data/iris.csv > /pfs/out/model_C${cparam}_G${gammaparam}.txt",
                "done", "done",
            ],
        },
        "parallelism_spec": {"constant": 1},
        "input": {
            "cross": [
                {"pfs": {"repo": "raw_data", "glob": "/iris.csv"}},
                {"pfs": {"name": "c-parameters", "repo": "parameters", "glob": "/c_parameters/*"}},
                {"pfs": {"name": "gamma-parameters", "repo": "parameters",
                         "glob": "/gamma_parameters/*"}},
            ]
        },
    }  # fmt: skip
    cli("create", "pipeline", "-f", "-", input=json.dumps(model).encode())
    txn = last_word(cli("start", "transaction").out)
    for repo in ("raw_data", "parameters"):
        said = cli("start", "commit", f"{repo}@master").out
        assert said == f"Added to transaction: {txn}\n{txn}\n"  # its commit has its ID
    assert cli("finish", "transaction").out.startswith(
        f"Completed transaction with 2 requests: {txn}\n"
    )
    jobs = cli("list", "job", "-p", "model", "-o", "json").json()
    assert [(j["id"], j["state"]) for j in jobs[:1]] == [(txn, "CREATED")]  # waits for both
    assert [j["state"] for j in jobs[1:]] == ["SUCCESS"]  # the first job
    cli("put", "file", "raw_data@master:iris.csv", "-f", "-", input=b"5.1,3.5\n4.9,3.0\n")
    cli("finish", "commit", "raw_data@master")
    assert cli("list", "job", "-p", "model", "-o", "json").json()[0]["state"] == "CREATED"
    cli("finish", "commit", "parameters@master")
    [job] = cli("list", "job", txn, "-o", "json").json()  # the set's one job
    assert (job["pipeline"], job["state"], job["data_processed"]) == ("model", "SUCCESS", 2)
    assert sorted(job["inputs"]) == [f"parameters@{txn}", f"raw_data@{txn}"]
    files = [f["path"] for f in cli("list", "file", "model@master:/", "-o", "json").json()]
    assert files == ["/model_C0.031_G0.001.txt", "/model_C0.125_G0.001.txt"]
    assert cli("get", "file", "model@master:/model_C0.031_G0.001.txt").out.strip() == "2"


# ---- the Client ------------------------------------------------------------------------------


@pytest.mark.every_shape
def test_update_multiple_pipelines_in_a_transaction(client: Client) -> None:
    """TestUpdateMultiplePipelinesInTransaction: B reads A's output; both are created in one
    transaction, then both updated in one: B gets one commit (one job) per transaction."""
    client.create_repo("in")
    client.put_file("in@master:/foo", b"bar")
    with client.transaction() as txn:
        assert client.create_pipeline(copy_spec("A", "in")) == [txn.id]
        client.create_pipeline(copy_spec("B", "A"))
        assert client.list_pipeline() == []  # nothing yet
    assert client.get_file("B@master:/foo") == b"bar"
    with client.transaction() as second:
        client.update_pipeline(copy_spec("A", "in"))
        client.update_pipeline(copy_spec("B", "A"))
    assert [c.id for c in client.list_commit("B")] == [second.id, txn.id]
    assert [(j.id, j.state.value) for j in client.list_job("B")] == [
        (second.id, "SUCCESS"),
        (txn.id, "SUCCESS"),
    ]
    [b] = [c for c in client.list_commit(second.id) if c.repo == "B"]
    assert client.inspect_commit(f"B@{b.id}").provenance == (f"A@{second.id}",)
    assert client.list_transaction() == []


def test_outputs_started_together_are_made_upstream_first(client: Client) -> None:
    """``x`` is made before ``y``; one transaction updates both, ``x`` now reading ``y``'s
    output: ``y``'s commit is made first, so ``x``'s names it (not ``y``'s head before)."""
    client.create_repo("in")
    client.put_file("in@master:/f", b"1")
    client.create_pipeline(copy_spec("x", "in"))
    client.create_pipeline(copy_spec("y", "in"))
    with client.transaction() as txn:
        client.update_pipeline(copy_spec("x", "y"))
        client.update_pipeline(copy_spec("y", "in"))
    assert client.inspect_commit(f"x@{txn.id}").provenance == (f"y@{txn.id}",)
    assert client.get_file("x@master:/f") == b"1"


@pytest.mark.every_backend
def test_moves_in_one_transaction_make_one_job_over_all_new_heads(client: Client) -> None:
    """A pipeline crossing ``a`` and ``b``: two branch moves outside a transaction start two
    jobs; inside one, a single job whose output commit is provenant on both new heads (and
    has the transaction's ID). A trigger fired by a ``finish commit`` in the transaction is
    propagated at its end too."""
    for repo in ("a", "b"):
        client.create_repo(repo)
        client.put_file(f"{repo}@dev:/{repo}1", repo.encode())
        client.create_branch(f"{repo}@master", "dev")
    client.create_pipeline(copy_spec("p", "a", "b"))
    heads = {r: client.put_file(f"{r}@dev:/{r}2", b"2") for r in ("a", "b")}
    jobs_before = len(client.list_job("p"))
    with client.transaction() as txn:
        branch = client.create_branch("a@master", "dev")
        assert (branch.name, branch.head) == ("master", heads["a"])  # as the dry run saw it
        client.create_branch("b@master", "dev")
    [job] = client.list_job(job=txn.id)
    assert job.pipeline == "p" and len(client.list_job("p")) == jobs_before + 1
    out = client.inspect_commit(f"p@{txn.id}")
    assert sorted(out.provenance) == [f"a@{heads['a']}", f"b@{heads['b']}"]
    assert sorted(f.path for f in client.list_file("p@master:/")) == ["/a1", "/a2", "/b1", "/b2"]

    client.create_branch("a@staging", "dev")
    client.create_branch("a@master", trigger={"branch": "staging", "commits": 1})
    with client.transaction() as txn:
        commit = client.start_commit("a@staging")
        assert (commit.id, commit.info.finished) == (txn.id, None)
        client.finish_commit("a@staging")  # a@master follows: fired in the transaction
        client.create_branch("b@master", "dev~1")
    [job] = client.list_job(job=txn.id)
    assert job.pipeline == "p"
    assert client.inspect_branch("a@master").head == txn.id
    prov = sorted(client.inspect_commit(f"p@{txn.id}").provenance)
    assert prov == [f"a@{txn.id}", f"b@{client.inspect_commit('b@dev~1').id}"]


def test_a_conflicting_finish_applies_nothing(client: Client, store: Path) -> None:
    """A request that fails at finish (another client created the repo meanwhile) fails the
    whole transaction with its own error class, naming it: none of the others is applied
    (no repo, branch, commit, job), and the transaction stays, to be fixed or deleted."""
    client.create_repo("data")
    first = client.put_file("data@master:/f", b"1")
    client.create_pipeline(copy_spec("copy", "data"))
    with pytest.raises(AlreadyExists) as raised, client.transaction() as txn:
        client.create_repo("x")
        client.start_commit("data@master")
        client.create_branch("data@feature", "master")
        client.create_repo("y")
        with haathi.connect(str(store)) as other:
            other.create_repo("y")
        before = state(client)
    assert str(raised.value) == (
        f"transaction {txn.id} not applied: request 4 of 4 (create repo y): repo y already exists"
    )
    assert state(client) == before  # no repo x, no branch feature, master's head as it was
    assert client.inspect_branch("data@master").head == first
    assert client.inspect_transaction(txn.id).describe() == [
        "  create repo x",
        f"  start commit data@master ({txn.id})",
        "  create branch data@feature",
        "  create repo y",
    ]
    client.delete_transaction(txn.id)
    assert client.list_transaction() == []
    with pytest.raises(NotFound, match=f"transaction {txn.id} not found"):
        client.finish_transaction(txn.id)
    with pytest.raises(FailedPrecondition, match="no active transaction"):
        client.finish_transaction()


def test_requests_are_checked_as_the_caller_adding_and_finishing(store: Path) -> None:
    """With auth on, each request is checked as the caller who adds it (in the dry run) and
    again as the one who finishes the transaction: a repo created in the transaction is its
    creator's for the requests after it. A transaction is its creator's: another caller cannot
    see, finish or delete it."""
    srv = InProcessServer.for_store(str(store)).start()
    try:
        with srv.connect() as anon:
            root_token = anon.auth_activate()
        with srv.connect(token=root_token) as root:
            root.create_project("lab")  # alice has no role there
            alice_token, bob_token = (root.get_auth_token(f"user:{u}") for u in ("alice", "bob"))
        with srv.connect(token=alice_token) as alice, srv.connect(token=bob_token) as bob:
            with (
                pytest.raises(PermissionDenied, match="not added to transaction"),
                alice.transaction(),
            ):
                alice.create_repo("lab/x")
            with alice.transaction():
                alice.create_repo("mine")
                alice.create_branch("mine@dev")  # hers already, in the transaction
            assert alice.list_branch("mine")[0].name == "dev"
            txn = alice.start_transaction()
            alice.transaction_id = txn.id
            alice.create_branch("mine@more")
            alice.transaction_id = None
            # a transaction is its creator's: for bob it does not exist
            assert bob.list_transaction() == []
            for call in (bob.inspect_transaction, bob.finish_transaction, bob.delete_transaction):
                with pytest.raises(NotFound, match=f"transaction {txn.id} not found"):
                    call(txn.id)
            assert [b.name for b in alice.list_branch("mine")] == ["dev"]
            assert [t.id for t in alice.list_transaction()] == [txn.id]
            alice.finish_transaction(txn.id)
            assert [b.name for b in alice.list_branch("mine")] == ["dev", "more"]
    finally:
        srv.stop()
