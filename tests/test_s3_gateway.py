"""The S3 gateway of ``haathi serve``, driven by real S3 clients (boto3 and the AWS CLI) on
both backend pairs: buckets are branches (``branch.repo``; ``branch.repo.project`` in another
project) and commits (``commit.branch.repo``, read-only), every write is one commit, errors
are S3 XML."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

import haathi
from haathi.client import Client
from haathi.server.s3.multipart import UploadLimits
from haathi.server.serve import Server
from loopback.servers import haathi_serve
from tests.raw_http import headers_only

AWS = str(Path(sys.executable).with_name("aws"))
MiB = 1024 * 1024


@pytest.fixture
def c(server: Server) -> Iterator[Client]:
    """A haathi client of the server: what haathi itself sees of the gateway's writes."""
    with haathi.connect(server.url) as client:
        yield client


def s3_client(
    endpoint: str, key: str = "any", secret: str = "any", signature: str | None = None
) -> BaseClient:
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      signature_version=signature),
    )  # fmt: skip


@pytest.fixture
def s3(server: Server) -> BaseClient:
    assert server.s3_url is not None
    return s3_client(server.s3_url)


@pytest.fixture
def raw(server: Server) -> Iterator[httpx.Client]:
    """Plain HTTP to the gateway (auth is off: no signature needed)."""
    with httpx.Client(base_url=str(server.s3_url)) as h:
        yield h


def s3_error(response: httpx.Response) -> tuple[int, str, str]:
    """(status, Code, Message) of an S3 ``<Error>`` document."""
    assert response.headers["content-type"].startswith("application/xml"), response.text[:200]
    root = ET.fromstring(response.content)
    assert root.tag == "Error", response.text[:200]
    return response.status_code, root.findtext("Code") or "", root.findtext("Message") or ""


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    err = exc.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]


def commits(c: Client, repo: str = "data") -> int:
    return len(c.list_commit(repo))


def changed(c: Client, ref: str = "data@master") -> dict[str, str]:
    """{path: added/modified/removed} of the commit ``ref`` against its parent."""
    return {d.path: d.change.value for d in c.diff_file(ref)}


def files(c: Client, ref: str = "data@master") -> dict[str, bytes]:
    return {f.path: c.get_file(f"{ref}:{f.path}") for f in c.walk_file(f"{ref}:/")}


@pytest.fixture
def data(c: Client) -> Client:
    """Repo ``data`` with branch master holding /a.txt, /dir/b.txt, /dir/sub/c.txt."""
    c.create_repo("data")
    with c.start_commit("data@master") as commit:
        commit.put_file("/a.txt", b"alpha")
        commit.put_file("/dir/b.txt", b"bravo")
        commit.put_file("/dir/sub/c.txt", b"charlie")
    return c


# buckets ---------------------------------------------------------------------------------


def test_buckets_are_the_branches_of_every_repo(data: Client, s3: BaseClient) -> None:
    data.create_branch("data@dev", head="master")
    data.create_repo("other")
    data.put_file("other@main:/x", b"x")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["dev.data", "main.other", "master.data"]
    s3.head_bucket(Bucket="dev.data")
    for missing in ("nope.data", "master.nope"):
        with pytest.raises(ClientError) as exc:
            s3.head_bucket(Bucket=missing)
        assert code_of(exc)[0] == 404
    head = data.inspect_commit("data@master").id
    s3.head_bucket(Bucket=f"{head}.master.data")


def test_create_bucket_makes_the_repo_and_branch(c: Client, s3: BaseClient) -> None:
    s3.create_bucket(Bucket="master.fresh")
    assert [b.name for b in c.list_branch("fresh")] == ["master"]
    assert s3.list_objects_v2(Bucket="master.fresh")["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="master.fresh")
    assert code_of(exc) == (409, "BucketAlreadyOwnedByYou")


def test_a_bucket_of_another_project_names_it_last(c: Client, s3: BaseClient) -> None:
    """Pachyderm's ``[commit.][branch.]repo[.project]``: ``branch.repo.project`` for a repo of
    another project than ``default``; ``repo`` alone is the master of default's."""
    c.create_project("p2")
    for repo, content in (("data", b"default"), ("p2/data", b"p2")):
        c.create_repo(repo)
        c.put_file(f"{repo}@master:/f", content)
    for bucket, content in (("master.data.p2", b"p2"), ("data", b"default"),
                            ("master.data", b"default")):  # fmt: skip
        assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == content, bucket
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["master.data", "master.data.p2"]
    s3.put_object(Bucket="master.data.p2", Key="g", Body=b"new")
    assert c.get_file("p2/data@master:/g") == b"new"
    head = c.inspect_commit("p2/data@master").id
    assert s3.get_object(Bucket=f"{head}.master.data.p2", Key="g")["Body"].read() == b"new"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="master.data.nope", Key="f")
    assert code_of(exc) == (404, "NoSuchBucket")


def test_bad_bucket_names_are_refused(raw: httpx.Client) -> None:
    # Pachyderm's [commit.][branch.]repo[.project]: at most three parts after a commit ID
    for name in ("a.b.c.d", "bad name.repo", f"{'a' * 32}.a.b.c.d", "master.data.bad name"):
        status, code, _ = s3_error(raw.get(f"/{name}"))
        assert (status, code) == (400, "InvalidBucketName"), name


# objects ---------------------------------------------------------------------------------


