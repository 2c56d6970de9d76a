"""Pachyderm's pipeline examples, end to end through the Client, on both backend pairs.

Each test builds a small DAG the way Pachyderm's ``examples/`` do (opencv edges + montage,
word count map/reduce, joins, group by) with transforms that need only sh, coreutils, awk
and the Python standard library, and checks what Pachyderm 2.x guarantees: exact outputs,
one job per output commit sharing the input commit's ID (the commit set), datum-incremental
re-runs (skip unchanged, remove vanished, replace changed), failure semantics (datum_tries,
datum_timeout, err_cmd, UNRUNNABLE downstream, output path collisions), the pipeline
lifecycle (update with and without reprocess, stop/start, delete), cron inputs and
``list datum -f``.

The embedded client runs the jobs a write triggers before the write returns.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from typing import Any

import pytest
from sqlalchemy import update

from haathi.client import Client
from haathi.errors import FailedPrecondition, HaathiError, InvalidArgument, NotFound
from haathi.meta.schema import pipeline_versions
from haathi.models.info import DatumInfo, DatumState, FileType, JobInfo, JobState
from tests.conftest import put_all
from tests.internals import inner

PY = sys.executable


# ---- helpers -----------------------------------------------------------------------------


def files(client: Client, ref: str) -> dict[str, bytes]:
    """Every file of ``repo@ref`` with its content."""
    return {
        f.path: client.get_file(f"{ref}:{f.path}")
        for f in client.walk_file(f"{ref}:/")
        if f.type == FileType.FILE
    }


def last_job(client: Client, pipeline: str) -> JobInfo:
    return client.list_job(pipeline)[0]


def job_of(client: Client, pipeline: str, commit_id: str) -> JobInfo:
    return client.inspect_job(f"{pipeline}@{commit_id}")


def datums_by_input(client: Client, job: JobInfo) -> dict[frozenset[tuple[str, str]], DatumInfo]:
    """The job's datums keyed by their set of (input name, path)."""
    return {
        frozenset((i["name"], i["path"]) for i in d.inputs): d
        for d in client.list_datum(f"{job.pipeline}@{job.id}")
    }


def counts(job: JobInfo) -> tuple[int, int, int, int, int]:
    """(total, processed, skipped, failed, recovered)."""
    return (
        job.data_total,
        job.data_processed,
        job.data_skipped,
        job.data_failed,
        job.data_recovered,
    )


