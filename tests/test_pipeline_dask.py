"""Datums on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes.

The workers open the same store (the test's store directory, or SeaweedFS + PostgreSQL) from
its config, run the datums and write the outputs themselves; the job runner only assembles
the output commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import haathi
from loopback.servers import ACCESS_KEY, SECRET_KEY
from tests.dask_cluster import DaskCluster

pytestmark = pytest.mark.slow  # a Dask scheduler and workers

WHO = {
    "pipeline": {"name": "who"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {
        "cmd": ["sh"],
        "stdin": ['echo "$(cat "$data") $PPID" > "/pfs/out/$(basename "$data")"'],
    },
    "parallelism_spec": {"constant": 2},
}


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """The cluster's workers get the S3 credentials the s3pg stores read from the environment
    (as workers of a real deployment would)."""
    cluster = DaskCluster(workers=2)
    with pytest.MonkeyPatch.context() as env:
        for key, value in {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            env.setenv(key, value)
        address = cluster.start()
    try:
        yield address
    finally:
        cluster.stop()


@pytest.mark.every_backend
def test_datums_run_on_dask_workers(store: Path, dask_address: str) -> None:
    # sandbox "none": $PPID is then the process that ran the datum (a dask worker)
    address = dask_address.replace("tcp://", "dask://")
    with haathi.connect(str(store), executor=address, sandbox="none") as c:
        c.create_repo("data")
        c.modify_file("data@master", [_put(f"/f{i:02d}", f"v{i}".encode()) for i in range(16)])
        c.create_pipeline(WHO)
        job = c.list_job("who")[0]
        assert (job.state.value, job.data_processed) == ("SUCCESS", 16), job.reason
        assert job.context["executor"].startswith("dask://")
        outputs = {
            f.path: c.get_file(f"who@master:{f.path}").decode().split()
            for f in c.list_file("who@master:/")
        }
        assert sorted(outputs) == [f"/f{i:02d}" for i in range(16)]
        assert all(words[0] == f"v{int(path[2:])}" for path, words in outputs.items())
        pids = {words[1] for words in outputs.values()}  # one per dask worker
        assert len(pids) >= 2, "datums should spread over both dask workers"

        c.put_file("data@master:/f99", b"v99")  # incremental on dask too
        job = c.list_job("who")[0]
        assert (job.data_processed, job.data_skipped) == (1, 16)
        assert c.get_file("who@master:/f99").decode().startswith("v99")


def _put(path: str, data: bytes) -> haathi.models.ops.PutOp:  # type: ignore[name-defined]
    from haathi.client import sources

    return sources.bytes_op(data, path)


@pytest.mark.every_backend
def test_a_dask_worker_serves_its_datum_sets_s3_gateway(store: Path, dask_address: str) -> None:
    """``input.pfs.s3`` and ``s3_out`` on Dask: the worker that runs a datum set opens its S3
    gateway (the task carries the gateway factory, not a gateway)."""
    from tests.test_s3_io import python, s3_input, spec

    copy = 'assert s3("PUT", "/out/" + name, s3("GET", "/in/" + name)[1])[0] == 200'
    script = "name = os.path.basename(os.environ['data'])\n" + copy
    address = dask_address.replace("tcp://", "dask://")
    with haathi.connect(str(store), executor=address) as c:
        c.create_repo("data")
        c.modify_file("data@master", [_put(f"/f{i}", f"v{i}".encode()) for i in range(4)])
        cross = {"cross": [{"pfs": {"repo": "data", "glob": "/*"}}, s3_input("data")]}
        c.create_pipeline({**spec("copy", python(script), cross, s3_out=True),
                           "parallelism_spec": {"constant": 2}})  # fmt: skip
        job = c.list_job("copy")[0]
        assert (job.state.value, job.data_processed) == ("SUCCESS", 4), job.reason
        out = {f.path: c.get_file(f"copy@master:{f.path}") for f in c.list_file("copy@master:/")}
        assert out == {f"/f{i}": f"v{i}".encode() for i in range(4)}
