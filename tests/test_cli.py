"""The CLI tour from the README, through the real ``haathi`` command."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Cli


@pytest.mark.every_backend
def test_cli_tour(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "a" / "one.txt").write_text("one\n")
    (data / "a" / "two.txt").write_text("two\n")
    (data / "top.csv").write_text("x,y\n")

    cli("create", "repo", "images", "-d", "my images")
    repo = cli("inspect", "repo", "images", "-o", "json").json()
    assert repo["name"] == "images" and repo["description"] == "my images"

    cli("put", "file", "images@master:/", "-r", "-f", str(data))
    files = cli("list", "file", "images@master:/", "-o", "json").json()
    assert [(f["path"], f["type"]) for f in files] == [("/a", "dir"), ("/top.csv", "file")]
    assert cli("get", "file", "images@master:/a/one.txt").out == "one\n"

    # Several -f in one atomic commit; default destination is the file's name.
    extra1, extra2 = tmp_path / "e1.txt", tmp_path / "e2.txt"
    extra1.write_text("e1")
    extra2.write_text("e2")
    cli("put", "file", "images@master:/extra/", "-f", str(extra1), "-f", str(extra2))
    commits = cli("list", "commit", "images@master", "-o", "json").json()
    assert len(commits) == 2
    assert set(commits[0]) >= {
        "id",
        "repo",
        "branch",
        "parent",
        "state",
        "size_bytes",
        "file_count",
        "started",
        "finished",
        "origin",
        "description",
    }

    diff = cli("diff", "file", "images@master", "--name-only").out.split()
    assert diff == ["/extra/e1.txt", "/extra/e2.txt"]
    assert cli("diff", "file", "images@master", "-o", "json").json()[0]["change"] == "added"

    # stdin, append, open commit workflow
    cli("put", "file", "images@master:/log", "-f", "-", input=b"1\n")
    cli("put", "file", "images@master:/log", "-a", "-f", "-", input=b"2\n")
    assert cli("get", "file", "images@master:/log").out == "1\n2\n"
    cid = cli("start", "commit", "images@master", "-m", "manual").out.strip()
    cli("put", "file", f"images@{cid}:/manual", "-f", "-", input=b"m")
    assert cli("inspect", "commit", f"images@{cid}", "-o", "json").json()["state"] == "STARTED"
    cli("finish", "commit", f"images@{cid}")
    info = cli("inspect", "commit", "images@master", "-o", "json").json()
    assert info["id"] == cid and info["state"] == "FINISHED" and info["description"] == "manual"
    cli("wait", "commit", f"images@{cid}")

    # glob, inspect file, copy, delete, get -r
    globbed = cli("glob", "file", "images@master:/a/*.txt", "-o", "json").json()
    assert [g["path"] for g in globbed] == ["/a/one.txt", "/a/two.txt"]
    assert cli("inspect", "file", "images@master:/a", "-o", "json").json()["type"] == "dir"
    cli("copy", "file", "images@master:/a", "images@master:/a-copy")
    cli("delete", "file", "images@master:/a", "-r")
    out_dir = tmp_path / "out"
    cli("get", "file", "images@master:/a-copy", "-r", "-o", str(out_dir))
    assert (out_dir / "two.txt").read_text() == "two\n"
    cli("get", "file", "images@master~4:/a/one.txt", "-o", str(tmp_path / "old.txt"))
    assert (tmp_path / "old.txt").read_text() == "one\n"

    # branches
    previous = cli("inspect", "commit", "images@master^", "-o", "json").json()["id"]
    cli("create", "branch", "images@dev", "--head", "master^")
    branches = cli("list", "branch", "images", "-o", "json").json()
    assert [b["name"] for b in branches] == ["dev", "master"]
    assert cli("inspect", "branch", "images@dev", "-o", "json").json()["head"] == previous
    cli("delete", "branch", "images@dev")

    # untar
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info_t = tarfile.TarInfo("t/x.txt")
        info_t.size = 1
        tf.addfile(info_t, io.BytesIO(b"x"))
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    cli("put", "file", "images@master:/untarred", "--untar", "-f", str(tmp_path / "a.tar"))
    assert cli("get", "file", "images@master:/untarred/t/x.txt").out == "x"

    # history editing and checks
    before = len(cli("list", "commit", "images", "-o", "json").json())
    cli("squash", "commit", "images@master")
    cli("delete", "commit", "images@master")
    assert len(cli("list", "commit", "images", "-o", "json").json()) == before - 2
    assert cli("fsck", "-o", "json").json() == []
    cli("update", "repo", "images", "-d", "new")
    cli("delete", "repo", "images")
    assert cli("list", "repo", "-o", "json").json() == []


def test_cli_tour_history_editing_keeps_every_branch_content(cli: Cli, tmp_path: Path) -> None:
    """The README tour's last lines: a branch made at master's head gets a commit, so master's
    head has a child on dev. Squashing master's head is refused (master would lose /a.png);
    the tour squashes a commit inside the history and deletes dev's newest commit."""
    (tmp_path / "a.png").write_bytes(b"png")
    cli("create", "repo", "images")
    cli("put", "file", "images@master:/photos/cat.png", "-f", str(tmp_path / "a.png"))
    cli("put", "file", "images@master:/a.png", "-f", str(tmp_path / "a.png"))
    cli("create", "branch", "images@dev", "--head", "master")
    cli("copy", "file", "images@master:/photos", "images@dev:/copy")
    master = cli("list", "file", "images@master:/", "-o", "json").json()

    refused = cli.fails("squash", "commit", "images@master")
    assert refused.code == 6 and "head of branch master" in refused.err
    assert cli("list", "file", "images@master:/", "-o", "json").json() == master

    cli("squash", "commit", "images@master^")
    cli("delete", "commit", "images@dev")
    assert cli("list", "file", "images@master:/", "-o", "json").json() == master
    assert cli("get", "file", "images@master:/a.png").out == "png"
    head = cli("inspect", "commit", "images@master", "-o", "json").json()
    assert head["parent"] is None and len(cli("list", "commit", "images", "-o", "json").json()) == 1
    assert cli("inspect", "branch", "images@dev", "-o", "json").json()["head"] == head["id"]
    assert cli("fsck", "-o", "json").json() == []


