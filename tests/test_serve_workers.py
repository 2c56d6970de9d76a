"""``haathi serve --workers 2``: two server processes behind one port, tested as a user sees
them, through the public Client from another process.

Each request's worker is named by the ``X-Haathi-Worker`` response header; a Client whose
pool holds one connection (:func:`pinned`) talks to one worker, so a test can write through
one worker and read, wait or authenticate through the other. What the workers share lives in
the database (branch heads, job claims, tokens), plus the auth epoch in shared memory; what
only one of them does (the job runner, the S3 gateway) is worker 0's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

import haathi
from haathi.client import Client
from haathi.client.remote import RemoteApi
from haathi.errors import Unauthenticated
from haathi.models.info import JobState
from loopback.waiting import wait_for
from tests.conftest import Cli, new_store

pytestmark = pytest.mark.slow
both_backends = pytest.mark.every_backend  # where the database is what the workers share

WORKER = re.compile(r"(\d+); pid=(\d+)")


@dataclass
class Served:
    """A running ``haathi serve --workers 2`` and what it printed on stderr."""

    proc: subprocess.Popen[str]
    url: str
    s3_url: str | None
    lines: list[str] = field(default_factory=list)

    def workers(self) -> list[psutil.Process]:
        """Its worker processes (not multiprocessing's resource tracker)."""
        kids = psutil.Process(self.proc.pid).children()
        return [k for k in kids if "resource_tracker" not in " ".join(k.cmdline())]

    def said(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"the server never said {text!r}: {self.lines}")


@contextlib.contextmanager
def serve(store: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """The server in a session of its own (as in a terminal: Ctrl-C reaches its group)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "haathi", "serve", "--store", str(store), "--bind",
         "127.0.0.1:0", "--workers", "2", *args],
        stderr=subprocess.PIPE, text=True, env=None if env is None else {**os.environ, **env},
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()
        assert " with 2 worker processes " in first, first
        url = first.split(" at ", 1)[1].split()[0]
        s3 = None if "none" in args else proc.stderr.readline().split(" at ", 1)[1].split()[0]
        served = Served(proc, url, s3)
        reader = threading.Thread(target=lambda: served.lines.extend(proc.stderr or ()))
        reader.start()
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def worker_of(response: httpx.Response) -> tuple[int, int]:
    """(worker number, pid) of the worker that answered."""
    found = WORKER.fullmatch(response.headers["x-haathi-worker"])
    assert found is not None, response.headers
    return int(found[1]), int(found[2])


def pinned(url: str, worker: int, *, token: str | None = None, run_jobs: bool = True) -> Client:
    """A Client all of whose requests go to worker ``worker``: one pooled connection, kept
    (the kernel hands each new connection to any worker: try until one lands there)."""
    for _ in range(200):
        transport = httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=1, keepalive_expiry=600)
        )
        probe = httpx.Client(transport=transport, base_url=url, timeout=60)
        if worker_of(probe.get("/v1/store"))[0] == worker:
            return Client(RemoteApi(url, token=token, transport=transport), run_jobs=run_jobs)
        transport.close()
    raise AssertionError(f"no connection reached worker {worker}")


def served_by(client: Client) -> tuple[int, int]:
    """(worker number, pid) of the worker ``client``'s connection reaches."""
    api = client._api
    assert isinstance(api, RemoteApi)
    return worker_of(api._http.get("/v1/store"))


def on_worker(client: Client, worker: int) -> None:
    """``client`` still talks to ``worker`` (its one connection was kept)."""
    assert served_by(client)[0] == worker


def runner_pid(client: Client, pipeline: str, job: str) -> int:
    """The process whose job runner ran the job."""
    return int(client.inspect_job(f"{pipeline}@{job}").context["runner"].split(":")[1])


def copy_spec(name: str, cmd: str, repo: str = "in") -> dict[str, object]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", cmd]},
    }


NO_SANDBOX = {"HAATHI_SANDBOX": "none"}  # so that user code may write a log outside /pfs


@pytest.fixture(scope="module", params=["local", "s3pg"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend pair (conftest's), chosen per module here: :func:`shared` is made once
    for each."""
    return str(request.param)


@pytest.fixture(scope="module")
def shared(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One server (S3 gateway on, user code without a sandbox) for the tests that neither stop
    it nor change how it runs, each in repos of its own: a server costs three cold processes
    to start."""
    with pytest.MonkeyPatch.context() as mp:
        store = new_store(tmp_path_factory.mktemp("shared") / "store", backend, request, mp)
        with serve(store, env=NO_SANDBOX) as srv:
            yield srv


@both_backends
def test_concurrent_writers_through_both_workers_lose_no_write(shared: Served) -> None:
    """8 clients (4 on each worker) x 10 one-off commits to one branch: 80 commits, 80 files.
    Writers of one branch take turns (across processes: a lock on a byte of ``meta.db.locks``
    on SQLite, an advisory lock on PostgreSQL), and the branch head is compare-and-swapped."""
    with haathi.connect(shared.url) as c:
        c.create_repo("writes")
    clients = [pinned(shared.url, i % 2) for i in range(8)]
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for n in range(10):
                clients[i].put_file(f"writes@master:/w{i}/f{n}", f"{i} {n}".encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, c in enumerate(clients):
        on_worker(c, i % 2)
    with pinned(shared.url, 1) as c:
        assert len(c.list_commit("writes@master")) == 80
        files = {
            f.path: c.get_file(f"writes@master:{f.path}") for f in c.walk_file("writes@master:/")
        }
    assert files == {f"/w{i}/f{n}": f"{i} {n}".encode() for i in range(8) for n in range(10)}
    for c in clients:
        c.close()


def test_wait_commit_on_one_worker_returns_when_the_runner_in_the_other_finishes(
    shared: Served,
) -> None:
    """A commit through worker 1 (whose client runs no jobs: worker 0's runner does), then
    ``wait commit`` through worker 1: it returns once the job has written its output."""
    with pinned(shared.url, 1, run_jobs=False) as c:
        c.create_repo("waited")
        spec = copy_spec("waiting", "sleep 1; cp /pfs/waited/* /pfs/out/", repo="waited")
        c.create_pipeline(spec)
        commit = c.put_file("waited@master:/a.txt", b"hello")
        t0 = time.monotonic()
        done = c.wait_commit(commit)
        waited = time.monotonic() - t0
        assert {i.repo for i in done} == {"waited", "waiting"}
        assert all(i.finished is not None and not i.error for i in done)
        assert c.get_file(f"waiting@{commit}:/a.txt") == b"hello"
        assert waited >= 1.0  # it waited for the datum's sleep
        on_worker(c, 1)
        ran_in = runner_pid(c, "waiting", commit)
    with pinned(shared.url, 0) as c0:
        assert ran_in == served_by(c0)[1]


@both_backends
def test_jobs_run_once_per_commit_by_one_runner(shared: Served, tmp_path: Path) -> None:
    """Commits through both workers at once, by clients that leave their jobs to the server
    and wait for each (through the other worker): every job runs in worker 0's runner (one
    runner: with one in each worker, they would take turns), and every datum exactly once."""
    log = tmp_path / "runs.log"
    cmd = f'echo "$PACH_JOB_ID $once" >> {log}; cp /pfs/once/* /pfs/out/'
    with haathi.connect(shared.url) as c:
        c.create_repo("once")
        c.create_pipeline(copy_spec("copied_once", cmd, repo="once"))
    clients = [pinned(shared.url, i, run_jobs=False) for i in (0, 1)]
    commits: list[str] = []

    def write(w: int) -> None:
        for n in range(5):
            commit = clients[w].put_file(f"once@master:/w{w}-{n}", f"{w}.{n}".encode())
            commits.append(commit)
            clients[1 - w].wait_commit(commit, timeout=120)

    threads = [threading.Thread(target=write, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = {j.id: j for j in clients[1].list_job("copied_once")}  # and the pipeline's first
    assert set(commits) <= set(jobs) and len(commits) == 10
    assert all(j.state == JobState.SUCCESS for j in jobs.values())
    runners = {runner_pid(clients[1], "copied_once", cid) for cid in commits}
    assert runners == {served_by(clients[0])[1]}
    files = [f.path for f in clients[1].walk_file("copied_once@master:/")]
    assert sorted(files) == sorted(f"/w{w}-{n}" for w in (0, 1) for n in range(5))
    for c in clients:
        c.close()
    runs = log.read_text().splitlines()
    # each job ran only the datum its commit added (the others were skipped)
    assert len(runs) == len(set(runs)) == 10, runs


@both_backends
def test_auth_applies_across_workers_at_once(store: Path) -> None:
    """Activated through worker 0, auth is enforced by worker 1 from its next request (it had
    just read auth to be off); a token made through one worker works through the other, and
    a token revoked through one stops working through the other."""
    with serve(store, "--s3-bind", "none") as srv:
        anon0, anon1 = pinned(srv.url, 0), pinned(srv.url, 1)
        anon1.create_repo("data")  # worker 1 reads auth to be off: it trusts that for 1 s
        root_token = anon0.auth_activate()
        with pytest.raises(Unauthenticated):
            anon1.list_repo()
        root1 = pinned(srv.url, 1, token=root_token)
        alice_token = root1.get_auth_token("user:alice")
        alice0 = pinned(srv.url, 0, token=alice_token)
        assert alice0.whoami()["subject"] == "user:alice"
        alice1 = pinned(srv.url, 1, token=alice_token)
        assert alice1.revoke_token(alice_token) == 1
        with pytest.raises(Unauthenticated):
            alice0.whoami()
        for c in (anon0, anon1, root1, alice0, alice1):
            on_worker(c, 0 if c in (anon0, alice0) else 1)
            c.close()


def test_the_s3_gateway_is_worker_0s(shared: Served) -> None:
    """The S3 gateway's multipart uploads live in one process's memory: only worker 0 serves
    its port, so every part of an upload reaches the upload."""
    assert shared.s3_url is not None
    with haathi.connect(shared.url) as c:
        assert c.inspect_cluster()["s3_endpoint"] == shared.s3_url
    for _ in range(10):
        with httpx.Client() as fresh:  # a new connection each time
            assert worker_of(fresh.get(shared.s3_url + "/"))[0] == 0


def test_a_worker_that_dies_is_started_again(store: Path) -> None:
    """A worker killed (worker 0: with the job runner) is replaced, says the server, and the
    replacement serves and runs jobs again. A killed server's workers end with it."""
    with serve(store, "--s3-bind", "none", env=NO_SANDBOX) as srv:
        with haathi.connect(srv.url) as c:
            c.create_repo("in")
            c.create_pipeline(copy_spec("copy", "cp /pfs/in/* /pfs/out/"))
        for worker in (1, 0):
            with pinned(srv.url, worker) as c:
                pid = served_by(c)[1]
            os.kill(pid, signal.SIGKILL)
            srv.said(f"worker {worker} (pid {pid}) was killed by SIGKILL; starting it again")
            with pinned(srv.url, worker) as c:
                assert served_by(c)[1] != pid
        with pinned(srv.url, 1, run_jobs=False) as c:  # the new worker 0 runs the job
            commit = c.put_file("in@master:/a", b"a")
            c.wait_commit(commit, timeout=60)
            assert c.get_file(f"copy@{commit}:/a") == b"a"
        workers = srv.workers()
        assert len(workers) == 2
        srv.proc.kill()  # a killed server takes its workers with it
        srv.proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive


def sleeping_under(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` once one of them is a ``sleep``, else nothing."""
    below = psutil.Process(pid).children(recursive=True)
    with contextlib.suppress(psutil.NoSuchProcess):  # one ended while we looked: look again
        if any(p.name() == "sleep" for p in below):
            return below
    return []


def test_sigterm_stops_every_worker_and_leaves_no_process(store: Path, tmp_path: Path) -> None:
    """SIGTERM while a datum runs: the workers stop (the job goes back to the queue), the
    server exits 0, and no process it started (workers, the datum's command) is left."""
    started = tmp_path / "started"
    with serve(store, "--s3-bind", "none", env=NO_SANDBOX) as srv:
        with pinned(srv.url, 1, run_jobs=False) as c:
            c.create_repo("in")
            c.create_pipeline(copy_spec("slow", f"touch {started}; sleep 300"))
            commit = c.put_file("in@master:/a", b"a")
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the datum never started"
            time.sleep(0.05)
        # the shell starts `sleep` a moment after `touch`
        everything = wait_for(lambda: sleeping_under(srv.proc.pid), "the datum's sleep")
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(everything, timeout=15)
        assert not alive, [p.cmdline() for p in alive]
    with haathi.connect(str(store)) as embedded:
        assert embedded.inspect_job(f"slow@{commit}").state == JobState.CREATED


def test_ctrl_c_stops_the_server_and_its_workers(store: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group: the workers stop gracefully
    and the server exits 0."""
    with serve(store, "--s3-bind", "none") as srv:
        with haathi.connect(srv.url) as c:
            c.create_repo("data")
        workers = srv.workers()
        os.killpg(srv.proc.pid, signal.SIGINT)
        assert srv.proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive
        assert not any("Traceback" in x for x in srv.lines), "\n".join(srv.lines)


def test_ctrl_c_while_the_workers_start_stops_them_without_a_traceback(store: Path) -> None:
    """Ctrl-C as soon as the workers exist, while they are still importing haathi: they start
    with SIGINT blocked and ignore it before they unblock it, so the parent alone handles it
    (as Ctrl-C once they serve)."""
    with serve(store, "--s3-bind", "none") as srv:
        while len(srv.workers()) < 2:
            time.sleep(0.001)
        workers = srv.workers()
        os.killpg(srv.proc.pid, signal.SIGINT)
        assert srv.proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive
    assert not any("Traceback" in x for x in srv.lines), "\n".join(srv.lines)


def test_sigterm_while_the_workers_open_the_store_stops_them(store: Path) -> None:
    """The workers cannot read the database (this test holds it locked) when SIGTERM comes:
    they stop as soon as they can, rather than go on to serve. (Each ignores SIGINT from its
    first moment: Ctrl-C is the parent's to handle.)"""
    with serve(store, "--s3-bind", "none") as srv:
        lock = sqlite3.connect(store / "meta.db", isolation_level=None)
        lock.execute("PRAGMA locking_mode=EXCLUSIVE")
        lock.execute("BEGIN EXCLUSIVE")  # no other connection reads until this one closes
        while len(srv.workers()) < 2 or not all(ignores_sigint(w.pid) for w in srv.workers()):
            time.sleep(0.01)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        lock.close()
        assert srv.proc.wait(timeout=20) == 0


def ignores_sigint(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = dict(line.split(":", 1) for line in status if ":" in line)
    return bool(int(masks["SigIgn"], 16) & (1 << (signal.SIGINT - 1)))


def test_a_worker_that_cannot_open_the_store_stops_the_server(store: Path) -> None:
    """The store's config turns unreadable between the parent's check and the workers' own
    opening: they fail before they serve, and the server stops with exit code 1, saying so
    (it would fail the same way again)."""
    haathi.init(str(store)).close()
    with serve(store, "--s3-bind", "none") as srv:
        (store / "haathi.toml").write_text("not toml [[[")  # the workers are still starting
        assert srv.proc.wait(timeout=60) == 1
        line = srv.said("before it served; stopping")
        assert re.search(r"worker \d exited with code 2 before it served", line), line
        assert "error: haathi serve worker" in srv.said("cannot read store config")
        assert not any("Traceback" in x for x in srv.lines), "\n".join(srv.lines)


@pytest.mark.parametrize("count", ["0", "65", "x"])
def test_a_worker_count_out_of_range_is_refused(tmp_path: Path, count: str) -> None:
    cli = Cli(tmp_path / "store", tmp_path)
    res = cli.fails("serve", "--workers", count, "--bind", "127.0.0.1:0")
    assert "--workers" in res.err or "'x'" in res.err
    assert res.code == 2
