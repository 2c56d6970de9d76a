"""Pipelines whose spec names ``transform.image`` run in a container of that image.

Everything here is real: the images are built on this machine (``tests/images.py``), the
runtimes are bubblewrap over the unpacked root filesystem (``bwrap``) and ``podman``, the
jobs are started through the public Client and the CLI, and a runtime that dies is killed
from outside. Each module gets its own image unpack cache (``$HAATHI_IMAGE_CACHE``).

What user code sees in a container, as observed here (haathi runs as root on this machine):

- ``/`` is the image's root: its ``/etc/passwd``, none of the host's files (the host's
  ``/etc/hostname``, ``/root`` and ``/tmp`` are not there), read-only.
- ``/pfs/<input>`` read-only, ``/pfs/out`` writable, ``/tmp`` writable and the datum set's own
  (it lasts from datum to datum within a set; the next job starts with an empty one), ``/dev``
  and ``/proc`` fresh, the datum's ``transform.stdin`` on its stdin.
- The image's ``Env`` and ``WorkingDir`` apply; ``transform.env`` and ``working_dir``
  override them. ``user: worker`` is uid 1000 in both runtimes. The image's own user (root)
  is uid 0 under podman but 65534 (``nobody``) under bwrap, which never runs user code as the
  host's root; ``user: root`` is 65534 under bwrap too.
- The image's ENTRYPOINT (``/bin/false`` in the busybox image) is ignored.
- No network (a TCP connect to a port this test listens on is refused), unless the store's
  operator allows it (``allow_network``, ``HAATHI_ALLOW_NETWORK=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.models.info import JobInfo
from loopback.servers import haathi_serve
from tests.conftest import Cli
from tests.dask_cluster import DaskCluster
from tests.images import PODMAN, BusyboxImage, Image

pytestmark = pytest.mark.slow  # container images under podman and bwrap

RUNTIMES = pytest.mark.parametrize("runtime", ["bwrap", "podman"])
BUSYBOX = "localhost/haathi-test/busybox:1"
OWN = "localhost/haathi-test/imgruntime:1"  # this module's own image (see own_image)
COPY = {"cmd": ["sh", "-c", 'cp "$data" /pfs/out/']}


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private unpack cache for this module; no runtime or network chosen by the caller's
    environment."""
    cache = tmp_path_factory.mktemp("image-cache")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HAATHI_IMAGE_CACHE", str(cache))
        for name in ("HAATHI_RUNTIME", "HAATHI_ALLOW_NETWORK", "HAATHI_EXECUTOR"):
            env.delenv(name, raising=False)
        yield cache


def new_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    path = tmp_path_factory.mktemp(name) / "store"
    haathi.init(str(path)).close()
    return path