@pytest.mark.every_backend
def test_each_write_is_one_commit_and_reads_show_it(data: Client, s3: BaseClient) -> None:
    before = commits(data)
    put = s3.put_object(Bucket="master.data", Key="new/file.bin", Body=b"0123456789")
    assert commits(data) == before + 1
    assert changed(data) == {"/new/file.bin": "added"}
    info = data.inspect_file("data@master:/new/file.bin")
    assert put["ETag"] == f'"{info.hash}"'
    got = s3.get_object(Bucket="master.data", Key="new/file.bin")
    assert got["Body"].read() == b"0123456789"
    assert got["ETag"] == put["ETag"] and got["ContentLength"] == 10
    head = s3.head_object(Bucket="master.data", Key="new/file.bin")
    finished = data.inspect_commit("data@master").finished
    assert finished is not None
    assert head["ContentLength"] == 10 and head["ETag"] == put["ETag"]
    assert abs(head["LastModified"].timestamp() - finished.timestamp()) < 1
    listed = s3.list_objects_v2(Bucket="master.data", Prefix="new/")["Contents"][0]
    assert abs(listed["LastModified"].timestamp() - finished.timestamp()) < 0.002  # ms

    s3.put_object(Bucket="master.data", Key="a.txt", Body=b"ALPHA")  # overwrite
    assert commits(data) == before + 2
    assert changed(data) == {"/a.txt": "modified"}
    s3.delete_object(Bucket="master.data", Key="a.txt")
    assert commits(data) == before + 3
    assert changed(data) == {"/a.txt": "removed"}
    s3.delete_object(Bucket="master.data", Key="a.txt")  # gone already: 204, no commit
    assert commits(data) == before + 3
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="master.data", Key="a.txt")
    assert code_of(exc) == (404, "NoSuchKey")


def test_equal_content_has_an_equal_etag(data: Client, s3: BaseClient) -> None:
    s3.put_object(Bucket="master.data", Key="copy-of-a", Body=b"alpha")
    one = s3.head_object(Bucket="master.data", Key="a.txt")["ETag"]
    assert s3.head_object(Bucket="master.data", Key="copy-of-a")["ETag"] == one
    assert s3.head_object(Bucket="master.data", Key="dir/b.txt")["ETag"] != one