def test_demo_runs_a_two_stage_pipeline_incrementally(cli: Cli, tmp_path: Path) -> None:
    """The README's first command: data in, a DAG runs, results and lineage, one change."""
    res = cli("demo", "--store", str(tmp_path / "demo"))
    assert "berlin,370\nparis,330" in res.out  # the first report
    assert "berlin,370\nparis,405" in res.out  # after February is corrected
    assert "job totals@" in res.out and "1 processed, 2 skipped, 0 failed of 3" in res.out
    lineage = res.out.split("Where did it come from?")[1]
    assert lineage.count("SKIPPED") == 2 and "sales@" in lineage
    # scripts/test installs busybox-static, umoci, skopeo and bubblewrap: the pipelines ran in
    # a BusyBox image built on the spot, and the job names its digest
    assert "The pipelines run in a BusyBox container image built just now: oci:" in res.out
    assert re.search(r"Image: oci:\S+:demo sha256:[0-9a-f]{64}", lineage)
    # and how to see it in the console
    assert "then open the console at http://127.0.0.1:8650/" in res.out


def _stderr_on_a_terminal(cli: Cli, *args: str) -> str:
    """What ``haathi ARGS`` shows on a 120-column terminal (its stderr is a pseudo-terminal),
    the bar's successive frames one per line, escape codes removed."""
    main, side = pty.openpty()
    env = dict(os.environ, HAATHI_ADDRESS=str(cli.store), COLUMNS="120", TERM="xterm",
               PYTHONIOENCODING="utf-8")  # fmt: skip
    env.pop("FORCE_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "haathi", *args], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=side, env=env, cwd=cli.cwd,
    )  # fmt: skip
    os.close(side)
    shown = bytearray()
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the command closed its side
            break
        if not data:
            break
        shown += data
    os.close(main)
    assert proc.wait(timeout=120) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    return text.replace("\r", "\n")


@pytest.mark.parametrize("backend", ["local"])
def test_put_file_progress_counts_files_as_files_and_bytes_as_bytes(
    cli: Cli, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}").write_bytes(b"x" * 1000)
    cli("create", "repo", "r")
    frames = [line.strip() for line in _stderr_on_a_terminal(
        cli, "put", "file", "r@master:/", "-r", "-f", str(data)).splitlines()
        if line.startswith("put file")]  # fmt: skip
    assert frames, "no progress shown on a terminal"
    last = frames[-1]
    assert re.fullmatch(r"put file \S+ 3/3 files 3\.0/3\.0 kB [\d.]+ [kMG]?B/s", last), last
    assert not any("bytes" in f for f in frames)  # ("3/3 bytes": the file count, as bytes)