def spec(name: str, image: str, transform: dict[str, Any] | None = None,
         **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A pipeline over repo ``data`` (one datum per file) in ``image``."""
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"image": image, **(transform or COPY)},
        **extra,
    }


def newest_job(c: Client, pipeline: str) -> JobInfo:
    return c.list_job(pipeline)[0]


def succeeded(c: Client, pipeline: str) -> JobInfo:
    """The pipeline's newest job, which must have succeeded."""
    job = newest_job(c, pipeline)
    assert job.state.value == "SUCCESS", (job.reason, c.logs(pipeline)[1])
    return job


def files(c: Client, ref: str) -> dict[str, bytes]:
    """Every file at the root of ``repo@ref``, with its content."""
    return {f.path: c.get_file(f"{ref}:{f.path}") for f in c.list_file(f"{ref}:/")}


def head(c: Client, branch: str) -> str:
    found = c.inspect_branch(branch).head
    assert found is not None
    return found


def write_spec(where: Path, doc: dict[str, Any]) -> str:
    path = where / f"{doc['pipeline']['name']}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def skopeo_digest(source: str) -> str:
    out = subprocess.run(["skopeo", "inspect", source], capture_output=True, check=True)
    return str(json.loads(out.stdout)["Digest"])


@dataclass(frozen=True)
class OwnImage:
    """The busybox image with a config of its own (so another image ID), in podman storage
    as :data:`OWN` and exported as an oci-archive and a docker-archive.

    Tests that make podman pull an archive use this image, never the shared busybox one: a
    pull changes what podman's storage says of an image it already has (see
    ``test_podman_runs_an_archive_without_changing_what_a_name_means``), and other test
    modules rely on the busybox image's digest.
    """

    name: str
    digest: str  # of OWN in podman storage
    image_id: str
    oci_archive: Path
    docker_archive: Path


@pytest.fixture(scope="module")
def own_image(busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[OwnImage]:  # fmt: skip
    work = tmp_path_factory.mktemp("own-image")
    layout = work / "layout"
    shutil.copytree(busybox_image.oci_dir, layout)
    steps = [
        ["umoci", "config", "--image", f"{layout}:1", "--tag", "own", "--no-history",
         "--config.label", "haathi.test=test_images_runtime"],
        ["skopeo", "copy", "--quiet", f"oci:{layout}:own", f"containers-storage:{OWN}"],
        ["skopeo", "copy", "--quiet", f"oci:{layout}:own", f"oci-archive:{work}/own.oci.tar:1"],
        ["skopeo", "copy", "--quiet", f"oci:{layout}:own", f"docker-archive:{work}/own.docker.tar"],
    ]  # fmt: skip
    for argv in steps:
        subprocess.run(argv, capture_output=True, check=True, timeout=120)
    config = subprocess.run(
        ["skopeo", "inspect", "--config", "--raw", f"oci:{layout}:own"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    yield OwnImage(OWN, skopeo_digest(f"containers-storage:{OWN}"), image_id,
                   work / "own.oci.tar", work / "own.docker.tar")  # fmt: skip
    subprocess.run([*PODMAN, "rmi", "--force", image_id.removeprefix("sha256:")],
                   capture_output=True, timeout=120)  # fmt: skip


class Listener:
    """A TCP server on a loopback port of this host that greets and counts whoever
    connects."""

    GREETING = b"hello from the host\n"

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(self.GREETING)

    def close(self) -> None:
        self.sock.close()


# ---- 1. what a container gives user code ---------------------------------------------------

HOST_MARKER = f"/tmp/haathi-imgruntime-{uuid.uuid4().hex}"  # a host file the code must not see

PROBE = [  # transform.stdin of the probe pipeline: sh reads it, so stdin is piped
    'd=/pfs/out/$(basename "$data"); mkdir "$d"',
    'cat /etc/passwd > "$d/passwd"',
    'cat /etc/hostname > "$d/etc-hostname" 2>&1',
    'ls -a /root > "$d/root" 2>&1',
    f'ls {HOST_MARKER} > "$d/host-tmp" 2>&1',
    'echo changed 2> "$d/write-input" > "$data" || echo "exit $?" >> "$d/write-input"',
    'echo new 2> "$d/write-root" > /new-file || echo "exit $?" >> "$d/write-root"',
    'echo "$data" > "/tmp/seen-$(basename "$data")"; ls /tmp > "$d/tmp"',
    'ls /dev > "$d/dev"; ls /proc > "$d/proc"',
    'id -u > "$d/uid"; pwd > "$d/pwd"',
    'echo "$IMAGE_VAR|$SPEC_VAR|$PATH" > "$d/env"',
]


@dataclass
class Probed:
    """The probe's outputs (per pipeline, per datum, per check) in one store."""

    runtime: str
    client: Client
    out: dict[str, dict[str, dict[str, str]]]

    def check(self, pipeline: str, check: str) -> dict[str, str]:
        """``{datum: output}`` of one check."""
        return {datum: checks[check] for datum, checks in self.out[pipeline].items()}


def probe_outputs(c: Client, pipeline: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for d in c.list_file(f"{pipeline}@master:/"):
        out[d.path.strip("/")] = {
            f.path.rsplit("/", 1)[1]: c.get_file(f"{pipeline}@master:{f.path}").decode()
            for f in c.list_file(f"{pipeline}@master:{d.path}")
        }
    return out


@pytest.fixture(scope="module", params=["bwrap", "podman"])
def probed(request: pytest.FixtureRequest, busybox_image: BusyboxImage,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probed]:  # fmt: skip
    """Three pipelines run the probe in the busybox image over two files (one datum set):
    ``image`` with the image's settings, ``spec`` overriding env, working directory and user
    (``worker``), ``root`` asking for user root. Then a file is added (a second job)."""
    runtime = request.param
    Path(HOST_MARKER).write_text("the host's /tmp\n")
    c = haathi.connect(str(new_store(tmp_path_factory, f"probe-{runtime}")), runtime=runtime)
    c.create_repo("data")
    with c.start_commit("data@master") as commit:
        commit.put_file("/a", b"A\n")
        commit.put_file("/b", b"B\n")
    probe = {"cmd": ["sh"], "stdin": PROBE}
    c.create_pipeline(spec("image", BUSYBOX, probe))
    c.create_pipeline(spec("spec", BUSYBOX, {
        **probe, "env": {"IMAGE_VAR": "from-spec", "SPEC_VAR": "set"},
        "working_dir": "/home/worker", "user": "worker",
    }))  # fmt: skip
    c.create_pipeline(spec("root", BUSYBOX, {**probe, "user": "root"}))
    first = {p: probe_outputs(c, p) for p in ("image", "spec", "root")}
    c.put_file("data@master:/c", b"C\n")
    first["image+c"] = probe_outputs(c, "image")
    for p in ("image", "spec", "root"):
        job = newest_job(c, p)
        assert job.state.value == "SUCCESS", (p, job.reason, c.logs(p)[1])
    yield Probed(runtime, c, first)
    c.close()
    Path(HOST_MARKER).unlink()


def test_the_root_is_the_images_and_the_hosts_files_are_not_there(probed: Probed) -> None:
    passwd = probed.check("image", "passwd")
    assert set(passwd.values()) == {
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "worker:x:1000:1000:worker:/home/worker:/bin/sh\n"
    }
    host_hostname = Path("/etc/hostname").read_text() if Path("/etc/hostname").exists() else ""
    for text in probed.check("image", "etc-hostname").values():
        # bwrap: the image has no /etc/hostname; podman writes its own (the container's name)
        assert text in ("cat: can't open '/etc/hostname': No such file or directory\n",
                        "haathi") and text != host_hostname  # fmt: skip
    for text in probed.check("image", "root").values():
        # the image's /root is empty and root's own: bwrap runs the image's root as nobody
        assert text in (".\n..\n", "ls: can't open '/root': Permission denied\n")
    for text in probed.check("image", "host-tmp").values():
        assert text == f"ls: {HOST_MARKER}: No such file or directory\n"
    for text in probed.check("image", "write-root").values():
        assert text == "sh: can't create /new-file: Read-only file system\nexit 1\n"


def test_inputs_are_read_only_and_outputs_writable(probed: Probed) -> None:
    for text in probed.check("image", "write-input").values():
        assert re.fullmatch(r"sh: can't create /pfs/data/\w: Read-only file system\nexit 1\n",
                            text)  # fmt: skip
    assert probed.client.get_file("data@master:/a") == b"A\n"
    # everything the probe wrote to /pfs/out is in the output commit
    assert sorted(probed.out["image"]) == ["a", "b"]


def test_tmp_is_writable_and_the_datum_sets_own(probed: Probed) -> None:
    # a and b ran in one datum set, one after the other: the second saw the first's file
    listings = sorted(probed.check("image", "tmp").values(), key=len)
    assert listings == ["seen-a\n", "seen-a\nseen-b\n"] or listings == [
        "seen-b\n",
        "seen-a\nseen-b\n",
    ]
    # the next job (only c is new) starts with an empty /tmp
    assert probed.out["image+c"]["c"]["tmp"] == "seen-c\n"


def test_dev_and_proc_are_there(probed: Probed) -> None:
    for text in probed.check("image", "dev").values():
        assert {"null", "zero", "urandom", "fd"} <= set(text.split())
    for text in probed.check("image", "proc").values():
        assert {"self", "1", "mounts"} <= set(text.split())


def test_the_images_env_and_workdir_apply_and_the_spec_overrides_them(probed: Probed) -> None:
    assert set(probed.check("image", "env").values()) == {"from-image||/bin\n"}
    assert set(probed.check("image", "pwd").values()) == {"/work\n"}
    assert set(probed.check("spec", "env").values()) == {"from-spec|set|/bin\n"}
    assert set(probed.check("spec", "pwd").values()) == {"/home/worker\n"}


def test_users(probed: Probed) -> None:
    """``user: worker`` is its uid; the image's root is root under podman and ``nobody``
    under bwrap (which never runs user code as the host's root), whether asked for or not."""
    as_root = {"bwrap": "65534\n", "podman": "0\n"}[probed.runtime]
    assert set(probed.check("image", "uid").values()) == {as_root}
    assert set(probed.check("root", "uid").values()) == {as_root}
    assert set(probed.check("spec", "uid").values()) == {"1000\n"}


def test_the_images_entrypoint_is_ignored(probed: Probed) -> None:
    # ENTRYPOINT ["/bin/false"] would make every datum fail: they all succeeded and wrote
    for pipeline in ("image", "spec", "root"):
        assert sorted(probed.out[pipeline]) == ["a", "b"]


NC = (
    'busybox nc -w 5 127.0.0.1 "$PORT" < /dev/null > /pfs/out/reply 2>&1;'
    ' echo "exit $?" >> /pfs/out/reply'
)


@RUNTIMES
def test_no_network_unless_the_store_allows_it(
    runtime: str, busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    listener = Listener()
    store = new_store(tmp_path_factory, "net")
    connect = {"cmd": ["sh", "-c", NC], "env": {"PORT": str(listener.port)}}
    try:
        with haathi.connect(str(store), runtime=runtime) as c:
            c.create_repo("data")
            c.put_file("data@master:/x", b"x")
            c.create_pipeline(spec("offline", BUSYBOX, connect))
            succeeded(c, "offline")
            reply = c.get_file("offline@master:/reply").decode()
            assert reply == ("nc: can't connect to remote host (127.0.0.1): Connection refused\n"
                             "exit 1\n")  # fmt: skip
            assert listener.connections == 0
        # the operator allows it for the store (here for one connection; or
        # HAATHI_ALLOW_NETWORK=1, or [pipelines] allow_network = true)
        with haathi.connect(str(store), runtime=runtime, allow_network=True) as c:
            c.create_pipeline(spec("online", BUSYBOX, connect))
            assert c.get_file("online@master:/reply") == Listener.GREETING + b"exit 0\n"
            assert listener.connections == 1
    finally:
        listener.close()


# ---- 2. every image source -----------------------------------------------------------------

# Echoes the datum and the image's IMAGE_VAR: the same output from every source of the image.
ECHO = {"cmd": ["sh", "-c", 'echo "$(cat "$data") in $IMAGE_VAR" > "/pfs/out/$(basename "$data")"']}
ECHOED = {"/a": b"A in from-image\n", "/b": b"B in from-image\n"}


def with_data(c: Client) -> Client:
    c.create_repo("data")
    with c.start_commit("data@master") as commit:
        commit.put_file("/a", b"A")
        commit.put_file("/b", b"B")
    return c


def oci_manifest_digest(layout: Path, tag: str = "1") -> str:
    index = json.loads((layout / "index.json").read_text())
    [entry] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    return str(entry["digest"])


def test_bwrap_runs_the_image_from_every_source(
    busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sources = {
        "storage": BUSYBOX,  # podman's storage, by name
        "oci": f"oci:{busybox_image.oci_dir}:1",
        "oci_archive": f"oci-archive:{busybox_image.oci_archive}:1",
        "docker_archive": f"docker-archive:{busybox_image.docker_archive}",
    }
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "sources")),
                                  runtime="bwrap")) as c:  # fmt: skip
        for name, ref in sources.items():
            c.create_pipeline(spec(name, ref, ECHO))
            assert files(c, f"{name}@master") == ECHOED, name
        ran = {name: succeeded(c, name).context for name in sources}
    assert {name: ctx["image"] for name, ctx in ran.items()} == sources
    # one image (one config), whose manifest each source spells its own way
    assert {ctx["image_id"] for ctx in ran.values()} == {busybox_image.config_digest}
    oci = oci_manifest_digest(busybox_image.oci_dir)
    assert ran["storage"]["image_digest"] == busybox_image.digest
    assert ran["oci"]["image_digest"] == ran["oci_archive"]["image_digest"] == oci
    assert ran["docker_archive"]["image_digest"] not in (oci, busybox_image.digest)


def test_podman_runs_an_image_by_name_and_from_an_archive(
    own_image: OwnImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    archive = f"docker-archive:{own_image.docker_archive}"
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "podman-sources")),
                                  runtime="podman")) as c:  # fmt: skip
        c.create_pipeline(spec("storage", own_image.name, ECHO))
        c.create_pipeline(spec("archive", archive, ECHO))
        assert files(c, "storage@master") == files(c, "archive@master") == ECHOED
        by_name, from_archive = succeeded(c, "storage").context, succeeded(c, "archive").context
    assert by_name["image_id"] == from_archive["image_id"] == own_image.image_id
    assert (by_name["image"], from_archive["image"]) == (own_image.name, archive)


