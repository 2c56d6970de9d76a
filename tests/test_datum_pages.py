"""A job's datums, a page at a time, and what a job records of each datum when it writes them
in batches.

``list datum`` takes Pachyderm's ListDatum paging: ``number`` (at most that many; 0: all) and a
marker (``pagination_marker``: start after that datum ID, the last one of the previous page).
Pages come in datum ID order and cover every datum of the job exactly once, through the
Client (in process and over HTTP), the CLI and plain HTTP; a bad page size or marker is a
one-line error, a 4xx over HTTP.

A running job writes its datum records about once a second rather than once per datum set, and
a datum set reads its datums' input blobs as one stream: each datum still gets its own state,
reason and inputs, and only its own input files.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from haathi.client import Client
from haathi.client.sources import bytes_op
from haathi.errors import InvalidArgument, NotFound
from haathi.models.info import DatumInfo, DatumState
from haathi.pps import jobs
from haathi.storage.blobs import pack_key
from tests.conftest import Cli
from tests.in_process import InProcessServer
from tests.internals import inner
from tests.test_bad_input import _chunks_of

FILES = 30
FAILING = {"/f07", "/f17", "/f27"}  # names ending in 7 exit 1


def put_files(client: Client, files: dict[str, bytes]) -> None:
    """One commit to ``in@master`` with ``files``."""
    client.modify_file("in@master", [bytes_op(data, path) for path, data in files.items()])


def failing_sevens(client: Client) -> str:
    """Pipeline ``p`` over ``FILES`` files copying each, failing those ending in 7: its job."""
    client.create_repo("in")
    put_files(client, {f"/f{i:02d}": f"{i}\n".encode() for i in range(FILES)})
    client.create_pipeline(
        {
            "pipeline": {"name": "p"},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {
                "cmd": ["sh", "-c", 'case "$in" in *7) exit 1;; esac; cp "$in" /pfs/out/'],
            },
            "datum_tries": 1,
            "parallelism_spec": {"constant": 1},
        }
    )
    return f"p@{client.list_job('p')[0].id}"


def walk_pages(list_page: object, number: int) -> list[list[DatumInfo]]:
    """Every page of ``number`` datums, each after the previous page's last."""
    assert callable(list_page)
    pages: list[list[DatumInfo]] = []
    marker = None
    while True:
        page = list_page(number, marker)
        if not page:
            return pages
        pages.append(page)
        marker = page[-1].id


@pytest.mark.every_backend  # the order and the seek are the database's
def test_pages_cover_every_datum_once_in_id_order(client: Client, store: Path) -> None:
    job = failing_sevens(client)
    everything = client.list_datum(job)
    ids = [d.id for d in everything]
    assert len(ids) == FILES and ids == sorted(ids)

    pages = walk_pages(lambda n, m: client.list_datum(job, n, m), 7)
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    assert [d.id for p in pages for d in p] == ids
    assert [d for p in pages for d in p] == everything  # the same records, page by page
    assert client.list_datum(job, 0) == everything  # 0: all
    assert client.list_datum(job, 100) == everything
    assert client.list_datum(job, 5, ids[-1]) == []  # after the last: an empty page

    server = InProcessServer.for_store(str(store), run_worker=False).start()
    try:
        remote = server.connect(run_jobs=False)
        assert walk_pages(lambda n, m: remote.list_datum(job, n, m), 7) == pages
        with httpx.Client(transport=server.transport, base_url=server.url) as http:
            path = f"/v1/pipelines/p/jobs/{job.split('@')[1]}/datums"
            body = http.get(path, params={"number": 3, "marker": ids[10]}).json()
            assert [d["id"] for d in body] == ids[11:14]
            for params, status in (
                ({"number": -1}, 400),
                ({"number": "many"}, 400),
                ({"number": 2**64}, 400),
                ({"marker": "not-an-id"}, 400),
                ({"marker": "0" * 64}, 404),  # well formed, but no datum of this job
            ):
                r = http.get(path, params=params)
                assert r.status_code == status, (params, r.text)
                assert set(r.json()) == {"code", "message", "details"}
                assert "\n" not in r.json()["message"] and "Traceback" not in r.text
    finally:
        server.stop()


def test_a_page_of_the_datums_in_some_states(client: Client, store: Path) -> None:
    """As Pachyderm's ListDatum filter: only datums in the states named (any case), paged as
    the whole list is; a state that is none is refused, over HTTP a 400."""
    job = failing_sevens(client)
    everything = client.list_datum(job)
    failed = [d for d in everything if d.state == DatumState.FAILED]
    assert {d.inputs[0]["path"] for d in failed} == FAILING
    assert client.list_datum(job, state="failed") == failed
    assert walk_pages(lambda n, m: client.list_datum(job, n, m, state="FAILED"), 2) == [
        failed[:2],
        failed[2:],
    ]
    assert client.list_datum(job, state=["success", "failed"]) == everything
    assert client.list_datum(job, state="skipped") == []
    with pytest.raises(InvalidArgument, match="datum state 'broken' must be one of starting"):
        client.list_datum(job, state="broken")

    server = InProcessServer.for_store(str(store), run_worker=False).start()
    try:
        remote = server.connect(run_jobs=False)
        assert remote.list_datum(job, 2, state="failed") == failed[:2]
        with httpx.Client(transport=server.transport, base_url=server.url) as http:
            path = f"/v1/pipelines/p/jobs/{job.split('@')[1]}/datums"
            bad = http.get(path, params={"state": "broken"})
            assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
    finally:
        server.stop()


