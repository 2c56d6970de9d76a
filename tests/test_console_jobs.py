"""The console's pipeline, job, datum and logs pages over HTTP (the server's app in process,
auth off; the browser tests are in ``tests/test_console_jobs_browser.py``): a pipeline's spec
as YAML and JSON and its versions, a job's datums filtered by state a page at a time, a
datum's inputs and logs, the live events of a job, and what people wrote shown as text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

import haathi
from haathi.client.sources import bytes_op
from haathi.console import jobs, logs
from haathi.models.info import JobInfo
from tests.in_process import InProcessServer

FILES = 5  # /f0 ... /f4; /f3 fails
SPEC = {
    "pipeline": {"name": "p"},
    "description": "counts <script>window.__injected = 1</script>",
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            'printf "read %s <i>x</i> \\033[31mred\\n" "$in"; '
            'case "$in" in *3) exit 4;; esac; cp "$in" /pfs/out/',
        ],
    },
    "datum_tries": 1,
}
PAGE = "/projects/default/pipelines/p"


@dataclass(frozen=True)
class Site:
    server: InProcessServer
    first: JobInfo  # the job of version 1 (FAILURE: /f3 failed)

    def job(self, suffix: str = "") -> str:
        return f"{PAGE}/jobs/{self.first.id}{suffix}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = tmp_path_factory.mktemp("console-jobs") / "store"
    with haathi.connect(str(store)) as c:
        c.create_repo("in")
        c.modify_file("in@master", [bytes_op(f"{i}\n".encode(), f"/f{i}") for i in range(FILES)])
        c.create_pipeline(SPEC)
        first = c.list_job("p")[0]
        c.update_pipeline({**SPEC, "description": "version two"})  # reprocess: no, same salt
    server = InProcessServer.for_store(str(store), run_worker=False).start()
    yield Site(server, first)
    server.stop()


@pytest.fixture
def http(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(transport=site.server.transport, base_url="http://console.test") as client:
        yield client


def datum_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-datum="([0-9a-f]{64})">', page.text)


def way_back(page: httpx.Response) -> str:
    found = re.search(r'<a href="([^"]*)" id="way-back">', page.text)
    assert found is not None, page.text
    return found[1]


def test_a_pipelines_page_shows_its_spec_as_yaml_and_json_and_its_versions(
    http: httpx.Client, site: Site
) -> None:
    page = http.get(PAGE)
    assert page.status_code == 200
    as_yaml = re.search(r'<pre class="code" id="spec-yaml">(.*?)</pre>', page.text, re.S)
    as_json = re.search(r'<pre class="code" id="spec-json">(.*?)</pre>', page.text, re.S)
    assert as_yaml is not None and as_json is not None
    spec = json.loads(unescape(as_json[1]))
    assert yaml.safe_load(unescape(as_yaml[1])) == spec
    assert spec["description"] == "version two" and spec["transform"] == SPEC["transform"]
    assert re.findall(r'<tr data-version="(\d+)"', page.text) == ["2", "1"]
    assert re.findall(r'<tr data-job="([0-9a-f]{32})">', page.text)[-1] == site.first.id
    assert "5 of 5 datums: 4 succeeded, 1 failed" in page.text
    assert 'id="stop-pipeline"' in page.text  # auth off: every caller may write

    old = http.get(PAGE, params={"version": "1"})
    assert "Spec of version 1" in old.text
    assert "counts &lt;script&gt;window.__injected = 1&lt;/script&gt;" in old.text  # as text
    for bad in ("3", "0", "x"):
        missing = http.get(PAGE, params={"version": bad})
        assert missing.status_code == 404 and way_back(missing) == PAGE


def test_only_a_spout_or_service_has_an_output_section_and_its_events(
    http: httpx.Client, site: Site
) -> None:
    """(A spout's page, its lines live: tests/test_console_jobs_browser.py.)"""
    assert 'id="daemon-output"' not in http.get(PAGE).text
    refused = http.get(f"{PAGE}/events")
    assert refused.status_code == 412 and "neither a spout nor a service" in refused.text
    assert http.get(f"{PAGE}/events", params={"since": "x"}).status_code == 400
    assert http.get("/projects/default/pipelines/nope/events").status_code == 404


def unescape(html: str) -> str:
    return (
        html.replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"')
        .replace("&#39;", "'").replace("&amp;", "&")
    )  # fmt: skip


def test_a_jobs_datums_page_by_page_and_by_state(
    http: httpx.Client, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "DATUMS_PER_PAGE", 2)
    seen: list[str] = []
    url = site.job()
    while url:
        page = http.get(url)
        assert page.status_code == 200
        seen += datum_ids(page)
        after = re.search(r'<a href="([^"]*)" id="next-page">', page.text)
        url = unescape(after[1]).split("#")[0] if after else ""
    assert len(seen) == FILES and seen == sorted(seen)  # each once, in ID order

    failed = http.get(site.job(), params={"state": "failed"})
    [datum] = datum_ids(failed)
    assert 'aria-current="page">failed <span class="count">1</span>' in failed.text
    assert http.get(site.job(), params={"state": "SKIPPED"}).text.count("<tr data-datum") == 0
    bad = http.get(site.job(), params={"state": "sideways"})
    assert bad.status_code == 404 and "datum state 'sideways' must be one of" in unescape(bad.text)
    assert way_back(bad) == site.job()

    page = http.get(site.job(f"/datums/{datum}"))
    assert page.status_code == 200
    assert re.search(r'<td id="exit-code">4</td>', page.text)
    assert f'href="/projects/default/repos/in/commits/{site.first.inputs[0].split("@")[1]}' \
           '/files/f3"' in page.text  # fmt: skip
    # the datum's output: markup and control characters shown as text
    assert "read /pfs/in/f3 &lt;i&gt;x&lt;/i&gt; \\x1b[31mred" in page.text
    for missing in ("0" * 64, "nope"):
        gone = http.get(site.job(f"/datums/{missing}"))
        assert gone.status_code == 404 and way_back(gone) == site.job()
    gone = http.get(f"{PAGE}/jobs/{'0' * 32}/logs")
    assert gone.status_code == 404 and way_back(gone) == PAGE


def events_of(body: str) -> list[tuple[str, dict[str, object]]]:
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_the_live_events_of_an_ended_job_say_all_and_end(http: httpx.Client, site: Site) -> None:
    answer = http.get(site.job("/logs/events"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.text.startswith("retry: ")
    events = events_of(answer.text)
    assert [kind for kind, _ in events] == ["job"] + ["log"] * FILES + ["end"]
    assert events[0][1]["state"] == "FAILURE" and events[0][1]["ended"] is True
    assert events[0][1]["summary"] == "5 of 5 datums: 4 succeeded, 1 failed"
    outputs = {str(data["output"]) for kind, data in events if kind == "log"}
    assert "read /pfs/in/f1 <i>x</i> \\x1b[31mred\n" in outputs  # escaped as on the page
    assert events[-1] == ("end", {"state": "FAILURE", "why": "ended"})
    only_job = events_of(http.get(site.job("/events")).text)
    assert [kind for kind, _ in only_job] == ["job", "end"]

    missing = http.get(f"{PAGE}/jobs/{'0' * 32}/events")
    assert missing.status_code == 404 and "text/plain" in missing.headers["content-type"]
    streams = site.server.transport.app.state.console_streams  # type: ignore[attr-defined]
    streams.limit = 0  # as if that many pages were open
    try:
        busy = http.get(site.job("/events"))
        assert busy.status_code == 503 and "too many live views" in busy.text
    finally:
        streams.limit = 200


def test_a_logs_page_shows_so_much_and_names_the_command_for_the_rest(
    http: httpx.Client, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = http.get(site.job("/logs"))
    assert whole.text.count('<section class="log-entry"') == FILES
    assert 'id="logs-capped" hidden' in whole.text
    monkeypatch.setattr(logs, "MAX_SHOWN_DATUMS", 2)
    page = http.get(site.job("/logs"))
    assert page.text.count('<section class="log-entry"') == 2
    assert 'id="logs-capped" hidden' not in page.text
    assert f"<code>haathi logs -p p -j {site.first.id}</code> prints all of it" in page.text
    events = events_of(http.get(site.job("/logs/events")).text)
    assert [kind for kind, _ in events] == ["job", "log", "log", "capped", "end"]
    assert events[3][1] == {"command": f"haathi logs -p p -j {site.first.id}"}
