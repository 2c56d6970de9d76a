"""OpenLineage run events: every job reports START and COMPLETE / FAIL / ABORT, with its input
commits and output commit as datasets named ``repo@commit``, to a file (JSON lines) or an HTTP
endpoint (``<url>/api/v1/lineage``), and every event is valid against the OpenLineage JSON
schema (vendored under ``tests/data/openlineage``) and each facet against the schema its
``_schemaURL`` names. A dead or hanging endpoint never fails a job nor holds it up.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

import haathi
from haathi.client import Client
from haathi.errors import InvalidArgument
from haathi.models.info import JobInfo, JobState
from haathi.pps.openlineage import FACETS_SCHEMA, FLUSH_S
from tests.images import BusyboxImage

SPEC_DIR = Path(__file__).parent / "data" / "openlineage"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
Event = dict[str, Any]


# ---- the official schema ---------------------------------------------------------------


def _registry() -> Registry:
    docs = [json.loads(p.read_text()) for p in sorted(SPEC_DIR.rglob("*.json"))]
    docs.append(FACETS_SCHEMA)  # haathi's own facets
    return Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)


REGISTRY = _registry()


def facets_of(event: Event) -> Iterator[dict[str, Any]]:
    yield from (event["run"].get("facets") or {}).values()
    yield from (event["job"].get("facets") or {}).values()
    for ds in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            yield from (ds.get(key) or {}).values()


def validate(event: Event) -> None:
    """The event against the OpenLineage spec, and each facet against its own schema."""
    check = FormatChecker()
    Draft202012Validator({"$ref": RUN_EVENT}, registry=REGISTRY, format_checker=check).validate(
        event
    )
    assert event["schemaURL"] == RUN_EVENT
    for facet in facets_of(event):
        schema = {"$ref": facet["_schemaURL"]}  # resolves only to a vendored (or haathi) schema
        Draft202012Validator(schema, registry=REGISTRY, format_checker=check).validate(facet)


def test_the_schema_catches_a_bad_event() -> None:
    good: Event = {
        "eventType": "START", "eventTime": "2026-01-01T00:00:00+00:00",
        "producer": "urn:haathi:test", "schemaURL": RUN_EVENT,
        "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "n", "name": "j"},
    }  # fmt: skip
    validate(good)
    with pytest.raises(Exception, match="'DONE' is not one of"):
        validate(good | {"eventType": "DONE"})
    with pytest.raises(Exception, match="'name' is a required property"):
        validate(good | {"job": {"namespace": "n"}})


# ---- helpers -------------------------------------------------------------------------------


def pfs(repo: str, glob: str) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob}}


def sh(*lines: str) -> dict[str, Any]:
    return {"cmd": ["sh"], "stdin": list(lines)}


CLEAN = {
    "pipeline": {"name": "clean"},
    "description": "upper-cases every raw file",
    "input": pfs("raw", "/*"),
    "transform": sh(
        'if grep -q BAD "$raw"; then echo "bad input" >&2; exit 1; fi',
        'tr a-z A-Z < "$raw" > "/pfs/out/$(basename "$raw")"',
    ),
    "datum_tries": 1,
}
FEATURES = {
    "pipeline": {"name": "features"},
    "input": pfs("clean", "/"),
    "transform": sh("cat /pfs/clean/* | wc -c > /pfs/out/chars"),
}


def read_events(path: Path) -> list[Event]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def of_job(events: list[Event], job: JobInfo) -> list[Event]:
    """The events whose output is the job's output commit."""
    return [e for e in events if [o["name"] for o in e["outputs"]] == [job.output_commit]]


def kinds(events: list[Event]) -> list[str]:
    return [e["eventType"] for e in events]


def connect(store: Path, **settings: Any) -> Client:
    return haathi.connect(str(store), **settings)


