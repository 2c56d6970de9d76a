"""Pipelines whose user code reads its inputs and writes its output over S3 (``input.pfs.s3``,
``s3_out``), as Pachyderm's S3 sidecar serves them (its ``s3g_sidecar_test.go`` scenarios).

Each datum set gets a gateway of its own: an s3 input is a read-only bucket named by the input
(not under ``/pfs``), ``out`` is the output, and user code finds it through ``$S3_ENDPOINT``
with ``$AWS_ACCESS_KEY_ID`` = ``$AWS_SECRET_ACCESS_KEY`` = a token minted for the datum set.
The sandbox has no network: the endpoint is its own loopback, relayed to the gateway by the
sandbox's launcher. Datum records, provenance and lineage are those of a ``/pfs`` pipeline.

User code here is boto3, the ``aws`` CLI, or the stdlib client of ``tests/s3_user_code.py``
(plain HTTP, as user code in a bare image would do).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import haathi
from haathi.client import Client
from haathi.errors import InvalidArgument
from haathi.models.info import FileType, JobState
from haathi.pps.sidecars import NO_GATEWAY
from haathi.server.serve import Server
from tests.conftest import Cli, put_all
from tests.images import Image

USER_CLIENT = (Path(__file__).parent / "s3_user_code.py").read_text()
AWS = str(Path(sys.executable).with_name("aws"))
MiB = 1024 * 1024

BOTO3 = """
import os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}))
"""


def python(script: str, interpreter: str = sys.executable) -> dict[str, Any]:
    """A transform running ``script`` after the stdlib S3 client."""
    return {"cmd": [interpreter, "-c", USER_CLIENT + "\n" + script]}


def files(client: Client, ref: str) -> dict[str, bytes]:
    return {
        f.path: client.get_file(f"{ref}:{f.path}")
        for f in client.walk_file(f"{ref}:/")
        if f.type == FileType.FILE
    }


def only_job(client: Client, pipeline: str) -> Any:
    (job,) = client.list_job(pipeline)
    return job


def spec(name: str, transform: dict[str, Any], inp: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "transform": transform, "input": inp, **top}


def s3_input(repo: str, name: str = "in") -> dict[str, Any]:
    return {"pfs": {"repo": repo, "name": name, "glob": "/", "s3": True}}


# ---- reading and writing through the gateway -------------------------------------------------

UPPER = (
    BOTO3
    + """
names = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
for o in s3.list_objects_v2(Bucket="in")["Contents"]:
    body = s3.get_object(Bucket="in", Key=o["Key"])["Body"].read()
    s3.put_object(Bucket="out", Key=o["Key"] + ".upper", Body=body.upper())
