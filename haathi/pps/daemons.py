"""Spouts and services: the long-lived programs of pipelines, run by workers.

Every worker (``haathi run worker``, ``haathi serve``) runs a :class:`DaemonSupervisor` beside
its job runner. Each spout or service pipeline has a row in ``daemons``
(:mod:`haathi.pps.daemon_records`); the supervisor claims the rows of running pipelines that
no worker holds (as a runner claims a job: under a lease, renewed while it runs), and runs
each claimed program in a sandbox of its own, on a thread of its own, until the pipeline is
stopped, updated (it starts again with the new spec) or deleted, or the worker stops (it gives
the lease back). A worker killed outright takes its sandboxes with it (bubblewrap dies with
the thread that started it); its leases expire and another worker starts the programs again.

- A **spout**'s program runs in the sandbox's private ``/tmp`` (unless ``working_dir``), with
  Pachyderm's ``PPS_PIPELINE_NAME`` and ``PPS_PROJECT_NAME``, and writes commits to its output
  repo through haathi's API: ``HAATHI_ADDRESS`` (reached on the sandbox's loopback, relayed to
  the worker: :mod:`haathi.pps.sidecars`), ``HAATHI_TOKEN`` (good for this spout's API only)
  and ``HAATHI_PROJECT``, so ``haathi put file $PPS_PIPELINE_NAME@master -f ...`` and
  ``haathi.connect()`` work as they are. That API reads and writes the spout's output repo
  and nothing else.
- A **service**'s server runs over the single datum of its newest input commit
  (:mod:`haathi.pps.service_jobs`) and is started again on each new one. Its
  ``internal_port`` is published on the host's ``127.0.0.1:external_port`` (any free port
  without one), shown in ``inspect pipeline`` and ``list pipeline``.

A program that exits is started again, after 1 s, doubling up to 30 s while it keeps exiting;
after :data:`CRASH_EXITS` exits within :data:`CRASH_WINDOW_S` the daemon is CRASHING (still
retried), with the reason (the exit code and its last line of output), until it has run that
long again. What cannot start at all (a port in use, a missing image) is CRASHING at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from haathi.errors import FailedPrecondition, HaathiError
from haathi.models.ids import split_key
from haathi.models.secret import JobSecrets
from haathi.pfs.context import now
from haathi.pps import daemon_records, records, service_jobs
from haathi.pps import secrets as pipeline_secrets
from haathi.pps.containers import open_container
from haathi.pps.context import PpsContext
from haathi.pps.daemon_output import DaemonOutput
from haathi.pps.daemon_records import CRASHING, PAUSED, RUNNING, STARTING
from haathi.pps.isolation import Isolation, isolation_for
from haathi.pps.pipelines import RUNNING as PIPELINE_RUNNING
from haathi.pps.pipelines import spec_of
from haathi.pps.port_relay import PortInUse, PortRelay
from haathi.pps.sandbox import RunResult, Sandbox, connect_published, open_sandbox
from haathi.pps.session import SOCKET_DIR, listen_unix
from haathi.pps.sidecars import SpoutApis, SpoutScope
from haathi.pps.spec import PipelineSpec
from haathi.pps.worker import (
    DatumSetTask,
    InputReads,
    datum_env,
    host_env,
    secret_files,
    transform_path,
)

POLL_S = 0.5  # how often the supervisor looks at the daemons table
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
CRASH_WINDOW_S = 60.0
CRASH_EXITS = 3
STOP_WAIT_S = 10.0  # a daemon's thread has this long to stop (its sandbox is killed at once)
HAATHI_PACKAGE = Path(__file__).resolve().parents[1]
"""haathi's own package, shown to a spout's program (``haathi`` and ``haathi.connect()``)."""
NO_API = "this process serves no API to spouts: run them with `haathi run worker` or `haathi serve`"
SPOUT_API_SOCKET = "api.sock"  # in S/.sock


class DaemonSupervisor:
    """Runs this worker's share of the spouts and services (see the module docstring);
    ``apis`` serves the spouts their API (None: spouts cannot run here, and say so)."""

    def __init__(self, ctx: PpsContext, apis: SpoutApis | None) -> None:
        self.ctx = ctx
        self.apis = apis
        self._held: dict[int, _Daemon] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="haathi-daemons")
        self._thread.start()

    def stop(self) -> None:
        """Stop every program this worker runs and give their leases back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for pid, daemon in list(self._held.items()):
            daemon.stop()
            with contextlib.suppress(HaathiError), self.ctx.pfs.db.write() as conn:
                daemon_records.release(conn, pid, self.ctx.runner_id, state=STARTING, reason=None)
        self._held.clear()

    def _run(self) -> None:
        while True:
            with contextlib.suppress(HaathiError):  # the store away for a moment: next tick
                self.tick()
            if self._stop.wait(POLL_S):
                return

    def tick(self) -> None:
        """Stop what should no longer run here, renew the leases of the rest, and claim the
        daemons of running pipelines that no worker holds."""
        ctx, me = self.ctx, self.ctx.runner_id
        with ctx.pfs.db.read() as conn:
            rows = {r.pipeline_id: r for r in daemon_records.all_daemons(conn)}
            if not rows and not self._held:
                return
            pipes = {p.id: p for p in records.all_pipelines(conn) if p.id in rows}
        for pid, daemon in list(self._held.items()):
            p, row = pipes.get(pid), rows.get(pid)
            if p is None or row is None or row.runner != me:  # deleted, or taken over
                self._drop(pid)
            elif p.state != PIPELINE_RUNNING:
                self._drop(pid, state=PAUSED, reason=None, job_commit=None, port=None)
            elif p.version != daemon.version:
                self._drop(pid, state=STARTING, reason=None)  # claimed again, with the new spec
            else:
                daemon.poke()
        t = now()
        for pid, row in rows.items():
            p = pipes.get(pid)
            if pid in self._held or p is None or p.state != PIPELINE_RUNNING or row.held(t):
                continue
            lease = t + timedelta(seconds=ctx.job_lease_s)
            with ctx.pfs.db.write() as conn:
                if not daemon_records.claim(conn, pid, me, t, lease):
                    continue
                p = records.pipeline_row(conn, p.name)
                spec, _ = spec_of(conn, p)
                daemon_records.record(conn, pid, me, version=p.version, started_at=t)
            made = _Spout if spec.spout is not None else _Service
            self._held[pid] = made(self, pid, p.name, p.version, spec)
            self._held[pid].restarts = row.restarts  # (counted across workers)
            self._held[pid].start()

    def _drop(self, pid: int, **values: Any) -> None:
        """Stop the daemon; with ``values``, give its lease back recording them."""
        self._held.pop(pid).stop()
        if values:
            with self.ctx.pfs.db.write() as conn:
                daemon_records.release(conn, pid, self.ctx.runner_id, **values)

    def renew(self, pid: int) -> bool:
        """Extend this worker's lease on the daemon; False if it lost it."""
        until = now() + timedelta(seconds=self.ctx.job_lease_s)
        with self.ctx.pfs.db.write() as conn:
            return daemon_records.renew(conn, pid, self.ctx.runner_id, until)


