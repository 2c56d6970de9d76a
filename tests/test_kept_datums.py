"""A job that skips most of its datums keeps the datum records of an earlier job instead of
writing them again (issue 17: a no-change re-run of 100,000 datums in well under 5 s).

What a user sees does not change: ``list datum`` of such a job lists every datum, the skipped
ones SKIPPED with the job's own input commits, page by page; ``inspect datum``, ``logs``,
lineage (upstream names the job that ran a datum, downstream finds the outputs of skipped
datums) and ``reproduce`` read through it. What changes is the store: a job whose inputs did
not change (the same input trees, spec and salt as its base job) writes no datum row at all,
and one that runs a few datums writes those few; a job that runs more than half of its datums,
or whose input lost a datum, records all of them, and later jobs keep its records. A store
made before (schema 0009) keeps working and skips as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import haathi
from haathi.client import Client
from haathi.client.sources import bytes_op
from haathi.models.info import DatumInfo, DatumState, JobInfo
from haathi.pps import records
from tests.internals import inner
from tests.test_store_identity import SINCE_0010, run_sql

N = 8
SPEC = {
    "pipeline": {"name": "p"},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", 'echo "ran $in"; cp "$in" /pfs/out/'], "env": {"A": "1"}},
}


def content(i: int) -> bytes:
    return f"file {i}\n".encode()


def pipeline_over(client: Client, n: int = N) -> JobInfo:
    """Pipeline ``p`` copying each of ``n`` files of ``in``: its first job."""
    client.create_repo("in")
    client.modify_file("in@master", [bytes_op(content(i), f"/f{i}") for i in range(n)])
    client.create_pipeline(SPEC)
    return newest(client)


def newest(client: Client) -> JobInfo:
    return client.list_job("p")[0]


def datums_of(client: Client, job: JobInfo) -> dict[str, DatumInfo]:
    return {d.id: d for d in client.list_datum(f"p@{job.id}")}


def own_rows(client: Client, job: JobInfo) -> list[str]:
    """The IDs of the datum rows the job wrote itself (internals: what a keeping job saves)."""
    with inner(client).pfs.db.read() as conn:
        pk = records.find_job(conn, "p", job.id).id
        sql = text("SELECT datum_id FROM datums WHERE job_id = :pk ORDER BY datum_id")
        return [str(d) for (d,) in conn.execute(sql, {"pk": pk})]


def input_commit(client: Client, job: JobInfo) -> str:
    [ref] = job.inputs
    return ref.split("@")[1]


def as_skipped(ran: DatumInfo, job: JobInfo, commit: str) -> dict[str, Any]:
    """What a datum that ran in an earlier job is in a job that skipped it."""
    return {
        "job": f"p@{job.id}",
        "id": ran.id,
        "state": DatumState.SKIPPED,
        "hash": ran.hash,
        "attempts": 0,
        "inputs": tuple({**i, "commit": commit} for i in ran.inputs),
        "outputs": ran.outputs,
        "env": {},
        "reason": None,
        "started": None,
        "duration_s": None,
        "exit_code": None,
    }


FIELDS = (
    "job", "id", "state", "hash", "attempts", "inputs", "outputs", "env", "reason", "started",
    "duration_s", "exit_code",
)  # fmt: skip


def fields(d: DatumInfo) -> dict[str, Any]:
    return {k: getattr(d, k) for k in FIELDS}


@pytest.mark.every_backend  # the seeks and the merge are the database's
def test_a_no_change_job_lists_every_datum_skipped_and_writes_no_row(client: Client) -> None:
    first = pipeline_over(client)
    ran = datums_of(client, first)
    assert {d.state for d in ran.values()} == {DatumState.SUCCESS} and len(ran) == N

    client.update_pipeline(SPEC)  # the same spec: a job over the same input commit
    same = newest(client)
    client.put_file("in@master:/f0", content(0))  # a new input commit, the same bytes
    recommit = newest(client)
    assert input_commit(client, recommit) != input_commit(client, first)

    for job in (same, recommit):
        assert (job.data_total, job.data_skipped, job.data_processed) == (N, N, 0)
        assert own_rows(client, job) == []
        listed = client.list_datum(f"p@{job.id}")
        assert [d.id for d in listed] == sorted(ran)
        commit = input_commit(client, job)
        for d in listed:
            assert fields(d) == as_skipped(ran[d.id], job, commit)
            assert client.inspect_datum(f"p@{job.id}", d.id) == d
            assert client.inspect_datum(f"p@{job.id}", d.id[:6]) == d
        pages = [client.list_datum(f"p@{job.id}", 3, m) for m in (None, listed[2].id)]
        assert [d.id for page in pages for d in page] == [d.id for d in listed[:6]]
        assert client.logs("p", job.id)[1] == []
        assert client.logs("p", job.id, listed[0].id)[1] == []
    assert client.get_file("p@master:/f3") == content(3)


@pytest.mark.every_backend  # the seeks and the merge are the database's
def test_a_job_running_a_few_datums_writes_only_those(client: Client) -> None:
    first = pipeline_over(client)
    client.put_file("in@master:/f1", b"changed\n")
    one = newest(client)
    assert (one.data_processed, one.data_skipped) == (1, N - 1)
    assert own_rows(client, one) == [
        d.id for d in client.list_datum(f"p@{one.id}") if d.inputs[0]["path"] == "/f1"
    ]
    listed = datums_of(client, one)
    states = {d.inputs[0]["path"]: d.state for d in listed.values()}
    assert states == {f"/f{i}": DatumState.SKIPPED for i in range(N)} | {"/f1": DatumState.SUCCESS}
    # a state filter sees the kept rows as SKIPPED, and the job's own rows as they are
    skipped = client.list_datum(f"p@{one.id}", state="skipped")
    assert [d.id for d in skipped] == sorted(d for d, x in listed.items() if x.state == "SKIPPED")
    assert [d.inputs[0]["path"] for d in client.list_datum(f"p@{one.id}", state="success")] == [
        "/f1"
    ]
    assert client.get_file("p@master:/f1") == b"changed\n"
    assert client.logs("p", one.id)[1] == [
        (d.id, "ran /pfs/in/f1\n") for d in listed.values() if d.state == DatumState.SUCCESS
    ]

    # nothing changes again: the datum that ran in job ``one`` is skipped, kept from ``one``
    client.update_pipeline(SPEC)
    again = newest(client)
    assert (again.data_processed, again.data_skipped) == (0, N)
    assert own_rows(client, again) == own_rows(client, one)
    for d in client.list_datum(f"p@{again.id}"):
        assert d.state == DatumState.SKIPPED and d.hash == listed[d.id].hash
    [node] = client.lineage("p@master:/f1")
    assert node.job == f"p@{one.id}"
    [node] = client.lineage("p@master:/f2")
    assert node.job == f"p@{first.id}"
    [down] = client.lineage("in@master:/f2", downstream=True)
    assert {(n.repo, n.path) for n in down.walk() if n is not down} == {("p", "/f2")}

    # a new file: one more datum of the job's own, the rest kept
    client.put_file("in@master:/g", b"new\n")
    added = newest(client)
    assert (added.data_total, added.data_processed, added.data_skipped) == (N + 1, 1, N)
    assert len(own_rows(client, added)) == 2  # the new datum, and f1 that ``one`` ran
    assert client.get_file("p@master:/g") == b"new\n"


def test_a_removed_datum_or_mostly_new_datums_record_the_whole_job(client: Client) -> None:
    pipeline_over(client)
    client.delete_file("in@master:/f5")
    removed = newest(client)
    assert (removed.data_total, removed.data_skipped) == (N - 1, N - 1)
    assert len(own_rows(client, removed)) == N - 1
    assert "/f5" not in {f.path for f in client.list_file("p@master:/")}

    client.modify_file("in@master", [bytes_op(b"x\n", f"/f{i}") for i in range(N // 2 + 1)])
    mostly = newest(client)
    assert (mostly.data_processed, mostly.data_skipped) == (N // 2 + 1, N - 1 - (N // 2 + 1))
    assert len(own_rows(client, mostly)) == N - 1
    client.update_pipeline(SPEC)
    after = newest(client)
    assert own_rows(client, after) == []
    assert [d.state for d in client.list_datum(f"p@{after.id}")] == [DatumState.SKIPPED] * (N - 1)


def test_reproduce_reruns_kept_datums_in_the_job_that_ran_them(client: Client) -> None:
    pipeline_over(client, 4)
    client.put_file("in@master:/f0", b"zero\n")
    client.update_pipeline(SPEC)
    whole = client.reproduce_commit("p@master")
    assert whole.ok and whole.datums_total == 4 and len(whole.datums) == 4
    assert client.reproduce("p@master:/f1").ok and client.reproduce("p@master:/f0").ok


def test_a_spec_change_to_how_inputs_are_formed_records_the_datums_again(
    client: Client,
) -> None:
    first = pipeline_over(client)
    spec = {**SPEC, "input": {"pfs": {"repo": "in", "glob": "/*", "empty_files": True}}}
    client.update_pipeline(spec)  # same salt: every datum is skipped, with the new flag
    job = newest(client)
    assert (job.data_processed, job.data_skipped) == (0, N)
    assert len(own_rows(client, job)) == N
    for d in client.list_datum(f"p@{job.id}"):
        assert d.state == DatumState.SKIPPED and d.inputs[0]["empty_files"] is True
    client.update_pipeline(spec)
    assert own_rows(client, newest(client)) == []
    assert newest(client).data_skipped == N and first.data_processed == N


@pytest.mark.parametrize("runs_before", [1, 2])
def test_a_store_from_before_keeps_skipping(tmp_path: Path, runs_before: int) -> None:
    """A store of schema 0009 (every job records all its datums) upgrades and skips."""
    store = tmp_path / "store"
    with haathi.connect(str(store), sandbox="none") as c:
        first = pipeline_over(c)
        if runs_before == 2:  # a second job recording all: one skipped, the rest run
            c.modify_file("in@master", [bytes_op(b"y\n", f"/f{i}") for i in range(1, N)])
        before = datums_of(c, newest(c))
        with inner(c).pfs.db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM kept_datums").scalar() == 0
    run_sql(
        store,
        "DROP TABLE kept_datums",
        *SINCE_0010,  # and what the migrations after 0010 add
        "UPDATE alembic_version SET version_num = '0009'",
    )
    with haathi.connect(str(store), sandbox="none") as c:
        c.put_file("in@master:/f0", content(0))  # the same bytes: nothing to run
        job = newest(c)
        assert (job.data_processed, job.data_skipped) == (0, N) and own_rows(c, job) == []
        commit = input_commit(c, job)
        for d in c.list_datum(f"p@{job.id}"):
            assert fields(d) == as_skipped(before[d.id], job, commit)
        [node] = c.lineage("p@master:/f0")
        assert node.job == f"p@{first.id}"
        c.put_file("in@master:/f2", b"two\n")
        assert (newest(c).data_processed, newest(c).data_skipped) == (1, N - 1)
        assert c.get_file("p@master:/f2") == b"two\n"
