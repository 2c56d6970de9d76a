"""``haathi serve``: the REST surface, its error envelope, streaming, upload limits, the CLI
against ``HAATHI_ADDRESS=http://...``, and where it binds."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path

import httpx
import pytest

import haathi
from haathi.api import Api
from haathi.client import Client
from haathi.errors import (
    ERROR_CLASSES,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TooLarge,
)
from haathi.models.ops import DeleteOp
from haathi.models.wire import FRAME
from haathi.server.body_limit import MAX_JSON_BYTES
from haathi.server.envelope import error_response
from haathi.server.serve import Server, parse_bind
from tests import test_cli
from tests.conftest import Backends, Cli
from tests.raw_http import headers_only


@pytest.fixture
def backend() -> str:
    """These tests are about HTTP: one backend pair (the behavioural suites run over HTTP on
    both)."""
    return "local"


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as h:
        yield h


@pytest.fixture
def remote(server: Server) -> Iterator[Client]:
    with haathi.connect(server.url) as c:
        yield c


def envelope(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    return body  # type: ignore[no-any-return]


# errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(ERROR_CLASSES.values()), ids=list(ERROR_CLASSES))
def test_every_error_class_has_one_envelope_and_its_status(cls: type) -> None:
    response = error_response(cls("it broke", repo="r"))
    assert response.status_code == cls.http_status
    body = json.loads(bytes(response.body))
    assert body == {"code": cls.code, "message": "it broke", "details": {"repo": "r"}}


def test_errors_over_http_are_envelopes_with_the_classes_status(http: httpx.Client) -> None:
    r = http.get("/v1/repos/nope")
    assert r.status_code == 404 and envelope(r)["code"] == "not_found"
    assert http.post("/v1/repos", json={"name": "r"}).status_code == 201
    r = http.post("/v1/repos", json={"name": "r"})
    assert r.status_code == 409 and envelope(r)["code"] == "already_exists"
    r = http.post("/v1/repos", json={"name": "bad name!"})
    assert r.status_code == 400 and envelope(r)["code"] == "invalid_argument"
    cid = http.post("/v1/repos/r/commits/master/start", json={}).json()["id"]
    http.post(f"/v1/repos/r/commits/{cid}/finish", json={})
    r = http.post(f"/v1/repos/r/commits/{cid}/finish", json={})
    assert r.status_code == 412 and envelope(r)["code"] == "failed_precondition"


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("POST", "/v1/repos", {"json": {"name": 5}}),
        ("POST", "/v1/repos", {"content": b"{not json"}),
        ("POST", "/v1/repos", {}),
        ("GET", "/v1/repos/r/commits", {"params": {"number": "many"}}),
        ("POST", "/v1/fsck", {"json": {"fast": "perhaps"}}),
        ("POST", "/v1/pipelines", {"json": {"spec": []}}),
        ("GET", "/v1/repos/r/commits/master/files/%00x", {}),
        ("GET", "/v1/repos/r/commits/master/files/../../etc/passwd", {}),
        ("GET", "/v1/lineage", {}),
        ("DELETE", "/v1/store", {}),
        ("GET", "/v1/no/such/route", {}),
    ],
)
def test_bad_requests_are_4xx_envelopes_never_500(
    http: httpx.Client, method: str, path: str, kw: dict[str, object]
) -> None:
    http.post("/v1/repos", json={"name": "r"})
    r = http.request(method, path, **kw)  # type: ignore[arg-type]
    assert 400 <= r.status_code < 500, r.text
    assert "Traceback" not in r.text
    envelope(r)


def test_list_commit_with_a_number_out_of_range_is_invalid(http: httpx.Client) -> None:
    # found by schemathesis: a negative number was a 500 (islice) on a branch, and unlimited
    # (SQLite) or a 500 (PostgreSQL) on a repo
    http.post("/v1/repos", json={"name": "r"})
    cid = http.post("/v1/repos/r/commits/master/start", json={}).json()["id"]
    http.post(f"/v1/repos/r/commits/{cid}/finish", json={})
    for params in ({"number": -1, "branch": "master"}, {"number": -1}, {"number": 2**64}):
        r = http.get("/v1/repos/r/commits", params=params)
        assert r.status_code == 400 and envelope(r)["code"] == "invalid_argument", params
    assert len(http.get("/v1/repos/r/commits", params={"number": 0}).json()) == 1


def test_list_job_with_a_limit_out_of_range_is_invalid(http: httpx.Client) -> None:
    # found by schemathesis: limit=-2553428656278587660304384 was a 500 (SQLite overflow)
    for limit in (-1, 2**64):
        r = http.get("/v1/jobs", params={"limit": limit})
        assert r.status_code == 400 and envelope(r)["code"] == "invalid_argument", limit
    assert http.get("/v1/jobs", params={"limit": 0}).json() == []


def test_walk_with_a_limit_out_of_range_is_invalid(http: httpx.Client, remote: Client) -> None:
    # found by schemathesis: limit=7859237888865672368226304 was a 500 (islice)
    remote.create_repo("r")
    remote.put_file("r@master:/a/b", b"b")
    for limit in (-1, 2**70):
        r = http.get("/v1/repos/r/commits/master/walk", params={"limit": limit})
        assert r.status_code == 400 and envelope(r)["code"] == "invalid_argument", limit
    assert len(http.get("/v1/repos/r/commits/master/walk", params={"limit": 5}).json()) == 1


def test_gc_grace_out_of_range(http: httpx.Client) -> None:
    # found by schemathesis: a grace of 1e124 s was a 500 (timedelta overflow); a negative
    # orphan grace would delete the packs of writes in flight
    for body in ({"grace_s": -1}, {"orphan_grace_s": -0.5}):
        r = http.post("/v1/gc", json=body)
        assert r.status_code == 400 and envelope(r)["code"] == "invalid_argument", body
    r = http.post("/v1/gc", json={"grace_s": 2.5e124, "orphan_grace_s": 1e300})
    assert r.status_code == 200 and r.json()["packs_deleted"] == 0, r.text


def test_a_nul_character_is_invalid_on_postgresql(backends: Backends, tmp_path: Path) -> None:
    # found sending schemathesis-style NUL inputs to a server on PostgreSQL (the fuzz test runs
    # on SQLite): PostgreSQL refuses NUL in text, which was a 503 storage error
    store = tmp_path / "pg"
    haathi.init(str(store), db=backends.start().pg.create_database()).close()
    srv = Server.for_store(str(store), {}, "127.0.0.1:0", run_worker=False).start()
    try:
        with httpx.Client(base_url=srv.url) as h:
            assert h.post("/v1/repos", json={"name": "r"}).status_code == 201
            for method, path, kw in [
                ("PATCH", "/v1/repos/r", {"json": {"description": "a\x00b"}}),
                ("POST", "/v1/repos", {"json": {"name": "q", "description": "\x00"}}),
                ("POST", "/v1/repos/r/commits/master/start", {"json": {"description": "\x00"}}),
                ("GET", "/v1/repos/r/commits", {"params": {"branch": "ma\x00ster"}}),
                ("GET", "/v1/repos/r/commits/ma%00ster/files/a", {}),
                ("GET", "/v1/pipelines/p%00", {}),
                ("GET", "/v1/jobs", {"params": {"job": "j\x00"}}),
            ]:
                r = h.request(method, path, **kw)  # type: ignore[arg-type]
                assert r.status_code == 400 and envelope(r)["code"] == "invalid_argument", path
            assert [r["name"] for r in h.get("/v1/repos").json()] == ["r"]
            assert h.get("/v1/repos/r").json()["description"] == ""
    finally:
        srv.stop()


LONE = "\ud800"  # what a JSON "\ud800" escape decodes to: not Unicode text, no UTF-8 for it


def test_text_that_is_not_unicode_is_invalid_never_500(http: httpx.Client) -> None:
    # was a 500 UnicodeEncodeError: a lone surrogate in any string field of a JSON body
    assert http.post("/v1/repos", json={"name": "r"}).status_code == 201
    cid = http.post("/v1/repos/r/commits/dev/start", json={}).json()["id"]
    spec = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
            "transform": {"cmd": ["echo", LONE]}}  # fmt: skip
    header = json.dumps({"description": "", "ops": [{"op": "put", "path": f"/a{LONE}"}]})
    framed = b"%d\n" % len(header) + header.encode() + FRAME.pack(0)
    described = json.dumps({"description": LONE, "ops": []})
    framed_described = b"%d\n" % len(described) + described.encode()
    for method, path, body in [
        ("POST", "/v1/repos", {"name": "q", "description": LONE}),
        ("POST", "/v1/repos", {"name": f"q{LONE}"}),
        ("PATCH", "/v1/repos/r", {"description": f"a{LONE}"}),
        ("POST", "/v1/repos/r/branches", {"branch": f"b{LONE}"}),
        ("POST", "/v1/repos/r/branches", {"branch": "b", "head": f"master{LONE}"}),
        ("POST", "/v1/repos/r/commits/master/start", {"description": LONE}),
        ("POST", f"/v1/repos/r/commits/{cid}/finish", {"description": LONE}),
        ("POST", "/v1/repos/r/metadata/repo/~", {"action": "add", "items": {LONE: "v"}}),
        ("POST", "/v1/repos/r/metadata/repo/~", {"action": "add", "items": {"k": LONE}}),
        ("POST", "/v1/pipelines", {"spec": spec}),
        ("POST", "/v1/pipelines/validate", {"spec": spec}),
        ("POST", "/v1/pipelines/preview", {"spec": {"pfs": {"repo": "r", "glob": LONE}}}),
        ("POST", "/v1/reproduce", {"target": f"r@master:/{LONE}"}),
        ("POST", "/v1/repos/r/commits/master/modify", framed),
        ("POST", "/v1/repos/r/commits/master/modify", framed_described),
    ]:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()  # escaped
        assert b"\\ud800" in content
        r = http.request(method, path, content=content,
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 400, (path, body, r.text)
        assert envelope(r)["code"] == "invalid_argument", (path, r.text)
        assert "\\ud800" in envelope(r)["message"], r.text  # the field, quoted
    assert [x["name"] for x in http.get("/v1/repos").json()] == ["r"]
    assert http.get("/v1/repos/r").json()["description"] == ""
    assert [b["name"] for b in http.get("/v1/repos/r/branches").json()] == ["dev"]
    assert http.get("/v1/pipelines").json() == []


def test_remote_client_raises_the_same_class_with_the_same_message(
    client: Client, remote: Client
) -> None:
    # ``client`` is embedded or remote; ``remote`` always talks to the server of its store.
    def failure(c: Client, call: str) -> tuple[type, str]:
        try:
            eval(call, {"c": c})
        except Exception as exc:
            return type(exc), str(exc)
        raise AssertionError(f"{call} did not fail")

    client.create_repo("r")
    client.put_file("r@master:/f", b"x")
    for call in [
        "c.inspect_repo('ghost')",
        "c.create_repo('r')",
        "c.create_repo('a b')",
        "c.get_file('r@master:/missing')",
        "c.inspect_commit('r@nope')",
        "c.list_job('ghost')",
        "c.put_file('r@master:/../x', b'')",
        "c.finish_commit('r@' + c.inspect_commit('r@master').id)",
    ]:
        embedded = failure(client, call)
        assert failure(remote, call) == embedded
        assert embedded[0] in (NotFound, AlreadyExists, InvalidArgument, FailedPrecondition)


# the surface -----------------------------------------------------------------------------

NOT_OVER_HTTP = {  # the server's own: who calls, running jobs, and how it sends a file
    "close",
    "read_file_stored",
    "run_worker",
    "runner",
    "caller",
    "for_token",
    "as_caller",
    "auth_active",
    "auth_known_off",
    "caller_for_token",
    "authorize",
    "confined_to",
    "confined_view",
}


def test_openapi_lists_a_route_for_every_api_operation(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    operation_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    names = {n for n, _ in inspect.getmembers(Api) if not n.startswith("_")} - NOT_OVER_HTTP
    missing = {n for n in names if not any(o.startswith(n + "_") for o in operation_ids)}
    assert missing == set()
    assert all(p.startswith("/v1/") for p in spec["paths"])


def test_run_worker_on_a_remote_client_is_a_clear_error(remote: Client) -> None:
    import threading

    with pytest.raises(FailedPrecondition, match="runs jobs itself"):
        remote.run_worker(threading.Event())


def test_the_server_runs_jobs_in_the_background(server: Server, store: Path) -> None:
    # a client that does not wait for jobs: the server's own runner runs them
    with haathi.connect(server.url, run_jobs=False) as c:
        c.create_repo("in")
        c.create_pipeline({"pipeline": {"name": "up"}, "transform": {"cmd": ["sh", "-c",
                           "tr a-z A-Z < /pfs/in/f > /pfs/out/f"]},
                           "input": {"pfs": {"repo": "in", "glob": "/*"}}})  # fmt: skip
        c.put_file("in@master:/f", b"abc")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = c.list_job("up")
            if jobs and all(j.state.terminal for j in jobs) and len(jobs) == 2:
                break
            time.sleep(0.1)
        assert c.get_file("up@master:/f") == b"ABC"


# streaming -------------------------------------------------------------------------------


def _peak(fn: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_large_files_stream_both_ways_in_bounded_memory(
    remote: Client, store: Path, tmp_path: Path
) -> None:
    """Over HTTP a put and a get cost about what they cost embedded (which buffers a pack),
    not the file's size on top: neither side holds the file in memory."""
    size = 48 * 1024 * 1024
    src = tmp_path / "big"
    with open(src, "wb") as fh:
        for i in range(size // (1024 * 1024)):
            fh.write(hashlib.sha256(str(i).encode()).digest() * 32768)
    want = hashlib.sha256(src.read_bytes()).hexdigest()

    def round_trip(c: Client, repo: str) -> None:
        c.create_repo(repo)
        c.put_file(f"{repo}@master:/big", str(src))
        got = hashlib.sha256()
        with c.open_file(f"{repo}@master:/big") as fh:
            while block := fh.read(1 << 20):
                got.update(block)
        assert got.hexdigest() == want

    with haathi.connect(str(store)) as embedded:
        baseline = _peak(lambda: round_trip(embedded, "e"))
    over_http = _peak(lambda: round_trip(remote, "r"))
    assert over_http < baseline + size // 4, (over_http, baseline)


def _body(header: dict[str, object], *frames: bytes, end: bool = True) -> bytes:
    raw = json.dumps(header).encode()
    out = b"%d\n" % len(raw) + raw
    for f in frames:
        out += FRAME.pack(len(f)) + f
    return out + (FRAME.pack(0) if end else b"")


@pytest.mark.parametrize(
    "body",
    [
        _body({"ops": [{"op": "put", "path": "/a"}]}, b"x" * 100, end=False),
        _body({"ops": [{"op": "put", "path": "/a"}]}, b"x" * 100)[:-50],
        _body({"ops": [{"op": "put", "path": "/a"}, {"op": "put", "path": "/b"}]}, b"x"),
        b'999\n{"ops": []}',
        b"",
        b"12\nnot json!!!",
        _body({"ops": [{"op": "put", "path": "/a"}, {"op": "move", "path": "/b"}]}, b"x"),
        _body({"ops": [{"op": "put", "path": "/../a"}]}, b"x"),
        _body({"ops": [{"op": "put", "path": "/a"}]}, b"x") + b"trailing",
    ],
    ids=[
        "no-end-frame",
        "cut-in-frame",
        "missing-op-bytes",
        "short-header",
        "empty",
        "bad-header",
        "unknown-op",
        "bad-path",
        "trailing-bytes",
    ],
)
def test_a_truncated_or_malformed_upload_commits_nothing(
    http: httpx.Client, remote: Client, body: bytes
) -> None:
    remote.create_repo("r")
    r = http.post("/v1/repos/r/commits/master/modify", content=body)
    assert r.status_code == 400, r.text
    assert envelope(r)["code"] == "invalid_argument"
    assert remote.list_commit("r") == []


def test_an_upload_over_the_limit_commits_nothing(store: Path) -> None:
    server = Server.for_store(str(store), {}, "127.0.0.1:0", max_upload_bytes=64 * 1024).start()
    try:
        with haathi.connect(server.url) as c:
            c.create_repo("r")
            c.put_file("r@master:/small", b"s" * 1000)
            with pytest.raises(TooLarge, match="larger than this server accepts"):
                c.modify_file("r@master", [
                    *[haathi.client.sources.bytes_op(b"x" * 20_000, f"/f{i}") for i in range(5)]
                ])  # fmt: skip
            assert [f.path for f in c.list_file("r@master:/")] == ["/small"]
            assert len(c.list_commit("r")) == 1
            with httpx.Client(base_url=server.url) as h:
                r = h.post(
                    "/v1/repos/r/commits/master/modify",
                    content=_body({"ops": [{"op": "put", "path": "/big"}]}, b"y" * 70_000),
                )
                assert r.status_code == 413 and envelope(r)["code"] == "too_large"
            assert len(c.list_commit("r")) == 1
    finally:
        server.stop()


def test_an_upload_announced_over_the_limit_is_refused_before_its_body_is_sent(
    store: Path,
) -> None:
    """413 comes from the Content-Length, at once: the client sends headers only, and the
    server closes the connection (the body is never read)."""
    server = Server.for_store(str(store), {}, "127.0.0.1:0", max_upload_bytes=64 * 1024).start()
    try:
        with haathi.connect(server.url) as c:
            c.create_repo("r")
            answer = headers_only(server.url, "POST", "/v1/repos/r/commits/master/modify",
                                  {"Content-Length": str(50 << 30)})  # fmt: skip
            assert answer.status == 413 and answer.seconds < 5
            assert json.loads(answer.body)["code"] == "too_large"
            assert answer.headers["connection"] == "close"
            assert c.list_commit("r") == []
    finally:
        server.stop()


def test_a_chunked_upload_is_refused_as_it_passes_the_limit(store: Path) -> None:
    """Without a Content-Length the body is counted as it streams: the server stops reading
    once it passes the limit, long before the client would have finished."""
    server = Server.for_store(str(store), {}, "127.0.0.1:0", max_upload_bytes=64 * 1024).start()
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield _body({"ops": [{"op": "put", "path": "/big"}]}, end=False)
        while sent < 1 << 30:
            frame = FRAME.pack(16 * 1024) + b"z" * (16 * 1024)
            sent += len(frame)
            yield frame

    try:
        with haathi.connect(server.url) as c, httpx.Client(base_url=server.url) as h:
            c.create_repo("r")
            try:
                r = h.post("/v1/repos/r/commits/master/modify", content=endless())
                assert r.status_code == 413 and envelope(r)["code"] == "too_large"
            except httpx.HTTPError:
                pass  # the server closed the connection while the client was still sending
            assert sent < 64 << 20
            assert c.list_commit("r") == []
    finally:
        server.stop()


def test_a_json_body_is_bounded_even_without_an_upload_limit(
    server: Server, http: httpx.Client, remote: Client
) -> None:
    """Routes other than uploads take a JSON document of at most MAX_JSON_BYTES: a larger
    one is refused from its Content-Length, before the server holds it in memory."""
    answer = headers_only(server.url, "POST", "/v1/repos",
                          {"Content-Length": str(MAX_JSON_BYTES + 1),
                           "Content-Type": "application/json"})  # fmt: skip
    assert answer.status == 413 and answer.seconds < 5
    huge = b'{"name": "r", "description": "' + b"d" * MAX_JSON_BYTES + b'"}'
    r = http.post("/v1/repos", content=iter([huge]), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and envelope(r)["code"] == "too_large"
    assert remote.list_repo() == []


def test_puts_of_one_upload_stream_in_order_with_the_other_ops(remote: Client) -> None:
    """The server stores each put's bytes as they arrive (no spool): several puts of one
    request, empty and larger than the server's read-ahead, land whole beside a delete."""
    remote.create_repo("r")
    remote.put_file("r@master:/old", b"old")
    blobs = {
        "/a": os.urandom(12 << 20),
        "/empty": b"",
        "/b": b"b" * 1000,
        "/c": os.urandom(3 << 20),
    }
    ops = [haathi.client.sources.bytes_op(data, path) for path, data in blobs.items()]
    remote.modify_file("r@master", [*ops[:2], DeleteOp("/old"), *ops[2:]])
    assert {f.path: f.size_bytes for f in remote.list_file("r@master:/")} == {
        path: len(data) for path, data in blobs.items()
    }
    for path, data in blobs.items():
        assert remote.get_file(f"r@master:{path}") == data


def test_an_upload_refused_before_its_bytes_are_read_still_gets_its_error(
    server: Server, remote: Client
) -> None:
    """A put to a missing repo fails before the server has read the body (puts are stored as
    they arrive); a client that sends the whole body before it reads the answer (http.client,
    curl) still gets the error, not a reset connection."""
    body = _body({"ops": [{"op": "put", "path": "/big"}]}, os.urandom(32 << 20))
    conn = HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    try:
        conn.request("POST", "/v1/repos/nope/commits/master/modify", body=body)
        r = conn.getresponse()
        assert r.status == 404 and json.loads(r.read())["code"] == "not_found"
    finally:
        conn.close()
    with pytest.raises(NotFound, match="nope"):
        remote.put_file("nope@master:/big", os.urandom(32 << 20))


# the CLI against a server ----------------------------------------------------------------


def test_cli_tour_against_a_server(server: Server, tmp_path: Path) -> None:
    test_cli.test_cli_tour(Cli(server.url, tmp_path), tmp_path)  # type: ignore[arg-type]


def test_cli_pipelines_against_a_server(server: Server, tmp_path: Path) -> None:
    cli = Cli(server.url, tmp_path)  # type: ignore[arg-type]
    spec = tmp_path / "upper.json"
    spec.write_text(json.dumps({
        "pipeline": {"name": "upper"},
        "transform": {"cmd": ["sh", "-c", "tr a-z A-Z < /pfs/in/f > /pfs/out/f"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }))  # fmt: skip
    cli("create", "repo", "in")
    cli("create", "pipeline", "-f", str(spec))
    cli("put", "file", "in@master:/f", "-f", "-", input=b"abc")
    assert cli("get", "file", "upper@master:/f").out == "ABC"
    jobs = cli("list", "job", "-o", "json").json()
    assert {j["state"] for j in jobs} == {"SUCCESS"}
    assert cli("inspect", "store", "-o", "json").json()["server"] == server.url
    res = cli("run", "worker", ok=False)
    assert res.code != 0 and "runs jobs itself" in res.err and "Traceback" not in res.err


# binding ---------------------------------------------------------------------------------


def _serve(store: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "haathi", "serve", "--store", str(store), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        lines.append(line)
        if "serving" in line or not line:
            break
    return proc, "".join(lines)


def test_serve_binds_loopback_by_default_and_warns_on_an_open_bind(store: Path) -> None:
    assert parse_bind("127.0.0.1:8650") == ("127.0.0.1", 8650)
    proc, out = _serve(store, "--bind", "127.0.0.1:0")
    try:
        url = re.search(r"at (http://\S+)", out)
        assert url and url.group(1).startswith("http://127.0.0.1:"), out
        assert "warning" not in out
        assert httpx.get(url.group(1) + "/v1/repos").json() == []
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) in (0, -15)  # uvicorn re-raises the SIGTERM it handled
    proc, out = _serve(store, "--bind", "0.0.0.0:0")
    try:
        assert "warning: 0.0.0.0 is not a loopback address" in out
        assert "anyone who can reach it can read and write" in out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_help_names_the_default() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "haathi", "serve", "--help"], capture_output=True,
        env=dict(os.environ, COLUMNS="200"),
    ).stdout.decode()  # fmt: skip
    assert "127.0.0.1:8650" in out