def pfs(repo: str, glob: str, **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


def sh(*lines: str) -> dict[str, Any]:
    return {"cmd": ["sh"], "stdin": list(lines)}


# ---- 1. opencv: edges + montage ------------------------------------------------------------


def edge_detect(pgm: str) -> str:
    """Edge detection on an ASCII PGM (P2): |right - here| + |below - here| per pixel.

    This function's source is the ``edges`` transform (run by the sandbox's Python), and the
    test calls it to know the expected output.
    """
    tokens = pgm.split()
    w, h, maxval = int(tokens[1]), int(tokens[2]), int(tokens[3])
    px = [int(t) for t in tokens[4 : 4 + w * h]]
    rows = []
    for y in range(h):
        row = []
        for x in range(w):
            v = px[y * w + x]
            right = px[y * w + x + 1] if x + 1 < w else v
            below = px[(y + 1) * w + x] if y + 1 < h else v
            row.append(str(min(maxval, abs(right - v) + abs(below - v))))
        rows.append(" ".join(row))
    return f"P2\n{w} {h}\n{maxval}\n" + "\n".join(rows) + "\n"


EDGES_PY = (
    inspect.getsource(edge_detect)
    + """
import os, pathlib
src = pathlib.Path(os.environ["images"])
pathlib.Path("/pfs/out", src.name).write_text(edge_detect(src.read_text()))
print("edges of", src.name)
"""
)


def pgm(seed: int, w: int = 5, h: int = 4) -> str:
    px = [[(x * 37 + y * 91 + seed * 53) % 256 for x in range(w)] for y in range(h)]
    return f"P2\n{w} {h}\n255\n" + "\n".join(" ".join(map(str, r)) for r in px) + "\n"


EDGES = {
    "pipeline": {"name": "edges"},
    "description": "edge detection without OpenCV",
    "input": pfs("images", "/*"),
    "transform": {"cmd": [PY, "-c", EDGES_PY]},
}
MONTAGE = {
    "pipeline": {"name": "montage"},
    "input": {"cross": [pfs("images", "/"), pfs("edges", "/")]},
    "transform": sh(
        "find -L /pfs/images /pfs/edges -type f | LC_ALL=C sort | while read f; do",
        '  echo "== $f"; cat "$f"',
        "done > /pfs/out/montage",
    ),
}


def expected_montage(images: dict[str, str]) -> bytes:
    parts = {f"/pfs/images/{n}": t for n, t in images.items()}
    parts |= {f"/pfs/edges/{n}": edge_detect(t) for n, t in images.items()}
    return "".join(f"== {p}\n{parts[p]}" for p in sorted(parts)).encode()


@pytest.mark.every_shape
def test_edges_and_montage(client: Client) -> None:
    images = {f"img{i}.pgm": pgm(i) for i in range(3)}
    client.create_repo("images")
    with client.start_commit("images@master") as c:
        for name, text in images.items():
            c.put_file(f"/{name}", text.encode())
    client.create_pipeline(EDGES)
    client.create_pipeline(MONTAGE)

    assert files(client, "edges@master") == {
        f"/{n}": edge_detect(t).encode() for n, t in images.items()
    }
    assert files(client, "montage@master") == {"/montage": expected_montage(images)}
    edges_job = last_job(client, "edges")
    assert edges_job.state == JobState.SUCCESS
    assert counts(edges_job) == (3, 3, 0, 0, 0)
    montage_job = last_job(client, "montage")
    assert montage_job.state == JobState.SUCCESS
    assert counts(montage_job) == (1, 1, 0, 0, 0)

    # Adding an image: edges processes only it; montage re-runs; one commit set.
    images["img3.pgm"] = pgm(3)
    cid = client.put_file("images@master:/img3.pgm", images["img3.pgm"].encode())
    in_set = {(c.repo, c.id) for c in client.list_commit(cid)}
    assert {("images", cid), ("edges", cid), ("montage", cid)} <= in_set
    waited = client.wait_commit(cid)
    assert {c.repo for c in waited if c.id == cid} == {"images", "edges", "montage"}
    assert all(c.finished is not None and c.error is None for c in waited)
    edges_job = job_of(client, "edges", cid)
    assert edges_job.state == JobState.SUCCESS
    assert (edges_job.data_processed, edges_job.data_skipped, edges_job.data_total) == (1, 3, 4)
    assert f"images@{cid}" in edges_job.inputs
    montage_job = job_of(client, "montage", cid)
    assert montage_job.state == JobState.SUCCESS and montage_job.data_processed == 1
    assert set(montage_job.inputs) == {f"images@{cid}", f"edges@{cid}"}
    ran = [d for d in client.list_datum(f"edges@{cid}") if d.state != DatumState.SKIPPED]
    assert [i["path"] for d in ran for i in d.inputs] == ["/img3.pgm"]
    assert files(client, f"edges@{cid}") == {
        f"/{n}": edge_detect(t).encode() for n, t in images.items()
    }
    assert client.get_file("montage@master:/montage") == expected_montage(images)

    # Deleting an image: its edges output is gone, the montage no longer shows it.
    cid = client.delete_file("images@master:/img1.pgm")
    del images["img1.pgm"]
    edges_job = job_of(client, "edges", cid)
    assert (edges_job.data_processed, edges_job.data_skipped, edges_job.data_total) == (0, 3, 3)
    assert files(client, "edges@master") == {
        f"/{n}": edge_detect(t).encode() for n, t in images.items()
    }
    montage = client.get_file("montage@master:/montage")
    assert montage == expected_montage(images) and b"img1.pgm" not in montage

    # Modifying an image: only its datum re-runs, and its output is replaced.
    images["img2.pgm"] = pgm(42)
    cid = client.put_file("images@master:/img2.pgm", images["img2.pgm"].encode())
    edges_job = job_of(client, "edges", cid)
    assert (edges_job.data_processed, edges_job.data_skipped, edges_job.data_total) == (1, 2, 3)
    ran = [d for d in client.list_datum(f"edges@{cid}") if d.state == DatumState.SUCCESS]
    assert [i["path"] for d in ran for i in d.inputs] == ["/img2.pgm"]
    assert client.get_file("edges@master:/img2.pgm") == edge_detect(pgm(42)).encode()
    assert client.get_file("edges@master^:/img2.pgm") == edge_detect(pgm(2)).encode()
    assert client.get_file("montage@master:/montage") == expected_montage(images)
    # Unchanged outputs keep the datum that wrote them in the first job.
    assert client.inspect_file("edges@master:/img0.pgm").datum == next(
        d.id for d in client.list_datum(f"edges@{cid}") if d.inputs[0]["path"] == "/img0.pgm"
    )


# ---- 2. word count map/reduce --------------------------------------------------------------

MAP = {
    "pipeline": {"name": "map"},
    "input": pfs("docs", "/*"),
    "transform": sh(
        'mkdir -p "/pfs/out/$PACH_DATUM_ID"',
        'awk -v out="/pfs/out/$PACH_DATUM_ID" '
        "'{ for (i = 1; i <= NF; i++) n[$i]++ } END { for (w in n) print n[w] > (out \"/\" w) }'"
        ' "$docs"',
    ),
}
# Pachyderm's examples/word_count/pipelines/reduce.pipeline.json, verbatim.
REDUCE = {
    "pipeline": {"name": "reduce"},
    "description": "A pipeline that aggregates the total counts for each word.",
    "transform": sh(
        "mkdir /tmp/out",
        "set -x",
        "FILES=/pfs/map/*/*",
        "for f in $FILES",
        "do",
        "out=`basename $f`",
        "cat $f >> /tmp/out/${out}",
        "done",
        "find /tmp/out/ -name '*' | while read count; do cat $count | awk '{ sum+=$1} END "
        "{print sum}' >/tmp/count; mv /tmp/count /pfs/out/`basename $count`; echo `basename "
        "$count`; done",
    ),
    "input": pfs("map", "/"),
}


def word_counts(*docs: str) -> dict[str, bytes]:
    n: dict[str, int] = {}
    for doc in docs:
        for w in doc.split():
            n[w] = n.get(w, 0) + 1
    return {f"/{w}": f"{c}\n".encode() for w, c in n.items()}


@pytest.mark.every_shape
def test_word_count_map_reduce(client: Client) -> None:
    docs = {"/a.txt": "the cat sat on the mat\n", "/b.txt": "the dog sat\nthe end\n"}
    client.create_repo("docs")
    with client.start_commit("docs@master") as c:
        for path, text in docs.items():
            c.put_file(path, text.encode())
    client.create_pipeline(MAP)
    client.create_pipeline(REDUCE)

    job = last_job(client, "map")
    assert job.state == JobState.SUCCESS and counts(job) == (2, 2, 0, 0, 0)
    by_doc = {d.inputs[0]["path"]: d.id for d in client.list_datum(f"map@{job.id}")}
    mapped = files(client, "map@master")
    assert mapped == {
        f"/{by_doc[p]}{w}": n for p, t in docs.items() for w, n in word_counts(t).items()
    }
    # The example's `find /tmp/out/ -name '*'` also lists /tmp/out/ itself, so it writes an
    # empty sum to /out (as it does on Pachyderm).
    assert files(client, "reduce@master") == word_counts(*docs.values()) | {"/out": b"\n"}
    assert last_job(client, "reduce").state == JobState.SUCCESS

    docs["/c.txt"] = "a cat and a dog\n"
    cid = client.put_file("docs@master:/c.txt", docs["/c.txt"].encode())
    job = job_of(client, "map", cid)
    assert (job.data_processed, job.data_skipped, job.data_total) == (1, 2, 3)
    assert job_of(client, "reduce", cid).state == JobState.SUCCESS
    assert files(client, "reduce@master") == word_counts(*docs.values()) | {"/out": b"\n"}
    assert client.get_file("reduce@master:/cat") == b"2\n"
    assert client.get_file("reduce@master:/the") == b"4\n"


# ---- 3. joins ------------------------------------------------------------------------------

STORES = {"/STOREID1.txt": "store 1\n", "/STOREID2.txt": "store 2\n", "/STOREID3.txt": "store 3\n"}
PURCHASES = {
    "/P1_STOREID1.txt": "p1\n",
    "/P2_STOREID1.txt": "p2\n",
    "/P3_STOREID2.txt": "p3\n",
    "/P4_STOREID4.txt": "p4\n",
}
JOIN_TRANSFORM = sh(
    'key="$PACH_DATUM_stores_JOIN_ON"',
    'echo "stores=${PACH_DATUM_stores_JOIN_ON:-none} '
    'purchases=${PACH_DATUM_purchases_JOIN_ON:-none}"',
    "if [ -d /pfs/purchases ]; then",
    "  for p in /pfs/purchases/*; do",
    '    { cat /pfs/stores/*; cat "$p"; echo "key=$PACH_DATUM_purchases_JOIN_ON"; }'
    ' > "/pfs/out/$(basename "$p")"',
    "  done",
    "else",
    '  { cat /pfs/stores/*; echo "key=$key"; } > "/pfs/out/alone_STOREID$key.txt"',
    "fi",
)


def join_spec(
    name: str, *, outer_stores: bool = False, outer_purchases: bool = False
) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {
            "join": [
                pfs("stores", "/STOREID(*).txt", join_on="$1", outer_join=outer_stores),
                {
                    "pfs": {
                        "repo": "purchases",
                        "branch": "master",
                        "glob": "/*_STOREID(*).txt",
                        "joinOn": "$1",
                        "outerJoin": outer_purchases,
                    }
                },
            ]
        },
        "transform": JOIN_TRANSFORM,
    }