def test_get_object_with_a_range(data: Client, s3: BaseClient, raw: httpx.Client) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: several chunks
    s3.put_object(Bucket="master.data", Key="r.bin", Body=body)
    for header, first, last in [
        ("bytes=0-9", 0, 9), ("bytes=1000-", 1000, len(body) - 1),
        ("bytes=-100", len(body) - 100, len(body) - 1), ("bytes=500000-600000", 500000, 600000),
        ("bytes=1048570-2000000", 1048570, len(body) - 1),
    ]:  # fmt: skip
        got = s3.get_object(Bucket="master.data", Key="r.bin", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
        assert got["Body"].read() == body[first : last + 1]
    head = s3.head_object(Bucket="master.data", Key="r.bin", Range="bytes=5-6")
    assert head["ContentLength"] == 2
    r = raw.get("/master.data/r.bin", headers={"Range": f"bytes={len(body)}-"})
    assert s3_error(r)[:2] == (416, "InvalidRange")
    assert r.headers["content-range"] == f"bytes */{len(body)}"
    whole = raw.get("/master.data/r.bin", headers={"Range": "bytes=0-1,5-6"})  # ignored
    assert whole.status_code == 200 and whole.content == body


def test_copy_object_is_one_commit(data: Client, s3: BaseClient) -> None:
    old = data.inspect_commit("data@master").id
    s3.put_object(Bucket="master.data", Key="a.txt", Body=b"changed")
    before = commits(data)
    s3.copy_object(Bucket="master.data", Key="old-a.txt",
                   CopySource={"Bucket": f"{old}.master.data", "Key": "a.txt"})  # fmt: skip
    assert commits(data) == before + 1
    assert changed(data) == {"/old-a.txt": "added"}
    assert data.get_file("data@master:/old-a.txt") == b"alpha"


def test_delete_objects_is_one_commit(data: Client, s3: BaseClient) -> None:
    before = commits(data)
    keys = ["a.txt", "dir/sub/c.txt", "never-was"]
    out = s3.delete_objects(Bucket="master.data",
                            Delete={"Objects": [{"Key": k} for k in keys]})  # fmt: skip
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(keys)
    assert commits(data) == before + 1
    assert changed(data) == {"/a.txt": "removed", "/dir/sub/c.txt": "removed"}
    quiet = s3.delete_objects(
        Bucket="master.data", Delete={"Objects": [{"Key": "dir/b.txt"}], "Quiet": True}
    )
    assert quiet.get("Deleted", []) == []
    assert commits(data) == before + 2
    assert files(data) == {}


def test_a_commit_bucket_reads_that_commit_and_refuses_writes(data: Client, s3: BaseClient) -> None:
    old = data.inspect_commit("data@master").id
    bucket = f"{old}.master.data"
    s3.put_object(Bucket="master.data", Key="a.txt", Body=b"newer")
    assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"alpha"
    assert s3.get_object(Bucket="master.data", Key="a.txt")["Body"].read() == b"newer"
    before = commits(data)
    writes: list[Callable[[], Any]] = [
        lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x"),
        lambda: s3.delete_object(Bucket=bucket, Key="a.txt"),
        lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a.txt"}]}),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="x"),
        lambda: s3.copy_object(Bucket=bucket, Key="x",
                               CopySource={"Bucket": "master.data", "Key": "a.txt"}),
    ]  # fmt: skip
    for write in writes:
        with pytest.raises(ClientError) as exc:
            write()
        assert code_of(exc) == (403, "AccessDenied")
    assert commits(data) == before


# listing ---------------------------------------------------------------------------------

KEYS = sorted([
    "a.txt", "a/1", "a/2/x", "a/2/y", "a0", "b c+d%e.txt", "dir/b.txt", "dir/sub/c.txt",
    "dir/sub/d.txt", "dir/z", "é/ü.txt", "zz",
])  # fmt: skip


def expected(prefix: str, delimiter: str) -> list[str]:
    """What S3 lists: keys under the prefix, rolled up at the delimiter (prefixes end in it)."""
    out: list[str] = []
    for key in KEYS:
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        name = key if cut < 0 else key[: cut + len(delimiter)]
        if name not in out:
            out.append(name)
    return out


@pytest.fixture
def listed(c: Client) -> Client:
    c.create_repo("data")
    with c.start_commit("data@master") as commit:
        for key in KEYS:
            commit.put_file("/" + key, key.encode())
    return c


@pytest.mark.parametrize("max_keys", [1, 2, 1000])
def test_list_objects_v2_pages_through_prefixes_and_delimiters(
    listed: Client, s3: BaseClient, max_keys: int
) -> None:
    for prefix, delimiter in [
        ("", ""),
        ("", "/"),
        ("a", "/"),
        ("a/", "/"),
        ("dir/", "/"),
        ("dir/s", ""),
        ("é/", "/"),
        ("", "sub"),
        ("nothing", "/"),
    ]:
        names: list[str] = []
        pages = 0
        kw: dict[str, Any] = {"Bucket": "master.data", "Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            kw["Delimiter"] = delimiter
        while True:
            page = s3.list_objects_v2(**kw)
            pages += 1
            got = [o["Key"] for o in page.get("Contents", [])]
            got += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            assert page["KeyCount"] == len(got) <= max_keys
            names += got
            if not page["IsTruncated"]:
                break
            kw["ContinuationToken"] = page["NextContinuationToken"]
        want = expected(prefix, delimiter)
        assert sorted(names) == want, (prefix, delimiter)
        assert pages == max(1, -(-len(want) // max_keys)), (prefix, delimiter)


def test_list_objects_contents_and_start_after(listed: Client, s3: BaseClient) -> None:
    page = s3.list_objects_v2(Bucket="master.data", Prefix="dir/")
    sizes = {o["Key"]: o["Size"] for o in page["Contents"]}
    assert sizes == {k: len(k.encode()) for k in KEYS if k.startswith("dir/")}
    info = listed.inspect_file("data@master:/dir/z")
    assert {o["Key"]: o["ETag"] for o in page["Contents"]}["dir/z"] == f'"{info.hash}"'
    after = s3.list_objects_v2(Bucket="master.data", StartAfter="dir/sub/c.txt")
    assert [o["Key"] for o in after["Contents"]] == [k for k in KEYS if k > "dir/sub/c.txt"]
    v1 = s3.list_objects(Bucket="master.data", Delimiter="/", MaxKeys=3)
    assert v1["IsTruncated"]
    rest = s3.list_objects(Bucket="master.data", Delimiter="/", Marker=v1["NextMarker"])
    names = [o["Key"] for p in (v1, rest) for o in p.get("Contents", [])]
    names += [x["Prefix"] for p in (v1, rest) for x in p.get("CommonPrefixes", [])]
    assert sorted(names) == expected("", "/")


def test_a_page_reads_its_own_keys_not_the_whole_bucket(
    c: Client, s3: BaseClient, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    c.create_repo("data")
    with c.start_commit("data@master") as commit:
        for i in range(600):
            commit.put_file(f"/d{i % 20:02d}/f{i:04d}", b"x")
    walked: list[int] = []
    real = server.api.walk_file
    monkeypatch.setattr(
        server.api, "walk_file", lambda *a, **kw: walked.append(len(out := real(*a, **kw))) or out
    )
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="master.data", PaginationConfig={"PageSize": 50}
    ):  # fmt: skip
        keys += [o["Key"] for o in page["Contents"]]
    assert keys == sorted(f"d{i % 20:02d}/f{i:04d}" for i in range(600))
    assert sum(walked) <= 600 + 12  # each file once (and one look past each page)
    walked.clear()
    top = s3.list_objects_v2(Bucket="master.data", Delimiter="/", MaxKeys=5)
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [f"d{i:02d}/" for i in range(5)]
    assert top["IsTruncated"] and len(walked) <= 6  # a seek per prefix, not a scan


def test_an_empty_branch_is_an_empty_bucket(c: Client, s3: BaseClient) -> None:
    c.create_repo("data")
    c.create_branch("data@master")
    assert s3.list_objects_v2(Bucket="master.data")["KeyCount"] == 0
    s3.put_object(Bucket="master.data", Key="first", Body=b"1")
    assert files(c) == {"/first": b"1"}


# multipart -------------------------------------------------------------------------------


@pytest.mark.every_backend
def test_upload_file_in_parts_is_one_commit(data: Client, s3: BaseClient, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(13 * MiB))
    before = commits(data)
    small_parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(src), "master.data", "big/big.bin", Config=small_parts)
    assert commits(data) == before + 1
    assert changed(data) == {"/big/big.bin": "added"}
    assert data.get_file("data@master:/big/big.bin") == src.read_bytes()
    out = tmp_path / "out.bin"
    s3.download_file("master.data", "big/big.bin", str(out), Config=small_parts)  # ranged GETs
    assert out.read_bytes() == src.read_bytes()


def test_multipart_parts_list_replace_complete_and_abort(data: Client, s3: BaseClient) -> None:
    before = commits(data)
    up = s3.create_multipart_upload(Bucket="master.data", Key="m.bin")["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket="master.data")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("m.bin", up)]
    etags = {}
    for n, body in [(2, b"B" * 10), (1, b"wrong"), (1, b"A" * 7), (3, b"C")]:
        etags[n] = s3.upload_part(Bucket="master.data", Key="m.bin", UploadId=up,
                                  PartNumber=n, Body=body)["ETag"]  # fmt: skip
    parts = s3.list_parts(Bucket="master.data", Key="m.bin", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 7), (2, 10), (3, 1)]
    assert commits(data) == before  # nothing is written before Complete
    with pytest.raises(ClientError) as exc:  # an ETag that is not the part's
        s3.complete_multipart_upload(
            Bucket="master.data", Key="m.bin", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etags[2]}]},
        )  # fmt: skip
    assert code_of(exc) == (400, "InvalidPart")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="master.data", Key="m.bin", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etags[2]},
                                       {"PartNumber": 1, "ETag": etags[1]}]},
        )  # fmt: skip
    assert code_of(exc) == (400, "InvalidPartOrder")
    done = s3.complete_multipart_upload(
        Bucket="master.data", Key="m.bin", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
    )  # fmt: skip
    assert commits(data) == before + 1
    assert data.get_file("data@master:/m.bin") == b"A" * 7 + b"B" * 10 + b"C"
    assert done["ETag"] == s3.head_object(Bucket="master.data", Key="m.bin")["ETag"]
    with pytest.raises(ClientError) as exc:  # completed: the upload is gone
        s3.list_parts(Bucket="master.data", Key="m.bin", UploadId=up)
    assert code_of(exc) == (404, "NoSuchUpload")

    aborted = s3.create_multipart_upload(Bucket="master.data", Key="n.bin")["UploadId"]
    s3.upload_part(Bucket="master.data", Key="n.bin", UploadId=aborted, PartNumber=1, Body=b"n")
    s3.abort_multipart_upload(Bucket="master.data", Key="n.bin", UploadId=aborted)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="master.data", Key="n.bin", UploadId=aborted, PartNumber=2,
                       Body=b"n")  # fmt: skip
    assert code_of(exc) == (404, "NoSuchUpload")
    assert commits(data) == before + 1
    assert "n.bin" not in [o["Key"] for o in s3.list_objects_v2(Bucket="master.data")["Contents"]]


