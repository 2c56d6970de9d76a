"""Images from a container registry: a real one on loopback, for every image pull policy.

A pipeline's ``transform.image`` may name an image that only a registry has (issue 15). No
public registry is reachable from our machines, so these tests run one: Debian's
``docker-registry`` (the CNCF distribution registry v2) on a free loopback port, plain HTTP,
no auth (:class:`loopback.servers.Registry`; a machine without it fails these tests, it does not
skip them). The busybox test image's OCI export is pushed to it as
``127.0.0.1:PORT/haathi/busybox:1``; each test copies it (or a variant of it: the same image
with one more ``Env`` entry, ``REGISTRY_MARK``, so it is another image with its own digest and
ID) to names of its own, so that no test depends on what another pulled.

What they show, under the daemonless runtime (``bwrap``) and under ``podman``:

- ``IfNotPresent`` (the default): an image only in the registry runs. ``bwrap`` copies it from
  the registry and unpacks it into the unpack cache (``HAATHI_IMAGE_CACHE``, private to each
  test); ``podman`` pulls it into its storage. The job records the registry's manifest digest.
  An image this host pulled before runs without a request to the registry (its access log shows
  none), though the tag has moved there; so does, with the registry down, one that podman had
  already under another name (the same image ID), which haathi runs without pulling.
- ``Never``: the job fails, naming where it looked and that nothing was pulled; an image this
  host pulled before is local, and runs.
- ``Always``: after another image is pushed under the same tag, the next job runs it, and the
  earlier job keeps the digest it ran.
- ``reproduce`` after the tag moved re-runs the recorded digest while this host has it (unpack
  cache, or podman storage by image ID) and says the tag moved; once it is gone the datums are
  UNRUNNABLE, naming both digests.
- ``validate pipeline`` of an image the registry does not have warns, naming it.
- With the registry down, a job whose image this host does not have fails with one line naming
  the registry; one whose image it has runs.

Plain HTTP needs the tools' consent, given the way each tool reads it
(:meth:`loopback.servers.Registry.env`): podman reads ``CONTAINERS_REGISTRIES_CONF``, skopeo 1.9
only ``$HOME/.config/containers/registries.conf``. The shared test images in podman storage are
never retagged or removed; every name this module pulls into podman storage (and every image
made here) is removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import haathi
from haathi.client import Client
from haathi.models.info import FileType, JobInfo, JobState
from haathi.models.reproduce import EnvChange
from loopback.servers import Registry
from tests.conftest import Cli, put_all
from tests.images import OCI_TAG, PODMAN, BusyboxImage

pytestmark = pytest.mark.slow  # a registry on loopback, images copied in and out

RUNTIMES = ["bwrap", "podman"]
STDIN = (  # each input file becomes "<its text> in <the image's REGISTRY_MARK>"
    'for f in /pfs/words/*; do echo "$(cat "$f") in ${REGISTRY_MARK:-busybox}" '
    "> /pfs/out/${f##*/}; done"
)


# ---- the registry, and what this module leaves in podman storage ---------------------------


def run(*argv: str) -> bytes:
    """Run a tool; its standard output (the test fails, with the tool's error, if it does)."""
    done = subprocess.run(argv, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def podman_has(name: str) -> bool:
    """Whether podman's storage has an image by this name."""
    done = subprocess.run([*PODMAN, "image", "exists", name], capture_output=True, timeout=60)
    return done.returncode == 0


def podman_names() -> list[str]:
    out = run(*PODMAN, "images", "--noheading", "--format", "{{.Repository}}:{{.Tag}}")
    return out.decode().split()


@dataclass
class Local:
    """What this module put in podman storage, removed at its end: every name under one of
    ``hosts`` (the registries it started), and the images it made (``ids``). An image pulled
    under a registry name that is the shared busybox image only loses that name."""

    hosts: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    def remove(self) -> None:
        prefixes = tuple(f"{host}/" for host in self.hosts)
        names = [n for n in podman_names() if n.startswith(prefixes)]
        for image in [*names, *self.ids]:  # the IDs: images left nameless when their tag moved
            subprocess.run([*PODMAN, "rmi", image], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    made = Local()
    yield made
    made.remove()


def start_registry(local: Local) -> Registry:
    """A registry of our own, started (the test fails, naming why, if it cannot start)."""
    reg = Registry()
    try:
        reg.start()
    except (RuntimeError, OSError) as exc:
        reg.stop()
        pytest.fail(f"cannot start a container registry: {exc}", pytrace=False)
    local.hosts.append(reg.host)
    return reg


@pytest.fixture(scope="module")
def reg(busybox_image: BusyboxImage, local: Local) -> Iterator[Registry]:
    """This module's registry, holding ``haathi/busybox:1`` (the busybox image's OCI export);
    the module's processes reach it through its environment."""
    registry = start_registry(local)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in registry.env().items():
                mp.setenv(key, value)
            for key in ("HAATHI_IMAGE_PULL_POLICY", "HAATHI_RUNTIME"):
                mp.delenv(key, raising=False)
            push(f"oci:{busybox_image.oci_dir}:{OCI_TAG}", f"{registry.host}/haathi/busybox:1")
            yield registry
    finally:
        registry.stop()


@pytest.fixture(autouse=True)
def image_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own unpack cache for the daemonless runtime."""
    path = tmp_path / "image-cache"
    monkeypatch.setenv("HAATHI_IMAGE_CACHE", str(path))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The test's store: embedded (the registry is under test here, not the backends)."""
    return tmp_path / "store"


def push(source: str, name: str) -> str:
    """Copy the image at ``source`` (as skopeo names it) to the registry as ``name``; its
    manifest digest there."""
    run("skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
        source, f"docker://{name}")  # fmt: skip
    return registry_digest(name)


def registry_manifest(name: str) -> bytes:
    return run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}")


def registry_digest(name: str) -> str:
    """The manifest digest of ``name`` in the registry: the sha256 of the manifest it serves."""
    return "sha256:" + hashlib.sha256(registry_manifest(name)).hexdigest()


def variant(busybox: BusyboxImage, where: Path, local: Local, mark: str) -> str:
    """Another image: the busybox image with ``REGISTRY_MARK=<mark>`` in its ``Env`` (its own
    config, so its own ID and digest), as an OCI layout under ``where``; its skopeo name."""
    layout = where / f"variant-{mark}"
    shutil.copytree(busybox.oci_dir, layout)
    mark = f"{mark}-{uuid.uuid4().hex[:8]}"  # a new image ID on every run
    run("umoci", "config", "--image", f"{layout}:{OCI_TAG}", f"--config.env=REGISTRY_MARK={mark}")
    config = run("skopeo", "inspect", "--config", "--raw", f"oci:{layout}:{OCI_TAG}")
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    assert image_id != busybox.config_digest
    local.ids.add(image_id.removeprefix("sha256:"))
    return f"oci:{layout}:{OCI_TAG}"


def mark_of(source: str) -> str:
    """The ``REGISTRY_MARK`` of a variant made by :func:`variant`."""
    config = json.loads(run("skopeo", "inspect", "--config", "--raw", source))
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    return env["REGISTRY_MARK"]


def own_name(reg: Registry, what: str, runtime: str = "") -> str:
    """A repository name of the test's own in the registry, tag ``1``."""
    return f"{reg.host}/haathi/{what}{'-' + runtime if runtime else ''}-{uuid.uuid4().hex[:6]}:1"


# ---- pipelines ------------------------------------------------------------------------------


def spec(image: str, name: str = "copy") -> dict[str, Any]:
    """Each file of ``words`` becomes ``<its text> in <the image's REGISTRY_MARK>``."""
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": "words", "glob": "/*"}},
        "transform": {"image": image, "cmd": ["sh"], "stdin": [STDIN]},
    }


def words(client: Client, **files: str) -> str:
    """Put ``{name: text}`` into ``words@master`` as ``/<name>.txt``; the commit ID."""
    if "words" not in {r.name for r in client.list_repo()}:
        client.create_repo("words")
    return put_all(client, "words", {f"/{k}.txt": f"{v}\n" for k, v in files.items()})


def outputs(client: Client, ref: str) -> dict[str, str]:
    return {
        f.path: client.get_file(f"{ref}:{f.path}").decode()
        for f in client.walk_file(f"{ref}:/")
        if f.type == FileType.FILE
    }


def last_job(client: Client, pipeline: str = "copy") -> JobInfo:
    return client.list_job(pipeline)[0]


def why(client: Client, job: JobInfo) -> str:
    """A failed job's reason and its datums' logs (for an assertion's message)."""
    _, logs = client.logs(job.pipeline, job.id)
    return f"{job.reason}; " + "; ".join(f"{datum[:12]}: {text}" for datum, text in logs)


def image_of(job: JobInfo) -> dict[str, Any]:
    """What a job recorded of its image and runtime."""
    return {k: job.context.get(k) for k in ("runtime", "image", "image_digest", "image_id")}


def cli_in(store: Path, runtime: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The real CLI on the test's store, under ``runtime`` (``HAATHI_RUNTIME``)."""
    monkeypatch.setenv("HAATHI_RUNTIME", runtime)
    return Cli(store, store.parent)


def name_path(name: str) -> str:
    """``haathi/x`` of ``127.0.0.1:PORT/haathi/x:1``: the repository as the registry's URLs
    name it."""
    return name.split("/", 1)[1].rsplit(":", 1)[0]


def repo_requests(reg: Registry, name: str) -> list[str]:
    """Every request the registry served for ``name``'s repository."""
    return [r for r in reg.requests() if f" /v2/{name_path(name)}/" in r]


# ---- IfNotPresent: an image only in the registry ---------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_image_only_in_the_registry_runs_and_its_job_records_the_registry_digest(
    runtime: str, reg: Registry, local: Local, tmp_path: Path, store: Path, image_cache: Path,
    busybox_image: BusyboxImage,
) -> None:  # fmt: skip
    """An image of its own (podman has no image with its ID, so it really pulls it)."""
    name = own_name(reg, "only", runtime)
    source = variant(busybox_image, tmp_path, local, "only")
    digest = push(source, name)
    manifest = json.loads(registry_manifest(name))
    assert not podman_has(name)

    client = haathi.connect(str(store), runtime=runtime)  # IfNotPresent
    words(client, a="apple", b="banana")
    client.create_pipeline(spec(name))
    job = last_job(client)
    assert job.state == JobState.SUCCESS, why(client, job)
    assert image_of(job) == {
        "runtime": runtime, "image": name, "image_digest": digest,
        "image_id": manifest["config"]["digest"],
    }  # fmt: skip
    mark = mark_of(source)
    assert outputs(client, "copy@master") == {
        "/a.txt": f"apple in {mark}\n", "/b.txt": f"banana in {mark}\n",
    }  # fmt: skip
    fetched = reg.requests()
    assert f"GET /v2/{name_path(name)}/manifests/1" in fetched
    assert f"GET /v2/{name_path(name)}/blobs/{manifest['config']['digest']}" in fetched
    if runtime == "bwrap":  # copied from the registry and unpacked; podman's storage untouched
        assert f"GET /v2/{name_path(name)}/blobs/{manifest['layers'][0]['digest']}" in fetched
        rootfs = image_cache / digest.removeprefix("sha256:") / "rootfs"
        assert (rootfs / "bin" / "busybox").is_file()
        assert not podman_has(name)
    else:  # pulled into podman's storage, with the registry's manifest
        assert podman_has(name)
        inspected = json.loads(run("skopeo", "inspect", f"containers-storage:{name}"))
        assert inspected["Digest"] == digest
    client.close()


# ---- Never --------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_never_fails_the_job_naming_where_it_looked_and_pulls_nothing(
    runtime: str, reg: Registry, tmp_path: Path, store: Path, image_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    name = own_name(reg, "never", runtime)
    push(f"docker://{reg.host}/haathi/busybox:1", name)
    asked = len(repo_requests(reg, name))
    client = haathi.connect(str(store))
    words(client, a="apple")
    (tmp_path / "spec.json").write_text(json.dumps(spec(name)))
    monkeypatch.setenv("HAATHI_IMAGE_PULL_POLICY", "Never")
    cli = cli_in(store, runtime, monkeypatch)
    created = cli("create", "pipeline", "-f", str(tmp_path / "spec.json"))

    assert "Traceback" not in created.err
    (job,) = client.list_job("copy")
    assert job.state == JobState.FAILURE and job.reason is not None
    assert "\n" not in job.reason
    assert job.reason.startswith(
        f"job failed: image '{name}' not found (containers-storage:{name}: "
    )
    assert f"docker://{name}" not in job.reason  # it did not look in the registry ...
    assert "Never" in job.reason and "nothing was pulled" in job.reason  # ... and says why
    assert job.reason.removeprefix("job failed: ") in created.err  # as the job's end line says
    assert len(repo_requests(reg, name)) == asked  # the registry was not asked
    assert not podman_has(name) and not image_cache.exists()
    assert outputs(client, "copy@master") == {}
    client.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_never_runs_an_image_this_host_pulled_before(
    runtime: str, reg: Registry, local: Local, tmp_path: Path, store: Path,
    busybox_image: BusyboxImage,
) -> None:  # fmt: skip
    """``Never`` means local only, and an image a job pulled is local: in podman's storage, or
    unpacked (the daemonless runtime's own storage)."""
    name = own_name(reg, "pulled", runtime)
    source = variant(busybox_image, tmp_path, local, "pulled")
    digest = push(source, name)
    client = haathi.connect(str(store), runtime=runtime)  # IfNotPresent: pulls it
    words(client, a="apple")
    client.create_pipeline(spec(name))
    assert image_of(last_job(client))["image_digest"] == digest
    client.close()

    served = len(reg.requests())
    client = haathi.connect(str(store), runtime=runtime, image_pull_policy="Never")
    words(client, b="banana")
    job = last_job(client)
    assert job.state == JobState.SUCCESS, why(client, job)
    assert image_of(job)["image_digest"] == digest
    assert reg.requests()[served:] == []
    assert outputs(client, "copy@master")["/b.txt"] == f"banana in {mark_of(source)}\n"
    client.close()


# ---- Always, and IfNotPresent with an image already here -------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_always_runs_the_image_the_tag_names_now_and_the_earlier_job_keeps_its_digest(
    runtime: str, reg: Registry, local: Local, tmp_path: Path, store: Path,
    busybox_image: BusyboxImage,
) -> None:  # fmt: skip
    name = own_name(reg, "always", runtime)
    first_source = variant(busybox_image, tmp_path, local, "first")
    first = push(first_source, name)
    client = haathi.connect(str(store), runtime=runtime, image_pull_policy="Always")
    words(client, a="apple")
    client.create_pipeline(spec(name))
    job1 = last_job(client)
    assert job1.state == JobState.SUCCESS and image_of(job1)["image_digest"] == first
    first_mark = mark_of(first_source)
    assert outputs(client, "copy@master") == {"/a.txt": f"apple in {first_mark}\n"}

    moved_source = variant(busybox_image, tmp_path, local, "moved")
    moved = push(moved_source, name)  # the same tag now names another image
    assert moved != first
    manifests_before = repo_requests(reg, name).count(f"GET /v2/{name_path(name)}/manifests/1")
    words(client, b="banana")
    job2 = last_job(client)
    assert job2.id != job1.id and job2.state == JobState.SUCCESS, job2.reason
    assert image_of(job2)["image_digest"] == moved
    assert outputs(client, "copy@master") == {
        "/a.txt": f"apple in {first_mark}\n", "/b.txt": f"banana in {mark_of(moved_source)}\n",
    }  # fmt: skip
    assert repo_requests(reg, name).count(f"GET /v2/{name_path(name)}/manifests/1") > (
        manifests_before
    )  # the registry was asked what the tag names now
    assert image_of(client.inspect_job(f"copy@{job1.id}"))["image_digest"] == first
    if runtime == "podman":
        inspected = json.loads(run("skopeo", "inspect", f"containers-storage:{name}"))
        assert inspected["Digest"] == moved  # pulled again: podman's tag moved too
    client.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_if_not_present_runs_the_image_this_host_pulled_without_asking_the_registry(
    runtime: str, reg: Registry, local: Local, tmp_path: Path, store: Path, image_cache: Path,
    busybox_image: BusyboxImage,
) -> None:  # fmt: skip
    """Checked with the registry's access log: after the first job pulled the image (into
    podman's storage, or unpacked), the next job makes no request at all, though the tag has
    moved in the registry meanwhile, and runs the image this host has; nothing is unpacked
    again."""
    name = own_name(reg, "present", runtime)
    first_source = variant(busybox_image, tmp_path, local, "first")
    first = push(first_source, name)
    client = haathi.connect(str(store), runtime=runtime)
    words(client, a="apple")
    client.create_pipeline(spec(name))
    assert image_of(last_job(client))["image_digest"] == first
    unpacked = sorted(image_cache.glob("*/image.json"))
    stamps = [p.stat().st_mtime_ns for p in unpacked]

    push(variant(busybox_image, tmp_path, local, "moved"), name)
    served = len(reg.requests())
    words(client, b="banana")
    job = last_job(client)
    assert job.state == JobState.SUCCESS and image_of(job)["image_digest"] == first
    assert reg.requests()[served:] == []  # not pulled, not even asked
    mark = mark_of(first_source)
    assert outputs(client, "copy@master") == {
        "/a.txt": f"apple in {mark}\n", "/b.txt": f"banana in {mark}\n",
    }  # fmt: skip
    assert sorted(image_cache.glob("*/image.json")) == unpacked
    assert [p.stat().st_mtime_ns for p in unpacked] == stamps
    client.close()


# ---- reproduce after the tag moved ------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_reproduce_after_the_tag_moved_runs_the_recorded_digest_until_it_is_gone(
    runtime: str, reg: Registry, local: Local, tmp_path: Path, store: Path, image_cache: Path,
    busybox_image: BusyboxImage, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The pull policy is ``Always``, so that the tag's move in the registry is seen (with
    ``IfNotPresent`` this host's own tag, which has not moved, answers)."""
    name = own_name(reg, "repro", runtime)
    first_source = variant(busybox_image, tmp_path, local, "first")
    first = push(first_source, name)
    client = haathi.connect(str(store), runtime=runtime, image_pull_policy="Always")
    monkeypatch.setenv("HAATHI_IMAGE_PULL_POLICY", "Always")
    cli = cli_in(store, runtime, monkeypatch)
    words(client, a="apple", b="banana")
    client.create_pipeline(spec(name))
    job = last_job(client)
    assert job.state == JobState.SUCCESS and image_of(job)["image_digest"] == first
    first_id = job.context["image_id"]

    moved = push(variant(busybox_image, tmp_path, local, "moved"), name)
    report = client.reproduce("copy@master:/")
    assert [(d.state, d.reason) for d in report.datums] == [("SUCCESS", None)] * 2
    assert report.ok and all(f.match for f in report.files)
    change = EnvChange(f"image {name}", first, moved, variable=False)
    assert all(d.env_changes == (change,) for d in report.datums)
    assert str(change) == f"image {name} was '{first}', now '{moved}'"
    shown = cli("reproduce", "copy@master:/")  # exit status 0: it reproduced
    assert f"the environment differs from the recorded run: {change}" in " ".join(shown.out.split())

    if runtime == "bwrap":  # gone from the unpack cache
        shutil.rmtree(image_cache / first.removeprefix("sha256:"))
    else:  # gone from podman's storage (it has no name left: the tag moved)
        run(*PODMAN, "rmi", first_id.removeprefix("sha256:"))
    # The registry still has the recorded manifest, by digest: fetched again from there.
    report = client.reproduce("copy@master:/")
    assert report.ok and all(d.env_changes == (change,) for d in report.datums)

    # Gone from the registry too (and from this host again): nothing can run it.
    repository = name.rsplit(":", 1)[0]
    run("skopeo", "delete", "--tls-verify=false", f"docker://{repository}@{first}")
    if runtime == "bwrap":
        shutil.rmtree(image_cache / first.removeprefix("sha256:"))
    else:
        run(*PODMAN, "rmi", first_id.removeprefix("sha256:"))
    report = client.reproduce("copy@master:/")
    assert not report.ok
    assert [d.state for d in report.datums] == ["UNRUNNABLE", "UNRUNNABLE"]
    for d in report.datums:
        assert d.reason is not None and first in d.reason and moved in d.reason
        assert "\n" not in d.reason
    shown = cli("reproduce", "copy@master:/", ok=False)
    assert shown.code == 1 and "Traceback" not in shown.err
    assert " ".join(shown.out.split()).count(f"UNRUNNABLE — {d.reason}") == 2
    assert outputs(client, "copy@master") == {
        "/a.txt": f"apple in {mark_of(first_source)}\n",
        "/b.txt": f"banana in {mark_of(first_source)}\n",
    }
    client.close()


# ---- validate pipeline -----------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_validate_pipeline_warns_about_an_image_the_registry_does_not_have(
    runtime: str, reg: Registry, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{reg.host}/haathi/no-such-image:1"
    client = haathi.connect(str(store), runtime=runtime)
    client.create_repo("words")
    (tmp_path / "spec.json").write_text(json.dumps(spec(name)))
    cli = cli_in(store, runtime, monkeypatch)
    checked = cli("validate", "pipeline", "-f", str(tmp_path / "spec.json"))

    assert checked.out == "pipeline copy: valid\n"
    (warning,) = checked.err.strip().splitlines()
    assert warning.startswith(f"note: its jobs will fail until this is fixed: image '{name}' ")
    assert f"docker://{name}: reading manifest 1 in {reg.host}/haathi/no-such-image: " in warning
    assert "manifest unknown" in warning
    (item,) = client.validate_pipeline(spec(name))
    assert item["notes"] == [warning.removeprefix("note: ")]
    assert client.list_pipeline() == []  # nothing was created
    client.close()


# ---- the registry down -----------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_with_the_registry_down_an_image_not_here_fails_naming_it_and_one_here_runs(
    runtime: str, reg: Registry, local: Local, tmp_path: Path, store: Path,
    busybox_image: BusyboxImage, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Its own registry (this one is killed): ``here`` ran before, so this host has its image
    (unpacked, or pulled into podman's storage); ``elsewhere`` never ran."""
    down = start_registry(local)
    try:
        for key, value in down.env().items():
            monkeypatch.setenv(key, value)
        here, elsewhere = f"{down.host}/haathi/here:1", f"{down.host}/haathi/elsewhere:1"
        source = variant(busybox_image, tmp_path, local, "here")
        digest = push(source, here)
        push(source, elsewhere)
        client = haathi.connect(str(store), runtime=runtime)  # IfNotPresent
        words(client, a="apple")
        client.create_pipeline(spec(here, "here"))
        assert last_job(client, "here").state == JobState.SUCCESS
        down.kill()

        cli = cli_in(store, runtime, monkeypatch)
        (tmp_path / "elsewhere.json").write_text(json.dumps(spec(elsewhere, "elsewhere")))
        created = cli("create", "pipeline", "-f", str(tmp_path / "elsewhere.json"))
        (tmp_path / "b.txt").write_text("banana\n")
        put = cli("put", "file", "words@master:/b.txt", "-f", str(tmp_path / "b.txt"))
    finally:
        down.stop()

    assert "Traceback" not in created.err + put.err
    failed = client.list_job("elsewhere")
    assert [j.state for j in failed] == [JobState.FAILURE] * 2
    for job in failed:
        assert job.reason is not None and "\n" not in job.reason
        assert f"docker://{elsewhere}: " in job.reason and "connection refused" in job.reason
        assert job.reason.removeprefix("job failed: ") in created.err + put.err
    ran = client.list_job("here")
    assert [(j.state, image_of(j)["image_digest"]) for j in ran] == [
        (JobState.SUCCESS, digest)
    ] * 2, why(client, ran[0])
    mark = mark_of(source)
    assert outputs(client, "here@master") == {
        "/a.txt": f"apple in {mark}\n", "/b.txt": f"banana in {mark}\n",
    }  # fmt: skip
    client.close()


def test_with_the_registry_down_podman_runs_a_registry_image_it_has_under_another_name(
    reg: Registry, local: Local, tmp_path: Path, store: Path, busybox_image: BusyboxImage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The registry's image is one podman already has under another name (the same image
    ID: here the shared busybox image; in life an image built here and pushed, or the same
    image from a mirror). haathi runs it by its ID and does not pull it (a pull would change
    what the other name's digest is), so podman never has it under the registry's name. It is
    still here: with ``IfNotPresent`` the next job runs it, registry or not, and records the
    same digest."""
    down = start_registry(local)
    try:
        for key, value in down.env().items():
            monkeypatch.setenv(key, value)
        name = f"{down.host}/haathi/busybox:1"
        digest = push(f"oci:{busybox_image.oci_dir}:{OCI_TAG}", name)
        client = haathi.connect(str(store), runtime="podman")
        words(client, a="apple")
        client.create_pipeline(spec(name))
        first = last_job(client)
        assert first.state == JobState.SUCCESS, why(client, first)
        assert first.context["image_id"] == busybox_image.config_digest
        down.kill()
        words(client, b="banana")
        job = last_job(client)
        report = client.reproduce("copy@master:/")
    finally:
        down.stop()
    assert job.id != first.id
    assert job.state == JobState.SUCCESS, why(client, job)
    assert image_of(job) == image_of(first) and image_of(job)["image_digest"] == digest
    assert outputs(client, "copy@master")["/b.txt"] == "banana in busybox\n"
    assert report.ok and [d.env_changes for d in report.datums] == [(), ()]
    shared = json.loads(run("skopeo", "inspect", f"containers-storage:{busybox_image.name}"))
    assert shared["Digest"] == busybox_image.digest  # the shared image's digest is unchanged
    client.close()


# ---- how skopeo and podman are told about an HTTP registry -----------------------------------


def test_lookups_honour_containers_registries_conf_as_podman_does(
    reg: Registry, local: Local, tmp_path: Path, store: Path, busybox_image: BusyboxImage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """podman reads an insecure (plain HTTP) registry from ``CONTAINERS_REGISTRIES_CONF``;
    haathi looks images up with skopeo, which (1.9, Debian 12) ignores that variable. A user
    who configured the registry that way, as podman's documentation says, can ``podman pull``
    the image, so a pipeline under the podman runtime must run it too."""
    name = own_name(reg, "conf")
    push(variant(busybox_image, tmp_path, local, "conf"), name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no registries.conf there
    assert reg.env()["CONTAINERS_REGISTRIES_CONF"] == str(reg.registries_conf)
    client = haathi.connect(str(store), runtime="podman")
    words(client, a="apple")
    client.create_pipeline(spec(name))
    job = last_job(client)
    assert job.state == JobState.SUCCESS, why(client, job)
    assert podman_has(name)
    client.close()