def raw_repo(client: Client) -> str:
    client.create_repo("raw")
    with client.start_commit("raw@master") as c:
        c.put_file("/a.txt", b"alpha\n")
        c.put_file("/b.txt", b"beta\n")
    return c.id


# ---- a file of JSON lines ----------------------------------------------------------------


def test_jobs_append_start_and_complete_to_a_file(store: Path, tmp_path: Path) -> None:
    log = tmp_path / "lineage" / "events.jsonl"
    with connect(store, openlineage_file=str(log), openlineage_namespace="lab") as client:
        raw_repo(client)
        client.create_pipeline(CLEAN)
        client.create_pipeline(FEATURES)
        cid = client.put_file("raw@master:/c.txt", b"gamma\n")
        clean = client.inspect_job(f"clean@{cid}")
        features = client.inspect_job(f"features@{cid}")
        assert clean.state == features.state == JobState.SUCCESS
    events = read_events(log)  # closing the client sent everything queued
    for e in events:
        validate(e)
    assert len(events) == 2 * 4  # START + COMPLETE for 2 jobs of each pipeline
    assert {e["job"]["namespace"] for e in events} == {"lab"}

    ev = of_job(events, clean)
    assert kinds(ev) == ["START", "COMPLETE"]
    assert [e["job"]["name"] for e in ev] == ["clean", "clean"]
    assert [i["name"] for i in ev[1]["inputs"]] == [f"raw@{cid}"] == list(clean.inputs)
    assert [o["name"] for o in ev[1]["outputs"]] == [f"clean@{cid}"]
    assert ev[1]["outputs"][0]["facets"]["version"]["datasetVersion"] == cid
    assert {i["namespace"] for i in ev[1]["inputs"] + ev[1]["outputs"]} == {"lab"}
    run_id = ev[0]["run"]["runId"]
    assert ev[1]["run"]["runId"] == run_id and uuid.UUID(run_id)
    assert ev[0]["eventTime"] <= ev[1]["eventTime"]

    # what ran, how, and how much
    done = ev[1]["run"]["facets"]
    assert done["haathi_job"]["state"] == "SUCCESS"
    assert done["haathi_job"]["job"] == f"clean@{cid}"
    assert done["haathi_job"]["datums"] == {
        "total": 3, "processed": 1, "skipped": 2, "failed": 0, "recovered": 0,
    }  # fmt: skip
    assert done["haathi_job"]["executor"] == clean.context["executor"]
    assert done["processing_engine"]["name"] == "haathi"
    assert "errorMessage" not in done
    assert ev[0]["run"]["facets"]["haathi_job"]["state"] == "RUNNING"
    pipeline = ev[1]["job"]["facets"]["haathi_pipeline"]
    assert pipeline["specHash"] == clean.context["spec_hash"]
    assert pipeline["spec"]["transform"] == clean.context["transform"]
    assert ev[1]["job"]["facets"]["documentation"]["description"] == CLEAN["description"]
    stats = ev[1]["outputs"][0]["outputFacets"]["outputStatistics"]
    assert stats == stats | {"fileCount": 3, "size": len(b"ALPHA\nBETA\nGAMMA\n")}

    # the downstream job reads what the upstream one wrote: lineage joins up by dataset name
    down = of_job(events, features)
    assert kinds(down) == ["START", "COMPLETE"]
    assert [i["name"] for i in down[1]["inputs"]] == [f"clean@{cid}"]
    assert len({e["run"]["runId"] for e in events}) == 4  # one run per job


def test_a_job_in_an_image_names_its_runtime_and_digest(
    store: Path, tmp_path: Path, busybox_image: BusyboxImage
) -> None:
    log = tmp_path / "events.jsonl"
    in_image = {**CLEAN, "transform": {**CLEAN["transform"], "image": busybox_image.name}}
    with connect(store, openlineage_file=str(log), runtime="bwrap") as client:
        raw_repo(client)
        client.create_pipeline(in_image)
        (job,) = client.list_job("clean")
        assert job.state == JobState.SUCCESS, job.reason
    (done,) = [e for e in read_events(log) if e["eventType"] == "COMPLETE"]
    validate(done)
    facet = done["run"]["facets"]["haathi_job"]
    assert (facet["runtime"], facet["image"], facet["imageDigest"]) == (
        "bwrap",
        busybox_image.name,
        busybox_image.digest,
    )