# errors and bad input --------------------------------------------------------------------


def test_a_key_cannot_be_an_object_and_hold_objects(data: Client, s3: BaseClient) -> None:
    """Keys are file paths: ``a.txt`` is an object, so ``a.txt/x`` cannot be one, and
    ``dir/`` holds objects, so ``dir`` cannot be one (a tree no file system could hold).
    PutObject, CopyObject and CompleteMultipartUpload refuse them and write nothing."""
    before, content = commits(data), files(data)

    def refused(write: Callable[[], object]) -> str:
        with pytest.raises(ClientError) as exc:
            write()
        assert code_of(exc) == (400, "InvalidRequest")
        return str(exc.value.response["Error"]["Message"])

    for key in ("a.txt/x", "dir", "dir/sub"):
        message = refused(partial(s3.put_object, Bucket="master.data", Key=key, Body=b"x"))
        assert "file / directory path collision" in message
    refused(
        lambda: s3.copy_object(
            Bucket="master.data",
            Key="a.txt/copy",
            CopySource={"Bucket": "master.data", "Key": "dir/b.txt"},
        )
    )
    up = s3.create_multipart_upload(Bucket="master.data", Key="dir/sub")["UploadId"]
    etag = s3.upload_part(Bucket="master.data", Key="dir/sub", UploadId=up, PartNumber=1,
                          Body=b"part")["ETag"]  # fmt: skip
    refused(lambda: s3.complete_multipart_upload(
        Bucket="master.data", Key="dir/sub", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    ))  # fmt: skip
    # a name longer than a file system's (255 bytes) cannot be restored: refused too
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="master.data", Key="dir/" + "n" * 256, Body=b"x")
    assert code_of(exc) == (400, "InvalidArgument")
    assert "is 256 bytes long" in exc.value.response["Error"]["Message"]
    assert commits(data) == before and files(data) == content


def test_errors_are_s3_xml_with_their_status(data: Client, raw: httpx.Client) -> None:
    assert s3_error(raw.get("/master.nope/x"))[:2] == (404, "NoSuchBucket")
    assert s3_error(raw.get("/nope.data/x"))[:2] == (404, "NoSuchBucket")
    assert s3_error(raw.get("/master.data/nope"))[:2] == (404, "NoSuchKey")
    assert s3_error(raw.get("/master.data/dir"))[:2] == (404, "NoSuchKey")  # a directory
    assert s3_error(raw.get("/master.data/a.txt?acl"))[:2] == (501, "NotImplemented")
    assert s3_error(raw.get("/master.data/a.txt?versionId=1"))[:2] == (501, "NotImplemented")
    assert s3_error(raw.delete("/master.data"))[:2] == (501, "NotImplemented")
    assert s3_error(raw.post("/master.data?delete", content=b"<Delete><Obj"))[:2] == (
        400, "MalformedXML"
    )  # fmt: skip
    head = raw.head("/master.data/nope")
    assert head.status_code == 404 and head.content == b""
    assert s3_error(raw.put("/master.data/x%FF", content=b"x"))[:2] == (400, "InvalidURI")
    assert s3_error(raw.get("/master.data/new%0Aline"))[:2] == (400, "InvalidArgument")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "dir/\x01ctl", "a/./b", "a//b",
                                 "star*", "dir/", "tab\there", "new\nline", "glob?mark",
                                 "cr\rx"])  # fmt: skip
def test_bad_keys_are_refused_and_write_nothing(data: Client, s3: BaseClient, key: str) -> None:
    """A key haathi paths cannot hold is refused, never stored as another key (a tab or a
    newline was dropped, ``?`` stored as ``%3F``)."""
    before = commits(data)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="master.data", Key=key, Body=b"x")
    assert code_of(exc) == (400, "InvalidArgument")
    assert "invalid" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket="master.data", Key=key)
    assert code_of(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket="master.data",
                          Delete={"Objects": [{"Key": "a.txt"}, {"Key": key}]})  # fmt: skip
    # (XML 1.0 cannot carry most control characters: that document is not even XML)
    assert code_of(exc)[0] == 400
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket="master.data", Key=key)
    assert code_of(exc) == (400, "InvalidArgument")
    assert commits(data) == before
    assert set(files(data)) == {"/a.txt", "/dir/b.txt", "/dir/sub/c.txt"}


# Keys that URLs must escape, each stored as exactly this haathi path ("/" + key)
ODD_KEYS = [
    "hash#tag",
    "back\\slash",
    "per%cent",
    "per%41",
    "plus+sign",
    "with space",
    "ünïcødé/ключ/鍵",
    "quote'\"<&>",
    "eq=amp&semi;colon",
    "tilde~bang!(paren)",
    "a%2Fb",
]