def test_podman_runs_an_archive_without_changing_what_a_name_means(
    own_image: OwnImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A job of an archive must not change podman's storage for other pipelines: the image's
    name still means the digest it meant, so their provenance does not change."""
    subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{own_image.oci_archive}:1",
                    f"containers-storage:{OWN}"], capture_output=True, check=True)  # fmt: skip
    assert skopeo_digest(f"containers-storage:{OWN}") == own_image.digest
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "podman-pull")),
                                  runtime="podman")) as c:  # fmt: skip
        c.create_pipeline(spec("storage", OWN, ECHO))
        assert succeeded(c, "storage").context["image_digest"] == own_image.digest
        c.create_pipeline(spec("archive", f"docker-archive:{own_image.docker_archive}", ECHO))
        succeeded(c, "archive")
        c.put_file("data@master:/c", b"C")  # the next job of the pipeline that names it
        assert succeeded(c, "storage").context["image_digest"] == own_image.digest
    assert skopeo_digest(f"containers-storage:{OWN}") == own_image.digest


def test_bwrap_runs_a_docker_archive_whatever_its_config_json_looks_like(
    own_image: OwnImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """This image's config was written by umoci (it ends in a newline), not by skopeo: the
    docker-archive holds it as it is, and converting the archive to an OCI layout to unpack
    it rewrites it (the same config, other bytes)."""
    archive = f"docker-archive:{own_image.docker_archive}"
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "docker-archive")),
                                  runtime="bwrap")) as c:  # fmt: skip
        c.create_pipeline(spec("archive", archive, ECHO))
        assert succeeded(c, "archive").context["image_id"] == own_image.image_id
        assert files(c, "archive@master") == ECHOED


def test_a_store_at_a_long_path_runs_podman_pipelines(
    busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The store's directory may be as long as a user likes (the launcher's socket lives in
    the datum set's scratch directory under it)."""
    deep = tmp_path_factory.mktemp("long") / ("a-store-in-a-directory-with-a-long-name" * 2)
    haathi.init(str(deep)).close()
    with with_data(haathi.connect(str(deep), runtime="podman")) as c:
        c.create_pipeline(spec("echo", BUSYBOX, ECHO))
        succeeded(c, "echo")
        assert files(c, "echo@master") == ECHOED


# ---- 3. the image is provenance ------------------------------------------------------------


def cache_state(cache: Path) -> dict[str, int]:
    """Every entry of the unpack cache down to an image's root directory, with its mtime."""
    found = {}
    for path in [cache, *cache.glob("*"), *cache.glob("*/*"), *cache.glob("*/rootfs/*")]:
        found[str(path.relative_to(cache))] = path.lstat().st_mtime_ns
    return found


def test_a_job_records_its_runtime_and_image_and_a_second_job_unpacks_nothing(
    busybox_image: BusyboxImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"  # this test's own: the first job unpacks the image
    monkeypatch.setenv("HAATHI_IMAGE_CACHE", str(cache))
    cli = Cli(tmp_path / "store", tmp_path)
    cli("init")
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/a", "-f", "-", input=b"A")
    made = cli("create", "pipeline", "-f", write_spec(tmp_path, spec("echo", BUSYBOX, ECHO)))
    # runtime auto (the default) says what it chose, on the job's end line
    assert re.search(
        r"SUCCESS .* sandbox bwrap container of localhost/haathi-test/busybox:1 "
        r"\(sha256:[0-9a-f]{12}\); auto chose bwrap",
        made.err,
    ), made.err
    [job] = cli("list", "job", "-p", "echo", "-o", "json").json()
    text = cli("inspect", "job", f"echo@{job['id']}").out
    assert "Executor: local (runtime bwrap: auto chose bwrap)\n" in text
    assert (f"Image: {BUSYBOX} {busybox_image.digest} "
            f"(image ID {busybox_image.config_digest})\n") in text  # fmt: skip
    context = cli("inspect", "job", f"echo@{job['id']}", "-o", "json").json()["context"]
    recorded = ("runtime", "image", "image_digest", "image_id", "sandbox_note")
    assert {k: context[k] for k in recorded} == {
        "runtime": "bwrap", "image": BUSYBOX, "image_digest": busybox_image.digest,
        "image_id": busybox_image.config_digest, "sandbox_note": "auto chose bwrap",
    }  # fmt: skip
    unpacked = cache_state(cache)
    assert f"{busybox_image.digest.removeprefix('sha256:')}/rootfs/bin" in unpacked

    cli("--runtime", "bwrap", "put", "file", "data@master:/b", "-f", "-", input=b"B")
    second = cli("list", "job", "-p", "echo", "-o", "json").json()[0]
    assert second["state"] == "SUCCESS" and second["id"] != job["id"]
    assert second["context"]["image_digest"] == busybox_image.digest
    assert cache_state(cache) == unpacked  # nothing unpacked, nothing touched


# ---- 4. bad input --------------------------------------------------------------------------


@dataclass
class Before:
    """What a failed job must leave as it was: the input branch and the list of repos."""

    data: str
    repos: list[str]

    @classmethod
    def of(cls, c: Client) -> Before:
        return cls(head(c, "data@master"), sorted(r.name for r in c.list_repo()))


def failed_cleanly(c: Client, pipeline: str, before: Before) -> JobInfo:
    """The pipeline's newest job failed, wrote nothing and changed nothing else."""
    job = newest_job(c, pipeline)
    assert job.state.value == "FAILURE", job.reason
    assert files(c, job.output_commit) == {}
    assert head(c, "data@master") == before.data
    assert sorted(r.name for r in c.list_repo()) == sorted({*before.repos, pipeline})
    return job


def fixed(c: Client, pipeline: str, expected: dict[str, bytes] | None = None) -> None:
    """Once its cause is fixed, the next job (a new input file) succeeds with every datum."""
    c.put_file("data@master:/c", b"C")
    job = succeeded(c, pipeline)
    assert (job.data_processed + job.data_skipped, job.data_failed) == (3, 0)
    assert files(c, f"{pipeline}@master") == (expected or {**ECHOED, "/c": b"C in from-image\n"})


def test_an_unknown_image_is_named_up_front_and_fails_the_job(
    busybox_image: BusyboxImage, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "store", tmp_path)
    cli("init")
    with with_data(haathi.connect(str(cli.store))) as c:
        before = Before.of(c)
    path = write_spec(tmp_path, spec("ghost", "localhost/haathi-test/no-such-image:1", ECHO))
    warning = ("note: its jobs will fail until this is fixed: image "
               "'localhost/haathi-test/no-such-image:1' not found (")  # fmt: skip
    checked = cli("validate", "pipeline", "-f", path)
    assert checked.out == "pipeline ghost: valid\n" and checked.err.startswith(warning)
    made = cli("create", "pipeline", "-f", path)
    assert made.err.startswith(warning) and "job ghost@" in made.err and "FAILURE" in made.err
    with haathi.connect(str(cli.store)) as c:
        job = failed_cleanly(c, "ghost", before)
        assert job.reason is not None and job.reason.startswith(
            "job failed: image 'localhost/haathi-test/no-such-image:1' not found ("
        )
        c.create_pipeline(spec("ghost", BUSYBOX, ECHO), update=True)
        fixed(c, "ghost")


@RUNTIMES
def test_an_image_without_the_command_exits_127_and_says_so(
    runtime: str, python_image: Image, tmp_path_factory: pytest.TempPathFactory
) -> None:
    python = {"cmd": ["python3", "-c", SAY_PY]}
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "no-command")),
                                  runtime=runtime)) as c:  # fmt: skip
        before = Before.of(c)
        c.create_pipeline(spec("py", BUSYBOX, python, datum_tries=1))
        job = failed_cleanly(c, "py", before)
        assert job.data_failed == 2
        for datum in c.list_datum(f"py@{job.id}"):
            assert datum.exit_code == 127
        assert [log for _, log in c.logs("py")[1]] == [
            "haathi: command not found: python3\nhaathi: attempt 1 of 1 failed: exit code 127\n"
        ] * 2
        c.create_pipeline(spec("py", python_image.name, python), update=True)  # has python3
        fixed(c, "py", {"/a": b"A in python\n", "/b": b"B in python\n", "/c": b"C in python\n"})