def test_a_job_killed_before_it_ran_starts_and_aborts(store: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    with connect(store, openlineage_file=str(log), run_jobs=False) as client:
        cid = raw_repo(client)
        client.create_pipeline(CLEAN)
        [queued] = client.list_job("clean")
        killed = client.stop_job(f"clean@{queued.id}")
        assert killed.state == JobState.KILLED
    events = read_events(log)
    for e in events:
        validate(e)
    assert kinds(events) == ["START", "ABORT"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == killed.reason
    assert [i["name"] for i in events[1]["inputs"]] == [f"raw@{cid}"]
    assert {e["job"]["namespace"] for e in events} == {"haathi"}  # the default namespace


def test_no_target_no_events_and_no_import(tmp_path: Path) -> None:
    code = (
        "import sys, haathi\n"
        f"c = haathi.connect({str(tmp_path / 'store')!r})\n"
        "c.create_repo('raw'); c.put_file('raw@master:/a', b'a')\n"
        "c.create_pipeline({'pipeline': {'name': 'p'}, 'input': {'pfs': {'repo': 'raw', "
        "'glob': '/*'}}, 'transform': {'cmd': ['sh', '-c', 'cp $raw /pfs/out/']}})\n"
        "assert c.list_job('p')[0].state.value == 'SUCCESS'\n"
        "c.close()\n"
        "print([m for m in sys.modules if m.startswith('openlineage')])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# ---- an HTTP endpoint --------------------------------------------------------------------


class Collector:
    """An OpenLineage endpoint on loopback that keeps what is POSTed to it."""

    def __init__(self, status: int = 201, delay: float = 0.0) -> None:
        self.posts: list[tuple[str, str, Event]] = []
        self.status, self.delay = status, delay
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay)
                outer.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def events(self) -> list[Event]:
        return [e for _, _, e in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def test_failed_jobs_post_fail_with_the_reason(store: Path, collector: Collector) -> None:
    with connect(store, openlineage_url=collector.url) as client:
        raw_repo(client)
        client.create_pipeline(CLEAN)
        client.create_pipeline(FEATURES)
        cid = client.put_file("raw@master:/bad.txt", b"BAD\n")
        failed = client.inspect_job(f"clean@{cid}")
        unrunnable = client.inspect_job(f"features@{cid}")
    assert failed.state == JobState.FAILURE and failed.reason
    assert unrunnable.state == JobState.UNRUNNABLE and unrunnable.reason
    assert {(path, ctype) for path, ctype, _ in collector.posts} == {
        ("/api/v1/lineage", "application/json")
    }
    events = collector.events
    for e in events:
        validate(e)

    ev = of_job(events, failed)
    assert kinds(ev) == ["START", "FAIL"]
    error = ev[1]["run"]["facets"]["errorMessage"]
    assert error["message"] == failed.reason and "datum(s) failed" in error["message"]
    assert ev[1]["run"]["facets"]["haathi_job"]["state"] == "FAILURE"
    assert ev[1]["run"]["facets"]["haathi_job"]["datums"]["failed"] == 1
    assert [i["name"] for i in ev[1]["inputs"]] == [f"raw@{cid}"]
    assert [o["name"] for o in ev[1]["outputs"]] == [f"clean@{cid}"]
    assert "outputStatistics" not in ev[1]["outputs"][0].get("outputFacets", {})

    # downstream of a failure: never started, so a START and a FAIL at once
    down = of_job(events, unrunnable)
    assert kinds(down) == ["START", "FAIL"]
    assert down[1]["run"]["facets"]["errorMessage"]["message"] == unrunnable.reason
    assert down[1]["run"]["facets"]["haathi_job"]["state"] == "UNRUNNABLE"
    assert down[0]["eventTime"] == down[1]["eventTime"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_endpoint_never_fails_a_job(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="haathi.pps.openlineage")
    with connect(store, openlineage_url=f"http://127.0.0.1:{free_port()}") as client:
        raw_repo(client)
        client.create_pipeline(CLEAN)
        assert client.list_job("clean")[0].state == JobState.SUCCESS
        cid = client.put_file("raw@master:/c.txt", b"gamma\n")
        assert client.inspect_job(f"clean@{cid}").state == JobState.SUCCESS
        assert client.get_file("clean@master:/c.txt") == b"GAMMA\n"
    warnings = [r.getMessage() for r in caplog.records if "OpenLineage" in r.getMessage()]
    assert len(warnings) == 1 and "cannot send events" in warnings[0]  # once, not per event


def test_an_erroring_endpoint_never_fails_a_job(store: Path, tmp_path: Path) -> None:
    broken = Collector(status=500)
    log = tmp_path / "events.jsonl"
    try:
        with connect(store, openlineage_url=broken.url, openlineage_file=str(log)) as client:
            raw_repo(client)
            client.create_pipeline(CLEAN)
            assert client.list_job("clean")[0].state == JobState.SUCCESS
    finally:
        broken.close()
    assert broken.posts  # it was asked
    assert kinds(read_events(log)) == ["START", "COMPLETE"]  # the file still gets every event


def test_a_hanging_endpoint_never_holds_a_job_up(tmp_path: Path) -> None:
    slow = Collector(delay=30)
    try:
        client = connect(tmp_path / "store", openlineage_url=slow.url)
        raw_repo(client)
        t0 = time.monotonic()
        client.create_pipeline(CLEAN)  # runs the job
        ran = time.monotonic() - t0
        assert client.list_job("clean")[0].state == JobState.SUCCESS
        t0 = time.monotonic()
        client.close()  # waits a bounded time for the unsent events
        closing = time.monotonic() - t0
    finally:
        slow.delay = 0
        slow.close()
    assert ran < 3.0  # the job did not wait for the endpoint (its request times out after 2 s)
    assert closing < FLUSH_S + 1.0


# ---- configuration -------------------------------------------------------------------------


def test_the_store_config_and_environment_name_the_target(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "haathi.toml").write_text(
        f'[openlineage]\nurl = "{collector.url}"\nnamespace = "from-file"\n'
    )
    monkeypatch.setenv("HAATHI_OPENLINEAGE_FILE", "events.jsonl")  # relative: in the store
    with connect(store) as client:
        shown = client.store_info()
        raw_repo(client)
        client.create_pipeline(CLEAN)
    assert shown["openlineage_url"] == collector.url
    assert shown["openlineage_file"] == str(store / "events.jsonl")
    assert shown["openlineage_namespace"] == "from-file"
    assert kinds(collector.events) == kinds(read_events(store / "events.jsonl"))
    assert kinds(collector.events) == ["START", "COMPLETE"]
    assert {e["job"]["namespace"] for e in collector.events} == {"from-file"}

    with connect(store, openlineage_url="http://me:s3cret@127.0.0.1:9") as client:
        shown = client.store_info()
    assert shown["openlineage_url"] == "http://me:***@127.0.0.1:9"

    monkeypatch.setenv("HAATHI_OPENLINEAGE_URL", "ftp://example")
    with pytest.raises(InvalidArgument, match="OpenLineage endpoint"):
        connect(store)
    monkeypatch.delenv("HAATHI_OPENLINEAGE_URL")
    (store / "haathi.toml").write_text("[openlineage]\nnamespace = 3\n")
    with pytest.raises(InvalidArgument, match="openlineage_namespace"):
        connect(store)
