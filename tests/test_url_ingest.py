"""``put file`` from URLs and lists of sources, as pachctl: ``-f http(s)://...``,
``-f s3://bucket/key`` (``-r``: every object under a prefix), ``-i FILE`` (paths and URLs, one
a line), and stdin when no ``-f`` is given.

The client downloads (the server never fetches a URL) and streams what it downloads into the
put: a large download is never held whole. A failed download (refused, an HTTP error, a body
cut short) fails the whole put with one line, and nothing is committed. The downloads come
from a small HTTP server on loopback (``tests/http_source.py``) and from a real SeaweedFS.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.errors import InvalidArgument, NotFound
from haathi.server.serve import Server
from loopback.servers import ACCESS_KEY, SECRET_KEY, free_port
from tests.conftest import Backends, Cli
from tests.http_source import HttpSource, big_digest


@pytest.fixture
def web() -> Iterator[HttpSource]:
    s = HttpSource().start()
    s.files["a.txt"] = b"alpha\n"
    s.files["b.txt"] = b"bravo\n"
    yield s
    s.stop()


def commits(cli: Cli, repo: str = "r") -> list[dict[str, Any]]:
    return list(cli("list", "commit", repo, "-o", "json").json())


def files(cli: Cli, ref: str = "r@master:/") -> dict[str, int]:
    """Every file below the ref's path, with its size."""
    found = cli("glob", "file", f"{ref.rstrip('/')}/**", "-o", "json").json()
    return {f["path"]: f["size_bytes"] for f in found if f["type"] == "file"}


# http(s) ----------------------------------------------------------------------------------


def test_put_file_from_http_places_files_as_pachctl(cli: Cli, web: HttpSource) -> None:
    cli("create", "repo", "r")
    cli("put", "file", "r@master", "-f", f"{web.url}/files/a.txt")  # no path: its name
    cli("put", "file", "r@master:/named.txt", "-f", f"{web.url}/files/a.txt")
    cli("put", "file", "r@master:/dir/", "-f", f"{web.url}/files/b.txt")  # below a dir
    cli("put", "file", "r@master:/two", "-f", f"{web.url}/files/a.txt",
        "-f", f"{web.url}/files/b.txt")  # fmt: skip
    cli("put", "file", "r@master:/moved.txt", "-f", f"{web.url}/redirect/b.txt")  # followed
    cli("put", "file", "r@master:/named.txt", "-a", "-f", f"{web.url}/files/b.txt")
    assert files(cli) == {
        "/a.txt": 6, "/named.txt": 12, "/dir/b.txt": 6, "/two/a.txt": 6, "/two/b.txt": 6,
        "/moved.txt": 6,
    }  # fmt: skip
    assert cli("get", "file", "r@master:/named.txt").out == "alpha\nbravo\n"
    assert len(commits(cli)) == 6


FAILURES = [
    ("/status/404", NotFound, "HTTP 404 Not Found"),
    ("/status/500", InvalidArgument, "HTTP 500 Internal Server Error"),
    ("/truncated/100000", InvalidArgument, "received 50000 bytes, expected 100000"),
    ("/cut", InvalidArgument, "incomplete chunked read"),
]


@pytest.mark.parametrize(("route", "error", "why"), FAILURES)
def test_failed_download_commits_nothing_cli(
    cli: Cli, web: HttpSource, route: str, error: type[Exception], why: str
) -> None:
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/kept.txt", "-f", f"{web.url}/files/a.txt")
    # a good source before the bad one: the put is one commit, and it is not made
    res = cli.fails("put", "file", "r@master:/new/", "-f", f"{web.url}/files/b.txt",
                    "-f", f"{web.url}{route}")  # fmt: skip
    assert res.code == error.exit_code  # type: ignore[attr-defined]
    assert f"cannot download {web.url}{route}: " in res.err
    assert why in res.err and "nothing was written" in res.err
    assert len(commits(cli)) == 1
    assert files(cli) == {"/kept.txt": 6}


def test_unreachable_host_commits_nothing(cli: Cli) -> None:
    cli("create", "repo", "r")
    url = f"http://127.0.0.1:{free_port()}/x.csv"  # nothing listens there
    res = cli.fails("put", "file", "r@master:/x.csv", "-f", url)
    assert res.code == 2 and f"cannot download {url}: " in res.err and "refused" in res.err
    assert commits(cli) == []