@pytest.mark.every_shape
def test_inner_and_outer_join(client: Client) -> None:
    client.create_repo("stores")
    client.create_repo("purchases")
    put_all(client, "stores", STORES)
    put_all(client, "purchases", PURCHASES)
    client.create_pipeline(join_spec("inner_join"))
    client.create_pipeline(join_spec("outer_join", outer_stores=True))

    inner = last_job(client, "inner_join")
    assert inner.state == JobState.SUCCESS and counts(inner) == (3, 3, 0, 0, 0)
    by_input = datums_by_input(client, inner)
    assert set(by_input) == {
        frozenset({("stores", "/STOREID1.txt"), ("purchases", "/P1_STOREID1.txt")}),
        frozenset({("stores", "/STOREID1.txt"), ("purchases", "/P2_STOREID1.txt")}),
        frozenset({("stores", "/STOREID2.txt"), ("purchases", "/P3_STOREID2.txt")}),
    }
    for d in by_input.values():
        key = d.inputs[0]["path"][len("/STOREID") : -len(".txt")]
        assert d.env["PACH_DATUM_stores_JOIN_ON"] == key
        assert d.env["PACH_DATUM_purchases_JOIN_ON"] == key
        assert [i["join_on"] for i in d.inputs] == [key, key]
    assert files(client, "inner_join@master") == {
        "/P1_STOREID1.txt": b"store 1\np1\nkey=1\n",
        "/P2_STOREID1.txt": b"store 1\np2\nkey=1\n",
        "/P3_STOREID2.txt": b"store 2\np3\nkey=2\n",
    }
    _, logs = client.logs("inner_join")
    assert sorted(text for _, text in logs) == [
        "stores=1 purchases=1\n",
        "stores=1 purchases=1\n",
        "stores=2 purchases=2\n",
    ]

    # outer_join on stores: store 3 (no purchases) still gets a datum; P4 (no store) does not.
    outer = last_job(client, "outer_join")
    assert outer.state == JobState.SUCCESS and counts(outer) == (4, 4, 0, 0, 0)
    by_input = datums_by_input(client, outer)
    alone = frozenset({("stores", "/STOREID3.txt")})
    assert set(by_input) == {*datums_by_input(client, inner), alone}
    assert "PACH_DATUM_purchases_JOIN_ON" not in by_input[alone].env
    assert by_input[alone].env["PACH_DATUM_stores_JOIN_ON"] == "3"
    assert files(client, "outer_join@master") == files(client, "inner_join@master") | {
        "/alone_STOREID3.txt": b"store 3\nkey=3\n"
    }

    # A purchase for store 3 arrives: the outer join's lone datum is replaced by a pair.
    cid = client.put_file("purchases@master:/P5_STOREID3.txt", b"p5\n")
    inner = job_of(client, "inner_join", cid)
    assert (inner.data_total, inner.data_processed, inner.data_skipped) == (4, 1, 3)
    outer = job_of(client, "outer_join", cid)
    assert (outer.data_total, outer.data_processed, outer.data_skipped) == (4, 1, 3)
    out = files(client, "outer_join@master")
    assert "/alone_STOREID3.txt" not in out
    assert out["/P5_STOREID3.txt"] == b"store 3\np5\nkey=3\n"


# ---- 4. group by ---------------------------------------------------------------------------

LAB = {
    "/LIPID-patient1-CLIA24D9871327.txt": "lipid 1\n",
    "/LIPID-patient2-CLIA24D9871327.txt": "lipid 2\n",
    "/T4-patient1-CLIA3D0664329.txt": "t4 1\n",
    "/HB-patient3-CLIA3D0664329.txt": "hb 3\n",
    "/HB-patient4-CLIA99X.txt": "hb 4\n",
}


def test_group_lab_results_by_hospital(client: Client) -> None:
    client.create_repo("labresults")
    put_all(client, "labresults", LAB)
    # Pachyderm's examples/group lab_group_by_hospital pipeline (bash -> sh).
    client.create_pipeline(
        {
            "pipeline": {"name": "group_by_hospital"},
            "input": {
                "group": [
                    {
                        "pfs": {
                            "repo": "labresults",
                            "branch": "master",
                            "glob": "/*-CLIA(*).txt",
                            "groupBy": "$1",
                        }
                    }
                ]
            },
            "transform": sh(
                "mkdir -p /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/",
                "cp /pfs/labresults/* /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/",
                'echo "group $PACH_DATUM_labresults_GROUP_BY: $(ls /pfs/labresults | wc -l) files"',
            ),
        }
    )
    job = last_job(client, "group_by_hospital")
    assert job.state == JobState.SUCCESS and counts(job) == (3, 3, 0, 0, 0)
    hospitals = {"24D9871327", "3D0664329", "99X"}
    ds = client.list_datum(f"group_by_hospital@{job.id}")
    assert {d.env["PACH_DATUM_labresults_GROUP_BY"] for d in ds} == hospitals
    for d in ds:
        key = d.env["PACH_DATUM_labresults_GROUP_BY"]
        assert {i["path"] for i in d.inputs} == {p for p in LAB if f"CLIA{key}." in p}
        assert {i["group_by"] for i in d.inputs} == {key}
    assert files(client, "group_by_hospital@master") == {
        f"/{p.rsplit('CLIA', 1)[1][:-4]}{p}": t.encode() for p, t in LAB.items()
    }
    _, logs = client.logs("group_by_hospital")
    assert sorted(t for _, t in logs) == [
        "group 24D9871327: 2 files\n",
        "group 3D0664329: 2 files\n",
        "group 99X: 1 files\n",
    ]

    # A new result for one hospital re-runs only that hospital's group.
    cid = client.put_file("labresults@master:/HB-patient5-CLIA99X.txt", b"hb 5\n")
    job = job_of(client, "group_by_hospital", cid)
    assert (job.data_total, job.data_processed, job.data_skipped) == (3, 1, 2)
    out = files(client, "group_by_hospital@master")
    assert {p for p in out if p.startswith("/99X/")} == {
        "/99X/HB-patient4-CLIA99X.txt",
        "/99X/HB-patient5-CLIA99X.txt",
    }


