"""The console's repo, commit, diff and files pages over HTTP (the server's app in process, auth
on; what they look like in a browser, and uploading through the page, is in
``tests/test_console_files_browser.py``).

One store serves the module: ``sales`` (data, corrected once: a diff of added, modified and
deleted files), ``totals`` (made from it by a real pipeline: provenance and subvenance),
``secret`` (alice may not read it) and ``inbox`` (bob may write it: the upload tests write
there only, so the other tests read what the fixture made).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import haathi
from haathi.client.sources import bytes_op
from haathi.console import upload
from haathi.console.app import create_console
from tests import png
from tests.in_process import AppTransport, InProcessServer
from tests.internals import ReadLog

REPO = "/projects/default/repos"
SCRIPT = "<script>window.__injected = 1</script>"
MONTHS = {f"/2026/{m:02d}.csv": f"day,amount\n1,{m * 10}\n2,{m * 20}\n".encode() for m in (1, 2, 3)}
NOTES = f"# notes {SCRIPT}\nprint('\x1b[31mred\x1b[0m \u202eevil')\n".encode()
PICTURE = png.write(4, 2, bytes(range(0, 256, 32)))
BIG = 16 * 1024 * 1024
MAX_UPLOAD = 256 * 1024  # the module's server: --max-upload 256K

SUM = """awk -F, 'NR > 1 { s += $2 } END { print s }' "$sales" > /pfs/out/$(basename $sales)"""
TOTALS = {  # each month's total
    "pipeline": {"name": "totals"},
    "input": {"pfs": {"repo": "sales", "glob": "/2026/*"}},
    "transform": {"cmd": ["sh", "-c", SUM]},
}


def parquet_bytes(rows: int) -> bytes:
    """A Parquet file of ``rows`` rows (ids, names, random-ish floats), in row groups of 10,000."""
    table = pa.table({
        "id": list(range(rows)),
        "name": [f"row <{i}>" for i in range(rows)],
        "score": [(i * 7919 % 10007) / 7.0 for i in range(rows)],
    })  # fmt: skip
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=10_000, compression="none")
    return out.getvalue()


@dataclass(frozen=True)
class Site:
    server: InProcessServer
    store: Path
    root: str
    alice: str  # reads sales and totals, nothing else
    bob: str  # writes inbox, reads sales
    first: str  # sales' first commit, and the correction after it
    correction: str

    def browser(self, token: str) -> httpx.Client:
        """An HTTP client holding ``token``'s cookie, as a browser signed in with it."""
        client = httpx.Client(transport=self.server.transport, base_url="http://console.test")
        client.cookies.set("haathi_token", token)
        return client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = tmp_path_factory.mktemp("console-files") / "store"
    with haathi.connect(str(store)) as c:
        c.create_repo("sales", "monthly sales")
        first = c.modify_file("sales@master", [bytes_op(d, p) for p, d in MONTHS.items()],
                              description="the first quarter")  # fmt: skip
        c.create_pipeline(TOTALS)
        with c.start_commit("sales@master", description=f"correct february {SCRIPT}") as w:
            w.put_file("/2026/02.csv", b"day,amount\n1,25\n2,45\n3,5\n")
            w.delete_file("/2026/03.csv")
            w.put_file("/2026/04.csv", b"day,amount\n1,70\n")
        correction = c.inspect_commit("sales@master").id
        c.wait_commit(correction)
        files = {
            "/notes.py": NOTES,
            '/<img src=x onerror="window.__injected = 2">.txt': b"a name that is not markup\n",
            "/picture.png": PICTURE,
            "/drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "/data.json": json.dumps({"b": [1, 2], "a": "<i>"}).encode(),
            "/empty": b"",
            "/blob.bin": bytes(range(256)) * 4,
            "/table.parquet": parquet_bytes(100_000),
            "/big.txt": b"a line of text\n" * (BIG // 15 + 1),
            "/big.bin": b"\0\1" * (BIG // 2),
        }
        files.update({f"/many/f{i:03d}": str(i).encode() for i in range(250)})
        c.create_branch("sales@media", "master")
        c.modify_file("sales@media", [bytes_op(d, p) for p, d in files.items()],
                      description="media")  # fmt: skip
        c.create_repo("log", "many commits")
        for k in range(120):
            c.put_file(f"log@master:/k{k:03d}", b"x" * k)
        c.create_branch("log@dev", "master~100")
        c.create_repo("secret", "not for alice")
        c.put_file("secret@master:/plans.txt", b"plans\n")
        c.create_repo("inbox", "bob's")
        c.put_file("inbox@master:/old.txt", b"old\n")
        c.put_file("inbox@master:/keep.txt", b"keep\n")
        root = c.auth_activate()
        alice = c.get_auth_token("user:alice")
        bob = c.get_auth_token("user:bob")
        for repo in ("sales", "totals", "log"):
            c.set_repo_roles(repo, "repoReader", "user:alice")
        c.set_repo_roles("sales", "repoReader", "user:bob")
        c.set_repo_roles("inbox", "repoWriter", "user:bob")
    server = InProcessServer.for_store(str(store), run_worker=False, max_upload_bytes=MAX_UPLOAD)
    server.start()
    yield Site(server, store, root, alice, bob, first, correction)
    server.stop()


def attrs(page: httpx.Response, name: str) -> list[str]:
    """The values of the ``data-NAME`` attributes of a page, in order (unescaped)."""
    return [unescape(v) for v in re.findall(rf'data-{name}="([^"]*)"', page.text)]


def link(page: httpx.Response, element_id: str) -> str | None:
    """Where the link with ``id`` leads (None: the page has none)."""
    found = re.search(rf'<a [^>]*href="([^"]*)"[^>]*id="{element_id}"', page.text)
    found = found or re.search(rf'<a [^>]*id="{element_id}"[^>]*href="([^"]*)"', page.text)
    return None if found is None else unescape(found[1])


def text(page: httpx.Response) -> str:
    """The page's text, as a reader sees it (tags dropped, entities decoded)."""
    return unescape(re.sub(r"<[^>]+>", "", page.text))


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
    assert found is not None
    return found[1]


def test_a_repo_page_shows_its_branches_and_its_history_a_page_at_a_time(site: Site) -> None:
    with site.browser(site.alice) as http:
        first = http.get(f"{REPO}/log")
        assert first.status_code == 200
        assert attrs(first, "branch") == ["dev", "master"]
        with haathi.connect(str(site.store)) as c:
            history = [x.id for x in c.list_commit("log@master")]
        assert len(history) == 120
        assert attrs(first, "commit") == history[:50]  # newest first
        row = re.search(rf'<tr data-commit="{history[0]}">(.*?)</tr>', first.text, re.S)
        assert row is not None
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
        assert [re.sub(r"<[^>]+>", "", cell) for cell in cells[2:6]] == [
            "root", "USER", "7.0 KiB", "120"
        ]  # author, origin, size, files  # fmt: skip
        older = link(first, "older")
        assert older == f"{REPO}/log?branch=master&from={history[50]}"
        second = http.get(older)
        assert attrs(second, "commit") == history[50:100]
        third = http.get(link(second, "older") or "")
        assert attrs(third, "commit") == history[100:] and link(third, "older") is None
        assert link(third, "newest") == f"{REPO}/log?branch=master"

        dev = http.get(f"{REPO}/log?branch=dev")
        assert attrs(dev, "commit")[:2] == history[100:102]  # master~100 and before it
        for bad in ("?branch=nosuch", f"?from={'0' * 32}", "?from=..%2F"):
            missing = http.get(f"{REPO}/log{bad}")
            assert missing.status_code == 404, bad
            assert f'href="{REPO}/log' in missing.text  # a way back to the repo


def test_a_commit_page_links_its_provenance_and_subvenance_and_shows_its_changes(
    site: Site,
) -> None:
    with site.browser(site.alice) as http:
        page = http.get(f"{REPO}/sales/commits/{site.correction}")
        assert page.status_code == 200
        shown = text(page)
        assert f"correct february {SCRIPT}" in shown and SCRIPT not in page.text  # escaped
        assert "USER" in shown and "root" in shown
        with haathi.connect(str(site.store)) as c:
            output = c.inspect_commit(f"totals@{site.correction}")
        assert output.provenance == (f"sales@{site.correction}",)
        subvenance = f'href="{REPO}/totals/commits/{site.correction}"'
        assert subvenance in page.text.split('id="subvenance"')[1].split("</section>")[0]
        assert link(page, "browse") == f"{REPO}/sales/commits/{site.correction}/files/"
        assert attrs(page, "change") == ["modified", "deleted", "added"]
        assert attrs(page, "path") == ["/2026/02.csv", "/2026/03.csv", "/2026/04.csv"]
        modified = re.search(r'data-change="modified".*?</tr>', page.text, re.S)
        sizes = re.findall(r'<td class="num[^"]*">([^<]*)</td>', modified[0] if modified else "")
        assert sizes == ["21 B", "25 B", "+4 B"]  # before, after, the difference

        made = http.get(f"{REPO}/totals/commits/{site.correction}")
        assert "AUTO" in text(made)
        provenance = made.text.split('id="provenance"')[1].split("</section>")[0]
        assert f'href="{REPO}/sales/commits/{site.correction}"' in provenance
        assert link(made, "job") == f"/projects/default/pipelines/totals/jobs/{site.correction}"


def test_a_diff_compares_with_the_parent_or_any_commit_a_page_at_a_time(site: Site) -> None:
    with site.browser(site.alice) as http:
        parent = http.get(f"{REPO}/sales/commits/master/diff")
        assert attrs(parent, "change") == ["modified", "deleted", "added"]
        wide = http.get(f"{REPO}/sales/commits/media/diff?against={site.first}")
        paths = attrs(wide, "path")
        assert paths[:4] == ["/2026/02.csv", "/2026/03.csv", "/2026/04.csv",
                             '/<img src=x onerror="window.__injected = 2">.txt']  # fmt: skip
        assert len(paths) == 200 and paths[-1].startswith("/many/f")  # a page
        last = int(paths[-1].removeprefix("/many/f"))
        following = link(wide, "more-changes")
        assert following is not None  # the next page starts at the next change
        assert following.endswith(f"/diff?against={site.first}&from=%2Fmany%2Ff{last + 1:03d}")
        rest = http.get(following)
        assert attrs(rest, "path")[0] == f"/many/f{last + 1:03d}"
        assert attrs(rest, "path")[-2:] == ["/picture.png", "/table.parquet"]  # the last ones
        assert link(rest, "more-changes") is None
        back = http.get(f"{REPO}/sales/commits/{site.first}/diff?against=master")
        assert attrs(back, "change") == ["modified", "added", "deleted"]  # the other way
        other_repo = http.get(f"{REPO}/sales/commits/master/diff?against=totals@master")
        assert other_repo.status_code == 200
        missing = http.get(f"{REPO}/sales/commits/master/diff?against=nosuch")
        assert missing.status_code == 404
        back_to = link(missing, "way-back") or ""  # the diff with its parent
        assert back_to.startswith(f"{REPO}/sales/commits/") and back_to.endswith("/diff")


def test_a_directory_lists_a_page_at_a_time_from_any_name(site: Site) -> None:
    many = f"{REPO}/sales/commits/media/files/many"
    with site.browser(site.alice) as http:
        first = http.get(many)
        assert first.status_code == 200
        assert attrs(first, "path") == [f"/many/f{i:03d}" for i in range(100)]
        assert link(first, "next") == f"{many}?from=f100" and link(first, "first") is None
        second = http.get(f"{many}?from=f100")
        assert attrs(second, "path") == [f"/many/f{i:03d}" for i in range(100, 200)]
        assert link(second, "first") == many
        jumped = http.get(f"{many}?from=f24")  # the "go to name" box: from that name on
        assert attrs(jumped, "path") == [f"/many/f{i:03d}" for i in range(240, 250)]
        assert link(jumped, "next") is None
        root = http.get(f"{REPO}/sales/commits/media/files/")
        assert attrs(root, "type")[:2] == ["dir", "file"]
        injected = '/<img src=x onerror="window.__injected = 2">.txt'
        assert attrs(root, "path")[:3] == ["/2026", injected, "/big.bin"]
        assert "<img src=x" not in root.text  # the name is text
        assert "data-upload" not in root.text and 'name="delete"' not in root.text  # a reader
        missing = http.get(f"{REPO}/sales/commits/media/files/no/such")
        assert missing.status_code == 404
        assert link(missing, "way-back") == f"{REPO}/sales/commits/media/files/"


def preview_of(http: httpx.Client, path: str, ref: str = "media") -> tuple[str, str]:
    """The kind of a file's preview, and the preview's HTML."""
    page = http.get(f"{REPO}/sales/commits/{ref}/files/{path.lstrip('/')}")
    assert page.status_code == 200, path
    section = page.text.split('<section class="preview', 1)[1].split("</section>", 1)[0]
    kind = re.search(r'data-kind="(\w+)"', section)
    assert kind is not None
    return kind[1], section


def test_files_preview_as_text_tables_json_images_or_binary(site: Site) -> None:
    with site.browser(site.alice) as http:
        kind, shown = preview_of(http, "/notes.py")
        assert kind == "text" and 'class="highlight"' in shown and '<span class="c1">' in shown
        assert "&lt;script&gt;window.__injected = 1&lt;/script&gt;" in shown
        assert "<script" not in shown and "\x1b" not in shown and "\u202e" not in shown
        assert "\\x1b[31mred\\x1b[0m \\u202eevil" in unescape(re.sub(r"<[^>]+>", "", shown))
        assert "style=" not in shown  # classes only: the CSP allows no inline style

        kind, shown = preview_of(http, "/data.json")
        assert kind == "text"
        pretty = unescape(re.sub(r"<[^>]+>", "", shown.split('class="code"')[1]))
        assert '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "<i>"\n}' in pretty

        kind, shown = preview_of(http, "/2026/02.csv", ref="master")
        assert kind == "table"
        assert re.findall(r"<th>([^<]*)</th>", shown) == ["day", "amount"]
        assert re.findall(r"<td>([^<]*)</td>", shown) == ["1", "25", "2", "45", "3", "5"]
        assert "CSV: all 3 rows" in shown

        kind, shown = preview_of(http, "/table.parquet")
        assert kind == "table" and "Parquet: the first 50 of 100,000 rows" in shown
        assert re.findall(r"<th>([^<]*)</th>", shown) == ["id", "name", "score"]
        cells = re.findall(r"<td>([^<]*)</td>", shown)
        assert len(cells) == 150 and cells[:3] == ["0", "row &lt;0&gt;", "0.0"]

        kind, shown = preview_of(http, "/picture.png")
        assert kind == "image"
        src = re.search(r'<img src="([^"]*)"', shown)
        assert src is not None and src[1].endswith("/download/picture.png?inline=1")
        image = http.get(unescape(src[1]))
        assert image.headers["content-type"] == "image/png" and image.content == PICTURE
        assert image.headers["content-disposition"].startswith("inline;")

        kind, shown = preview_of(http, "/drawing.svg")  # a document that can hold scripts
        assert kind == "text" and "<script>alert(1)" in unescape(re.sub(r"<[^>]+>", "", shown))
        svg = http.get(f"{REPO}/sales/commits/media/download/drawing.svg?inline=1")
        assert svg.headers["content-type"] == "application/octet-stream"
        assert svg.headers["content-disposition"].startswith("attachment;")

        assert preview_of(http, "/blob.bin") == ("binary", preview_of(http, "/blob.bin")[1])
        assert "binary, 1,024 bytes" in preview_of(http, "/blob.bin")[1]
        assert "an empty file" in preview_of(http, "/empty")[1]


def test_a_huge_file_previews_without_being_read_whole(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = site.server.api.pfs.blobs.objects
    log = ReadLog(objects)
    monkeypatch.setattr(objects, "get_range", log.get_range)
    with site.browser(site.alice) as http:
        kind, shown = preview_of(http, "/big.txt")
        assert kind == "text" and "the first 128.0 KiB of 16.0 MiB (16,777,230 bytes)" in shown
        assert sum(n for _, n in log.reads) < 2 * 1024 * 1024, "read much more than it shows"
        log.reads.clear()
        kind, shown = preview_of(http, "/big.bin")
        assert kind == "binary" and "binary, 16,777,216 bytes" in shown
        assert sum(n for _, n in log.reads) < 2 * 1024 * 1024
        log.reads.clear()
        kind, _ = preview_of(http, "/table.parquet")  # its footer, and the pages of 50 rows
        assert kind == "table"
        size = len(parquet_bytes(100_000))
        assert 0 < sum(n for _, n in log.reads) < size / 4, (sum(n for _, n in log.reads), size)


def test_a_file_downloads_as_an_attachment_and_a_directory_as_a_tar(site: Site) -> None:
    with site.browser(site.alice) as http:
        notes = http.get(f"{REPO}/sales/commits/media/download/notes.py")
        assert notes.status_code == 200 and notes.content == NOTES
        assert notes.headers["content-type"] == "application/octet-stream"  # never run as a page
        assert notes.headers["content-disposition"] == (
            "attachment; filename=\"notes.py\"; filename*=UTF-8''notes.py"
        )
        assert notes.headers["content-security-policy"].endswith("sandbox")
        assert notes.headers["x-content-type-options"] == "nosniff"
        named = http.get(
            f"{REPO}/sales/commits/media/download/"
            + "%3Cimg%20src%3Dx%20onerror%3D%22window.__injected%20%3D%202%22%3E.txt"
        )
        assert named.headers["content-disposition"] == (
            "attachment; filename=\"<img src=x onerror=_window.__injected = 2_>.txt\"; "
            "filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3D%22window.__injected%20%3D%202%22%3E.txt"
        )  # fmt: skip

        with http.stream("GET", f"{REPO}/sales/commits/master/download/2026") as archive:
            assert archive.headers["content-type"] == "application/x-tar"
            assert 'filename="2026.tar"' in archive.headers["content-disposition"]
            body = archive.read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
        assert members == {
            "2026/01.csv": MONTHS["/2026/01.csv"],
            "2026/02.csv": b"day,amount\n1,25\n2,45\n3,5\n",
            "2026/04.csv": b"day,amount\n1,70\n",
        }
        whole = http.get(f"{REPO}/sales/commits/{site.first}/download/")
        with tarfile.open(fileobj=io.BytesIO(whole.content)) as tar:
            assert tar.getnames() == ["sales/2026/01.csv", "sales/2026/02.csv", "sales/2026/03.csv"]


def form_of(http: httpx.Client, path: str) -> tuple[str, str]:
    """The CSRF token of this browser's session, and where a directory page's form posts."""
    page = http.get(path)
    action = re.search(r'<form id="modify"[^>]* action="([^"]*)"', page.text)
    return csrf_of(page), "" if action is None else unescape(action[1])


def commits_of(site: Site, repo: str) -> list[str]:
    with haathi.connect(str(site.store)) as c:
        return [x.id for x in c.list_commit(f"{repo}@master")]


def test_a_writer_uploads_files_and_deletes_paths_as_one_commit(site: Site) -> None:
    before = commits_of(site, "inbox")
    with site.browser(site.bob) as http:
        token, action = form_of(http, f"{REPO}/inbox/commits/master/files/")
        assert action == f"{REPO}/inbox/commits/master/modify"
        sent = http.post(
            action,
            data={"dir": "/in", "message": "add two, drop one", "delete": ["/old.txt"]},
            files=[("file", ("a.csv", b"x,y\n1,2\n")), ("file", ("b.bin", b"\0\1\2"))],
            headers={"X-CSRF-Token": token},
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == f"{REPO}/inbox/commits/master/files/in"
    with haathi.connect(str(site.store)) as c:
        after = c.list_commit("inbox@master")
        assert [x.id for x in after[1:]] == before  # one commit more
        assert after[0].description == "add two, drop one" and after[0].author == "user:bob"
        assert {f.path for f in c.walk_file("inbox@master:/")} == {
            "/keep.txt", "/in/a.csv", "/in/b.bin"
        }  # fmt: skip
        assert c.get_file("inbox@master:/in/a.csv") == b"x,y\n1,2\n"


def test_a_reader_has_no_upload_form_and_a_forced_upload_changes_nothing(site: Site) -> None:
    before = commits_of(site, "sales")
    with site.browser(site.alice) as http:
        token, action = form_of(http, f"{REPO}/sales/commits/master/files/")
        assert action == ""  # no form, no checkboxes
        forced = http.post(  # with this session's CSRF token: the Api still refuses
            f"{REPO}/sales/commits/master/modify",
            data={"dir": "/", "message": "mine now", "delete": ["/2026"]},
            files=[("file", ("x.txt", b"x"))],
            headers={"X-CSRF-Token": token},
        )
        assert forced.status_code == 403 and "user:alice" in text(forced)
        no_token = http.post(f"{REPO}/sales/commits/master/modify", files=[("file", ("x", b"x"))])
        assert no_token.status_code == 403 and "no CSRF token" in text(no_token)
    assert commits_of(site, "sales") == before


def multipart(boundary: str, message: str, content: bytes) -> bytes:
    """An upload form's body (the ``message`` field and one file), by hand."""
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="message"\r\n\r\n{message}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="up.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_an_oversized_truncated_or_malformed_upload_commits_nothing(site: Site) -> None:
    before = commits_of(site, "inbox")
    boundary = "b0undary"
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with site.browser(site.bob) as http:
        token, action = form_of(http, f"{REPO}/inbox/commits/master/files/")
        headers = {**kind, "X-CSRF-Token": token}
        whole = multipart(boundary, "too big", b"x" * (MAX_UPLOAD + 1))
        big = http.post(action, content=whole, headers=headers)
        assert big.status_code == 413  # the server's --max-upload, before the body is read
        small = multipart(boundary, "cut short", b"y" * 1000)
        for cut in (small[:-4], small[:-20], small[: len(small) // 2]):
            truncated = http.post(action, content=cut, headers=headers)
            assert truncated.status_code == 400, cut[-30:]
            assert "the upload was cut off before its end; nothing was committed" in text(truncated)

        def goes_away() -> Iterator[bytes]:
            yield small[:500]
            raise ConnectionResetError("the browser closed")

        with pytest.raises(ConnectionResetError):
            http.post(action, content=goes_away(), headers=headers)
        for bad, why in (
            (multipart(boundary, "", b"z"), "a commit needs a message"),
            (multipart(boundary, "x", b"z").replace(b'"up.bin"', b'"../up.bin"'), "'..'"),
            (b"--other\r\n", "not a form this page sent: Invalid multipart data;"),
        ):
            refused = http.post(action, content=bad, headers=headers)
            assert refused.status_code == 400 and why in text(refused), why
        wrong_kind = http.post(
            action,
            content=b"{}",
            headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
        )
        assert wrong_kind.status_code == 400 and "multipart/form-data" in text(wrong_kind)
        ok = http.post(action, content=small, headers=headers)
        assert ok.status_code == 303  # the same form, whole: committed
    after = commits_of(site, "inbox")
    assert after[1:] == before


def test_the_console_alone_refuses_an_upload_past_its_own_limit(site: Site) -> None:
    """Without ``--max-upload`` the server passes any upload to the console, which takes at
    most :data:`~haathi.console.upload.DEFAULT_MAX_UPLOAD`: counted as the body arrives."""
    assert upload.DEFAULT_MAX_UPLOAD == 1024**3
    console = AppTransport(create_console(site.server.api, max_upload_bytes=1000))
    console.start()
    try:
        before = commits_of(site, "inbox")
        with httpx.Client(transport=console, base_url="http://console.test") as http:
            http.cookies.set("haathi_token", site.bob)
            token, action = form_of(http, f"{REPO}/inbox/commits/master/files/")
            body = multipart("b", "chunked", b"c" * 2000)
            chunked = http.post(action, content=iter([body[:700], body[700:]]),
                                headers={"Content-Type": "multipart/form-data; boundary=b",
                                         "X-CSRF-Token": token})  # fmt: skip
            assert chunked.status_code == 413
            assert "larger than this server takes (1,000 bytes)" in text(chunked)
        assert commits_of(site, "inbox") == before
    finally:
        console.stop()


def test_what_the_caller_may_not_read_is_not_shown(site: Site) -> None:
    with site.browser(site.alice) as http:
        for path in ("", "/commits/master", "/commits/master/diff", "/commits/master/files/",
                     "/commits/master/files/plans.txt", "/commits/master/download/plans.txt",
                     "/commits/master/download/"):  # fmt: skip
            page = http.get(f"{REPO}/secret{path}")
            assert page.status_code == 403, path
            assert "plans" not in page.text.replace(path, ""), path