def test_bad_url_sources_are_refused_before_anything(cli: Cli, web: HttpSource) -> None:
    cli("create", "repo", "r")
    res = cli.fails("put", "file", "r@master:/x", "-f", "ftp://127.0.0.1/x")
    assert "unsupported URL scheme 'ftp'" in res.err and res.code == 2
    res = cli.fails("put", "file", "r@master:/", "--untar", "-f", f"{web.url}/files/a.tar")
    assert "--untar takes local files" in res.err
    res = cli.fails("put", "file", "r@master:/x", "-f", "s3://")
    assert "no bucket" in res.err
    res = cli.fails("put", "file", "r@master:/x", "-f", "s3://bucket")
    assert "names no object: use -r" in res.err
    assert web.requests == [] and commits(cli) == []


@pytest.mark.every_shape
def test_client_put_file_url(client: Client, web: HttpSource, real_server: Server | None) -> None:
    """Embedded and through a real server: the client downloads and streams the bytes in; a
    download that fails after megabytes went to the server commits nothing either."""
    client.create_repo("r")
    client.put_file_url("r@master:/a.txt", f"{web.url}/files/a.txt")
    client.put_file_url("r@master:/d/", f"{web.url}/files/b.txt")
    with client.start_commit("r@master") as c:
        c.put_file_url("/c.txt", f"{web.url}/files/a.txt")
        c.put_file_url("/c.txt", f"{web.url}/files/b.txt", append=True)
    assert client.get_file("r@master:/a.txt") == b"alpha\n"
    assert client.get_file("r@master:/d/b.txt") == b"bravo\n"
    assert client.get_file("r@master:/c.txt") == b"alpha\nbravo\n"
    head = client.inspect_commit("r@master").id
    for route, error, why in [*FAILURES, ("/truncated/16777216", InvalidArgument, "8388608")]:
        with pytest.raises(error, match=why):
            client.put_file_url("r@master:/bad", f"{web.url}{route}")
    assert client.inspect_commit("r@master").id == head
    assert len(client.list_commit("r@master")) == 3
    assert [f.path for f in client.list_file("r@master:/")] == ["/a.txt", "/c.txt", "/d"]


def test_large_download_is_streamed_not_held(store: Path, web: HttpSource) -> None:
    """384 MiB downloaded by a real ``haathi`` process that never holds half of it."""
    size = 384 << 20
    env = dict(os.environ, HAATHI_ADDRESS=str(store))
    run = [sys.executable, "-m", "haathi"]
    subprocess.run([*run, "create", "repo", "r"], check=True, env=env)
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", measure, *run, "put", "file", "r@master:/big.bin",
         "-f", f"{web.url}/big/{size}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    code, peak_kib = map(int, proc.stdout.split())
    assert code == 0, proc.stderr
    assert peak_kib * 1024 < size // 2, f"peak RSS {peak_kib} KiB for a {size >> 20} MiB download"
    got = hashlib.sha256()
    with haathi.connect(str(store)) as c:
        for chunk in c.read_file("r@master:/big.bin")[1]:
            got.update(chunk)
    assert got.hexdigest() == big_digest(size)


# -i and stdin -----------------------------------------------------------------------------


def test_put_file_input_file_lists_paths_and_urls(
    cli: Cli, web: HttpSource, tmp_path: Path
) -> None:
    cli("create", "repo", "r")
    local = tmp_path / "local.txt"
    local.write_text("local\n")
    listing = tmp_path / "sources.txt"
    listing.write_text(f"{web.url}/files/a.txt\n\n  {local}  \r\n{web.url}/files/b.txt\n")
    cli("put", "file", "r@master:/in/", "-i", str(listing))
    assert files(cli) == {"/in/a.txt": 6, "/in/local.txt": 6, "/in/b.txt": 6}
    # the list itself from stdin, and from a URL
    cli("put", "file", "r@master:/stdin/", "-i", "-", input=f"{web.url}/files/a.txt\n".encode())
    web.files["list.txt"] = f"{web.url}/files/b.txt\n".encode()
    cli("put", "file", "r@master:/web/", "-i", f"{web.url}/files/list.txt")
    assert files(cli, "r@master:/stdin") == {"/stdin/a.txt": 6}
    assert files(cli, "r@master:/web") == {"/web/b.txt": 6}
    assert len(commits(cli)) == 3