SAY_PY = (
    "import os, pathlib; src = pathlib.Path(os.environ['data']);"
    " pathlib.Path('/pfs/out', src.name).write_text(src.read_text() + ' in python\\n')"
)


def test_no_runtime_installed_fails_the_job_saying_what_to_install(
    busybox_image: BusyboxImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(tmp_path / "store", tmp_path, process=True)  # probes PATH afresh
    cli("init")
    with with_data(haathi.connect(str(cli.store))) as c:
        before = Before.of(c)
    path = write_spec(tmp_path, spec("echo", BUSYBOX, ECHO))
    why = ("no container runtime can run the pipeline's image here (bwrap: bwrap is not on PATH "
           "(install the bubblewrap package); podman: podman is not on PATH (install the podman "
           "package); docker: docker is not on PATH (install the docker package)): install "
           "bubblewrap, skopeo and umoci, or podman")  # fmt: skip
    nothing = tmp_path / "bin"  # no bwrap, skopeo, umoci, podman or docker
    nothing.mkdir()
    with monkeypatch.context() as env:
        env.setenv("PATH", str(nothing))
        checked = cli("validate", "pipeline", "-f", path)
        assert checked.err == f"note: its jobs will fail until this is fixed: {why}\n"
        made = cli("create", "pipeline", "-f", path)
        assert made.err.startswith(f"note: its jobs will fail until this is fixed: {why}\n")
    with haathi.connect(str(cli.store)) as c:
        job = failed_cleanly(c, "echo", before)
        assert job.reason == f"job failed: {why}"
        fixed(c, "echo")  # here, with the runtimes on PATH


ARCHIVES = pytest.mark.parametrize("kind", ["oci-archive", "docker-archive"])


@RUNTIMES
@ARCHIVES
def test_a_corrupt_image_archive_fails_the_job_naming_the_archive(
    runtime: str,
    kind: str,
    busybox_image: BusyboxImage,
    own_image: OwnImage,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # (podman pulls the mended archive into its storage: this module's own image, not the
    # shared busybox one; bwrap only reads it)
    image = busybox_image if runtime == "bwrap" else own_image
    intact = image.oci_archive if kind == "oci-archive" else image.docker_archive
    archive = tmp_path / intact.name
    archive.write_bytes(intact.read_bytes()[: intact.stat().st_size // 2])  # cut short
    ref = f"{kind}:{archive}" + (":1" if kind == "oci-archive" else "")
    store = new_store(tmp_path_factory, "corrupt")
    with with_data(haathi.connect(str(store), runtime=runtime)) as c:
        before = Before.of(c)
        notes = c.validate_pipeline(spec("echo", ref, ECHO))[0]["notes"]
        c.create_pipeline(spec("echo", ref, ECHO))
        job = failed_cleanly(c, "echo", before)
        assert job.reason is not None
        assert job.reason.startswith(f"job failed: cannot read image {ref}: ")
        assert job.reason.endswith("unexpected EOF")
        assert any(ref in note and "unexpected EOF" in note for note in notes), notes
        shutil.copyfile(intact, archive)  # the archive, whole
        fixed(c, "echo")


@RUNTIMES
def test_a_user_the_image_lacks(
    runtime: str, busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """bwrap checks the user before any datum runs and fails the job naming it; podman starts
    the container, which fails on every datum, and each datum's log says why."""
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "no-user")),
                                  runtime=runtime)) as c:  # fmt: skip
        before = Before.of(c)
        c.create_pipeline(spec("echo", BUSYBOX, {**ECHO, "user": "alice"}, datum_tries=1))
        job = failed_cleanly(c, "echo", before)
        if runtime == "bwrap":
            assert job.reason == (
                "job failed: user 'alice' does not exist in the image (/etc/passwd)"
            )
            assert job.data_total == 0
        else:
            assert job.data_failed == 2
            for _, log in c.logs("echo")[1]:
                assert log == (
                    "haathi: the podman sandbox stopped unexpectedly (exit status 126); it said:\n"
                    "Error: unable to find user alice: no matching entries in passwd file\n"
                    "haathi: attempt 1 of 1 failed: the sandbox failed\n"
                )
        c.create_pipeline(spec("echo", BUSYBOX, {**ECHO, "user": "worker"}), update=True)
        fixed(c, "echo")


def process_tree(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of ``pid`` and its ancestors."""
    chain = []
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        chain.append((pid, stat.split("(", 1)[1].rsplit(")", 1)[0]))
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain


def wait_for_process(argv: list[str], timeout: float = 60) -> int:
    """The PID of the process running exactly ``argv``, once it runs."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == want:
                    return int(entry)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"{argv} never ran")


def kill_container_of(pid: int, runtime: str) -> None:
    """Kill, from outside, the container the process ``pid`` runs in."""
    tree = process_tree(pid)  # sleep, sh, the launcher (the container's PID 1), ...
    if runtime == "bwrap":
        bwrap = [p for p, name in tree if name == "bwrap"][-1]
        os.kill(bwrap, signal.SIGKILL)
        return
    launcher = tree[2][0]
    listed = subprocess.run(
        [*PODMAN, "ps", "--filter", "name=haathi-", "--format", "{{.Names}} {{.Pid}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    [name] = [ln.split()[0] for ln in listed.splitlines() if ln.split()[1] == str(launcher)]
    subprocess.run([*PODMAN, "kill", name], capture_output=True, check=True)


@RUNTIMES
def test_a_runtime_that_dies_mid_datum_set_fails_that_datum_only(
    runtime: str, busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Datum /a sleeps; its container is killed from outside. That datum fails with a note
    that the sandbox stopped; /b, in the same datum set, runs in a new container; and once /a
    no longer sleeps the next job succeeds."""
    nap = f"10.{uuid.uuid4().int % 10**6:06d}"  # seconds: a sleep this test can find
    sleepy = {"cmd": ["sh", "-c", f'if [ "$(cat "$data")" = sleep ]; then sleep {nap}; fi; '
                                  'cp "$data" /pfs/out/']}  # fmt: skip
    c = haathi.connect(str(new_store(tmp_path_factory, "dies")), runtime=runtime)
    c.create_repo("data")
    with c.start_commit("data@master") as commit:
        commit.put_file("/a", b"sleep")
        commit.put_file("/b", b"B")
    before = Before.of(c)
    job = threading.Thread(target=c.create_pipeline, args=(spec("nap", BUSYBOX, sleepy,
                                                                datum_tries=1),))  # fmt: skip
    job.start()
    try:
        kill_container_of(wait_for_process(["sleep", nap]), runtime)
    finally:
        job.join()
    ran = newest_job(c, "nap")
    assert (ran.state.value, ran.data_processed, ran.data_failed) == ("FAILURE", 1, 1)
    # the killed datum wrote nothing; the output commit has /b and is finished with the error
    assert files(c, ran.output_commit) == {"/b": b"B"}
    assert c.inspect_commit(ran.output_commit).error
    assert head(c, "data@master") == before.data
    [(_, log)] = [entry for entry in c.logs("nap")[1] if entry[1]]
    stopped = {"bwrap": "killed by signal 9", "podman": "exit status 137"}[runtime]
    assert log == (f"haathi: the {runtime} sandbox stopped unexpectedly ({stopped})\n"
                   "haathi: attempt 1 of 1 failed: the sandbox failed\n")  # fmt: skip
    c.put_file("data@master:/a", b"A")
    assert files(c, f"{succeeded(c, 'nap').output_commit}") == {"/a": b"A", "/b": b"B"}
    c.close()


def test_an_unknown_runtime_is_a_one_line_error(cli_here: Cli) -> None:
    for args in (["--runtime", "nope", "list", "repo"], ["--runtime", "", "list", "repo"]):
        res = cli_here.fails(*args)
        assert res.err == f"error: unknown runtime '{args[1]}': use auto, bwrap, podman or docker\n"
    with pytest.raises(haathi.errors.InvalidArgument, match="unknown runtime 'nope'"):
        haathi.connect(str(cli_here.store), runtime="nope")


@pytest.fixture
def cli_here(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "store", tmp_path)
    cli("init")
    cli("create", "repo", "data")
    cli("put", "file", "data@master:/a", "-f", "-", input=b"A")
    return cli


def test_a_gpu_is_noted_up_front_and_its_job_fails_saying_so(
    cli_here: Cli, busybox_image: BusyboxImage, tmp_path: Path
) -> None:
    """haathi gives containers no GPU: the job fails rather than run without the one it needs."""
    gpu = spec("gpu", BUSYBOX, ECHO, resource_limits={"gpu": {"type": "nvidia.com/gpu",
                                                              "number": 1}})  # fmt: skip
    path = write_spec(tmp_path, gpu)
    note = ("note: resource_limits.gpu: haathi gives jobs no GPU, so this pipeline's jobs will "
            "fail (needs a GPU)\n")  # fmt: skip
    assert cli_here("validate", "pipeline", "-f", path).err == note
    with haathi.connect(str(cli_here.store)) as c:
        before = Before.of(c)
    made = cli_here("create", "pipeline", "-f", path)
    assert made.err.startswith(note) and "job gpu@" in made.err and "FAILURE" in made.err
    with haathi.connect(str(cli_here.store)) as c:
        job = failed_cleanly(c, "gpu", before)
        assert job.reason is not None and job.reason.startswith("job failed: needs a GPU: ")
        assert job.reason.endswith("(the spec asks for 1 nvidia.com/gpu)")


LIMITS = (  # cgroup v2, else v1 (this machine: v1)
    "(cat /sys/fs/cgroup/memory.max || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
    " > /pfs/out/memory 2>/dev/null;"
    " (cat /sys/fs/cgroup/cpu.max || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"
    " > /pfs/out/cpu 2>/dev/null"
)


def test_podman_gives_the_container_the_pipelines_memory_and_cpu_limits(
    busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    limited = spec("limited", BUSYBOX, {"cmd": ["sh", "-c", LIMITS]},
                   resource_limits={"memory": "64Mi", "cpu": 0.5},
                   input={"pfs": {"repo": "data", "glob": "/"}})  # fmt: skip
    with with_data(haathi.connect(str(new_store(tmp_path_factory, "limits")),
                                  runtime="podman")) as c:  # fmt: skip
        c.create_pipeline(limited)
        out = files(c, f"{succeeded(c, 'limited').output_commit}")
    assert out["/memory"] in (b"67108864\n",)  # 64 MiB
    assert out["/cpu"] in (b"50000\n", b"50000 100000\n")  # half of each 100 ms period


# ---- 5. Dask: containers on the cluster's workers ------------------------------------------


@pytest.fixture(scope="module")
def dask_address(image_cache: Path) -> Iterator[str]:
    """A scheduler and two workers on loopback; they inherit this module's unpack cache."""
    cluster = DaskCluster(workers=2)
    address = cluster.start()
    try:
        yield address.replace("tcp://", "dask://")
    finally:
        cluster.stop()


def test_image_pipelines_run_in_containers_on_dask_workers(
    dask_address: str, busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = new_store(tmp_path_factory, "dask")
    with haathi.connect(str(store), executor=dask_address, runtime="bwrap") as c:
        c.create_repo("data")
        with c.start_commit("data@master") as commit:
            for i in range(8):
                commit.put_file(f"/f{i}", f"v{i}".encode())
        c.create_pipeline(spec("echo", BUSYBOX, ECHO, parallelism_spec={"constant": 2}))
        job = succeeded(c, "echo")
        assert files(c, "echo@master") == {
            f"/f{i}": f"v{i} in from-image\n".encode() for i in range(8)
        }
        assert (job.data_processed, job.data_failed) == (8, 0)
        assert job.context["executor"] == dask_address
        assert (job.context["runtime"], job.context["image_digest"]) == (
            "bwrap",
            busybox_image.digest,
        )


# ---- 6. through haathi serve ---------------------------------------------------------------


def test_an_image_pipeline_through_haathi_serve(
    busybox_image: BusyboxImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The server runs the jobs, in the runtime its operator chose (here podman); a remote
    Client sees the same outputs and provenance."""
    store = new_store(tmp_path_factory, "served")
    env = dict(os.environ, HAATHI_RUNTIME="podman")
    with haathi_serve(store, "--s3-bind", "none", env=env) as (_proc, url, _s3), \
            haathi.connect(url) as c:  # fmt: skip
        c.create_repo("data")
        with c.start_commit("data@master") as commit:
            commit.put_file("/a", b"A")
            commit.put_file("/b", b"B")
        [job_id] = c.create_pipeline(spec("echo", BUSYBOX, ECHO))
        [job] = c.wait_job(f"echo@{job_id}", timeout=120)
        assert job.state.value == "SUCCESS", job.reason
        assert files(c, "echo@master") == ECHOED
        context = c.inspect_job(f"echo@{job_id}").context
        assert {k: context[k] for k in ("runtime", "image", "image_digest", "image_id")} == {
            "runtime": "podman", "image": BUSYBOX, "image_digest": busybox_image.digest,
            "image_id": busybox_image.config_digest,
        }  # fmt: skip