# ---- 5. failure semantics ------------------------------------------------------------------

FRAGILE = {
    "pipeline": {"name": "fragile"},
    "input": pfs("inputs", "/*"),
    "datum_tries": 2,
    "transform": sh(
        'echo "processing $(basename "$inputs")"',
        'if grep -q BAD "$inputs"; then echo "bad input" >&2; exit 1; fi',
        'cp "$inputs" /pfs/out/',
    ),
}
AFTER = {
    "pipeline": {"name": "after"},
    "input": pfs("fragile", "/"),
    "transform": sh("ls /pfs/fragile > /pfs/out/listing"),
}


@pytest.mark.every_shape
def test_failed_datum_fails_the_job_and_downstream_is_unrunnable(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "a\n", "/b": "b\n"})
    client.create_pipeline(FRAGILE)
    client.create_pipeline(AFTER)
    assert last_job(client, "after").state == JobState.SUCCESS

    cid = client.put_file("inputs@master:/bad", b"BAD\n")
    job = job_of(client, "fragile", cid)
    assert job.state == JobState.FAILURE
    assert counts(job) == (3, 0, 2, 1, 0)
    [bad] = [d for d in client.list_datum(f"fragile@{cid}") if d.state == DatumState.FAILED]
    assert [i["path"] for i in bad.inputs] == ["/bad"]
    assert job.reason is not None and bad.id in job.reason
    assert (bad.attempts, bad.exit_code) == (2, 1)
    assert client.inspect_datum(f"fragile@{cid}", bad.id).attempts == 2
    ok = [d for d in client.list_datum(f"fragile@{cid}") if d.state != DatumState.FAILED]
    assert [d.exit_code for d in ok] == [None, None]  # skipped: not run by this job
    _, logs = client.logs("fragile", cid, bad.id)
    text = "".join(t for _, t in logs)
    assert text.count("processing bad") == 2
    assert text.count("bad input") == 2
    assert client.inspect_commit(f"fragile@{cid}").error
    down = job_of(client, "after", cid)
    assert down.state == JobState.UNRUNNABLE
    assert down.reason is not None and "fragile" in down.reason
    assert client.inspect_commit(f"after@{cid}").error
    # The errored output commit is not the base of the next commit: outputs of the last good
    # job remain readable on the branch.
    assert files(client, "fragile@master") == {"/a": b"a\n", "/b": b"b\n"}

    # Fixing the transform: the failed datum runs again, the good ones are skipped.
    fixed = FRAGILE | {"transform": sh('cp "$inputs" /pfs/out/')}
    [fix_id] = client.update_pipeline(fixed)
    job = job_of(client, "fragile", fix_id)
    assert job.state == JobState.SUCCESS
    assert (job.data_total, job.data_processed, job.data_skipped) == (3, 1, 2)
    assert client.inspect_commit(f"fragile@{fix_id}").error is None
    assert files(client, "fragile@master") == {"/a": b"a\n", "/b": b"b\n", "/bad": b"BAD\n"}
    assert job_of(client, "after", fix_id).state == JobState.SUCCESS
    assert client.get_file("after@master:/listing") == b"a\nb\nbad\n"


def test_datum_timeout_fails_the_datum_quickly(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/x", b"x\n")
    spec = {
        "pipeline": {"name": "slow"},
        "input": pfs("inputs", "/*"),
        "datum_timeout": "1s",  # and the default datum_tries: 3
        "transform": sh("echo started", "sleep 30", "cp $inputs /pfs/out/"),
    }
    t0 = time.monotonic()
    [jid] = client.create_pipeline(spec)
    # its 3 attempts were cut at their timeout: one that waited for its sleep took 30 s
    assert time.monotonic() - t0 < 30
    job = job_of(client, "slow", jid)
    assert job.state == JobState.FAILURE and job.data_failed == 1
    [d] = client.list_datum(f"slow@{jid}")
    assert d.state == DatumState.FAILED
    assert d.reason is not None and "timed out" in d.reason
    assert d.attempts == 3  # a timeout is a failed attempt
    assert d.exit_code is None  # killed: no exit code
    assert d.duration_s is not None and d.duration_s < 12
    _, logs = client.logs("slow", jid, d.id)
    assert "".join(t for _, t in logs).count("started") == 3
    assert client.inspect_commit(f"slow@{jid}").error

    [jid] = client.update_pipeline(spec | {"transform": sh("cp $inputs /pfs/out/")})
    assert job_of(client, "slow", jid).state == JobState.SUCCESS
    assert files(client, "slow@master") == {"/x": b"x\n"}


# ---- 6. err_cmd, accept_return_code, environment ------------------------------------------


def test_err_cmd_recovers_a_datum(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/ok1": "1\n", "/ok2": "2\n", "/bad": "BAD\n"})
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "careful"},
            "input": pfs("inputs", "/*"),
            "datum_tries": 1,
            "transform": {
                "cmd": ["sh"],
                "stdin": ['if grep -q BAD "$inputs"; then exit 1; fi', 'cp "$inputs" /pfs/out/'],
                "err_cmd": ["sh"],
                "err_stdin": ['echo "recovering $(basename "$inputs")"'],
            },
        }
    )
    job = job_of(client, "careful", jid)
    assert job.state == JobState.SUCCESS
    assert counts(job) == (3, 2, 0, 0, 1)
    by_path = {d.inputs[0]["path"]: d for d in client.list_datum(f"careful@{jid}")}
    assert by_path["/bad"].state == DatumState.RECOVERED
    assert by_path["/ok1"].state == DatumState.SUCCESS
    assert files(client, "careful@master") == {"/ok1": b"1\n", "/ok2": b"2\n"}
    _, logs = client.logs("careful", jid, by_path["/bad"].id)
    assert "recovering bad" in "".join(t for _, t in logs)
    # A RECOVERED datum is not skippable: the next job tries it again.
    cid = client.put_file("inputs@master:/ok3", b"3\n")
    job = job_of(client, "careful", cid)
    assert (job.data_total, job.data_processed, job.data_skipped, job.data_recovered) == (
        4,
        1,
        2,
        1,
    )