def test_put_file_input_file_errors_commit_nothing(
    cli: Cli, web: HttpSource, tmp_path: Path
) -> None:
    cli("create", "repo", "r")
    listing = tmp_path / "sources.txt"
    listing.write_text(f"{web.url}/files/a.txt\n{web.url}/status/404\n")
    res = cli.fails("put", "file", "r@master:/in/", "-i", str(listing))
    assert res.code == 3 and "HTTP 404" in res.err
    res = cli.fails("put", "file", "r@master:/in/", "-i", str(tmp_path / "missing.txt"))
    assert "cannot read" in res.err and "missing.txt" in res.err
    (tmp_path / "empty.txt").write_text("\n\n")
    assert "lists no sources" in cli.fails("put", "file", "r@master:/", "-i",
                                           str(tmp_path / "empty.txt")).err  # fmt: skip
    res = cli.fails("put", "file", "r@master:/", "-i", str(listing), "-f", "x")
    assert "-f or -i, not both" in res.err
    assert commits(cli) == []


def test_put_file_without_f_reads_stdin(cli: Cli) -> None:
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/notes.txt", input=b"from stdin\n")
    assert cli("get", "file", "r@master:/notes.txt").out == "from stdin\n"
    res = cli.fails("put", "file", "r@master", input=b"x")
    assert "needs a destination path" in res.err
    res = cli.fails("put", "file", "-r", "r@master:/d", input=b"x")
    assert "cannot set -r and read from stdin" in res.err  # (as pachctl)
    assert len(commits(cli)) == 1


# s3:// ------------------------------------------------------------------------------------


@pytest.fixture
def bucket(backends: Backends, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh bucket on the session's SeaweedFS, with the standard AWS variables naming it
    (as a user's shell would); yields a boto3 Bucket."""
    import boto3

    b = backends.start()
    assert b.s3 is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL", b.s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"urls-{uuid.uuid4().hex[:12]}"
    b.s3.create_bucket(name)
    s3 = boto3.resource("s3", endpoint_url=b.s3.endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)  # fmt: skip
    bkt = s3.Bucket(name)
    for key, body in {
        "data/a.csv": b"a,1\n",
        "data/sub/b.csv": b"b,2\n",
        "datax/c.csv": b"c,3\n",
        "other/d.csv": b"d,4\n",
    }.items():
        bkt.put_object(Key=key, Body=body)
    yield bkt


def test_put_file_from_s3(cli: Cli, bucket: Any) -> None:
    b = bucket.name
    cli("create", "repo", "r")
    cli("put", "file", "r@master", "-f", f"s3://{b}/data/a.csv")
    cli("put", "file", "r@master:/one.csv", "-f", f"s3://{b}/other/d.csv")
    # -r: every key starting with the prefix (S3's string prefix, as pachctl lists it), at
    # the path given followed by the rest of its key
    cli("put", "file", "-r", "r@master:/mirror", "-f", f"s3://{b}/data/")
    cli("put", "file", "-r", "r@master:/pre", "-f", f"s3://{b}/data")
    cli("put", "file", "-r", "r@master", "-f", f"s3://{b}/other")  # no path: its name
    assert files(cli) == {
        "/a.csv": 4, "/one.csv": 4,
        "/mirror/a.csv": 4, "/mirror/sub/b.csv": 4,
        "/pre/a.csv": 4, "/pre/sub/b.csv": 4, "/pre/x/c.csv": 4,
        "/other/d.csv": 4,
    }  # fmt: skip
    assert cli("get", "file", "r@master:/pre/x/c.csv").out == "c,3\n"
    assert len(commits(cli)) == 5


def test_s3_failures_commit_nothing(cli: Cli, bucket: Any) -> None:
    b = bucket.name
    cli("create", "repo", "r")
    res = cli.fails("put", "file", "r@master:/x", "-f", f"s3://{b}/data/nope.csv")
    assert res.code == 3 and f"cannot download s3://{b}/data/nope.csv: no such object" in res.err
    res = cli.fails("put", "file", "r@master:/x", "-f", f"s3://no-such-{b}/k")
    assert res.code == 3 and "no such bucket" in res.err
    res = cli.fails("put", "file", "-r", "r@master:/x", "-f", f"s3://{b}/nothing/")
    assert res.code == 3 and f"no objects under s3://{b}/nothing/" in res.err
    res = cli.fails("put", "file", "r@master:/x", "-f", f"s3://{b}/data/")
    assert "names no object: use -r" in res.err
    assert commits(cli) == []


def test_client_put_file_url_s3_prefix(client: Client, bucket: Any) -> None:
    client.create_repo("r")
    client.put_file_url("r@master:/in", f"s3://{bucket.name}/data/", recursive=True)
    assert [f.path for f in client.glob_file("r@master:/in/**")] == [
        "/in/a.csv",
        "/in/sub",
        "/in/sub/b.csv",
    ]
    assert client.get_file("r@master:/in/sub/b.csv") == b"b,2\n"