s3.put_object(Bucket="out", Key="buckets", Body=" ".join(names).encode())
s3.put_object(Bucket="out", Key="pfs", Body=" ".join(sorted(os.listdir("/pfs"))).encode())
"""
)


@pytest.mark.every_shape
def test_user_code_reads_its_input_bucket_and_writes_out(client: Client) -> None:
    """TestFullS3: boto3 lists the buckets (the input's and ``out``), reads every object of
    the input and writes the output; ``/pfs`` holds no input. The job's records are a /pfs
    job's: one datum listing its input and outputs, the output commit's provenance."""
    client.create_repo("data")
    commit = put_all(client, "data", {"/a.txt": "alpha", "/dir/b.txt": "bravo"})
    client.create_pipeline(
        spec("upper", {"cmd": [sys.executable, "-c", UPPER]}, s3_input("data"), s3_out=True)
    )
    job = only_job(client, "upper")
    assert (job.state, job.reason, job.context["sandbox"]) == (JobState.SUCCESS, None, "bwrap")
    assert files(client, "upper@master") == {
        "/a.txt.upper": b"ALPHA", "/dir/b.txt.upper": b"BRAVO", "/buckets": b"in out",
        "/pfs": b"out",  # the s3 input is not under /pfs (/pfs/out stays, empty)
    }  # fmt: skip
    (datum,) = client.list_datum(f"upper@{job.id}")
    assert [(i["name"], i["repo"], i["commit"], i["path"]) for i in datum.inputs] == [
        ("in", "data", commit, "/")
    ]
    assert sorted(o["path"] for o in datum.outputs) == [
        "/a.txt.upper", "/buckets", "/dir/b.txt.upper", "/pfs",
    ]  # fmt: skip
    assert {f.datum for f in client.walk_file("upper@master:/")} == {datum.id}
    assert "AWS_SECRET_ACCESS_KEY" not in datum.env  # the token is never recorded
    assert client.inspect_commit("upper@master").provenance == (f"data@{commit}",)


def test_the_same_records_as_a_pfs_pipeline(client: Client) -> None:
    """A pipeline reading ``/pfs`` and its twin reading the s3 bucket: the same datum (its ID
    and inputs), the same output, the same provenance and lineage; and its datum re-runs
    (``reproduce``) through a gateway of its own, to the same output."""
    client.create_repo("data")
    put_all(client, "data", {"/a.txt": "alpha"})
    client.create_pipeline(spec(
        "pfs", {"cmd": ["sh", "-c", "cat /pfs/in/a.txt > /pfs/out/copy"]},
        {"pfs": {"repo": "data", "name": "in", "glob": "/"}},
    ))  # fmt: skip
    client.create_pipeline(spec(
        "s3", python('open("/pfs/out/copy", "wb").write(s3("GET", "/in/a.txt")[1])'),
        s3_input("data"),
    ))  # fmt: skip
    (pfs_datum,) = client.list_datum(f"pfs@{only_job(client, 'pfs').id}")
    (s3_datum,) = client.list_datum(f"s3@{only_job(client, 's3').id}")
    assert (s3_datum.id, s3_datum.inputs) == (pfs_datum.id, pfs_datum.inputs)
    assert files(client, "s3@master") == files(client, "pfs@master") == {"/copy": b"alpha"}
    assert client.inspect_commit("s3@master").provenance == (
        client.inspect_commit("pfs@master").provenance
    )
    (s3_node,) = client.lineage("s3@master:/copy")
    (pfs_node,) = client.lineage("pfs@master:/copy")
    assert [(i.repo, i.commit, i.path) for i in s3_node.inputs] == [
        (i.repo, i.commit, i.path) for i in pfs_node.inputs
    ]
    assert [i.path for i in s3_node.inputs] == ["/a.txt"]
    report = client.reproduce("s3@master:/copy")
    assert (report.ok, [f.status for d in report.datums for f in d.files]) == (True, ["match"])


def test_the_out_bucket_takes_what_s3_clients_send(client: Client) -> None:
    """What boto3 does besides a plain put: a multipart upload, a copy from the input bucket,
    a delete, and reads and listings of ``out`` itself."""
    client.create_repo("data")
    put_all(client, "data", {"/a.txt": "alpha"})
    script = (
        BOTO3
        + """
from boto3.s3.transfer import TransferConfig
import io
big = bytes(range(256)) * (6 * 4096)
parts = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
s3.upload_fileobj(io.BytesIO(big), "out", "big", Config=parts)
s3.copy_object(Bucket="out", Key="copy/a.txt", CopySource={"Bucket": "in", "Key": "a.txt"})
s3.put_object(Bucket="out", Key="gone", Body=b"x")
s3.delete_object(Bucket="out", Key="gone")
part = s3.get_object(Bucket="out", Key="big", Range="bytes=256-511")["Body"].read()
assert part == bytes(range(256))
listed = s3.list_objects_v2(Bucket="out", Delimiter="/")
s3.put_object(Bucket="out", Key="listed", Body=repr(
    ([o["Key"] for o in listed["Contents"]], [p["Prefix"] for p in listed["CommonPrefixes"]])
).encode())
"""
    )
    client.create_pipeline(spec("p", {"cmd": [sys.executable, "-c", script]}, s3_input("data"),
                                s3_out=True))  # fmt: skip
    assert only_job(client, "p").state == JobState.SUCCESS
    out = files(client, "p@master")
    assert out == {
        "/big": bytes(range(256)) * (6 * 4096), "/copy/a.txt": b"alpha",
        "/listed": repr((["big"], ["copy/"])).encode(),
    }  # fmt: skip


LINKS = """
os.symlink("/etc/hostname", "/pfs/out/link")
os.mkfifo("/pfs/out/fifo")
os.makedirs("/pfs/out/real")
os.symlink("/etc", "/pfs/out/dir")
answers = {
    "link": s3("GET", "/out/link"),
    "fifo": s3("GET", "/out/fifo"),
    "through a linked directory": s3("GET", "/out/dir/hostname"),
    "write through it": s3("PUT", "/out/dir/new", b"x"),
    "list": s3("GET", "/out?list-type=2"),
}
for name in ("link", "fifo", "dir"):
    os.remove("/pfs/out/" + name)
os.rmdir("/pfs/out/real")
for what, (status, body) in answers.items():
    open("/tmp/" + what, "w").write(f"{status} {code(body) or keys(body)}")
    s3("PUT", "/out/" + what, open("/tmp/" + what, "rb").read())
"""


def test_the_out_bucket_follows_no_link(client: Client) -> None:
    """The gateway runs as haathi, user code does not: a link user code leaves in ``/pfs/out``
    is never followed (it could name any host file, or lead a write out of the directory),
    and a pipe there blocks nothing."""
    client.create_repo("data")
    put_all(client, "data", {"/a.txt": "alpha"})
    client.create_pipeline(spec("p", python(LINKS), s3_input("data"), s3_out=True))
    assert only_job(client, "p").state == JobState.SUCCESS
    assert files(client, "p@master") == {
        "/link": b"404 NoSuchKey",
        "/fifo": b"404 NoSuchKey",
        "/through a linked directory": b"404 NoSuchKey",
        "/write through it": b"400 InvalidRequest",
        "/list": b"200 []",
    }


CHAIN = [  # (this venv's aws: the one on PATH may be none, or a shim the sandbox cannot run)
    f"{AWS} --endpoint-url $S3_ENDPOINT s3 cp s3://s3g_in/file /tmp/s3in",
    "echo 1 >> /tmp/s3in",
    f"{AWS} --endpoint-url $S3_ENDPOINT s3 cp /tmp/s3in s3://out/file",
]


def test_a_chain_of_s3_pipelines_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    """TestS3Chain, with the ``aws`` CLI as in Pachyderm's test: each pipeline reads its
    upstream's output bucket and appends a line; the CLI runs the jobs (its embedded path),
    and a new input commit runs down the chain."""
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/file", "-f", "-", input=b"")
    upstream = "data"
    for i in range(3):
        path = tmp_path / f"p{i}.json"
        path.write_text(json.dumps(spec(
            f"p{i}", {"cmd": ["bash", "-e"], "stdin": CHAIN}, s3_input(upstream, "s3g_in"),
            s3_out=True,
        )))  # fmt: skip
        cli("create", "pipeline", "-f", str(path))
        upstream = f"p{i}"
    for i in range(3):
        assert cli("get", "file", f"p{i}@master:/file").out == "1\n" * (i + 1)
    cli("put", "file", "data@master:/file", "-f", "-", input=b"new\n")
    for i in range(3):
        assert cli("get", "file", f"p{i}@master:/file").out == "new\n" + "1\n" * (i + 1)
    jobs = cli("list", "job", "-o", "json").json()
    assert [j["state"] for j in jobs] == ["SUCCESS"] * 6


SKIP = """
name = os.listdir("/pfs/pfs_in")[0]
status, s3in = s3("GET", "/s3g_in/file")
assert status == 200, s3in
line = f"{os.environ['PACH_JOB_ID']} {s3in.decode()}"
"""
WRITE_PFS = SKIP + 'open("/pfs/out/" + name, "w").write(line)'
WRITE_S3 = SKIP + 'assert s3("PUT", "/out/" + name, line.encode())[0] == 200'


def test_datums_are_skipped_until_the_s3_input_changes(client: Client) -> None:
    """TestS3SkippedDatums: crossed with a /pfs input, an s3 input is part of every datum:
    a new /pfs file runs its own datum only, a new s3 input commit runs them all. With
    ``s3_out`` nothing is ever skipped. (Each output names the job that wrote it.)"""
    client.create_repo("pfs_in")
    client.create_repo("s3_in")
    put_all(client, "s3_in", {"/file": "foo"})
    put_all(client, "pfs_in", {"/1": "1"})
    cross = {"cross": [{"pfs": {"repo": "pfs_in", "glob": "/*"}}, s3_input("s3_in", "s3g_in")]}
    client.create_pipeline(spec("pfs_out", python(WRITE_PFS), cross))
    client.create_pipeline(spec("s3_out", python(WRITE_S3), cross, s3_out=True))

    def written(pipeline: str) -> dict[str, str]:
        """{datum's file: the job that wrote its output, and the s3 input it read}"""
        return {p: v.decode() for p, v in files(client, f"{pipeline}@master").items()}

    first = put_all(client, "pfs_in", {"/2": "2"})
    (start,) = [j.id for j in client.list_job("pfs_out") if j.id != first]
    assert written("pfs_out") == {"/1": f"{start} foo", "/2": f"{first} foo"}
    assert written("s3_out") == {"/1": f"{first} foo", "/2": f"{first} foo"}
    second = put_all(client, "s3_in", {"/file": "bar"})
    assert written("pfs_out") == {"/1": f"{second} bar", "/2": f"{second} bar"}
    last = client.inspect_job(f"pfs_out@{second}")
    assert (last.state, last.data_processed, last.data_skipped) == (JobState.SUCCESS, 2, 0)


# ---- the token: this job's buckets, while it runs --------------------------------------------

PROBE = """
import os
token = os.environ["AWS_ACCESS_KEY_ID"]
assert token == os.environ["AWS_SECRET_ACCESS_KEY"] and len(token) == 64
answers = {
    "own input": s3("GET", "/in/a.txt"),
    "another repo": s3("GET", "/secret/s.txt"),
    "another repo's branch": s3("GET", "/master.secret/s.txt"),
    "write an input": s3("PUT", "/in/new.txt", b"x"),
    "create a bucket": s3("PUT", "/newbucket"),
    "unsigned": s3("GET", "/in/a.txt", signed=False),
    "another key": s3("GET", "/in/a.txt", key="AKIDEXAMPLE", secret="x" * 40),
    "wrong secret": s3("GET", "/in/a.txt", secret="y" * 64),
}
for what, (status, body) in answers.items():
    open("/pfs/out/" + what, "w").write(f"{status} {code(body) or body.decode()}")
open("/pfs/out/token", "w").write(token)
"""

REPLAY = """
status, old = s3("GET", "/upstream/token")
open("/pfs/out/own token", "w").write(str(status))
status, body = s3("GET", "/upstream/token", key=old.decode(), secret=old.decode())
open("/pfs/out/old token", "w").write(f"{status} {code(body)}")
"""


def test_the_token_reads_only_the_job_buckets_and_ends_with_the_job(client: Client) -> None:
    """Through the gateway user code reaches its own input and nothing else: another repo is
    no bucket there, inputs are read-only, no bucket can be made, and a request must be
    signed with the job's token. A token that leaked out of its job (here into the output,
    read by a downstream job) works nowhere afterwards."""
    client.create_repo("data")
    client.create_repo("secret")
    put_all(client, "data", {"/a.txt": "alpha"})
    put_all(client, "secret", {"/s.txt": "not yours"})
    client.create_pipeline(spec("probe", python(PROBE), s3_input("data")))
    assert only_job(client, "probe").state == JobState.SUCCESS
    out = files(client, "probe@master")
    token = out.pop("/token").decode()
    assert out == {
        "/own input": b"200 alpha",
        "/another repo": b"404 NoSuchBucket",
        "/another repo's branch": b"404 NoSuchBucket",
        "/write an input": b"403 AccessDenied",
        "/create a bucket": b"403 AccessDenied",
        "/unsigned": b"403 AccessDenied",
        "/another key": b"403 InvalidAccessKeyId",
        "/wrong secret": b"403 SignatureDoesNotMatch",
    }
    client.create_pipeline(spec("replay", python(REPLAY), s3_input("probe", "upstream")))
    assert only_job(client, "replay").state == JobState.SUCCESS
    assert files(client, "replay@master") == {
        "/own token": b"200", "/old token": b"403 InvalidAccessKeyId",
    }  # fmt: skip
    (datum,) = client.list_datum(f"probe@{only_job(client, 'probe').id}")
    assert token not in json.dumps(datum.env)


def test_with_auth_on_the_job_token_is_no_haathi_credential(server: Server) -> None:
    """With auth on (``haathi serve``; user code must then run in a sandbox): the job reads
    its input through its gateway, and its token, should it leak, opens nothing in the
    server's own S3 gateway."""
    with haathi.connect(server.url) as anon:
        root_token = anon.auth_activate()
    with haathi.connect(server.url, token=root_token) as root:
        root.create_repo("data")
        put_all(root, "data", {"/a.txt": "alpha"})
        root.create_pipeline(spec("probe", python(PROBE), s3_input("data")))
        assert only_job(root, "probe").state == JobState.SUCCESS
        token = root.get_file("probe@master:/token").decode()
        assert root.get_file("probe@master:/own input") == b"200 alpha"
    assert server.s3_url is not None
    leaked = boto3.client(
        "s3", endpoint_url=server.s3_url, aws_access_key_id=token, aws_secret_access_key=token,
        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    for call in (leaked.list_buckets, lambda: leaked.get_object(Bucket="master.data", Key="a.txt")):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["Error"]["Code"] == "InvalidAccessKeyId"


# ---- where jobs run: every way gets the gateway -----------------------------------------------


def test_a_process_without_a_gateway_fails_the_job_saying_why(store: Path) -> None:
    """``haathi.client.connect`` alone serves no gateway (``haathi.connect``, the CLI, ``haathi
    run worker`` and ``haathi serve`` do): such a job fails with the reason, before any datum
    runs; it never runs another way."""
    from haathi.client import connect

    with connect(str(store)) as bare:
        bare.create_repo("data")
        put_all(bare, "data", {"/a.txt": "alpha"})
        bare.create_pipeline(spec("p", python('s3("GET", "/in/a.txt")'), s3_input("data")))
        job = only_job(bare, "p")
        assert (job.state, job.reason) == (JobState.FAILURE, f"job failed: {NO_GATEWAY}")
        assert job.data_processed == 0
    with haathi.connect(str(store)) as full:  # the same job, run again where there is one
        full.update_pipeline(spec("p", python('s3("GET", "/in/a.txt")'), s3_input("data")))
        assert full.list_job("p")[0].state == JobState.SUCCESS


ENDPOINT = """
open("/pfs/out/endpoint", "w").write(os.environ["S3_ENDPOINT"])
open("/pfs/out/a.txt", "wb").write(s3("GET", "/in/a.txt")[1])
"""


def test_without_a_sandbox_the_gateway_is_on_the_host_loopback(store: Path) -> None:
    """Sandbox ``none``: user code shares the host's network, so the gateway listens on the
    host's loopback (the token still guards it) instead of being relayed into a sandbox."""
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_repo("data")
        put_all(c, "data", {"/a.txt": "alpha"})
        c.create_pipeline(spec("p", python(ENDPOINT), s3_input("data")))
        job = only_job(c, "p")
        assert (job.state, job.context["sandbox"]) == (JobState.SUCCESS, "none")
        out = files(c, "p@master")
    assert out["/a.txt"] == b"alpha"
    host, port = out["/endpoint"].decode().removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    assert closed_soon(host, int(port))  # with its datum set


def closed_soon(host: str, port: int) -> bool:
    """Whether nothing listens at host:port within 10 s (a gateway stops within 0.1 s of its
    datum set's end, uvicorn's tick, on a machine that is not loaded)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        except (ConnectionResetError, ConnectionAbortedError):
            pass  # it closed its socket while the kernel queued this connection: closing
        time.sleep(0.02)
    return False


def test_haathi_run_worker_serves_the_gateway(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/a.txt", "-f", "-", input=b"alpha")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec("p", python(ENDPOINT), s3_input("data"))))
    cli("create", "pipeline", "-f", str(path), "--no-wait")
    done = subprocess.run(
        [sys.executable, "-m", "haathi", "run", "worker", "--once"],
        env={**os.environ, "HAATHI_ADDRESS": str(cli.store)}, capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (job,) = cli("list", "job", "-o", "json").json()
    assert job["state"] == "SUCCESS"
    assert cli("get", "file", "p@master:/a.txt").out == "alpha"


def test_a_sandbox_started_again_relays_the_gateway_again(client: Client) -> None:
    """A datum that times out kills its sandbox; the retry runs in a new one, whose launcher
    relays the same endpoint to the same gateway."""
    client.create_repo("data")
    put_all(client, "data", {"/a.txt": "alpha"})
    script = """
import os, time
if not os.path.exists("/tmp/tried"):
    open("/tmp/tried", "w").close()
    time.sleep(60)
open("/pfs/out/a.txt", "wb").write(s3("GET", "/in/a.txt")[1])
"""
    client.create_pipeline(spec("p", python(script), s3_input("data"), datum_timeout="3s",
                                datum_tries=2))  # fmt: skip
    job = only_job(client, "p")
    (datum,) = client.list_datum(f"p@{job.id}")
    assert (job.state, datum.attempts) == (JobState.SUCCESS, 2)
    assert files(client, "p@master") == {"/a.txt": b"alpha"}


@pytest.mark.parametrize("runtime", ["bwrap", "podman"])
def test_user_code_in_an_image_reaches_the_gateway(
    runtime: str, tmp_path: Path, python_image: Image
) -> None:
    """In a container of an image (``--network none`` for podman), the launcher relays the
    gateway into the container's loopback as it does into the host sandbox."""
    with haathi.connect(str(tmp_path / "store"), runtime=runtime) as c:
        c.create_repo("data")
        put_all(c, "data", {"/a.txt": "alpha"})
        copy = 'assert s3("PUT", "/out/a.txt", s3("GET", "/in/a.txt")[1])[0] == 200'
        transform = {**python(copy, "python3"), "image": python_image.name}
        c.create_pipeline(spec("p", transform, s3_input("data"), s3_out=True))
        job = only_job(c, "p")
        assert (job.state, job.reason, job.context["runtime"]) == (JobState.SUCCESS, None, runtime)
        assert files(c, "p@master") == {"/a.txt": b"alpha"}


# ---- bad input -----------------------------------------------------------------------------

BAD = [
    (
        {"pfs": {"repo": "data", "glob": "/*", "s3": True}},
        "input.pfs: inputs that set 's3' to 'true' must also set 'glob' to '/', as the S3 "
        "gateway is only able to expose data at the commit level",
    ),
    (
        {"pfs": {"repo": "data", "glob": "/", "s3": True, "lazy": True}},
        "input.pfs: input cannot specify both 's3' and 'lazy', as 's3' requires input data to "
        "be accessed via the S3 gateway rather than the file system",
    ),
    (
        {"pfs": {"repo": "data", "glob": "/", "s3": True, "empty_files": True}},
        "input.pfs: input cannot specify both 's3' and 'empty_files', as 's3' requires input "
        "data to be accessed via the S3 gateway rather than the file system",
    ),
    (
        {"union": [s3_input("data"), {"pfs": {"repo": "other", "glob": "/*"}}]},
        "input.union: S3 inputs in union expressions are not supported",
    ),
    (
        {
            "join": [
                {"pfs": {"repo": "data", "glob": "/", "s3": True, "join_on": "$1"}},
                {"pfs": {"repo": "other", "glob": "/(*)", "join_on": "$1"}},
            ]
        },
        "input.join: S3 inputs in join expressions are not supported",
    ),
    (
        {"group": [{"pfs": {"repo": "data", "glob": "/", "s3": True, "group_by": "$1"}}]},
        "input.group: S3 inputs in group expressions are not supported",
    ),
    ({"pfs": {"repo": "data", "glob": "/", "s3": "yes"}}, "input.pfs.s3 must be true or false"),
]


@pytest.mark.parametrize(("inp", "error"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_s3_inputs_are_refused(cli: Cli, tmp_path: Path, inp: Any, error: str) -> None:
    cli("create", "repo", "data")
    cli("create", "repo", "other")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec("p", {"cmd": ["true"]}, inp, s3_out=True)))
    for verb in ("create", "validate"):
        res = cli.fails(verb, "pipeline", "-f", str(path))
        assert (res.code, res.err.startswith(f"error: {error}")) == (2, True), res.err
    assert cli("list", "pipeline", "-o", "json").json() == []


def test_s3_out_is_a_bool_and_shows_in_the_spec(client: Client) -> None:
    """``s3_out`` (or ``s3Out``) and ``input.pfs.s3`` are kept in the effective spec; a note
    says that an ``s3_out`` pipeline never skips a datum."""
    client.create_repo("data")
    with pytest.raises(InvalidArgument, match=r"^s3_out must be true or false"):
        client.validate_pipeline(spec("p", {"cmd": ["true"]}, s3_input("data"), s3_out="yes"))
    (checked,) = client.validate_pipeline(
        spec("p", {"cmd": ["true"]}, s3_input("data"), s3Out=True)
    )
    assert checked["spec"]["s3_out"] is True
    assert checked["spec"]["input"]["pfs"]["s3"] is True
    assert checked["notes"] == [
        "s3Out: no datum is ever skipped: each job runs them all, as with reprocess_spec "
        "every_job (Pachyderm's rule)"
    ]