class _Daemon:
    """One program this worker runs, on a thread of its own (which owns its sandbox)."""

    def __init__(
        self, sup: DaemonSupervisor, pid: int, name: str, version: int, spec: PipelineSpec
    ) -> None:
        self.sup, self.ctx = sup, sup.ctx
        self.pid, self.name, self.version, self.spec = pid, name, version, spec
        self.stopping = threading.Event()
        self.restart = threading.Event()  # ends the program's current run
        self.exits: list[float] = []  # when it exited (monotonic), within CRASH_WINDOW_S
        self.restarts = 0
        self.crashing = False
        self._renewed = time.monotonic()
        self._said: dict[str, Any] = {}  # what was recorded last (not written again)
        self.output = DaemonOutput()  # what the program prints, until poke() records it
        self._thread = threading.Thread(target=self._main, daemon=True, name=f"haathi-{name}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.restart.set()
        self._thread.join(STOP_WAIT_S)
        self.save_output()

    def save_output(self) -> None:
        """Record the lines the program printed since the last time."""
        lines = self.output.take()
        if not lines:
            return
        with contextlib.suppress(HaathiError), self.ctx.pfs.db.write() as conn:
            daemon_records.append_logs(conn, self.pid, self.ctx.runner_id, lines)

    def poke(self) -> None:
        """Called by the supervisor's thread each tick: renew the lease when due, and say
        RUNNING again once a crashing program has run :data:`CRASH_WINDOW_S`."""
        if time.monotonic() - self._renewed > self.ctx.job_lease_s / 4:
            if not self.sup.renew(self.pid):
                self.stop()
                return
            self._renewed = time.monotonic()
        if self.crashing and self.exits and time.monotonic() - self.exits[-1] > CRASH_WINDOW_S:
            self.crashing = False
            self.record(state=RUNNING, reason=None)
        self.save_output()

    def record(self, **values: Any) -> None:
        """Record how it goes (what changed) in its row."""
        if values.items() <= self._said.items():
            return
        with contextlib.suppress(HaathiError), self.ctx.pfs.db.write() as conn:
            daemon_records.record(conn, self.pid, self.ctx.runner_id, **values)
            self._said |= values

    # the thread ---------------------------------------------------------------------------
    def _main(self) -> None:
        while not self.stopping.is_set():
            scratch = Path(tempfile.mkdtemp(prefix="daemon-", dir=self._scratch_root()))
            try:
                self._session(scratch)
            except Exception as exc:  # it cannot start: say why, and try again
                self._exited(_cannot_start(exc), crashing=True)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def _scratch_root(self) -> Path:
        root = self.ctx.scratch_dir
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _session(self, scratch: Path) -> None:
        raise NotImplementedError

    def _open(self, scratch: Path) -> tuple[Isolation, JobSecrets, Sandbox]:
        """The program's isolation (as a job's), secrets and sandbox."""
        isolation = isolation_for(self.ctx, self.spec)
        values = pipeline_secrets.for_job(self.ctx, self.spec.transform.secrets, isolation)
        mounts = secret_files(scratch, values)
        if isolation.container is not None:
            return isolation, values, open_container(isolation.container, scratch, mounts)
        view = isolation.view.with_programs(self.spec.transform.cmd[:1], self._path())
        if self.spec.spout is not None:  # (its program may run haathi)
            view = dataclasses.replace(view, show=(*view.show, str(HAATHI_PACKAGE)))
        return isolation, values, open_sandbox(isolation.sandbox, scratch, view, mounts)

    def _path(self) -> str:
        """``PATH`` on the host: the transform's, else the worker's; a spout's starts with the
        directory of the worker's own ``haathi`` and ``python3`` (whatever the worker's
        ``PATH``: a venv's, say, need not be on it), so that ``haathi put file`` and
        ``import haathi`` in its program are the worker's haathi."""
        path = transform_path(self.spec.transform)
        if self.spec.spout is None:
            return path
        return os.pathsep.join([sysconfig.get_path("scripts"), path or os.defpath])

    def _env(self, isolation: Isolation, values: JobSecrets) -> dict[str, str]:
        """Everything but the datum's variables: the host's or the image's, the secrets',
        the transform's and Pachyderm's."""
        project, name = split_key(self.name)
        base = isolation.container.env() if isolation.container is not None else host_env()
        env = base | dict(values.env) | dict(self.spec.transform.env)
        if isolation.container is None and self.spec.spout is not None:
            env["PATH"] = self._path()  # (a service's is the transform's, as a job's)
        env |= {"PPS_PIPELINE_NAME": name, "PPS_PROJECT_NAME": project, "PACH_PIPELINE_NAME": name}
        return env

    def _working_dir(self, box: Sandbox) -> str:
        """``working_dir``, else the sandbox's private ``/tmp``."""
        if self.spec.transform.working_dir:
            return self.spec.transform.working_dir
        return "/tmp" if box.launch is not None else str(box.scratch / "tmp")

    @contextlib.contextmanager
    def _published(self, box: Sandbox) -> Iterator[PortRelay | None]:
        """The spec's port, published on the host's loopback while the program runs."""
        service = self.spec.published
        if service is None:
            yield None
            return
        inside = box.publish(service.internal_port)
        if inside is None and service.external_port in (0, service.internal_port):
            # no sandbox: the program listens on the host's loopback itself, on that port
            self.record(port=service.internal_port)
            yield None
            return
        if inside is None:
            port = service.internal_port

            def connect() -> socket.socket:
                return socket.create_connection(("127.0.0.1", port))
        else:
            socket_path = inside

            def connect() -> socket.socket:
                return connect_published(socket_path)

        relay = PortRelay(service.external_port, connect, f"haathi-port-{self.name}")
        try:
            self.record(port=relay.port)
            yield relay
        finally:
            relay.close()
            self.record(port=None)

    def _run(self, box: Sandbox, env: dict[str, str], values: JobSecrets) -> RunResult | None:
        """Run the program until it exits (its result) or :attr:`restart` is set (None)."""
        tf = self.spec.transform
        if self.crashing:  # (the reason stays: why it keeps exiting)
            self.record(state=CRASHING, restarts=self.restarts)
        else:
            self.record(state=RUNNING, reason=None, restarts=self.restarts)
        self.output.start_run(self.restarts + 1, values.redact)
        res = box.run(
            tf.cmd, stdin="\n".join(tf.stdin) + "\n" if tf.stdin else None, env=env,
            working_dir=self._working_dir(box), cancel=self.restart, sink=self.output.feed,
        )  # fmt: skip
        self.output.end_run()
        if res.cancelled:
            return None
        return dataclasses.replace(res, output=values.redact(res.output))

    def _exited(self, why: str, *, crashing: bool = False) -> None:
        """The program exited (or could not start) for ``why``: record it, and wait before
        it starts again (at once when :attr:`restart` is set meanwhile)."""
        t = time.monotonic()
        self.exits = [e for e in self.exits if t - e < CRASH_WINDOW_S] + [t]
        self.restarts += 1
        self.crashing = crashing or len(self.exits) >= CRASH_EXITS
        delay = min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** (len(self.exits) - 1))
        reason = f"{why}; starting again in {delay:g} s"
        self.output.end_run(reason)
        self.record(
            state=CRASHING if self.crashing else STARTING, reason=reason, restarts=self.restarts
        )
        self.restart.clear()
        if not self.stopping.is_set():
            self.restart.wait(delay)