def test_err_cmd_runs_after_every_failed_attempt(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/bad", b"BAD\n")
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "careful"},
            "input": pfs("inputs", "/*"),
            "datum_tries": 2,
            "transform": {
                "cmd": ["sh", "-c", "echo trying; exit 1"],
                "err_cmd": ["sh", "-c", "echo recovering"],
            },
        }
    )
    [d] = client.list_datum(f"careful@{jid}")
    assert d.state == DatumState.RECOVERED and d.attempts == 2
    _, logs = client.logs("careful", jid, d.id)
    text = "".join(t for _, t in logs)
    assert text.count("trying") == 2
    assert text.count("recovering") == 2


def test_accept_return_code(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/x", b"x\n")
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "picky"},
            "input": pfs("inputs", "/*"),
            "datum_tries": 1,
            "transform": {
                "cmd": ["sh", "-c", 'cp "$inputs" /pfs/out/; exit 3'],
                "accept_return_code": [3, 4],
            },
        }
    )
    job = job_of(client, "picky", jid)
    assert job.state == JobState.SUCCESS and counts(job) == (1, 1, 0, 0, 0)
    assert files(client, "picky@master") == {"/x": b"x\n"}
    [jid] = client.update_pipeline(
        {
            "pipeline": {"name": "picky"},
            "input": pfs("inputs", "/*"),
            "datum_tries": 1,
            "transform": {"cmd": ["sh", "-c", "exit 5"], "acceptReturnCode": [3, 4]},
        },
        reprocess=True,
    )
    assert job_of(client, "picky", jid).state == JobState.FAILURE


@pytest.mark.every_shape
def test_output_with_a_nul_byte_is_logged_on_every_backend(client: Client) -> None:
    # PostgreSQL cannot store NUL in text: a datum that printed one failed its job there
    client.create_repo("raw")
    client.put_file("raw@master:/f", b"x")
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "nul"},
            "input": pfs("raw", "/*"),
            "transform": sh("printf 'a\\000b\\n'", "cp /pfs/raw/f /pfs/out/f"),
        }
    )
    assert job_of(client, "nul", jid).state == JobState.SUCCESS
    assert [out for _, out in client.logs("nul")[1]] == ["a\ufffdb\n"]


def test_transform_environment(client: Client) -> None:
    client.create_repo("inputs")
    cid = put_all(client, "inputs", {"/x.txt": "x\n", "/dir/y.txt": "y\n"})
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "envy"},
            "input": pfs("inputs", "/*"),
            "transform": {
                "cmd": [
                    PY,
                    "-c",
                    "import json, os\n"
                    "keys = ['GREETING', 'inputs', 'inputs_COMMIT', 'PACH_JOB_ID',\n"
                    "        'PACH_DATUM_ID']\n"
                    "env = {k: os.environ.get(k) for k in keys}\n"
                    "name = os.path.basename(os.environ['inputs'])\n"
                    "open('/pfs/out/' + name + '.json', 'w').write(json.dumps(env))\n",
                ],
                "env": {"GREETING": "hello world"},
            },
        }
    )
    job = job_of(client, "envy", jid)
    assert job.state == JobState.SUCCESS
    by_path = {d.inputs[0]["path"]: d for d in client.list_datum(f"envy@{jid}")}
    assert set(by_path) == {"/x.txt", "/dir"}
    for path, name in (("/x.txt", "x.txt"), ("/dir", "dir")):
        seen = json.loads(client.get_file(f"envy@master:/{name}.json"))
        assert seen == {
            "GREETING": "hello world",
            "inputs": f"/pfs/inputs{path}",
            "inputs_COMMIT": cid,
            "PACH_JOB_ID": jid,
            "PACH_DATUM_ID": by_path[path].id,
        }
        assert by_path[path].env["PACH_JOB_ID"] == jid
        assert by_path[path].env["inputs_COMMIT"] == cid
        assert [i["commit"] for i in by_path[path].inputs] == [cid]


# ---- 7. updating a pipeline: skip, reprocess, reprocess_spec -------------------------------


def versioned(version: str, **extra: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": "stamp"},
        "input": pfs("inputs", "/*"),
        "transform": sh(f'echo {version} > "/pfs/out/$(basename "$inputs")"'),
        **extra,
    }


@pytest.mark.every_shape
def test_update_pipeline_skips_unless_reprocess(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "", "/b": "", "/c": ""})
    [jid] = client.create_pipeline(versioned("v1"))
    assert counts(job_of(client, "stamp", jid)) == (3, 3, 0, 0, 0)

    # New code, same salt: every datum is skipped, outputs stay.
    [jid] = client.update_pipeline(versioned("v2"))
    job = job_of(client, "stamp", jid)
    assert job.state == JobState.SUCCESS and job.version == 2
    assert counts(job) == (3, 0, 3, 0, 0)
    assert {d.state for d in client.list_datum(f"stamp@{jid}")} == {DatumState.SKIPPED}
    assert set(files(client, "stamp@master").values()) == {b"v1\n"}
    # ... but new datums run the new code.
    client.put_file("inputs@master:/d", b"")
    assert client.get_file("stamp@master:/d") == b"v2\n"

    # --reprocess: a new salt, every datum runs again.
    [jid] = client.update_pipeline(versioned("v3"), reprocess=True)
    job = job_of(client, "stamp", jid)
    assert counts(job) == (4, 4, 0, 0, 0)
    assert set(files(client, "stamp@master").values()) == {b"v3\n"}
    assert client.inspect_pipeline("stamp").version == 3


def test_reprocess_spec_every_job_never_skips(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "", "/b": ""})
    client.create_pipeline(versioned("v1", reprocess_spec="every_job"))
    cid = client.put_file("inputs@master:/c", b"")
    assert counts(job_of(client, "stamp", cid)) == (3, 3, 0, 0, 0)
    [jid] = client.update_pipeline(versioned("v2", reprocessSpec="every_job"))
    assert counts(job_of(client, "stamp", jid)) == (3, 3, 0, 0, 0)
    assert set(files(client, "stamp@master").values()) == {b"v2\n"}


# ---- 8. output path collisions -------------------------------------------------------------