def test_keys_round_trip_exactly_as_sent(data: Client, s3: BaseClient) -> None:
    for key in ODD_KEYS:
        s3.put_object(Bucket="master.data", Key=key, Body=key.encode())
    before = {"/a.txt", "/dir/b.txt", "/dir/sub/c.txt"}
    assert sorted(set(files(data)) - before) == sorted(f"/{k}" for k in ODD_KEYS)
    for key in ODD_KEYS:
        assert s3.get_object(Bucket="master.data", Key=key)["Body"].read() == key.encode()
        assert s3.head_object(Bucket="master.data", Key=key)["ContentLength"] == len(key.encode())
    v2 = [o["Key"] for o in s3.list_objects_v2(Bucket="master.data")["Contents"]]
    v1 = [o["Key"] for o in s3.list_objects(Bucket="master.data")["Contents"]]
    assert v1 == v2 and sorted(set(v2) - {"a.txt", "dir/b.txt", "dir/sub/c.txt"}) == sorted(
        ODD_KEYS
    )  # fmt: skip
    listed = s3.list_objects_v2(Bucket="master.data", Prefix="per%")["Contents"]
    assert [o["Key"] for o in listed] == ["per%41", "per%cent"]
    s3.copy_object(Bucket="master.data", Key="copy of hash#tag",
                   CopySource={"Bucket": "master.data", "Key": "hash#tag"})  # fmt: skip
    assert data.get_file("data@master:/copy of hash#tag") == b"hash#tag"
    s3.delete_objects(Bucket="master.data", Delete={"Objects": [{"Key": k} for k in ODD_KEYS]})
    assert set(files(data)) == {"/a.txt", "/dir/b.txt", "/dir/sub/c.txt", "/copy of hash#tag"}


def test_a_body_that_does_not_match_its_digests_writes_nothing(
    data: Client, raw: httpx.Client
) -> None:
    before = commits(data)
    r = raw.put("/master.data/x", content=b"payload",
                headers={"x-amz-content-sha256": "0" * 64})  # fmt: skip
    assert s3_error(r)[:2] == (400, "XAmzContentSHA256Mismatch")
    r = raw.put("/master.data/x", content=b"payload",
                headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})  # fmt: skip
    assert s3_error(r)[:2] == (400, "BadDigest")
    r = raw.put("/master.data/x", content=b"payload", headers={"x-amz-checksum-crc32": "AAAAAA=="})
    assert s3_error(r)[:2] == (400, "BadDigest")
    chunked = b"7\r\npayload\r\n0\r\n\r\n"
    headers = {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "7",
    }
    assert s3_error(raw.put("/master.data/x", content=chunked[:9], headers=headers))[:2] == (
        400, "IncompleteBody"
    )  # fmt: skip
    assert commits(data) == before
    assert raw.put("/master.data/x", content=chunked, headers=headers).status_code == 200
    assert data.get_file("data@master:/x") == b"payload"


def test_uploads_over_the_limit_write_nothing(store: Path, tmp_path: Path) -> None:
    server = Server.for_store(str(store), {}, "127.0.0.1:0", max_upload_bytes=1000).start()
    try:
        assert server.s3_url is not None
        s3 = s3_client(server.s3_url)
        s3.create_bucket(Bucket="master.data")
        s3.put_object(Bucket="master.data", Key="ok", Body=b"x" * 1000)
        with haathi.connect(server.url) as c:
            before = commits(c)
            with pytest.raises(ClientError) as exc:
                s3.put_object(Bucket="master.data", Key="big", Body=b"x" * 1001)
            assert code_of(exc) == (400, "EntityTooLarge")
            up = s3.create_multipart_upload(Bucket="master.data", Key="big")["UploadId"]
            s3.upload_part(Bucket="master.data", Key="big", UploadId=up, PartNumber=1,
                           Body=b"x" * 600)  # fmt: skip
            with pytest.raises(ClientError) as exc:
                s3.upload_part(Bucket="master.data", Key="big", UploadId=up, PartNumber=2,
                               Body=b"x" * 600)  # fmt: skip
            assert code_of(exc) == (400, "EntityTooLarge")
            assert commits(c) == before
            # announced too large: refused from the headers, before a byte of the body
            for path in ("/master.data/big", f"/master.data/big?partNumber=3&uploadId={up}"):
                answer = headers_only(server.s3_url, "PUT", path,
                                      {"Content-Length": str(50 << 30)})  # fmt: skip
                assert answer.status == 400 and b"EntityTooLarge" in answer.body
                assert answer.seconds < 5 and answer.headers["connection"] == "close"
            # no length (chunked): counted as it streams
            sent = 0

            def endless() -> Iterator[bytes]:
                nonlocal sent
                while sent < 1 << 30:
                    sent += 64 * 1024
                    yield b"z" * (64 * 1024)

            with httpx.Client(base_url=server.s3_url) as raw:
                try:
                    r = raw.put("/master.data/big", content=endless())
                    assert s3_error(r)[:2] == (400, "EntityTooLarge")
                except httpx.HTTPError:
                    pass  # the server closed the connection while the client was still sending
            assert sent < 64 << 20
            assert commits(c) == before
    finally:
        server.stop()


def _slow_down(call: Callable[[], Any]) -> str:
    """The message of the SlowDown (503) ``call`` must end in."""
    with pytest.raises(ClientError) as exc:
        call()
    assert code_of(exc) == (503, "SlowDown")
    return str(exc.value.response["Error"]["Message"])


def test_multipart_uploads_in_progress_are_bounded(store: Path) -> None:
    """At most so many uploads open, so many bytes of parts spooled (a part's room reserved
    from its Content-Length, before its body is read): past that, SlowDown and nothing kept."""
    limits = UploadLimits(max_uploads=3, max_spool_bytes=1000)
    server = Server.for_store(str(store), {}, "127.0.0.1:0", s3_uploads=limits).start()
    try:
        assert server.s3_url is not None and server.gateway is not None
        s3 = s3_client(server.s3_url)
        s3.create_bucket(Bucket="master.data")
        ups = [s3.create_multipart_upload(Bucket="master.data", Key=f"k{i}")["UploadId"]
               for i in range(3)]  # fmt: skip
        message = _slow_down(lambda: s3.create_multipart_upload(Bucket="master.data", Key="k3"))
        assert "3 multipart uploads in progress" in message
        s3.abort_multipart_upload(Bucket="master.data", Key="k2", UploadId=ups[2])
        ups[2] = s3.create_multipart_upload(Bucket="master.data", Key="k2")["UploadId"]

        etag = s3.upload_part(Bucket="master.data", Key="k0", UploadId=ups[0], PartNumber=1,
                              Body=b"a" * 600)["ETag"]  # fmt: skip
        message = _slow_down(
            lambda: s3.upload_part(
                Bucket="master.data", Key="k1", UploadId=ups[1], PartNumber=1, Body=b"b" * 600
            )
        )
        assert "at most 1000 bytes of multipart parts" in message
        answer = headers_only(server.s3_url, "PUT", f"/master.data/k1?partNumber=1&uploadId="
                              f"{ups[1]}", {"Content-Length": str(50 << 30)})  # fmt: skip
        assert answer.status == 503 and b"SlowDown" in answer.body and answer.seconds < 5
        assert server.gateway.uploads.spooled_bytes == 600
        parts = s3.list_parts(Bucket="master.data", Key="k1", UploadId=ups[1]).get("Parts", [])
        assert parts == []

        s3.complete_multipart_upload(  # frees its room
            Bucket="master.data", Key="k0", UploadId=ups[0],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )  # fmt: skip
        assert server.gateway.uploads.spooled_bytes == 0
        s3.upload_part(Bucket="master.data", Key="k1", UploadId=ups[1], PartNumber=1,
                       Body=b"b" * 600)  # fmt: skip
        with haathi.connect(server.url) as c:
            assert files(c) == {"/k0": b"a" * 600}
    finally:
        server.stop()


