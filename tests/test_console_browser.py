"""The web console in a real browser: Debian's Chromium, headless, driven by its chromedriver
(:func:`loopback.browser.chromium`), against a real ``haathi serve`` on loopback (auth on) of
a store whose data a real pipeline made.

One browser and one server serve the whole module (the tests only read: each starts by
signing in as whom it needs). The tests fail, never skip, when the browser is missing:
``scripts/test`` installs ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import update

import haathi
from haathi.meta.schema import auth_tokens
from loopback.servers import haathi_serve
from loopback.waiting import wait_for
from tests.internals import inner

pytestmark = pytest.mark.slow  # a browser and a server process: not in the fast loop

# what people may write into names, descriptions and messages: all shown as text, none run
INJECTED = "<script>window.__injected = 1</script>"
DESCRIPTION = f"daily sales {INJECTED} \"double\" 'single' \x1b[31mred\x1b[0m \u202eevil"
MESSAGE = f"add the first month {INJECTED}"
FILE_NAME = '/<img src=x onerror="window.__injected = 2">\'.csv'

COPY = {
    "pipeline": {"name": "copy"},
    "description": "copies sales",
    "input": {"pfs": {"repo": "sales", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", "cp -r /pfs/sales/* /pfs/out/"]},
}
LEAK = {
    "pipeline": {"name": "leak"},
    "input": {"pfs": {"repo": "secret", "glob": "/"}},
    "transform": {"cmd": ["sh", "-c", "cp -r /pfs/secret/* /pfs/out/"]},
}


@dataclass(frozen=True)
class Site:
    url: str
    store: Path
    root: str  # the root token (cluster admin)
    alice: str  # may read sales and copy, not secret nor leak

    def client(self) -> haathi.Client:
        """The store, embedded (acts as root)."""
        return haathi.connect(str(self.store))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = tmp_path_factory.mktemp("console") / "store"
    with haathi.connect(str(store)) as c:
        c.create_repo("sales", DESCRIPTION)
        c.put_file(f"sales@master:{FILE_NAME}", b"day,amount\n1,120\n", description=MESSAGE)
        c.create_repo("secret", "not for alice")
        c.put_file("secret@master:/plans.txt", b"plans\n")
        c.create_pipeline(COPY)  # jobs run now, before auth is on
        c.create_pipeline(LEAK)
        root = c.auth_activate()
        alice = c.get_auth_token("user:alice")
        c.set_repo_roles("sales", "repoReader", "user:alice")
        c.set_repo_roles("copy", "repoReader", "user:alice")
    with haathi_serve(store, "--s3-bind", "none", "--no-worker") as (_proc, url, _s3):
        yield Site(url, store, root, alice)


def signed_out(browser: WebDriver, site: Site) -> WebDriver:
    """The browser on the site with no cookie of it."""
    browser.get(site.url + "/static/console.css")
    browser.delete_all_cookies()
    return browser


def sign_in(browser: WebDriver, site: Site, token: str, path: str = "/") -> WebDriver:
    """Open ``path`` signed out, land on the sign-in page, sign in with ``token``."""
    signed_out(browser, site).get(site.url + path)
    assert "/sign-in" in browser.current_url
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/sign-in" not in browser.current_url, "the sign-in to go on")
    return browser


def text(browser: WebDriver) -> str:
    return str(browser.find_element(By.TAG_NAME, "body").text)


def rows(browser: WebDriver, kind: str) -> list[str]:
    """The repos (``kind`` repo) or pipelines (``pipeline``) the overview lists."""
    found = browser.find_elements(By.CSS_SELECTOR, f"tr[data-{kind}]")
    return [str(r.get_attribute(f"data-{kind}")) for r in found]


def on_sign_in_page(browser: WebDriver) -> bool:
    return "/sign-in" in browser.current_url and bool(browser.find_elements(By.ID, "token"))


def test_sign_in_keeps_the_token_in_a_strict_http_only_cookie_and_sign_out_forgets_it(
    browser: WebDriver, site: Site
) -> None:
    signed_out(browser, site).get(site.url + "/")
    assert on_sign_in_page(browser)  # auth is on: nothing shows before signing in
    browser.find_element(By.ID, "token").send_keys("not-a-token")
    browser.find_element(By.ID, "sign-in").click()
    # the form's POST answers with the sign-in page again, and the URL stays: wait for the text
    [problem] = wait_for(lambda: browser.find_elements(By.ID, "problem"), "the problem")
    assert "Not signed in: the token is not valid" in problem.text

    sign_in(browser, site, site.alice)
    assert browser.current_url == site.url + "/"
    assert "Signed in as user:alice" in text(browser)
    [cookie] = [c for c in browser.get_cookies() if c["name"] == "haathi_token"]
    assert cookie["value"] == site.alice
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert site.alice not in browser.current_url
    assert site.alice not in browser.execute_script("return document.cookie")  # scripts: no
    assert site.alice not in browser.page_source

    browser.find_element(By.ID, "sign-out").click()
    wait_for(lambda: on_sign_in_page(browser), "the sign-in page")
    assert "haathi_token" not in {c["name"] for c in browser.get_cookies()}
    browser.get(site.url + "/")
    assert on_sign_in_page(browser)

    # signing in from a deep link comes back to it
    sign_in(browser, site, site.alice, "/projects/default/repos/sales")
    assert browser.current_url == site.url + "/projects/default/repos/sales"
    assert "Repo sales" in text(browser)


def test_the_overview_shows_only_what_the_caller_may_read(
    browser: WebDriver, site: Site, tmp_path: Path
) -> None:
    sign_in(browser, site, site.root)
    assert sorted(rows(browser, "repo")) == ["copy", "leak", "sales", "secret"]
    assert sorted(rows(browser, "pipeline")) == ["copy", "leak"]

    sign_in(browser, site, site.alice)
    assert sorted(rows(browser, "repo")) == ["copy", "sales"]
    # (list repo also names secret and leak to alice, who sees default's repos listed as
    # every caller does: the console leaves out what she may not read)
    with haathi.connect(site.url, token=site.alice) as c:
        assert sorted(r.name for r in c.list_repo()) == ["copy", "leak", "sales", "secret"]
    assert rows(browser, "pipeline") == ["copy"]
    assert "secret" not in text(browser) and "leak" not in text(browser)
    sales = browser.find_element(By.CSS_SELECTOR, 'tr[data-repo="sales"]').text
    assert "master" in sales and ("just now" in sales or "minute ago" in sales)
    assert "B" in sales  # its size
    copy = browser.find_element(By.CSS_SELECTOR, 'tr[data-pipeline="copy"]').text
    assert "RUNNING" in copy and "SUCCESS" in copy  # its state, its newest job's
    shot = tmp_path / "overview.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_an_expired_or_revoked_token_goes_back_to_sign_in(browser: WebDriver, site: Site) -> None:
    with site.client() as c:
        short_lived = c.get_auth_token("user:alice", ttl_s=3600)
        revoked = c.get_auth_token("user:alice")
    sign_in(browser, site, short_lived)
    # its time runs out now: a ttl of seconds could run out before a loaded machine signed in
    with site.client() as c, inner(c).pfs.db.write() as conn:
        digest = hashlib.sha256(short_lived.encode()).hexdigest()
        ended = datetime.now(UTC)
        conn.execute(
            update(auth_tokens).where(auth_tokens.c.token_hash == digest).values(expires_at=ended)
        )

    def bounced() -> bool:
        browser.get(site.url + "/projects/default/repos/sales")
        return on_sign_in_page(browser)

    wait_for(bounced, "the token to expire")
    assert "no longer works" in browser.find_element(By.ID, "notice").text
    assert "haathi_token" not in {c["name"] for c in browser.get_cookies()}

    sign_in(browser, site, revoked)
    with site.client() as c:
        assert c.revoke_token(revoked) == 1
    browser.get(site.url + "/")
    assert on_sign_in_page(browser)
    assert "no longer works" in browser.find_element(By.ID, "notice").text


def test_unknown_urls_answer_a_404_page_with_a_way_back(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, site.root)
    repo = "/projects/default/repos/sales"
    nowhere = "0" * 32
    cases = {  # an unknown ... -> where its way back leads
        "/projects/default/repos/nosuch": "/",
        "/projects/nosuch/repos/sales": "/",
        f"{repo}/commits/{nowhere}": repo,
        f"{repo}/commits/nosuch-branch": repo,
        f"{repo}/commits/master/files/no/such/file": f"{repo}/commits/",
        "/projects/default/pipelines/nosuch": "/",
        f"/projects/default/pipelines/copy/jobs/{nowhere}": "/projects/default/pipelines/copy",
        "/no/such/page": "/",
    }
    for path, back in cases.items():
        browser.get(site.url + path)
        status = browser.find_element(By.CSS_SELECTOR, "section.error")
        assert status.get_attribute("data-status") == "404", path
        link = browser.find_element(By.ID, "way-back")
        assert str(link.get_attribute("href")).startswith(site.url + back), (path, back)
    browser.get(site.url + f"{repo}/commits/{nowhere}")
    browser.find_element(By.ID, "way-back").click()
    wait_for(lambda: browser.current_url == site.url + repo, "the way back")
    assert "Repo sales" in text(browser)
    with httpx.Client(base_url=site.url, cookies={"haathi_token": site.root}) as http:
        assert http.get("/projects/default/repos/nosuch").status_code == 404


def test_pages_send_a_strict_csp_and_what_people_wrote_stays_text(
    browser: WebDriver, site: Site
) -> None:
    with httpx.Client(base_url=site.url, cookies={"haathi_token": site.root}) as http:
        headers = http.get("/").headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"

    sign_in(browser, site, site.root)
    assert browser.execute_script("return document.documentElement.dataset.console") == "ready"
    shown = text(browser)
    assert "daily sales <script>window.__injected = 1</script> \"double\" 'single'" in shown
    assert "\\x1b[31mred\\x1b[0m \\u202eevil" in shown  # control characters shown, not obeyed
    assert f"add the first month {INJECTED}" in shown
    browser.get(site.url + "/projects/default/repos/sales/commits/master/files/")
    assert FILE_NAME.lstrip("/") in text(browser)  # a directory lists its entries' names
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    assert browser.execute_script("return window.__injected") is None


def test_a_forced_post_without_the_csrf_token_is_refused(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, site.alice)
    browser.execute_script(  # a POST the page did not offer: no CSRF token in it
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/sign-out';"
        "document.body.appendChild(f); f.submit();"
    )
    wait_for(lambda: "refused" in text(browser), "the refusal")
    assert "the request carries no CSRF token" in text(browser)
    browser.get(site.url + "/")
    assert "Signed in as user:alice" in text(browser)  # nothing changed

    # from another site (a page of its own): refused too, still signed in
    attack = (
        f'<form id="f" method="post" action="{site.url}/sign-out">'
        '<input name="csrf_token" value="guessed"></form>'
    )
    browser.get("data:text/html," + quote(attack))
    browser.execute_script("document.getElementById('f').submit()")
    wait_for(lambda: "refused" in text(browser), "the refusal")
    browser.get(site.url + "/")
    assert "Signed in as user:alice" in text(browser)