def test_two_datums_writing_one_path_fail_the_job(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "a\n", "/b": "b\n"})
    spec = {
        "pipeline": {"name": "overlap"},
        "input": pfs("inputs", "/*"),
        "transform": sh('cat "$inputs" > /pfs/out/overlap'),
    }
    [jid] = client.create_pipeline(spec)
    job = job_of(client, "overlap", jid)
    assert job.state == JobState.FAILURE
    ids = [d.id for d in client.list_datum(f"overlap@{jid}")]
    assert len(ids) == 2
    assert job.reason is not None
    assert all(i in job.reason for i in ids) and "/overlap" in job.reason
    assert client.inspect_commit(f"overlap@{jid}").error

    # Writing distinct paths clears it (Pachyderm's TestValidationFailure).
    [jid] = client.update_pipeline(
        spec | {"transform": sh('cat "$inputs" > "/pfs/out/$(basename "$inputs")"')}
    )
    assert job_of(client, "overlap", jid).state == JobState.SUCCESS
    assert files(client, "overlap@master") == {"/a": b"a\n", "/b": b"b\n"}


def test_a_new_datum_colliding_with_a_kept_output_fails_the_job(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/a", b"a\n")
    client.create_pipeline(
        {
            "pipeline": {"name": "overlap"},
            "input": pfs("inputs", "/*"),
            "transform": sh('cat "$inputs" > /pfs/out/overlap'),
        }
    )
    assert client.get_file("overlap@master:/overlap") == b"a\n"
    cid = client.put_file("inputs@master:/b", b"b\n")
    job = job_of(client, "overlap", cid)
    assert job.state == JobState.FAILURE
    ids = [d.id for d in client.list_datum(f"overlap@{cid}")]
    assert job.reason is not None
    assert all(i in job.reason for i in ids) and "/overlap" in job.reason


def test_file_and_directory_at_one_path_fail_the_job(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a": "a\n", "/b": "b\n"})
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "filedir"},
            "input": pfs("inputs", "/*"),
            "transform": sh(
                'if [ "$(basename "$inputs")" = a ]; then echo 1 > /pfs/out/x;',
                "else mkdir /pfs/out/x; echo 2 > /pfs/out/x/y; fi",
            ),
        }
    )
    job = job_of(client, "filedir", jid)
    assert job.state == JobState.FAILURE
    assert job.reason is not None and "/x" in job.reason
    assert client.inspect_commit(f"filedir@{jid}").error


def test_a_new_datum_writing_below_a_kept_output_file_fails_the_job(client: Client) -> None:
    # The job's merged output counts: datum a's /x (kept from the first job) and datum b's
    # /x/y (new in the second) would make /x a file and a directory.
    client.create_repo("inputs")
    client.put_file("inputs@master:/a", b"a\n")
    client.create_pipeline(
        {
            "pipeline": {"name": "filedir"},
            "input": pfs("inputs", "/*"),
            "transform": sh(
                'if [ "$(basename "$inputs")" = a ]; then echo 1 > /pfs/out/x;',
                "else mkdir /pfs/out/x; echo 2 > /pfs/out/x/y; fi",
            ),
        }
    )
    assert files(client, "filedir@master") == {"/x": b"1\n"}
    cid = client.put_file("inputs@master:/b", b"b\n")
    job = job_of(client, "filedir", cid)
    assert job.state == JobState.FAILURE
    assert job.reason is not None
    assert "file / directory path collision: /x is a file and a directory" in job.reason
    ids = [d.id for d in client.list_datum(f"filedir@{cid}")]
    assert all(i in job.reason for i in ids)
    assert client.inspect_commit(f"filedir@{cid}").error
    assert files(client, "filedir@master") == {"/x": b"1\n"}


def test_two_spellings_of_one_name_fail_the_job(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/nfc": "caf\u00e9", "/nfd": "cafe\u0301"})
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "spell"},
            "input": pfs("inputs", "/*"),
            "transform": sh('touch "/pfs/out/$(cat "$inputs")"'),  # each datum writes one name
        }
    )
    job = job_of(client, "spell", jid)
    assert job.state == JobState.FAILURE
    assert job.reason is not None and "two Unicode spellings (NFD and NFC)" in job.reason


# ---- symlinks in /pfs/out (Pachyderm's shuffle example) ---------------------------------


def test_output_symlinks_to_inputs_are_stored_with_their_content(client: Client) -> None:
    client.create_repo("inputs")
    put_all(client, "inputs", {"/a.txt": "a\n", "/b.txt": "b\n"})
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "links"},
            "input": pfs("inputs", "/*"),
            "transform": sh('ln -s "$inputs" "/pfs/out/$(basename "$inputs")"'),
        }
    )
    assert job_of(client, "links", jid).state == JobState.SUCCESS
    assert files(client, "links@master") == {"/a.txt": b"a\n", "/b.txt": b"b\n"}


def test_shuffle_with_empty_files_and_symlinks(client: Client) -> None:
    # Pachyderm's examples/shuffle: a union of two repos with emptyFiles; the transform
    # reorganizes files by fruit with symlinks, copying no data.
    client.create_repo("fruits")
    client.create_repo("pricing")
    put_all(client, "fruits", {"/apple.jpeg": "APPLE", "/banana.jpeg": "BANANA"})
    put_all(client, "pricing", {"/apple.json": "1.20", "/banana.json": "0.50"})
    [jid] = client.create_pipeline(
        {
            "pipeline": {"name": "shuffle"},
            "input": {
                "union": [
                    {"pfs": {"glob": "/*", "repo": "fruits", "emptyFiles": True}},
                    {"pfs": {"glob": "/*", "repo": "pricing", "emptyFiles": True}},
                ]
            },
            "transform": sh(
                'echo "fruits=${fruits:-} pricing=${pricing:-}"',
                "for f in ${fruits:-} ${pricing:-}; do",
                '  b=$(basename "$f"); dir="/pfs/out/${b%.*}"; mkdir -p "$dir"',
                '  ln -s "$f" "$dir/$b"',
                "done",
            ),
        }
    )
    assert job_of(client, "shuffle", jid).state == JobState.SUCCESS
    assert files(client, "shuffle@master") == {
        "/apple/apple.jpeg": b"APPLE",
        "/apple/apple.json": b"1.20",
        "/banana/banana.jpeg": b"BANANA",
        "/banana/banana.json": b"0.50",
    }


# ---- 9. stop, start, delete ----------------------------------------------------------------