def test_get_file_r_restores_a_tree_and_replaces_what_is_there(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    src = tmp_path / "src"
    for rel, data in {"a/1.txt": b"one", "a/b/2.txt": b"two", "3.bin": os.urandom(200_000)}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    cli("put", "file", "r@master:/", "-r", "-f", str(src))
    out = tmp_path / "out"
    cli("get", "file", "r@master:/", "-r", "-o", str(out))
    assert _tree(out) == _tree(src)
    (out / "a" / "1.txt").write_bytes(b"changed here")
    (out / "extra").write_bytes(b"not in the commit")
    cli("get", "file", "r@master:/", "-r", "-o", str(out))  # over the old restore
    assert _tree(out) == {**_tree(src), "extra": b"not in the commit"}
    assert not [p for p in out.rglob("*") if p.name.startswith(".haathi-")]


def test_get_file_r_of_many_small_files_through_the_writer_process(
    cli: Cli, tmp_path: Path
) -> None:
    """Past the first 128 small files, a restore hands files to a writer process: they come out
    byte for byte, an existing file is replaced (no temporary file left), one in the way is
    named in one line, and the files before it are written."""
    cli("create", "repo", "r")
    src = tmp_path / "src"
    for i in range(400):
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 4}" / f"f{i:03d}").write_bytes(os.urandom(i * 7))
    cli("put", "file", "r@master:/", "-r", "-f", str(src))
    out = tmp_path / "out"
    (out / "d3").mkdir(parents=True)
    (out / "d3" / "f399").write_bytes(b"an old version")
    (out / "d3" / "mine").write_bytes(b"kept")
    cli("get", "file", "r@master:/", "-r", "-o", str(out))
    assert _tree(out) == {**_tree(src), "d3/mine": b"kept"}
    assert not [p for p in out.rglob("*") if p.name.startswith(".haathi-")]

    again = tmp_path / "again"
    (again / "d2" / "f302").mkdir(parents=True)  # in the way: a directory, 300 files in
    (again / "d2" / "f302" / "mine").write_bytes(b"kept")
    res = cli.fails("get", "file", "r@master:/", "-r", "-o", str(again))
    assert res.code == 6 and res.err.count("\n") == 1
    assert f"cannot write {again / 'd2' / 'f302'} (/d2/f302 of r@" in res.err
    assert "Is a directory" in res.err
    restored = _tree(again)
    assert restored["d2/f302/mine"] == b"kept"
    assert all(restored[p] == data for p, data in _tree(src).items() if p < "d2/f302")
    assert not [p for p in again.rglob("*") if p.name.startswith(".haathi-")]


def test_get_file_of_a_large_file_to_stdout_and_to_a_file(cli: Cli, tmp_path: Path) -> None:
    """Past the 16 MiB held back (read and verified before any byte is written), a file goes to
    stdout as it is read; -o writes it whole, replacing what is there."""
    data = os.urandom(20 * 1024 * 1024 + 12_345)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/big.bin", "-f", str(src))
    assert cli("get", "file", "r@master:/big.bin").raw == data
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    cli("get", "file", "r@master:/big.bin", "-o", str(out))
    assert out.read_bytes() == data


def test_get_file_r_stops_at_a_file_it_cannot_write(cli: Cli, tmp_path: Path) -> None:
    """A large file is written by a writer thread while it is read: when that thread cannot
    write, the restore stops with a one-line error naming the file (it does not wait forever
    for the thread to take more)."""
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/big", "-f", "-", input=os.urandom(20_000_000))
    out = tmp_path / "out"
    (out / "big").mkdir(parents=True)  # in the way: a directory where the file goes
    (out / "big" / "mine").write_bytes(b"kept")
    res = cli.fails("get", "file", "r@master:/", "-r", "-o", str(out))
    assert res.code == 6 and f"cannot write {out / 'big'} (/big of r@" in res.err
    assert _tree(out) == {"big/mine": b"kept"}  # and no temporary file left


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