def test_a_bad_page_size_or_marker_is_refused(client: Client) -> None:
    job = failing_sevens(client)
    with pytest.raises(InvalidArgument, match="--number must be between 0"):
        client.list_datum(job, -1)
    with pytest.raises(InvalidArgument, match="expected a datum ID"):
        client.list_datum(job, 5, "f07")
    other = "f" * 64
    with pytest.raises(NotFound, match=f"--marker {other} is not a datum of job {job}"):
        client.list_datum(job, 5, other)


def test_list_datum_pages_in_the_cli(client: Client, cli: Cli) -> None:
    job = failing_sevens(client)
    ids = [d.id for d in client.list_datum(job)]
    first = cli("list", "datum", job, "-n", "4", "-o", "json").json()
    assert [d["id"] for d in first] == ids[:4]
    second = cli("list", "datum", job, "-n", "4", "--marker", ids[3], "-o", "json").json()
    assert [d["id"] for d in second] == ids[4:8]
    table = cli("list", "datum", job, "--number", "4", "--marker", ids[3])
    assert ids[4][:16] in table.out and ids[3][:16] not in table.out
    assert table.err.strip() == f"next page: --marker {ids[7]}"  # where the next page starts
    last = cli("list", "datum", job, "-n", "4", "--marker", ids[-2])
    assert ids[-1][:16] in last.out and last.err == ""  # not a full page: the end

    for args, message in (
        (["-n", "-3"], "--number must be between 0 (all)"),
        (["--marker", "xyz"], "bad --marker 'xyz': expected a datum ID"),
        (["--marker", "a" * 64], f"--marker {'a' * 64} is not a datum of job"),
    ):
        res = cli.fails("list", "datum", job, *args)
        assert message in res.err and len(res.err.strip().splitlines()) == 1


@pytest.mark.every_backend
@pytest.mark.parametrize("every_s", [0.0, 3600.0], ids=["a write per set", "one write"])
def test_each_datum_keeps_its_state_when_records_are_written_in_batches(
    client: Client, monkeypatch: pytest.MonkeyPatch, every_s: float
) -> None:
    monkeypatch.setattr(jobs, "RECORD_EVERY_S", every_s)
    job = failing_sevens(client)
    info = client.inspect_job(job)
    assert (info.state.value, info.data_total, info.data_processed, info.data_failed) == (
        "FAILURE",
        FILES,
        FILES - len(FAILING),
        len(FAILING),
    )
    datums = client.list_datum(job)
    by_path = {d.inputs[0]["path"]: d for d in datums}
    assert len(datums) == len(by_path) == FILES
    for path, d in by_path.items():
        if path in FAILING:
            assert (d.state, d.exit_code, d.reason) == (
                DatumState.FAILED,
                1,
                "attempt 1 of 1 failed: exit code 1",
            )
            assert d.outputs == ()
        else:
            assert (d.state, d.exit_code, d.attempts) == (DatumState.SUCCESS, 0, 1)
            assert [o["path"] for o in d.outputs] == [path]


def test_an_unreadable_input_fails_only_its_own_datum(client: Client) -> None:
    client.create_repo("in")
    put_files(client, {f"/f{i:02d}": f"{i}\n".encode() for i in range(12) if i != 4})
    client.put_file("in@master:/f04", b"lost\n")  # in a pack of its own
    digest = _chunks_of(client, "in@master:/f04")[0]
    lost = inner(client).pfs.blobs.locate([digest])[digest].pack
    inner(client).runtime.objects.delete(pack_key(lost))
    client.create_pipeline(
        {
            "pipeline": {"name": "p"},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", 'cp "$in" /pfs/out/']},
            "parallelism_spec": {"constant": 1},
        }
    )
    datums = {d.inputs[0]["path"]: d for d in client.list_datum(f"p@{client.list_job('p')[0].id}")}
    assert datums["/f04"].state == DatumState.FAILED
    assert (datums["/f04"].reason or "").startswith("cannot read the datum's inputs: blob")
    assert {p for p, d in datums.items() if d.state == DatumState.SUCCESS} == set(datums) - {"/f04"}
    for i in (3, 5, 11):  # before it in its datum set, after it, in the next set
        assert client.get_file(f"p@master:/f{i:02d}") == f"{i}\n".encode()


def test_each_datum_sees_only_its_own_input_files(client: Client) -> None:
    client.create_repo("in")
    put_files(
        client, {"/a/deep/x": b"1", "/a/y": b"2", "/b": b"3", "/c/z": b"4", "/d/deep/w": b"5"}
    )
    client.create_pipeline(
        {
            "pipeline": {"name": "p"},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {
                "cmd": [
                    "sh",
                    "-c",
                    'cd "$(dirname "$in")" && find . | sort > "/pfs/out/${in##*/}"',
                ],
            },
            "parallelism_spec": {"constant": 1},
        }
    )
    seen = {
        f.path: client.get_file(f"p@master:{f.path}").decode()
        for f in client.walk_file("p@master:/")
    }
    assert seen == {
        "/a": ".\n./a\n./a/deep\n./a/deep/x\n./a/y\n",
        "/b": ".\n./b\n",
        "/c": ".\n./c\n./c/z\n",
        "/d": ".\n./d\n./d/deep\n./d/deep/w\n",
    }


def test_inspect_datum_by_id_or_prefix(client: Client) -> None:
    job = failing_sevens(client)
    ids = [d.id for d in client.list_datum(job)]
    for i in (0, 13, FILES - 1):
        assert client.inspect_datum(job, ids[i]).id == ids[i]
        assert client.inspect_datum(job, ids[i][:6]).id == ids[i]
    for missing in ("zzzz", ids[0][:3], "0" * 64):
        with pytest.raises(NotFound, match=f"datum {missing} not found in job"):
            client.inspect_datum(job, missing)
