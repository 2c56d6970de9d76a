"""The console's graphs: the DAG of a project (``/projects/{project}/dag``) and the lineage of
a file (``{commit}/lineage/{path}``), with *Reproduce*.

One store, with auth on, whose data real pipelines made: ``raw`` -> ``clean`` (a datum per
file) -> ``merged`` (one datum over all), ``signals`` -> ``gate`` (a datum that waits for the
test to open a gate: a job the test can watch run), and ``hidden`` -> ``peek``, which alice
may not read. The HTTP tests read the pages through the server's app in process; the browser
tests (marked slow) drive Debian's headless Chromium against ``haathi serve`` of the store.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import haathi
from haathi.client import sources
from haathi.console import urls
from loopback.servers import haathi_serve
from loopback.waiting import wait_for
from tests.in_process import InProcessServer

# a file name that would run script if a page put it into markup unescaped
NASTY = '/<script>alert(1)<img src=x onerror="window.__injected = 1">\'q.txt'
RAW = {"/a.txt": b"alpha\n", "/b.txt": b"bravo\n", NASTY: b"nasty\n"}


def copy_each(name: str, repo: str, glob: str = "/*", cmd: str = "") -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": glob}},
        "transform": {"cmd": ["sh", "-c", cmd or f"cp -r /pfs/{repo}/* /pfs/out/"]},
    }


MERGED = copy_each("merged", "clean", "/", "cat /pfs/clean/* > /pfs/out/all.txt")
# each datum copies its file; the one named wait* first waits (30 s at most) for the gate
GATE_CMD = (
    'for f in /pfs/signals/*; do case "$f" in */wait*) i=0; '
    'while [ ! -e "$GATE/open" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done;; esac; '
    'cp "$f" /pfs/out/; done'
)


@dataclass(frozen=True)
class Store:
    path: Path
    gate: Path  # a directory user code may read (sandbox_paths): the gate opens in it
    root: str  # a cluster admin's token
    alice: str  # may read raw, clean, merged, signals and gate; write none; not hidden, peek

    def client(self, **settings: Any) -> haathi.Client:
        return haathi.connect(str(self.path), sandbox_paths=(str(self.gate),), **settings)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    top = tmp_path_factory.mktemp("graphs")
    gate = top / "gate"
    gate.mkdir()
    path = top / "store"
    with haathi.connect(str(path), sandbox_paths=(str(gate),)) as c:
        c.create_repo("raw")
        c.modify_file("raw@master", [sources.bytes_op(d, p) for p, d in RAW.items()])
        c.create_pipeline(copy_each("clean", "raw"))
        c.create_pipeline(MERGED)
        c.create_repo("signals")
        c.put_file("signals@master:/first", b"1\n")
        gate_spec = copy_each("gate", "signals", cmd=GATE_CMD)
        gate_spec["transform"]["env"] = {"GATE": str(gate)}
        c.create_pipeline(gate_spec)
        c.create_repo("hidden")
        c.put_file("hidden@master:/plans.txt", b"plans\n")
        c.create_pipeline(copy_each("peek", "hidden"))
        root = c.auth_activate()
        alice = c.get_auth_token("user:alice")
        for repo in ("raw", "clean", "merged", "signals", "gate"):
            c.set_repo_roles(repo, "repoReader", "user:alice")
    return Store(path, gate, root, alice)


@pytest.fixture(scope="module")
def app(store: Store) -> Iterator[InProcessServer]:
    server = InProcessServer.for_store(str(store.path), run_worker=False).start()
    yield server
    server.stop()


def http_as(app: InProcessServer, token: str) -> httpx.Client:
    """A browser-less client of the console, signed in with ``token``."""
    return httpx.Client(
        transport=app.transport, base_url="http://console.test", cookies={"haathi_token": token}
    )


def embedded_graph(page: httpx.Response) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page.text)
    assert found is not None, page.text[:500]
    return dict(json.loads(found[1]))


def labels(graph: dict[str, Any]) -> dict[str, str]:
    return {n["id"]: n["label"] for n in graph["nodes"]}


def edges(graph: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["from"], e["to"]) for e in graph["edges"]}


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
    assert found is not None
    return found[1]


# ---- the DAG, over HTTP ----------------------------------------------------------------------


def test_the_dag_shows_repos_and_pipelines_with_their_newest_job(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.root) as http:
        assert urls.dag("default") in http.get("/").text  # the overview links to it
        page = http.get("/projects/default/dag")
        assert page.status_code == 200
        graph = embedded_graph(page)
        assert http.get("/projects/default/dag/state").json() == graph  # what the page polls
    assert labels(graph) == {
        "repo:raw": "raw", "repo:signals": "signals", "repo:hidden": "hidden",
        "pipeline:clean": "clean", "pipeline:merged": "merged", "pipeline:gate": "gate",
        "pipeline:peek": "peek",
    }  # fmt: skip
    assert edges(graph) == {
        ("repo:raw", "pipeline:clean"), ("pipeline:clean", "pipeline:merged"),
        ("repo:signals", "pipeline:gate"), ("repo:hidden", "pipeline:peek"),
    }  # fmt: skip
    merged = next(n for n in graph["nodes"] if n["id"] == "pipeline:merged")
    assert merged["url"] == "/projects/default/pipelines/merged"
    assert (merged["state"], merged["job"], merged["active"]) == ("RUNNING", "SUCCESS", None)
    raw = next(n for n in graph["nodes"] if n["id"] == "repo:raw")
    assert raw["url"] == "/projects/default/repos/raw"


def test_the_dag_leaves_out_what_the_caller_may_not_read(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.alice) as http:
        graph = embedded_graph(http.get("/projects/default/dag"))
        assert http.get("/projects/default/dag/state").json() == graph
    assert "hidden" not in json.dumps(graph) and "peek" not in json.dumps(graph)
    assert set(labels(graph).values()) == {"raw", "clean", "merged", "signals", "gate"}
    # (alice sees hidden and peek listed: everyone sees default's repos listed)
    with app.connect(token=store.alice) as c:
        assert {"hidden", "peek"} <= {r.name for r in c.list_repo()}


def test_an_unknown_project_is_a_404_page_back_to_the_overview(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.root) as http:
        for path in ("/projects/nosuch/dag", "/projects/nosuch/dag/state", "/projects/-x-/dag"):
            page = http.get(path)
            assert page.status_code == 404 and '<a href="/" id="way-back">' in page.text, path
    with http_as(app, "not-a-token") as http:  # signed out: to the sign-in page
        assert http.get("/projects/default/dag/state").status_code == 303


# ---- lineage, over HTTP ----------------------------------------------------------------------


def lineage_page(http: httpx.Client, repo: str, path: str, query: str = "") -> httpx.Response:
    return http.get(urls.lineage(repo, "master", path) + query)


def refs(graph: dict[str, Any]) -> dict[str, str]:
    """Node ID -> ``repo:path`` of each node."""
    return {n["id"]: f"{n['repo']}:{n['path']}" for n in graph["nodes"]}


def test_the_lineage_of_a_file_shows_where_it_came_from_and_what_came_of_it(
    app: InProcessServer, store: Store
) -> None:
    with store.client() as c:
        head = c.inspect_commit("clean@master").id
    with http_as(app, store.alice) as http:
        page = lineage_page(http, "clean", "/a.txt")
    assert page.status_code == 200
    graph = embedded_graph(page)
    named = refs(graph)
    assert sorted(named.values()) == ["clean:/a.txt", "merged:/all.txt", "raw:/a.txt"]
    by_ref = {v: k for k, v in named.items()}
    assert edges(graph) == {
        (by_ref["raw:/a.txt"], by_ref["clean:/a.txt"]),
        (by_ref["clean:/a.txt"], by_ref["merged:/all.txt"]),
    }
    [target] = [n for n in graph["nodes"] if n["target"]]
    assert (target["repo"], target["path"], target["commit"]) == ("clean", "/a.txt", head)
    # it links to its file, its own lineage, the datum and the job that wrote it
    assert target["file"] == f"/projects/default/repos/clean/commits/{head}/files/a.txt"
    assert target["lineage"] == f"/projects/default/repos/clean/commits/{head}/lineage/a.txt"
    job = target["job"]
    assert target["job_url"] == f"/projects/default/pipelines/clean/jobs/{job}"
    assert (
        target["datum_url"]
        == f"/projects/default/pipelines/clean/jobs/{job}/datums/" + (target["datum"])
    )
    raw = next(n for n in graph["nodes"] if n["repo"] == "raw")
    assert raw["origin"] == "USER" and raw["job"] is None
    # what alice may only read: no Reproduce button
    assert 'id="reproduce"' not in page.text


def test_a_large_lineage_shows_the_nearest_files_and_says_so(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.root) as http:
        whole = embedded_graph(lineage_page(http, "merged", "/all.txt"))
        assert len(whole["nodes"]) == 7  # all.txt, 3 clean files, 3 raw files
        page = lineage_page(http, "merged", "/all.txt", "?limit=4")
        assert page.status_code == 200
        graph = embedded_graph(page)
        assert set(refs(graph).values()) == {
            "merged:/all.txt", "clean:/a.txt", "clean:/b.txt", f"clean:{NASTY}",
        }  # fmt: skip
        assert len(graph["edges"]) == 3  # none to a file left out
        assert "Showing the 4 files nearest to it of 7" in page.text
        for bad in ("?limit=0", "?limit=x", "?limit=99999", "?at=nosuch"):
            refused = lineage_page(http, "merged", "/all.txt", bad)
            assert refused.status_code == 404 and 'id="way-back"' in refused.text, bad


def test_lineage_of_what_the_caller_may_not_read_is_refused(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.alice) as http:
        assert lineage_page(http, "peek", "/plans.txt").status_code == 403
        assert lineage_page(http, "hidden", "/plans.txt").status_code == 403
        missing = lineage_page(http, "clean", "/no/such.txt")
        assert missing.status_code == 404
        assert '<a href="/projects/default/repos/clean/commits/' in missing.text


def test_names_holding_markup_stay_text_in_the_lineage_page(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.root) as http:
        page = lineage_page(http, "clean", NASTY)
    assert page.status_code == 200
    assert "<img" not in page.text and "<script>alert" not in page.text  # not in the JSON either
    shown = (
        "&lt;script&gt;alert(1)&lt;img src=x onerror=&#34;window.__injected = 1&#34;&gt;&#39;q.txt"
    )
    assert shown in page.text
    paths = {n["path"] for n in embedded_graph(page)["nodes"]}
    assert paths == {NASTY, "/all.txt"}  # the JSON gives it back exactly


def test_reproduce_shows_each_file_for_a_writer_and_is_refused_to_a_reader(
    app: InProcessServer, store: Store
) -> None:
    with http_as(app, store.root) as http:
        page = lineage_page(http, "clean", "/")  # a directory: every file in it
        assert 'id="reproduce"' in page.text
        form = re.search(r'<form method="post" action="([^"]+)" class="reproduce">', page.text)
        assert form is not None and form[1].endswith("/lineage//reproduce")
        done = http.post(form[1], data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200
    rows = re.findall(r'<tr data-path="([^"]*)" data-status="(\w+)">', done.text)
    assert sorted(rows) == sorted(
        [("/a.txt", "match"), ("/b.txt", "match"),
         ("/&lt;script&gt;alert(1)&lt;img src=x onerror=&#34;window.__injected = 1&#34;&gt;&#39;"
          "q.txt", "match")]
    )  # fmt: skip
    assert 'data-ok="yes"' in done.text and "Reproduced: all 3 files of 3 datums match" in done.text

    with http_as(app, store.alice) as http:
        page = lineage_page(http, "clean", "/a.txt")
        forced = http.post(
            urls.reproduce("clean", "master", "/a.txt"), data={"csrf_token": csrf_of(page)}
        )
        assert forced.status_code == 403 and "user:alice is not authorized" in forced.text
        assert 'id="report"' not in forced.text
        no_token = http.post(urls.reproduce("clean", "master", "/a.txt"))
        assert no_token.status_code == 403 and "no CSRF token" in no_token.text


# ---- in the browser --------------------------------------------------------------------------

# (its live updates come every 1-2 s: longer waits than the other pages')
wait_for = partial(wait_for, timeout=15.0)


@pytest.fixture(scope="module")
def site(store: Store) -> Iterator[str]:
    with haathi_serve(store.path, "--s3-bind", "none", "--no-worker") as (_proc, url, _s3):
        yield url


def open_as(browser: WebDriver, site: str, token: str, path: str) -> WebDriver:
    """``path`` in the browser, signed in with ``token`` (its cookie set as sign-in sets it)."""
    browser.get(site + "/static/console.css")
    browser.delete_all_cookies()
    browser.add_cookie({"name": "haathi_token", "value": token, "httpOnly": True,
                        "sameSite": "Strict"})  # fmt: skip
    browser.get(site + path)
    wait_for(lambda: graph_ready(browser), "the graph to be drawn")
    return browser


def graph_ready(browser: WebDriver) -> bool:
    return bool(browser.execute_script(
        "const g = document.getElementById('graph'); return g && g.dataset.paintedMs"
    ))  # fmt: skip


def node_text(browser: WebDriver, node_id: str) -> str:
    return str(browser.execute_script(
        "const n = document.querySelector(`#graph [data-id='${arguments[0]}']`);"
        "return n ? n.textContent : null", node_id
    ))  # fmt: skip


def node_class(browser: WebDriver, node_id: str) -> str:
    found = browser.find_element(By.CSS_SELECTOR, f'#graph [data-id="{node_id}"]')
    return str(found.get_attribute("class"))


@pytest.mark.slow
def test_the_dag_in_the_browser_updates_job_states_live_and_opens_a_node(
    browser: WebDriver, site: str, store: Store
) -> None:
    open_as(browser, site, store.alice, "/projects/default/dag")
    drawn = browser.find_elements(By.CSS_SELECTOR, "#graph svg [data-id]")
    assert sorted(str(n.get_attribute("data-id")) for n in drawn) == [
        "pipeline:clean", "pipeline:gate", "pipeline:merged", "repo:raw", "repo:signals",
    ]  # fmt: skip
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph svg path.edge")) == 3
    assert "job success" in node_text(browser, "pipeline:merged")
    assert "job-success" in node_class(browser, "pipeline:merged")

    browser.execute_script("window.__stayed = 1")  # gone if the page reloads
    with haathi.connect(site, token=store.root, run_jobs=False) as remote:  # queued, not run
        remote.put_file("signals@master:/wait", b"2\n")
    wait_for(lambda: "job-created" in node_class(browser, "pipeline:gate"), "the queued job")
    assert "job queued: waits to run" in node_text(browser, "pipeline:gate")

    runner = threading.Thread(target=run_jobs, args=(store,))
    runner.start()
    try:
        wait_for(lambda: "job-running" in node_class(browser, "pipeline:gate"), "the running job")
        wait_for(
            lambda: "running · 1/2 datums" in node_text(browser, "pipeline:gate"), "its progress"
        )  # fmt: skip  (/first skipped: done; /wait waits at the gate)
        bar = browser.find_element(By.CSS_SELECTOR, '[data-id="pipeline:gate"] rect.bar')
        assert int(str(bar.get_attribute("width"))) > 50  # half of the node's bar
    finally:
        (store.gate / "open").touch()
        runner.join(timeout=60)
    wait_for(lambda: "job-success" in node_class(browser, "pipeline:gate"), "the job's success")
    assert browser.execute_script("return window.__stayed") == 1  # no reload
    assert browser.find_element(By.ID, "graph-notice").get_attribute("hidden") is not None

    browser.find_element(By.CSS_SELECTOR, '[data-id="pipeline:merged"]').click()
    wait_for(lambda: browser.current_url.endswith("/projects/default/pipelines/merged"), "it")
    assert "merged" in browser.find_element(By.TAG_NAME, "h1").text


def run_jobs(store: Store) -> None:
    with store.client(run_jobs=False) as c:
        c.run_jobs()


@pytest.mark.slow
def test_a_lineage_graph_in_the_browser_links_its_files_and_reproduces_them(
    browser: WebDriver, site: str, store: Store
) -> None:
    with store.client() as c:
        head = c.inspect_commit("clean@master").id
    open_as(browser, site, store.root, urls.lineage("clean", "master", NASTY))
    assert browser.execute_script("return window.__injected") is None
    names = browser.find_elements(By.CSS_SELECTOR, "#graph .node text.name")
    clipped = '…or="window.__injected = 1">\'q.txt'  # the end of the name: shown in full below
    assert sorted(n.text for n in names) == ["/all.txt", clipped, clipped]  # raw, clean, merged
    whole = "return document.querySelector('#graph .node.target > title').textContent"
    assert browser.execute_script(whole).startswith(f"clean@{head}:{NASTY}\n")
    target = browser.find_element(By.CSS_SELECTOR, "#graph .node.target")
    assert "datum" in target.text and "job" in target.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph path.edge")) == 2

    browser.find_element(By.ID, "reproduce").click()
    wait_for(lambda: browser.find_elements(By.ID, "report"), "the report")
    report = browser.find_element(By.ID, "report")
    assert "Reproduced: all 1 file of 1 datum match" in report.text
    assert NASTY in report.text and "✓ match" in report.text
    assert browser.execute_script("return window.__injected") is None

    # a node's links: the datum and the job that wrote the file, the file itself
    job = browser.find_element(By.CSS_SELECTOR, "#graph .node.target a.job")
    href = str(job.get_dom_attribute("href"))
    assert re.fullmatch(r"/projects/default/pipelines/clean/jobs/[0-9a-f]{32}", href), href
    datum = browser.find_element(By.CSS_SELECTOR, "#graph .node.target a.datum")
    assert str(datum.get_dom_attribute("href")).startswith(href + "/datums/")
    browser.find_element(By.CSS_SELECTOR, "#graph .node.target a.file").click()
    wait_for(lambda: "/files/" in browser.current_url, "the file's page")

    open_as(browser, site, store.alice, urls.lineage("clean", "master", "/a.txt"))
    assert not browser.find_elements(By.ID, "reproduce")  # a reader: no button
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph .node")) == 3
    browser.find_element(By.CSS_SELECTOR, "#graph-files summary").click()  # listed below
    rows = "#graph-files tbody tr"  # filled on the "toggle" event, which comes in a later task
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, rows), "the list of files")
    assert len(browser.find_elements(By.CSS_SELECTOR, rows)) == 3
    target = browser.find_element(By.CSS_SELECTOR, "#graph-files tr.target")
    assert target.text.startswith("/a.txt clean@") and "datum" in target.text