def test_each_caller_has_a_bound_on_uploads_in_progress(store: Path) -> None:
    limits = UploadLimits(max_uploads=10, max_uploads_per_caller=2)
    server = Server.for_store(str(store), {}, "127.0.0.1:0", s3_uploads=limits).start()
    secured = Secured(server)
    try:
        alice = secured.s3("alice")
        for i in range(2):
            alice.create_multipart_upload(Bucket="master.data", Key=f"a{i}")
        message = _slow_down(lambda: alice.create_multipart_upload(Bucket="master.data",
                                                                   Key="a2"))  # fmt: skip
        assert "user:alice has 2 multipart uploads in progress" in message
        secured.alice.set_repo_roles("data", "repoWriter", "user:bob")
        secured.s3("bob").create_multipart_upload(Bucket="master.data", Key="b0")  # his own
    finally:
        secured.close()
        server.stop()


def test_an_abandoned_upload_expires_with_its_parts(store: Path) -> None:
    """An upload with no new part for the idle limit (a day by default) is aborted: its
    parts leave the disk, and using it is NoSuchUpload."""
    limits = UploadLimits(idle_s=1.0)
    server = Server.for_store(str(store), {}, "127.0.0.1:0", s3_uploads=limits).start()
    try:
        assert server.s3_url is not None and server.gateway is not None
        s3 = s3_client(server.s3_url)
        s3.create_bucket(Bucket="master.data")
        up = s3.create_multipart_upload(Bucket="master.data", Key="k")["UploadId"]
        s3.upload_part(Bucket="master.data", Key="k", UploadId=up, PartNumber=1, Body=b"x" * 99)
        spool = server.gateway.uploads.root
        assert any(spool.rglob("*.part"))
        for _ in range(2):  # a new part keeps it alive
            time.sleep(0.6)
            s3.upload_part(Bucket="master.data", Key="k", UploadId=up, PartNumber=2, Body=b"y")
        time.sleep(1.2)
        assert s3.list_multipart_uploads(Bucket="master.data").get("Uploads", []) == []
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket="master.data", Key="k", UploadId=up, PartNumber=3, Body=b"z")
        assert code_of(exc) == (404, "NoSuchUpload")
        assert not any(spool.rglob("*")) and server.gateway.uploads.spooled_bytes == 0
    finally:
        server.stop()


# the AWS CLI -----------------------------------------------------------------------------


