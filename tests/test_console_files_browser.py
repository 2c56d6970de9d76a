"""The repo, commit, diff and files pages in a real browser: Debian's Chromium, headless,
against a real ``haathi serve`` on loopback (auth on) of a store whose data a real pipeline
made (the pages over HTTP, in detail: ``tests/test_console_files.py``).

One browser and one server serve the module. Every page is checked for what it shows, and
for what the browser refused under the Content-Security-Policy (a listener installed before
each page's own scripts records every violation: there must be none).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import haathi
from haathi.client.sources import bytes_op
from loopback.browser import chromium
from loopback.servers import haathi_serve
from loopback.waiting import wait_for
from tests import png

pytestmark = pytest.mark.slow  # a browser and a server process: not in the fast loop

REPO = "/projects/default/repos"
INJECTED = "<script>window.__injected = 1</script>"
CODE = f"def total(rows):\n    # {INJECTED}\n    return sum(r['amount'] for r in rows)\n"
COPY = {
    "pipeline": {"name": "report"},
    "input": {"pfs": {"repo": "sales", "glob": "/"}},
    "transform": {"cmd": ["sh", "-c", "cat /pfs/sales/*.csv > /pfs/out/all.csv"]},
}
# recorded before any script of the page runs (Chromium's DevTools, not the page)
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@dataclass(frozen=True)
class Site:
    url: str
    store: Path
    alice: str  # reads sales and report
    bob: str  # writes inbox

    def commits(self, repo: str) -> list[str]:
        with haathi.connect(str(self.store)) as c:
            return [x.id for x in c.list_commit(f"{repo}@master")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = tmp_path_factory.mktemp("console-files") / "store"
    with haathi.connect(str(store)) as c:
        c.create_repo("sales", "daily sales")
        c.put_file("sales@master:/jan.csv", b"day,amount\n1,120\n2,80\n", description="january")
        c.create_pipeline(COPY)  # its jobs run now, before auth is on
        ops = [
            bytes_op(b"day,amount\n1,90\n2,110\n", "/feb.csv"),
            bytes_op(CODE.encode(), "/code/total.py"),
            bytes_op(png.write(4, 2, bytes(range(0, 256, 32))), "/logo.png"),
        ]
        ops += [bytes_op(f"{i}\n".encode(), f"/days/d{i:03d}") for i in range(150)]
        c.modify_file("sales@master", ops, description=f"february {INJECTED}")
        c.create_repo("inbox", "uploads")
        c.put_file("inbox@master:/old.txt", b"old\n")
        c.auth_activate()
        alice = c.get_auth_token("user:alice")
        bob = c.get_auth_token("user:bob")
        for repo in ("sales", "report"):
            c.set_repo_roles(repo, "repoReader", "user:alice")
        c.set_repo_roles("inbox", "repoWriter", "user:bob")
    with haathi_serve(store, "--s3-bind", "none", "--no-worker") as (_proc, url, _s3):
        yield Site(url, store, alice, bob)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER})
        yield driver


def sign_in(browser: WebDriver, site: Site, token: str, path: str) -> WebDriver:
    """Open ``path`` signed out, sign in with ``token`` on the way."""
    browser.get(site.url + "/static/console.css")
    browser.delete_all_cookies()
    browser.get(site.url + path)
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/sign-in" not in browser.current_url, "the sign-in to go on")
    return browser


def shown(browser: WebDriver, css: str = "body") -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def clean(browser: WebDriver) -> bool:
    """Whether the page ran no injected script and the CSP refused nothing."""
    assert browser.execute_script("return window.__injected") is None
    assert browser.execute_script("return window.__csp") == [], browser.current_url
    return True


def requests(browser: WebDriver) -> int:
    return 1 + int(browser.execute_script("return performance.getEntriesByType('resource').length"))


def test_from_a_repo_to_a_commit_its_changes_and_a_file(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, site.alice, f"{REPO}/sales")
    history = browser.find_elements(By.CSS_SELECTOR, "table.commits tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, ".message").text for r in history] == [
        f"february {INJECTED}", "january"
    ]  # fmt: skip
    assert (
        "user:" not in history[0].text and "root" in history[0].text and "USER" in history[0].text
    )
    assert clean(browser) and requests(browser) <= 5  # the page, its CSS and scripts

    history[0].find_element(By.CSS_SELECTOR, "a.commit").click()
    wait_for(lambda: browser.find_elements(By.ID, "commit-id"), "the commit page")
    assert f"february {INJECTED}" in shown(browser, "#message")
    subvenance = browser.find_element(By.CSS_SELECTOR, "#subvenance a")
    assert subvenance.text.startswith("report@")  # the pipeline's output, made from it
    changes = browser.find_elements(By.CSS_SELECTOR, "table.changes tbody tr")
    assert len(changes) == 50 and changes[0].get_attribute("data-path") == "/code/total.py"
    assert browser.find_element(By.ID, "more-changes")  # 153 changes: the rest on the diff page
    assert clean(browser)

    subvenance.click()
    wait_for(lambda: "/repos/report/" in browser.current_url, "the output commit")
    assert "AUTO" in shown(browser, "table.facts")
    assert browser.find_element(By.CSS_SELECTOR, "#provenance a").text.startswith("sales@")

    browser.get(site.url + f"{REPO}/sales/commits/master/diff?against=master%5E")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.changes tbody tr")
    assert len(rows) == 153 and {r.get_attribute("data-change") for r in rows} == {"added"}
    feb = browser.find_element(By.CSS_SELECTOR, 'tr[data-path="/feb.csv"]')
    assert feb.text.split() == ["added", "/feb.csv", "-", "22", "B", "+22", "B"]
    feb.find_element(By.TAG_NAME, "a").click()
    wait_for(lambda: browser.find_elements(By.ID, "preview"), "the file page")
    cells = browser.find_elements(By.CSS_SELECTOR, "table.preview-table td")
    assert [c.text for c in cells] == ["1", "90", "2", "110"]
    assert "CSV: all 2 rows" in shown(browser, "#preview-note")
    assert clean(browser)


def test_previews_show_highlighted_code_and_images_and_nothing_runs(
    browser: WebDriver, site: Site, tmp_path: Path
) -> None:
    sign_in(browser, site, site.alice, f"{REPO}/sales/commits/master/files/code/total.py")
    code = shown(browser, "#preview td.code")
    assert f"# {INJECTED}" in code and "return sum(r['amount'] for r in rows)" in code
    keyword = browser.find_element(By.CSS_SELECTOR, "#preview .k")  # "def", highlighted
    comment = browser.find_element(By.CSS_SELECTOR, "#preview .c1")
    assert keyword.text == "def" and keyword.value_of_css_property("font-weight") == "700"
    assert comment.value_of_css_property("font-style") == "italic"  # the stylesheet applied
    assert clean(browser)
    shot = tmp_path / "preview.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    browser.get(site.url + f"{REPO}/sales/commits/master/files/logo.png")
    image = browser.find_element(By.ID, "image")
    loaded = wait_for(lambda: browser.execute_script("return arguments[0].complete && "
                      "arguments[0].naturalWidth", image), "the image")  # fmt: skip
    assert loaded == 4 and clean(browser)  # served as image/png, allowed by img-src 'self'


def test_a_directory_pages_through_its_entries(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, site.alice, f"{REPO}/sales/commits/master/files/days")
    names = browser.find_elements(By.CSS_SELECTOR, "tr[data-path] td.name")
    assert [n.text for n in names] == [f"d{i:03d}" for i in range(100)]
    assert not browser.find_elements(By.ID, "modify")  # a reader: no upload, no checkboxes
    assert not browser.find_elements(By.CSS_SELECTOR, 'input[name="delete"]')
    browser.find_element(By.ID, "next").click()
    wait_for(lambda: "from=d100" in browser.current_url, "the next page")
    names = browser.find_elements(By.CSS_SELECTOR, "tr[data-path] td.name")
    assert [n.text for n in names] == [f"d{i:03d}" for i in range(100, 150)]
    browser.find_element(By.ID, "goto").clear()
    browser.find_element(By.ID, "goto").send_keys("d14\n")
    wait_for(lambda: "from=d14" in browser.current_url, "the page from d14")
    names = browser.find_elements(By.CSS_SELECTOR, "tr[data-path] td.name")
    assert [n.text for n in names] == [f"d{i:03d}" for i in range(140, 150)]
    assert clean(browser)


def test_a_writer_uploads_and_deletes_in_one_commit_and_a_reader_cannot(
    browser: WebDriver, site: Site, tmp_path: Path
) -> None:
    before = site.commits("inbox")
    local = tmp_path / "new.csv"
    local.write_bytes(b"a,b\n1,2\n")
    sign_in(browser, site, site.bob, f"{REPO}/inbox/commits/master/files/")
    browser.find_element(By.CSS_SELECTOR, 'input[name="delete"][value="/old.txt"]').click()
    browser.find_element(By.ID, "upload-files").send_keys(str(local))
    browser.find_element(By.ID, "upload-message").send_keys("swap old for new")
    browser.find_element(By.ID, "commit-button").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-path="/new.csv"]'),
             "the directory with the upload")  # fmt: skip
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-path="/old.txt"]')
    assert clean(browser)
    with haathi.connect(str(site.store)) as c:
        newest = c.inspect_commit("inbox@master")
        assert newest.description == "swap old for new" and newest.author == "user:bob"
        assert [f.path for f in c.list_file("inbox@master:/")] == ["/new.csv"]
    assert site.commits("inbox")[1:] == before

    # a reader of sales: no form; a forced upload, even with the session's CSRF token, fails
    before = site.commits("sales")
    sign_in(browser, site, site.alice, f"{REPO}/sales/commits/master/files/")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; const data = new FormData();"
        "data.append('message', 'forced'); data.append('delete', '/jan.csv');"
        "fetch(location.pathname.replace(/files\\/$/, 'modify'), {method: 'POST', body: data,"
        " headers: {'X-CSRF-Token': window.haathiConsole.csrfToken()}})"
        ".then((r) => done(r.status));"
    )
    assert status == 403
    assert site.commits("sales") == before
