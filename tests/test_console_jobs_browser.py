"""The console's pipeline, job, datum and logs pages in a real browser (Debian's Chromium,
headless) against a real ``haathi serve`` with auth on and its job runner, on data real
pipelines made: a running job's output appears without a reload, stop and start change a
pipeline's state (a reader has no button, and a forced POST changes nothing), a failed
datum shows its exit code and logs. And a server that stops ends its live streams at once.

One browser and one server serve the module (each test signs in as whom it needs).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import haathi
from loopback.servers import haathi_serve
from loopback.waiting import wait_for
from tests.test_console_browser import INJECTED, sign_in, text

pytestmark = pytest.mark.slow  # a browser and a server process: not in the fast loop

COPY = {
    "pipeline": {"name": "copy"},
    "description": f"copies what comes in {INJECTED}",
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            'echo "copying $in <b>bold</b>"; case "$in" in *7*) '
            'echo "sevens are not allowed" >&2; exit 3;; esac; cp "$in" /pfs/out/',
        ],
    },
    "datum_tries": 1,
}
LEAK = {
    "pipeline": {"name": "leak"},
    "input": {"pfs": {"repo": "secret", "glob": "/"}},
    "transform": {"cmd": ["sh", "-c", "cp -r /pfs/secret/* /pfs/out/"]},
}
# each datum prints a line, then waits until the test opens its gate (a host directory the
# sandbox shows: HAATHI_SANDBOX_PATHS), so the test sees the job run
GATED = {
    "pipeline": {"name": "gated"},
    "input": {"pfs": {"repo": "ticks", "glob": "/*"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            'n=${ticks##*/}; echo "$n says hello"; i=0; '
            'while [ ! -e "$GATE/$n" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; '
            'sleep 1.1; echo "$n is done"',
        ],
        "env": {"GATE": ""},  # set by the test
    },
    "parallelism_spec": {"constant": 2},
}

TICK = 'i=0; while :; do i=$((i+1)); echo "tick $i <b>bold</b>"; sleep 0.2; done'
TICKER = {  # a spout that prints a line every 0.2 s (and commits nothing)
    "pipeline": {"name": "ticker"},
    "spout": {},
    "transform": {"cmd": ["sh", "-c", TICK]},
}


@dataclass(frozen=True)
class Site:
    url: str
    root: str  # the root token (cluster admin: may write)
    alice: str  # reads in, copy and leak; writes nothing; may not read secret
    gates: Path

    def as_root(self) -> haathi.Client:
        """The server, as root (writes return without waiting for their jobs)."""
        return haathi.connect(self.url, token=self.root, run_jobs=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    where = tmp_path_factory.mktemp("console-jobs")
    store, gates = where / "store", where / "gates"
    gates.mkdir()
    with haathi.connect(str(store)) as c:
        c.create_repo("in")
        c.put_file("in@master:/ok.txt", b"fine\n")
        c.put_file("in@master:/seven7.txt", b"not fine\n")
        c.create_repo("secret")
        c.put_file("secret@master:/plans.txt", b"plans\n")
        c.create_pipeline(COPY)  # their jobs run now, before auth is on
        c.create_pipeline(LEAK)
        c.create_pipeline(TICKER)  # (the server's worker runs it)
        root = c.auth_activate()
        alice = c.get_auth_token("user:alice")
        for repo in ("in", "copy", "leak"):
            c.set_repo_roles(repo, "repoReader", "user:alice")
    env = {**os.environ, "HAATHI_SANDBOX_PATHS": str(gates)}
    with haathi_serve(store, "--s3-bind", "none", env=env) as (_proc, url, _s3):
        yield Site(url, root, alice, gates)


def pipeline_state(site: Site, name: str) -> str:
    with site.as_root() as c:
        return c.inspect_pipeline(name).state


def log_entries(browser: WebDriver) -> dict[str, str]:
    """The logs page's entries: the first word of each datum's output -> all of it."""
    found = browser.find_elements(By.CSS_SELECTOR, "#logs .log-entry pre")
    return {str(e.text).split(" ", 1)[0]: str(e.text) for e in found}


def test_a_running_jobs_log_lines_appear_without_a_reload(browser: WebDriver, site: Site) -> None:
    with site.as_root() as c:
        c.create_repo("ticks")
        c.put_file("ticks@master:/first", b"1\n")
        c.put_file("ticks@master:/second", b"2\n")
        spec = {**GATED, "transform": {**GATED["transform"], "env": {"GATE": str(site.gates)}}}
        c.create_pipeline(spec)
        job = c.list_job("gated")[0].id
    sign_in(browser, site, site.root, f"/projects/default/pipelines/gated/jobs/{job}/logs")
    page = browser.find_element(By.ID, "job")
    assert page.get_attribute("data-events") == (
        f"/projects/default/pipelines/gated/jobs/{job}/logs/events"
    )
    browser.execute_script("window.__still_this_page = true")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "[data-job-state]").text == "RUNNING",
             "the job to run")  # fmt: skip
    assert log_entries(browser) == {}  # both datums wait at their gates: nothing recorded yet

    (site.gates / "first").touch()
    wait_for(lambda: "first" in log_entries(browser), "the first datum's output", timeout=15)
    assert log_entries(browser) == {"first": "first says hello\nfirst is done"}
    # a poll reads the job, then its logs: when the datum is recorded between the two reads,
    # its output comes with the progress from before it, and the new progress at the next poll
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "[data-progress-summary]").text
             == "1 of 2 datums: 1 succeeded", "the progress")  # fmt: skip
    bar = browser.find_element(By.CSS_SELECTOR, 'svg[data-progress] rect[data-kind="success"]')
    assert bar.get_attribute("width") == "50.00"
    assert browser.find_element(By.CSS_SELECTOR, "[data-job-state]").text == "RUNNING"

    (site.gates / "second").touch()
    wait_for(lambda: "second" in log_entries(browser), "the second datum's output", timeout=15)
    wait_for(lambda: browser.execute_script("return document.documentElement.dataset.live")
             == "ended", "the stream to end")  # fmt: skip
    assert browser.find_element(By.CSS_SELECTOR, "[data-job-state]").text == "SUCCESS"
    assert "2 of 2 datums: 2 succeeded" in text(browser)
    assert browser.find_element(By.ID, "live-ended").is_displayed()
    assert browser.execute_script("return window.__still_this_page") is True  # no reload
    # each datum's heading leads to its page
    link = browser.find_element(By.CSS_SELECTOR, '#logs .log-entry a[href*="/datums/"]')
    link.click()
    wait_for(lambda: "/datums/" in browser.current_url, "the datum's page")
    assert browser.find_element(By.ID, "datum-state").text == "SUCCESS"


def test_a_spouts_output_appears_on_its_page_without_a_reload(
    browser: WebDriver, site: Site
) -> None:
    sign_in(browser, site, site.root, "/projects/default/pipelines/ticker")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#daemon-output .line")
             or browser.refresh(), "the spout's first lines", timeout=30)  # fmt: skip
    assert browser.find_element(By.ID, "daemon-state").text.startswith("RUNNING")
    shown = browser.find_elements(By.CSS_SELECTOR, "#daemon-output .line")
    rendered = int(str(shown[-1].get_attribute("data-seq")))

    def lines() -> list[tuple[int, str]]:
        found = browser.find_elements(By.CSS_SELECTOR, "#daemon-output .line")
        return [(int(str(x.get_attribute("data-seq"))), x.text) for x in found]

    wait_for(lambda: lines()[-1][0] >= rendered + 3, "new lines without a reload")
    seqs, texts = zip(*lines(), strict=True)
    assert list(seqs) == list(range(seqs[0], seqs[0] + len(seqs)))  # none twice, none missed
    assert texts[-1].startswith("tick ") and texts[-1].endswith(" <b>bold</b>")  # as text
    assert not browser.find_elements(By.CSS_SELECTOR, "#daemon-output b")


def test_stop_and_start_change_the_pipelines_state_and_a_reader_can_do_neither(
    browser: WebDriver, site: Site
) -> None:
    page = "/projects/default/pipelines/copy"
    sign_in(browser, site, site.root, page)
    assert browser.find_element(By.ID, "pipeline-state").text == "RUNNING"
    browser.find_element(By.ID, "stop-pipeline").click()
    wait_for(lambda: browser.find_elements(By.ID, "start-pipeline"), "the start button")
    assert browser.current_url == site.url + page  # back on its page (a 303)
    assert browser.find_element(By.ID, "pipeline-state").text == "PAUSED"
    assert pipeline_state(site, "copy") == "PAUSED"
    browser.find_element(By.ID, "start-pipeline").click()
    wait_for(lambda: browser.find_elements(By.ID, "stop-pipeline"), "the stop button")
    assert browser.find_element(By.ID, "pipeline-state").text == "RUNNING"
    assert pipeline_state(site, "copy") == "RUNNING"

    sign_in(browser, site, site.alice, page)  # a reader: sees the pipeline, has no button
    assert browser.find_element(By.ID, "pipeline-state").text == "RUNNING"
    assert not browser.find_elements(
        By.CSS_SELECTOR, "#stop-pipeline, #start-pipeline, form.action"
    )
    browser.execute_script(  # the POST the page did not offer, with this session's CSRF token
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = location.pathname + '/stop';"
        "const t = document.createElement('input'); t.name = 'csrf_token';"
        "t.value = window.haathiConsole.csrfToken(); f.appendChild(t);"
        "document.body.appendChild(f); f.submit();"
    )
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "section.error"), "the refusal")
    refusal = browser.find_element(By.CSS_SELECTOR, "section.error")
    assert refusal.get_attribute("data-status") == "403"
    assert "user:alice" in refusal.text and "copy" in refusal.text
    assert pipeline_state(site, "copy") == "RUNNING"  # nothing changed


def test_a_failed_datum_shows_its_exit_code_and_logs(browser: WebDriver, site: Site) -> None:
    with site.as_root() as c:
        job = c.list_job("copy")[0]
    assert job.state.value == "FAILURE"
    sign_in(browser, site, site.alice, f"/projects/default/pipelines/copy/jobs/{job.id}")
    assert browser.find_element(By.CSS_SELECTOR, "[data-job-state]").text == "FAILURE"
    assert browser.find_element(By.ID, "job").get_attribute("data-events") is None  # it ended
    assert "2 of 2 datums: 1 succeeded, 1 failed" in text(browser)
    # a page of datums costs the page, its stylesheet and its script, however many there are
    loaded = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert loaded == 2

    browser.find_element(By.CSS_SELECTOR, 'a.filter[data-state="FAILED"]').click()
    wait_for(lambda: "state=failed" in browser.current_url, "the failed datums")
    [row] = browser.find_elements(By.CSS_SELECTOR, "tr[data-datum]")
    assert "FAILED" in row.text and "in:/seven7.txt" in row.text
    row.find_element(By.TAG_NAME, "a").click()
    wait_for(lambda: browser.find_elements(By.ID, "exit-code"), "the datum's page")
    assert browser.find_element(By.ID, "exit-code").text == "3"
    assert browser.find_element(By.ID, "attempts").text == "1"
    assert browser.find_element(By.ID, "datum-reason").text == "attempt 1 of 1 failed: exit code 3"
    log = browser.find_element(By.ID, "datum-log").text
    assert "copying /pfs/in/seven7.txt <b>bold</b>" in log  # as text, not markup
    assert "sevens are not allowed" in log
    inputs = browser.find_element(By.CSS_SELECTOR, 'tr[data-input="in"]')
    assert "seven7.txt" in inputs.text
    inputs.find_element(By.CSS_SELECTOR, "a.path").click()  # its file, at its commit
    wait_for(lambda: "/files/seven7.txt" in browser.current_url, "the input's file page")
    assert "/repos/in/commits/" in browser.current_url

    # what alice may not read is not linked: leak's input repo, secret
    browser.get(site.url + "/projects/default/pipelines/leak")
    assert "secret@master" in text(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, 'a[href*="/repos/secret"]')
    browser.get(site.url + "/projects/default/pipelines/copy")
    assert f"copies what comes in {INJECTED}" in text(browser)  # shown, not run
    assert browser.execute_script("return window.__injected") is None


def test_a_stopping_server_ends_its_live_streams_at_once(tmp_path: Path) -> None:
    """uvicorn waits for every open response before it stops: the console ends its streams
    as the server begins to stop, so a page left open on a job does not hold it up."""
    store = tmp_path / "store"
    with haathi.connect(str(store)) as c:
        c.create_repo("in")
    with haathi_serve(store, "--s3-bind", "none", "--no-worker") as (proc, url, _s3):
        with haathi.connect(url, run_jobs=False) as c:  # no runner: its job stays queued
            c.create_pipeline(COPY)
            c.put_file("in@master:/a", b"a\n")
            job = c.list_job("copy")[0].id
        events = f"{url}/projects/default/pipelines/copy/jobs/{job}/logs/events"
        with httpx.stream("GET", events, timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            while next(lines) != "event: job":
                pass
            assert '"state": "CREATED"' in next(lines)
            proc.send_signal(signal.SIGTERM)
            # uvicorn waits for its open responses without end: a stream left open would hold
            # the server up for good, however long this waits
            assert proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises it
            assert "event: end" not in list(lines)  # cut, not ended: the browser reconnects