class AwsCli:
    """The real ``aws`` command against the gateway, with no config of the user's."""

    def __init__(self, endpoint: str, home: Path) -> None:
        empty = home / "empty"
        empty.write_text("")
        self.endpoint = endpoint
        self.env = dict(
            os.environ, AWS_ACCESS_KEY_ID="haathi", AWS_SECRET_ACCESS_KEY="haathi",
            AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(empty),
            AWS_SHARED_CREDENTIALS_FILE=str(empty), HOME=str(home),
        )  # fmt: skip

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(
            [AWS, "--endpoint-url", self.endpoint, *args], env=self.env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, f"aws {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def fails(self, *args: str) -> str:
        """The error output of a command that must fail."""
        proc = subprocess.run(
            [AWS, "--endpoint-url", self.endpoint, *args], env=self.env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode != 0, f"aws {' '.join(args)} succeeded: {proc.stdout}"
        return proc.stderr


@pytest.fixture
def aws(server: Server, tmp_path: Path) -> AwsCli:
    home = tmp_path / "aws-home"
    home.mkdir()
    assert server.s3_url is not None
    return AwsCli(server.s3_url, home)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# the default store only: the gateway on PostgreSQL and S3 is tested through boto3 (every_backend)
def test_aws_cli_copies_a_directory_in_and_out_and_syncs_only_changes(
    c: Client, aws: AwsCli, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    for i in range(5):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (src / "sub" / "s.csv").write_text("a,b\n1,2\n")
    (src / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(9 * MiB))  # CLI multipart
    aws("s3", "mb", "s3://master.data")
    aws("s3", "sync", str(src), "s3://master.data/in")
    assert commits(c) == 7  # one per file, the multipart upload included
    assert files(c) == {f"/in/{k}": v for k, v in _tree(src).items()}

    listing = aws("s3", "ls", "--recursive", "s3://master.data/")
    assert sorted(line.split()[-1] for line in listing.splitlines()) == sorted(
        f"in/{k}" for k in _tree(src)
    )  # fmt: skip
    top = aws("s3", "ls", "s3://master.data/in/")
    assert "PRE sub/" in top and "f0.txt" in top and "s.csv" not in top

    out = tmp_path / "out"
    aws("s3", "cp", "--recursive", "s3://master.data/in", str(out))
    assert _tree(out) == _tree(src)

    aws("s3", "sync", str(src), "s3://master.data/in")  # nothing changed: nothing written
    assert commits(c) == 7
    time.sleep(0.01)
    (src / "f2.txt").write_text("changed\n")
    aws("s3", "sync", str(src), "s3://master.data/in")
    assert commits(c) == 8
    assert changed(c) == {"/in/f2.txt": "modified"}
    assert c.find_commit("data@master:/in/f2.txt")[0].id == c.inspect_commit("data@master").id

    (src / "f3.txt").unlink()
    aws("s3", "sync", "--delete", str(src), "s3://master.data/in")
    assert commits(c) == 9
    assert changed(c) == {"/in/f3.txt": "removed"}

    aws("s3", "sync", "s3://master.data/in", str(out))
    assert _tree(out)["f2.txt"] == b"changed\n"


def test_aws_cli_keys_round_trip_exactly_and_a_tab_key_is_refused(
    c: Client, aws: AwsCli, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for key in ODD_KEYS:
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_text(key)
    aws("s3", "mb", "s3://master.data")
    aws("s3", "sync", str(src), "s3://master.data/")
    assert files(c) == {f"/{k}": k.encode() for k in ODD_KEYS}
    listing = aws("s3", "ls", "--recursive", "s3://master.data/")
    assert sorted(line.split(maxsplit=3)[-1] for line in listing.splitlines()) == sorted(ODD_KEYS)
    out = tmp_path / "out"
    aws("s3", "sync", "s3://master.data/", str(out))
    assert _tree(out) == _tree(src)
    aws("s3", "cp", "s3://master.data/hash#tag", str(tmp_path / "one"))
    assert (tmp_path / "one").read_text() == "hash#tag"

    before = commits(c)
    error = aws.fails("s3api", "put-object", "--bucket", "master.data", "--key", "tab\tkey",
                      "--body", str(src / "hash#tag"))  # fmt: skip
    assert "InvalidArgument" in error and "control character" in error
    error = aws.fails("s3", "cp", str(src / "hash#tag"), "s3://master.data/glob?mark")
    assert "InvalidArgument" in error
    assert commits(c) == before


# the server ------------------------------------------------------------------------------


def test_inspect_cluster_reports_the_s3_endpoint(server: Server, store: Path) -> None:
    def inspect(address: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "haathi", "inspect", "cluster", "-o", "json"],
            env=dict(os.environ, HAATHI_ADDRESS=address), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    remote = inspect(server.url)
    assert remote["s3_endpoint"] == server.s3_url and remote["server"] == server.url
    embedded = inspect(str(store))
    assert embedded["s3_endpoint"] is None and embedded["server"] is None
    assert remote["store"] == embedded["store"]  # the store's own settings, unchanged


def test_no_gateway_without_s3_bind(store: Path) -> None:
    server = Server.for_store(str(store), {}, "127.0.0.1:0", s3_bind="none").start()
    try:
        assert server.s3_url is None
        with haathi.connect(server.url) as c:
            assert c.inspect_cluster()["s3_endpoint"] is None
    finally:
        server.stop()


def test_an_open_s3_bind_warns_while_auth_is_off(store: Path) -> None:
    server = Server.for_store(str(store), {}, "127.0.0.1:0", s3_bind="0.0.0.0:0")
    try:
        assert server.warning is not None and "0.0.0.0 is not a loopback" in server.warning
        assert server.s3_url is not None and server.s3_url.startswith("http://127.0.0.1:")
    finally:
        server.stop()
    server = Server.for_store(str(store), {}, "127.0.0.1:0")
    try:
        assert server.warning is None
    finally:
        server.stop()


def test_haathi_serve_prints_its_s3_endpoint(store: Path) -> None:
    with haathi_serve(store) as (_proc, server_url, endpoint):
        assert endpoint is not None and endpoint.startswith("http://127.0.0.1:")
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket="master.data")
        s3.put_object(Bucket="master.data", Key="k", Body=b"v")
        with haathi.connect(server_url) as c:
            assert c.get_file("data@master:/k") == b"v"
            assert c.inspect_cluster()["s3_endpoint"] == endpoint


# auth --------------------------------------------------------------------------------------


class Secured:
    """Auth on: user:alice owns repo ``data`` (one file); user:bob may read it; user:carol has
    no role. Each one's token is their access key ID and their secret key."""

    def __init__(self, server: Server) -> None:
        assert server.s3_url is not None
        self.endpoint = server.s3_url
        with haathi.connect(server.url) as anon:
            root_token = anon.auth_activate()
        self.root = haathi.connect(server.url, token=root_token)
        self.tokens = {u: self.root.get_auth_token(f"user:{u}") for u in ("alice", "bob", "carol")}
        self.alice = haathi.connect(server.url, token=self.tokens["alice"])
        self.alice.create_repo("data")
        self.alice.put_file("data@master:/a.txt", b"alpha")
        self.alice.set_repo_roles("data", "repoReader", "user:bob")

    def s3(self, user: str, signature: str | None = None) -> BaseClient:
        token = self.tokens[user]
        return s3_client(self.endpoint, token, token, signature)

    def close(self) -> None:
        self.alice.close()
        self.root.close()


@pytest.fixture
def secured(server: Server) -> Iterator[Secured]:
    s = Secured(server)
    yield s
    s.close()


def test_with_auth_on_the_token_is_access_key_and_secret(secured: Secured) -> None:
    alice = secured.s3("alice")
    alice.put_object(Bucket="master.data", Key="b.txt", Body=b"bravo")
    assert secured.alice.inspect_commit("data@master").author == "user:alice"
    assert alice.get_object(Bucket="master.data", Key="b.txt")["Body"].read() == b"bravo"
    small_parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    big = os.urandom(6 * MiB)
    alice.upload_fileobj(io.BytesIO(big), "master.data", "big", Config=small_parts)
    assert secured.alice.get_file("data@master:/big") == big
    keys = [o["Key"] for o in alice.list_objects_v2(Bucket="master.data")["Contents"]]
    assert keys == ["a.txt", "b.txt", "big"]


def test_with_auth_on_keys_urls_must_escape_are_signed_and_stored_as_sent(
    secured: Secured,
) -> None:
    alice = secured.s3("alice", "s3v4")
    for key in ODD_KEYS:
        alice.put_object(Bucket="master.data", Key=key, Body=key.encode())
        assert alice.get_object(Bucket="master.data", Key=key)["Body"].read() == key.encode()
        url = alice.generate_presigned_url(
            "get_object", Params={"Bucket": "master.data", "Key": key}, ExpiresIn=60
        )
        assert httpx.get(url).content == key.encode()
    assert {f"/{k}" for k in ODD_KEYS} <= set(files(secured.alice))


def test_with_auth_on_bad_credentials_are_refused(secured: Secured, raw: httpx.Client) -> None:
    before = commits(secured.alice)
    assert s3_error(raw.get("/master.data/a.txt"))[:2] == (403, "AccessDenied")  # unsigned
    assert s3_error(raw.put("/master.data/x", content=b"x"))[:2] == (403, "AccessDenied")
    token = secured.tokens["alice"]
    cases = [
        (s3_client(secured.endpoint, "not-a-token", "not-a-token"), "InvalidAccessKeyId"),
        (s3_client(secured.endpoint, token, "wrong-secret"), "SignatureDoesNotMatch"),
        (s3_client(secured.endpoint, token, secured.tokens["bob"]), "SignatureDoesNotMatch"),
    ]
    for client, code in cases:
        with pytest.raises(ClientError) as exc:
            client.get_object(Bucket="master.data", Key="a.txt")
        assert code_of(exc) == (403, code)
        with pytest.raises(ClientError) as exc:
            client.put_object(Bucket="master.data", Key="x", Body=b"x")
        assert code_of(exc) == (403, code)
    secured.root.revoke_token(secured.tokens["carol"])
    with pytest.raises(ClientError) as exc:
        secured.s3("carol").list_buckets()
    assert code_of(exc) == (403, "InvalidAccessKeyId")
    assert commits(secured.alice) == before


def test_with_auth_on_roles_decide_what_a_caller_may_do(secured: Secured) -> None:
    bob, carol = secured.s3("bob"), secured.s3("carol")
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["master.data"]
    assert carol.list_buckets()["Buckets"] == []
    assert bob.get_object(Bucket="master.data", Key="a.txt")["Body"].read() == b"alpha"
    before = commits(secured.alice)
    refused: list[Callable[[], Any]] = [
        lambda: bob.put_object(Bucket="master.data", Key="x", Body=b"x"),
        lambda: bob.delete_object(Bucket="master.data", Key="a.txt"),
        lambda: bob.delete_object(Bucket="master.data", Key="never-was"),
        lambda: bob.delete_objects(Bucket="master.data", Delete={"Objects": [{"Key": "a.txt"}]}),
        lambda: bob.delete_objects(Bucket="master.data",
                                   Delete={"Objects": [{"Key": "never-was"}]}),
        lambda: bob.create_multipart_upload(Bucket="master.data", Key="x"),
        lambda: bob.copy_object(Bucket="master.data", Key="x",
                                CopySource={"Bucket": "master.data", "Key": "a.txt"}),
        lambda: carol.get_object(Bucket="master.data", Key="a.txt"),
        lambda: carol.list_objects_v2(Bucket="master.data"),
    ]  # fmt: skip
    for call in refused:
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == (403, "AccessDenied")
    assert commits(secured.alice) == before
    alice = secured.s3("alice")
    up = alice.create_multipart_upload(Bucket="master.data", Key="m")["UploadId"]
    secured.alice.set_repo_roles("data", "repoWriter", "user:bob")
    with pytest.raises(ClientError) as exc:  # an upload is its starter's
        bob.upload_part(Bucket="master.data", Key="m", UploadId=up, PartNumber=1, Body=b"x")
    assert code_of(exc) == (403, "AccessDenied")


def test_with_auth_on_presigned_urls_work_until_they_expire(secured: Secured) -> None:
    v2 = secured.s3("alice").generate_presigned_url(  # boto3's default for S3: SigV2
        "get_object", Params={"Bucket": "master.data", "Key": "a.txt"}, ExpiresIn=60
    )
    status, code, message = s3_error(httpx.get(v2))
    assert (status, code) == (400, "AuthorizationQueryParametersError")
    assert "signature_version='s3v4'" in message
    alice = secured.s3("alice", "s3v4")
    get = alice.generate_presigned_url(
        "get_object", Params={"Bucket": "master.data", "Key": "a.txt"}, ExpiresIn=60
    )
    assert httpx.get(get).content == b"alpha"
    assert s3_error(httpx.get(get.replace("a.txt", "b.txt")))[:2] == (
        403, "SignatureDoesNotMatch"
    )  # fmt: skip
    put = alice.generate_presigned_url(
        "put_object", Params={"Bucket": "master.data", "Key": "p.txt"}, ExpiresIn=60
    )
    assert httpx.put(put, content=b"presigned").status_code == 200
    assert secured.alice.get_file("data@master:/p.txt") == b"presigned"
    expired = alice.generate_presigned_url(
        "get_object", Params={"Bucket": "master.data", "Key": "a.txt"}, ExpiresIn=1
    )
    time.sleep(2)
    assert s3_error(httpx.get(expired))[:2] == (403, "AccessDenied")


def test_with_auth_on_the_aws_cli_signs_with_the_token(
    secured: Secured, server: Server, tmp_path: Path
) -> None:
    home = tmp_path / "aws-home"
    home.mkdir()
    aws = AwsCli(str(server.s3_url), home)
    token = secured.tokens["alice"]
    aws.env.update(AWS_ACCESS_KEY_ID=token, AWS_SECRET_ACCESS_KEY=token)
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.txt").write_text("x")
    (src / "big.bin").write_bytes(os.urandom(9 * MiB))
    aws("s3", "sync", str(src), "s3://master.data/up")
    assert secured.alice.get_file("data@master:/up/big.bin") == (src / "big.bin").read_bytes()
    aws("s3", "cp", "--recursive", "s3://master.data/up", str(tmp_path / "out"))
    assert _tree(tmp_path / "out") == _tree(src)
    aws.env.update(AWS_SECRET_ACCESS_KEY="wrong")
    proc = subprocess.run([AWS, "--endpoint-url", aws.endpoint, "s3", "ls", "s3://master.data"],
                          env=aws.env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "SignatureDoesNotMatch" in proc.stderr