def _cannot_start(exc: Exception) -> str:
    """Why a program could not start, in one line."""
    if isinstance(exc, PortInUse):
        return str(exc.strerror)
    if isinstance(exc, HaathiError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot start: {exc.strerror or exc}"
    return f"haathi failed to start it: {type(exc).__name__}: {exc}"  # (a bug of haathi's)


def _exit_reason(res: RunResult) -> str:
    """``exit code N``, or how else it ended, and its last line of output."""
    code = res.returncode
    how = "the sandbox failed" if code is None else f"exited with code {code}"
    lines = [ln.strip() for ln in res.output.decode(errors="replace").splitlines() if ln.strip()]
    return f"{how}: {lines[-1][:300]}" if lines else how


class _Spout(_Daemon):
    def _session(self, scratch: Path) -> None:
        if self.sup.apis is None:
            raise FailedPrecondition(NO_API)
        isolation, values, box = self._open(scratch)
        with box, self._api(box) as api_env, self._published(box):
            env = self._env(isolation, values) | api_env
            while not self.stopping.is_set():
                res = self._run(box, env, values)
                if res is None:
                    continue
                if not self.stopping.is_set():
                    self._exited(_exit_reason(res))

    @contextlib.contextmanager
    def _api(self, box: Sandbox) -> Iterator[dict[str, str]]:
        """The spout's API, served to its program: the variables that lead to it."""
        assert self.sup.apis is not None
        token = secrets.token_hex(32)
        if box.launch is not None:
            path = box.scratch / SOCKET_DIR / SPOUT_API_SOCKET
            listener = listen_unix(path, backlog=64)
            try:
                port = box.relay(path)
            except OSError:
                listener.close()
                raise
        else:
            listener = socket.create_server(("127.0.0.1", 0), backlog=64)
            port = int(listener.getsockname()[1])
        try:
            served = self.sup.apis.open(listener, SpoutScope(self.name, token))
        except BaseException:
            listener.close()
            raise
        try:
            yield {
                "HAATHI_ADDRESS": f"http://127.0.0.1:{port}",
                "HAATHI_TOKEN": token,
                "HAATHI_PROJECT": split_key(self.name)[0],
            }
        finally:
            served.close()


class _Service(_Daemon):
    serving = False  # its server runs, or it waits for a first input commit

    def poke(self) -> None:
        super().poke()
        if self.serving and service_jobs.ready(self.ctx, self.name):
            self.restart.set()  # a new input commit: serve its datum (now, not after a backoff)

    def _session(self, scratch: Path) -> None:
        isolation, values, box = self._open(scratch)
        served = service_jobs.last(self.ctx, self.name)  # until a new input commit comes
        with box, self._published(box):
            while not self.stopping.is_set():
                self.restart.clear()
                served = service_jobs.take(self.ctx, self.name, isolation) or served
                if served is None:
                    self.record(state=STARTING, reason="waiting for a commit to its input")
                    self.restart.wait(POLL_S)
                    continue
                env = self._env(isolation, values) | self._datum(box, served, isolation)
                self.record(job_commit=served.job.commit_id)
                self.serving = True
                try:
                    res = self._run(box, env, values)
                finally:
                    self.serving = False
                if res is not None and not self.stopping.is_set():
                    self._exited(_exit_reason(res))

    def _datum(
        self, box: Sandbox, served: service_jobs.Served, isolation: Isolation
    ) -> dict[str, str]:
        """Put the datum's files in ``/pfs``; its variables (Pachyderm's)."""
        datum = served.datum
        inputs = box.new_datum([i.name for i in datum.inputs])
        InputReads(self.ctx.pfs, [datum]).materialize(inputs, datum)
        task = DatumSetTask(
            store=lambda: self.ctx.pfs, store_key=self.ctx.store_key, pipeline=self.name,
            job_id=served.job.commit_id, transform=self.spec.transform, datum_tries=1,
            datum_timeout=None, sandbox=isolation.sandbox, scratch_root=None, datums=(datum,),
        )  # fmt: skip
        return datum_env(task, datum, box.pfs)
