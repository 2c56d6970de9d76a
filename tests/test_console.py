"""The web console over HTTP (the server's app in process; the browser tests are in
``tests/test_console_browser.py``): where it lives beside the REST API, its assets, its CSRF
check, and pages with auth off."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

import haathi
from haathi.console import assets
from tests.in_process import InProcessServer

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "haathi" / "console"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """The server's app (the console in it) on a store with auth off."""
    store = tmp_path_factory.mktemp("console") / "store"
    with haathi.connect(str(store)) as c:
        c.create_repo("sales", "sales <b>bold</b> \x07bell")
        c.put_file("sales@master:/a.csv", b"x\n", description="first")
    server = InProcessServer.for_store(str(store), run_worker=False).start()
    yield server
    server.stop()


@pytest.fixture
def http(console: InProcessServer) -> Iterator[httpx.Client]:
    """A browser-less client of the console, with a cookie jar of its own."""
    with httpx.Client(transport=console.transport, base_url="http://console.test") as client:
        yield client


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
    assert found is not None
    return found[1]


def test_with_auth_off_the_overview_needs_no_sign_in(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-repo="sales"' in page.text and "Sign out" not in page.text
    assert "sales &lt;b&gt;bold&lt;/b&gt; \\x07bell" in page.text  # escaped, bell shown
    went = http.get("/sign-in?next=/projects/default/repos/sales")
    assert went.status_code == 303 and went.headers["location"] == "/projects/default/repos/sales"
    assert http.get("/sign-in?next=//evil.example/").headers["location"] == "/"


def test_the_rest_api_and_its_docs_keep_their_paths_and_json_errors(http: httpx.Client) -> None:
    assert http.get("/v1/repos").json()[0]["name"] == "sales"
    missing = http.get("/v1/no/such/route")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong_method = http.put("/v1/repos")
    assert wrong_method.status_code == 400 and wrong_method.json()["code"] == "invalid_argument"
    assert http.get("/openapi.json").json()["info"]["title"] == "haathi"
    assert http.get("/docs").status_code == 200
    page = http.get("/v1x")  # not the API: the console's 404 page
    assert page.status_code == 404 and "there is no page at /v1x" in page.text


def test_every_answer_carries_the_security_headers(http: httpx.Client) -> None:
    for path in ("/", "/no/such/page", assets.url("console.js"), "/projects/default/repos/x"):
        headers = http.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "same-origin", path
    assert http.get("/").headers["cache-control"] == "no-store"


def test_assets_come_from_the_package_and_are_cached_by_version(http: httpx.Client) -> None:
    js = http.get(assets.url("console.js"))
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = http.get(assets.url("console.js"), headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
    assert http.get("/static/console.js").headers["cache-control"] == "no-cache"
    dagre = http.get(assets.url("vendor/dagre/dagre.min.js"))
    assert dagre.status_code == 200 and b"dagre" in dagre.content
    assert "Chris Pettitt" in http.get("/static/vendor/dagre/LICENSE").text
    assert http.get("/static/../app.py").status_code == 404


def test_package_data_ships_every_console_file() -> None:
    """``pip install .`` installs what ``pyproject.toml``'s package-data names: every template
    and asset must match one of its patterns."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["haathi"]
    shipped = [p for p in (CONSOLE / "templates").rglob("*") if p.is_file()]
    shipped += [p for p in (CONSOLE / "static").rglob("*") if p.is_file()]
    assert len(shipped) > 5
    for path in shipped:
        relative = path.relative_to(ROOT / "haathi").as_posix()
        assert any(fnmatch(relative, p) and relative.count("/") == p.count("/")
                   for p in patterns), relative  # fmt: skip


def test_a_write_without_this_sessions_csrf_token_is_refused(
    http: httpx.Client, console: InProcessServer
) -> None:
    page = http.get("/")
    token = csrf_of(page)
    assert "haathi_session" in http.cookies
    for refused in (
        http.post("/sign-out"),
        http.post("/sign-out", data={"csrf_token": "0" * 64}),
        http.post("/sign-out", headers={"X-CSRF-Token": token, "Origin": "http://evil.test"}),
        http.post("/sign-out", data={"csrf_token": token}, headers={"Origin": "null"}),
    ):
        assert refused.status_code == 403 and "refused" in refused.text
        assert "script-src 'self'" in refused.headers["content-security-policy"]
    assert http.post("/sign-out", data={"csrf_token": token}).status_code == 303
    with httpx.Client(transport=console.transport, base_url="http://console.test") as other:
        refused = other.post("/sign-out", data={"csrf_token": token})  # a browser without it
    assert refused.status_code == 403 and "no console session" in refused.text