COPY = {
    "pipeline": {"name": "copy"},
    "input": pfs("inputs", "/*"),
    "transform": sh('cp "$inputs" /pfs/out/'),
}


def test_stop_and_start_pipeline(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/a", b"a\n")
    client.create_pipeline(COPY)
    client.stop_pipeline("copy")
    assert client.inspect_pipeline("copy").state == "PAUSED"
    before = {j.id for j in client.list_job("copy")}

    cid = client.put_file("inputs@master:/b", b"b\n")
    cid2 = client.put_file("inputs@master:/c", b"c\n")
    # No job ran for the stopped pipeline (none was made, or it waits in the queue).
    assert all(j.state == JobState.CREATED for j in client.list_job("copy") if j.id not in before)
    assert files(client, "copy@master") == {"/a": b"a\n"}
    assert not [j for j in client.list_job(job=cid) if j.state.terminal]
    assert not [j for j in client.list_job(job=cid2) if j.state.terminal]

    client.start_pipeline("copy")
    assert client.inspect_pipeline("copy").state == "RUNNING"
    job = last_job(client, "copy")
    assert job.state == JobState.SUCCESS and f"inputs@{cid2}" in job.inputs
    assert files(client, "copy@master") == {"/a": b"a\n", "/b": b"b\n", "/c": b"c\n"}
    assert all(j.state.terminal for j in client.list_job("copy"))
    # Running again after start: new commits trigger jobs as before.
    cid = client.put_file("inputs@master:/d", b"d\n")
    assert job_of(client, "copy", cid).state == JobState.SUCCESS


def test_delete_pipeline(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/a", b"a\n")
    client.create_pipeline(COPY)
    client.create_pipeline(
        COPY
        | {
            "pipeline": {"name": "copy2"},
            "input": pfs("copy", "/*"),
            "transform": sh('cp "$copy" /pfs/out/'),
        }
    )
    assert files(client, "copy2@master") == {"/a": b"a\n"}

    # copy's output feeds copy2: deleting copy (and its repo) is refused.
    with pytest.raises(FailedPrecondition, match="copy2"):
        client.delete_pipeline("copy")
    assert client.inspect_pipeline("copy").name == "copy"

    client.delete_pipeline("copy2")
    with pytest.raises(NotFound):
        client.inspect_pipeline("copy2")
    with pytest.raises(NotFound):
        client.inspect_repo("copy2")
    assert [p.name for p in client.list_pipeline()] == ["copy"]
    assert client.list_job("copy")
    with pytest.raises(NotFound):
        client.list_job("copy2")

    # keep_repo: the pipeline and its jobs go, the output repo and its data stay.
    client.delete_pipeline("copy", keep_repo=True)
    assert client.list_pipeline() == []
    assert files(client, "copy@master") == {"/a": b"a\n"}
    head = client.inspect_commit("copy@master").id
    client.put_file("inputs@master:/b", b"b\n")
    assert client.inspect_commit("copy@master").id == head
    assert files(client, "copy@master") == {"/a": b"a\n"}
    assert client.list_job() == []
    assert files(client, "inputs@master") == {"/a": b"a\n", "/b": b"b\n"}

    # Without keep_repo (and nothing downstream) the output repo goes too; the name is free.
    client.create_pipeline(COPY | {"pipeline": {"name": "copy3"}})
    assert files(client, "copy3@master") == {"/a": b"a\n", "/b": b"b\n"}
    client.delete_pipeline("copy3")
    assert "copy3" not in {r.name for r in client.list_repo()}
    client.create_pipeline(COPY | {"pipeline": {"name": "copy3"}})
    assert last_job(client, "copy3").state == JobState.SUCCESS


def copy_pipeline(client: Client) -> None:
    client.create_repo("inputs")
    client.put_file("inputs@master:/a", b"a\n")
    client.create_pipeline(COPY)


def test_users_cannot_write_to_an_output_branch(client: Client) -> None:
    copy_pipeline(client)
    with pytest.raises(HaathiError, match="output"):
        client.put_file("copy@master:/z", b"z")
    with pytest.raises(HaathiError, match="output"):
        client.start_commit("copy@master")
    assert files(client, "copy@master") == {"/a": b"a\n"}


def test_a_pipeline_output_repo_cannot_be_deleted_directly(client: Client) -> None:
    copy_pipeline(client)
    with pytest.raises(HaathiError, match="pipeline"):
        client.delete_repo("copy")
    assert client.inspect_repo("copy").name == "copy"
    assert client.inspect_pipeline("copy").name == "copy"


def test_a_pipeline_input_repo_cannot_be_deleted_without_force(client: Client) -> None:
    copy_pipeline(client)
    with pytest.raises(HaathiError, match="copy"):
        client.delete_repo("inputs")
    assert files(client, "inputs@master") == {"/a": b"a\n"}
    client.put_file("inputs@master:/b", b"b\n")
    assert files(client, "copy@master") == {"/a": b"a\n", "/b": b"b\n"}


# ---- input branches and history edits -------------------------------------------------------


@pytest.mark.every_shape
def test_deferred_processing_moving_the_input_head_runs_the_pipeline(client: Client) -> None:
    # Pachyderm's deferred processing: commit to staging, then move master to it.
    client.create_repo("inputs")
    client.create_pipeline(COPY)
    client.put_file("inputs@staging:/a", b"a\n")
    staged = client.put_file("inputs@staging:/b", b"b\n")
    assert files(client, "copy@master") == {}
    client.create_branch("inputs@master", "staging")
    job = last_job(client, "copy")
    assert job.state == JobState.SUCCESS and f"inputs@{staged}" in job.inputs
    assert files(client, "copy@master") == {"/a": b"a\n", "/b": b"b\n"}
    # Moving master extends the staged commit's commit set.
    assert job.id == staged
    # Moving it back (a rollback) runs the pipeline over the old content.
    client.put_file("inputs@master:/a", b"A\n")
    assert client.get_file("copy@master:/a") == b"A\n"
    client.create_branch("inputs@master", staged)
    assert client.get_file("copy@master:/a") == b"a\n"


def test_deleting_an_input_commit_drops_its_commit_set_or_is_refused(client: Client) -> None:
    copy_pipeline(client)
    cid = client.put_file("inputs@master:/b", b"b\n")
    assert files(client, "copy@master") == {"/a": b"a\n", "/b": b"b\n"}
    try:
        client.delete_commit(f"inputs@{cid}")
    except HaathiError:  # refused (Pachyderm's delete commit without --recursive)
        assert files(client, "inputs@master") == {"/a": b"a\n", "/b": b"b\n"}
        assert files(client, "copy@master") == {"/a": b"a\n", "/b": b"b\n"}
        return
    # dropped with its whole commit set (Pachyderm's DropCommitSet)
    assert files(client, "inputs@master") == {"/a": b"a\n"}
    assert files(client, "copy@master") == {"/a": b"a\n"}
    with pytest.raises(NotFound):
        client.list_commit(cid)


def test_squashing_an_input_commit_squashes_its_commit_set_or_is_refused(
    client: Client,
) -> None:
    copy_pipeline(client)
    cid = client.put_file("inputs@master:/b", b"b\n")
    client.put_file("inputs@master:/c", b"c\n")
    expected = {"/a": b"a\n", "/b": b"b\n", "/c": b"c\n"}
    try:
        client.squash_commit(f"inputs@{cid}")
    except HaathiError:  # refused (Pachyderm's squash without --recursive)
        pass
    else:
        with pytest.raises(NotFound):
            client.list_commit(cid)
    assert files(client, "inputs@master") == expected
    assert files(client, "copy@master") == expected
    for c in client.list_commit("copy@master"):
        for inp in job_of(client, "copy", c.id).inputs:
            client.inspect_commit(inp)  # every job's input commit exists


def test_an_input_branch_with_a_pipeline_cannot_be_deleted(client: Client) -> None:
    copy_pipeline(client)
    with pytest.raises(HaathiError, match="copy"):
        client.delete_branch("inputs@master")
    assert client.inspect_branch("inputs@master").head is not None
    client.put_file("inputs@master:/b", b"b\n")
    assert files(client, "copy@master") == {"/a": b"a\n", "/b": b"b\n"}


# ---- 10. cron ------------------------------------------------------------------------------


def cron_spec(name: str, **cron: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"cron": {"name": "tick", "spec": "@every 1h", **cron}},
        "transform": sh('echo "tick at $(basename "$tick")" > "/pfs/out/$(basename "$tick")"'),
    }


def test_cron_ticks(client: Client) -> None:
    client.create_pipeline(cron_spec("clock"))
    client.create_pipeline(cron_spec("latest", overwrite=True))
    assert {"clock_tick", "latest_tick"} <= {r.name for r in client.list_repo()}

    for _ in range(2):
        [tick] = client.run_cron("clock")
        job = job_of(client, "clock", tick)
        assert job.state == JobState.SUCCESS and job.data_processed == 1
        assert f"clock_tick@{tick}" in job.inputs
    ticks = files(client, "clock_tick@master")
    assert len(ticks) == 2
    out = files(client, "clock@master")
    assert out == {p: f"tick at {p[1:]}\n".encode() for p in ticks}

    for _ in range(2):
        [tick] = client.run_cron("latest")
        assert job_of(client, "latest", tick).state == JobState.SUCCESS
    [only] = files(client, "latest_tick@master")
    assert files(client, "latest@master") == {only: f"tick at {only[1:]}\n".encode()}
    job = last_job(client, "latest")
    assert (job.data_total, job.data_processed) == (1, 1)

    # Deleting the pipeline deletes its tick repo too.
    client.delete_pipeline("clock")
    assert "clock_tick" not in {r.name for r in client.list_repo()}
    with pytest.raises(NotFound):
        client.run_cron("clock")


def test_specs_past_their_bounds_are_refused_and_stored_ones_keep_running(
    client: Client,
) -> None:
    """A spec past a bound (a cron interval under 1s, a billion-fold parallelism, a 64 KiB
    description) creates nothing; a pipeline whose spec was stored before the bounds existed
    keeps working."""
    repos = {r.name for r in client.list_repo()}
    with pytest.raises(InvalidArgument, match=r"input\.cron\.spec: .*at least 1s"):
        client.create_pipeline(cron_spec("fast", spec="@every 1ns"))
    with pytest.raises(InvalidArgument, match=r"^parallelism_spec\.constant must be at most"):
        client.create_pipeline({**cron_spec("wide"), "parallelism_spec": {"constant": 10**9}})
    with pytest.raises(InvalidArgument, match=r"^description is too long: 65537 bytes"):
        client.create_pipeline({**cron_spec("long"), "description": "d" * (64 * 1024 + 1)})
    assert client.list_pipeline() == [] and {r.name for r in client.list_repo()} == repos

    client.create_pipeline(cron_spec("old"))
    old = {**cron_spec("old", spec="@every 100ms"), "parallelism_spec": {"constant": 5000}}
    with inner(client).pfs.db.write() as conn:  # as an older haathi stored it
        conn.execute(update(pipeline_versions).values(spec=json.dumps(old)))
    assert client.inspect_pipeline("old").spec["parallelism_spec"] == {"constant": 5000}
    [tick] = client.run_cron("old")
    assert job_of(client, "old", tick).state == JobState.SUCCESS


# ---- 11. list datum -f ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "input_spec",
    [
        pytest.param({"union": [pfs("left", "/*"), pfs("right", "/*")]}, id="union"),
        pytest.param({"cross": [pfs("left", "/*"), pfs("right", "/")]}, id="cross"),
        pytest.param(
            {
                "join": [
                    pfs("left", "/(*)-*", join_on="$1"),
                    pfs("right", "/(*)-*", join_on="$1", outer_join=True),
                ]
            },
            id="join",
        ),
    ],
)
def test_preview_datums_match_the_job(client: Client, input_spec: dict[str, Any]) -> None:
    client.create_repo("left")
    client.create_repo("right")
    put_all(client, "left", {"/k1-l": "1", "/k2-l": "2"})
    put_all(client, "right", {"/k1-r": "1", "/k3-r": "3", "/k3-s": "3"})
    spec = {
        "pipeline": {"name": "preview"},
        "input": input_spec,
        "transform": sh("find /pfs -type f | sort > /pfs/out/$PACH_DATUM_ID"),
    }
    preview = client.preview_datums(spec)
    assert preview
    assert client.list_repo() and "preview" not in {r.name for r in client.list_repo()}
    [jid] = client.create_pipeline(spec)
    ran = client.list_datum(f"preview@{jid}")
    assert {d.id for d in preview} == {d.id for d in ran}
    assert len(preview) == len(ran) == job_of(client, "preview", jid).data_processed

    def shape(ds: list[DatumInfo]) -> set[frozenset[tuple[str, str, str]]]:
        return {frozenset((i["name"], i["repo"], i["path"]) for i in d.inputs) for d in ds}

    assert shape(preview) == shape(ran)
