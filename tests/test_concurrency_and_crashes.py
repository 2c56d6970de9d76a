"""Concurrent writers lose nothing; a killed writer leaves every finished commit intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import haathi
from haathi.client import Client

pytestmark = pytest.mark.slow  # processes killed mid-write, then recovery

WRITER = """
import sys, haathi
c = haathi.connect(sys.argv[1])
w = sys.argv[2]
for i in range(int(sys.argv[3])):
    c.put_file(f"r@master:/w{w}/f{i}", f"{w}-{i}".encode())
"""


# the embedded default: on PostgreSQL and S3, eight writers (test_backend_faults.py)
def test_four_processes_writing_one_branch_lose_nothing(client: Client, store: Path) -> None:
    client.create_repo("r")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(w), "100"])
        for w in range(4)
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0, 0]
    files = {f.path for f in client.walk_file("r@master:/")}
    assert files == {f"/w{w}/f{i}" for w in range(4) for i in range(100)}
    history = client.list_commit("r@master")
    assert len(history) == 400
    assert all(c.state.value == "FINISHED" for c in history)
    # Linear: each commit's parent is the next older one, ending at the root.
    assert [c.parent for c in history] == [c.id for c in history[1:]] + [None]
    assert client.get_file("r@master:/w3/f99") == b"3-99"


def _snapshot(c: Client) -> dict[str, dict[str, str | None]]:
    """Every finished commit's files and content hashes (and the bytes of /before)."""
    out = {}
    for commit in c.list_commit("r"):
        if commit.finished is None:
            continue
        spec = f"r@{commit.id}"
        out[commit.id] = {f.path: f.hash for f in c.walk_file(spec + ":/")}
        assert c.get_file(spec + ":/before") == b"safe"
    return out


def _kill_after(cmd: list[str], store: Path, delay: float) -> None:
    env = dict(os.environ, HAATHI_ADDRESS=str(store))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


def _assert_sound(store: Path, before: dict[str, dict[str, str | None]]) -> None:
    with haathi.connect(str(store)) as c:
        after = _snapshot(c)
        for cid, content in before.items():
            assert after[cid] == content, f"finished commit {cid} changed"
        assert [p for p in c.fsck() if p.severity == "error"] == []


@pytest.mark.every_backend
def test_sigkill_mid_put_file(client: Client, store: Path, tmp_path: Path) -> None:
    client.create_repo("r")
    client.put_file("r@master:/before", b"safe")
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        for _ in range(24):
            fh.write(os.urandom(8 * 1024 * 1024))
    before = _snapshot(client)
    client.close()
    for delay in (0.4, 0.9, 1.6):
        _kill_after(
            [sys.executable, "-m", "haathi", "put", "file", "r@master:/big", "-f", str(big)],
            store,
            delay,
        )
        _assert_sound(store, before)
        with haathi.connect(str(store)) as c:
            before = _snapshot(c)  # a put that won the race is a complete commit


FINISHER = """
import sys, haathi
c = haathi.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
c.finish_commit("r@master")
"""
STAGED = 5000  # files a finish writes: it takes ~0.25 s on a quiet machine, longer under load


@pytest.mark.every_backend
def test_sigkill_mid_finish_commit(client: Client, store: Path) -> None:
    """A process killed 0, 0.1 and 0.2 s into finishing a commit of 5,000 staged files (its
    start-up is over: it has opened the store and waits for the word) leaves the commit
    either finished whole or still open with all its writes, and every other one intact."""
    from haathi.client.sources import bytes_op

    client.create_repo("r")
    client.put_file("r@master:/before", b"safe")
    before = _snapshot(client)
    for round_, delay in enumerate((0.0, 0.1, 0.2)):
        handle = client.start_commit("r@master")
        ops = [bytes_op(f"{round_}-{i}".encode(), f"/r{round_}/f{i:05d}") for i in range(STAGED)]
        client.modify_file(f"r@{handle.id}", ops)
        finisher = subprocess.Popen(
            [sys.executable, "-c", FINISHER, str(store)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert finisher.stdin is not None and finisher.stdout is not None
        assert finisher.stdout.readline() == "ready\n"
        finisher.stdin.write("go\n")
        finisher.stdin.flush()
        time.sleep(delay)
        finisher.kill()
        finisher.wait()
        _assert_sound(store, before)
        info = client.inspect_commit(f"r@{handle.id}")
        if info.finished is None:
            # Not half-visible: still open, with all its staged writes; finishing works.
            assert len(client.walk_file(f"r@{handle.id}:/r{round_}")) == STAGED
            client.finish_commit(f"r@{handle.id}")
        assert len(client.walk_file(f"r@{handle.id}:/r{round_}")) == STAGED
        before = _snapshot(client)
    _assert_sound(store, before)
