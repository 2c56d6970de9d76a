"""Benchmarks of pipelines in container images (issue 15). Run by ``bench/run.py --only images``
(the four workloads below); see bench/README.md ("Container images (issue 15)").

- ``img_datums``: 10,000 datums of ``true``, parallelism 1, in a container of the busybox image
  under the ``bwrap`` runtime and under ``podman``, against the same job with no image (host
  sandbox ``bwrap``) and with sandbox ``none``: job time per datum. Also, informative, the bare
  round trip of one datum inside an already running container (``new_datum`` + ``run(true)``
  through ``open_container``), which leaves out what a job adds (inputs, outputs, the datum
  sets' starts).
- ``img_start``: opening a container with ``haathi.pps.containers.open_container`` (a resolved
  ``ContainerSpec``, the image already unpacked) until the first command (``true``) has exited,
  for both images and both runtimes, against opening the host sandbox (bwrap) and ``none``;
  closing is timed apart.
- ``img_unpack``: a job in the python image under ``bwrap`` with an empty image cache (the
  first unpack), then in a fresh process a second pipeline's job in the same image: it must
  unpack nothing (no unpack call, every file of the cache unchanged: path, inode, size, mtime).
- ``img_w4``: W4 of ``bench/pipelines.py`` (2,000 input files, +1 file runs 1 datum) with the
  pipeline in the python image, under ``bwrap`` and ``podman``, against the same pipeline on the
  host (sandbox ``none``, as W4) and ``dvc repro`` of the same stage (its code reused from
  ``bench/pipelines.py``).

Images: ``localhost/haathi-test/busybox:1`` and ``localhost/haathi-test/python:1`` (built by the
test fixtures, ``tests/images.py``) are copied to ``localhost/haathi-bench/<name>:1`` for the
run (``FROM`` them plus a label: an image of its own, so that neither a rebuild of the test
images nor a push of them, which adds a manifest podman then reports, changes its digest
during the run); a missing busybox image is built here (``/bin/busybox`` + applet links,
``podman import``); with no python image, ``img_unpack`` and ``img_w4`` use the busybox image
(noted). The bwrap runtime's cache is the bench's own (``HAATHI_IMAGE_CACHE`` under ``--work``),
unpacked before any timing; every job is checked to have run the digest resolved at the start.

Every haathi measurement runs in a child process (``images.py child '<json>'``), as in
``bench/pipelines.py``, whose helpers it reuses; the runner module is passed in as ``h``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pipelines as P  # bench/pipelines.py (this directory is on sys.path)

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
IMAGE_WORKLOADS = ("img_datums", "img_start", "img_unpack", "img_w4")
SOURCES = {
    "busybox": "localhost/haathi-test/busybox:1",
    "python": "localhost/haathi-test/python:1",
}
BENCH_TAG = "localhost/haathi-bench/{}:1"
APPLETS = ("sh", "true", "cat", "echo", "ls", "id")  # of the busybox image built here
PODMAN = ("podman",)  # image storage only (tag, import, rmi): no host flags needed


@dataclass(frozen=True)
class IScale:
    datums: int  # img_datums: datums per job
    roundtrips: int  # img_datums: bare in-container round trips per runtime
    start_reps: int  # img_start: opens per kind per run (after one warm-up)
    w4_files: int


FULL = IScale(datums=10_000, roundtrips=2_000, start_reps=10, w4_files=2_000)
QUICK = IScale(datums=1_000, roundtrips=300, start_reps=3, w4_files=200)


# ============================================================================================
# child side: one haathi measurement in a fresh process


def _connect(store: str, kind: str) -> Any:
    """``none`` / ``host_bwrap``: no image, that host sandbox; else a container runtime."""
    import haathi

    if kind == "none":
        return haathi.connect(store, sandbox="none")
    if kind == "host_bwrap":
        return haathi.connect(store, sandbox="bwrap")
    return haathi.connect(store, sandbox="none", runtime=kind)


def _in_image(spec: dict[str, Any], image: str | None) -> dict[str, Any]:
    if image is not None:
        spec["transform"]["image"] = image
    return spec


def _ran(c: Any, pipeline: str, job: dict[str, Any], digest: str | None) -> dict[str, Any]:
    """The job's recorded runtime and image digest; AssertionError if not the one expected."""
    ctx = c.inspect_job(f"{pipeline}@{job['id']}").context
    got = {
        "sandbox": ctx.get("sandbox"),
        "runtime": ctx.get("runtime"),
        "image_digest": ctx.get("image_digest"),
    }
    if got["image_digest"] != digest:
        raise AssertionError(f"job {job['id']} ran image {got['image_digest']}, not {digest}")
    return got


def child_resolve(ref: str) -> dict[str, Any]:
    """The image ``ref`` names now (from local storage only)."""
    from haathi.pps import images

    return dict(images.resolve(ref, "Never").to_dict())


def child_unpack(ref: str) -> dict[str, Any]:
    """Unpack ``ref`` into ``$HAATHI_IMAGE_CACHE`` (if it is not there yet)."""
    from haathi.pps import image_cache, images

    t0 = time.perf_counter()
    rootfs, made = image_cache.unpack(images.resolve(ref, "Never"))
    return {"rootfs": str(rootfs), "unpacked": made, "s": time.perf_counter() - t0}


def child_datums(
    store: str, n: int, kind: str, image: str | None, digest: str | None
) -> dict[str, Any]:
    with _connect(store, kind) as c:
        put_s = P._fill(c, n)
        create_s, job, ran = _true_job(c, n, image, digest)
    return {"put_s": put_s, "create_s": create_s, "job": job, "ran": ran}


def _true_job(
    c: Any, n: int, image: str | None, digest: str | None
) -> tuple[float, Any, dict[str, Any]]:
    """Create the pipeline of ``true`` over the store's ``n`` files (in ``image``): the
    seconds it took (it returns after the job), the job, and what the job recorded it ran."""
    os.sync()
    t0 = time.perf_counter()
    c.create_pipeline(_in_image(P.true_spec("p"), image))
    create_s = time.perf_counter() - t0
    job = P._job(c, "p")
    P._expect(job, processed=n, skipped=0)
    return create_s, job, _ran(c, "p", job, digest)


def _open_box(kind: str, specs: dict[str, Any], scratch: Path) -> tuple[Any, dict[str, str]]:
    """An open sandbox of ``kind`` (``none``, ``host_bwrap``, ``RUNTIME:IMAGE``) and the
    environment a command gets in it."""
    from haathi.pps import containers, sandbox
    from haathi.pps.hostview import HostView

    if kind in ("none", "host_bwrap"):
        path = os.environ.get("PATH", "/usr/bin:/bin")
        view = HostView().with_programs(["true"], path)
        box = sandbox.open_sandbox("none" if kind == "none" else "bwrap", scratch, view)
        return box, {"PATH": path}
    spec = specs[kind]
    return containers.open_container(spec, scratch), spec.env()


def _container_specs(
    kinds: list[str], refs: dict[str, str], digests: dict[str, str]
) -> dict[str, Any]:
    """A resolved ``ContainerSpec`` per ``RUNTIME:IMAGE`` kind (checked against ``digests``)."""
    from haathi.pps import containers, image_cache

    specs: dict[str, Any] = {}
    for kind in kinds:
        runtime, _, name = kind.partition(":")
        if not name:
            continue
        image = containers.resolve_image(runtime, refs[name], "Never")
        if image.digest != digests[name]:
            raise AssertionError(f"{refs[name]} is now {image.digest}, not {digests[name]}")
        if runtime == "bwrap" and image_cache.cached_rootfs(image.digest) is None:
            raise AssertionError(f"{refs[name]} is not unpacked in {image_cache.cache_root()}")
        specs[kind] = containers.ContainerSpec(runtime, image)
    return specs


def child_start(
    kinds: list[str], reps: int, refs: dict[str, str], digests: dict[str, str], root: str
) -> dict[str, Any]:
    """Per kind, ``reps`` times (after one warm-up, kinds alternated): open the sandbox or
    container, make the first datum's ``/pfs``, run ``true``; then close it. Milliseconds."""
    specs = _container_specs(kinds, refs, digests)
    out: dict[str, dict[str, list[float]]] = {
        k: {"first_exit_ms": [], "close_ms": []} for k in kinds
    }
    for rep in range(reps + 1):
        for kind in P.rotated(kinds, rep):
            scratch = Path(tempfile.mkdtemp(prefix="start-", dir=root))
            t0 = time.perf_counter()
            box, env = _open_box(kind, specs, scratch)
            try:
                pfs = box.new_datum(["in"])
                (pfs / "in").mkdir()
                res = box.run(["true"], stdin=None, env=env)
                t1 = time.perf_counter()
            finally:
                box.close()
            t2 = time.perf_counter()
            shutil.rmtree(scratch, ignore_errors=True)
            if res.returncode != 0:
                raise AssertionError(f"{kind}: true exited {res.returncode}: {res.output!r}")
            if rep:  # rep 0 warms up
                out[kind]["first_exit_ms"].append((t1 - t0) * 1000)
                out[kind]["close_ms"].append((t2 - t1) * 1000)
    return out


def child_roundtrip(
    kinds: list[str], n: int, refs: dict[str, str], digests: dict[str, str], root: str
) -> dict[str, Any]:
    """Per kind: one open sandbox or container, then ``n`` x (``new_datum`` + ``run(true)``);
    milliseconds per round trip (the open is not counted)."""
    specs = _container_specs(kinds, refs, digests)
    out: dict[str, float] = {}
    for kind in kinds:
        scratch = Path(tempfile.mkdtemp(prefix="rt-", dir=root))
        box, env = _open_box(kind, specs, scratch)
        try:
            box.new_datum(["in"])
            box.run(["true"], stdin=None, env=env)  # started
            t0 = time.perf_counter()
            for _ in range(n):
                (box.new_datum(["in"]) / "in").mkdir()
                res = box.run(["true"], stdin=None, env=env)
                if res.returncode != 0:
                    raise AssertionError(f"{kind}: true exited {res.returncode}: {res.output!r}")
            out[kind] = (time.perf_counter() - t0) / n * 1000
        finally:
            box.close()
            shutil.rmtree(scratch, ignore_errors=True)
    return out


class _Timers:
    """Wall-clock timers wrapped around functions (summed over threads)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.totals[label] = self.totals.get(label, 0.0) + time.perf_counter() - t0
                    self.counts[label] = self.counts.get(label, 0) + 1

        setattr(owner, attr, timed)


def _job_timers() -> _Timers:
    """Timers on the steps of a job in this process (no profiler: the figures are not
    inflated; each wrapper costs a microsecond or so per call)."""
    import haathi.pps.containers as containers_mod
    import haathi.pps.jobs as jobs_mod
    import haathi.pps.sandbox as sandbox_mod
    import haathi.pps.session as session_mod
    import haathi.pps.worker as worker_mod

    t = _tool_timers()
    t.wrap(jobs_mod, "plan_job", "job: plan_job")
    t.wrap(jobs_mod, "isolation_for", "job: isolation_for (runtime, image, unpack check)")
    t.wrap(containers_mod, "_why_not_cached", "  probe the runtime (once per process)")
    t.wrap(containers_mod, "resolve_image", "  resolve the image (skopeo inspect)")
    t.wrap(jobs_mod, "run_datum_set", "datum sets, total (run_datum_set)")
    t.wrap(worker_mod, "open_container", "  per set: open_container (starts it)")
    t.wrap(worker_mod, "open_sandbox", "  per set: open_sandbox (host)")
    t.wrap(session_mod.Session, "connect", CONNECT)
    t.wrap(sandbox_mod.Sandbox, "close", "  per set: Sandbox.close (stop, wait for exit)")
    t.wrap(tempfile, "mkdtemp", "  per set: mkdtemp (scratch)")
    t.wrap(shutil, "rmtree", "  rmtree (scratch; inputs of the last datum)")
    t.wrap(sandbox_mod.Sandbox, "new_datum", "  per datum: Sandbox.new_datum")
    t.wrap(worker_mod, "_materialize", "  per datum: _materialize (inputs)")
    t.wrap(sandbox_mod.Sandbox, "run", "  per datum: Sandbox.run (incl. connect)")
    t.wrap(worker_mod, "_ingest_outputs", "  per datum: _ingest_outputs")
    t.wrap(jobs_mod, "_assemble", "job: _assemble (output tree)")
    t.wrap(jobs_mod, "end_job", "job: end_job")
    return t


def child_timers(
    store: str, n: int, kind: str, image: str | None, digest: str | None
) -> dict[str, Any]:
    """``child_datums`` with :func:`_job_timers`; seconds per step, summed."""
    with _connect(store, kind) as c:
        P._fill(c, n)
        t = _job_timers()
        create_s, job, _ = _true_job(c, n, image, digest)
    return {"create_s": create_s, "job": job, "totals_s": t.totals, "counts": t.counts}


def _tool_timers() -> _Timers:
    """Timers on the image cache's unpack and on the skopeo/umoci calls (by subcommand)."""
    from haathi.pps import image_cache, image_sources

    t = _Timers()
    t.wrap(image_cache, "_unpack_into", UNPACK)
    tool = image_sources.run_tool

    def labelled(argv: list[str]) -> bytes | str:
        label = f"  {argv[0]} {argv[1]}" + (" --config" if "--config" in argv else "")
        t0 = time.perf_counter()
        try:
            return tool(argv)
        finally:
            with t._lock:
                t.totals[label] = t.totals.get(label, 0.0) + time.perf_counter() - t0
                t.counts[label] = t.counts.get(label, 0) + 1

    image_sources.run_tool = labelled  # type: ignore[assignment]
    image_cache.run_tool = labelled  # type: ignore[assignment]
    return t


UNPACK = "unpack (skopeo copy + umoci unpack + rename)"
CONNECT = "  per set: wait for a container's launcher (connect, in the first run)"


def child_unpack_job(
    store: str, pipeline: str, image: str, digest: str, first: bool
) -> dict[str, Any]:
    """A pipeline of one ``true`` datum in ``image`` under bwrap (``first``: the store is new
    and gets its input repo): create_pipeline time, its job, and the unpacks it made."""
    from haathi.pps import image_cache

    timers = _tool_timers()
    entries_before = (
        sorted(os.listdir(image_cache.cache_root())) if image_cache.cache_root().exists() else []
    )
    with _connect(store, "bwrap") as c:
        if first:
            c.create_repo("in")
            c.put_file(f"in@master:/{P.name(0)}", P.content(0))
        c.list_job()  # open the store outside the timed call
        t0 = time.perf_counter()
        c.create_pipeline(_in_image(P.true_spec(pipeline), image))
        create_s = time.perf_counter() - t0
        job = P._job(c, pipeline)
        P._expect(job, processed=1, skipped=0)
        ran = _ran(c, pipeline, job, digest)
    return {
        "create_s": create_s,
        "job": job,
        "ran": ran,
        "cache_entries_before": entries_before,
        "timers_s": timers.totals,
        "calls": timers.counts,
    }


def child_w4_full(
    store: str, n: int, iterations: int, kind: str, image: str | None, digest: str | None
) -> dict[str, Any]:
    """W4's first full run (``pipelines.child_w4_full``) with the pipeline in ``image``."""
    with _connect(store, kind) as c:
        put_s = P._fill(c, n)
        t0 = time.perf_counter()
        c.create_pipeline(_in_image(P.per_file_spec("p", iterations, 1), image))
        create_s = time.perf_counter() - t0
        job = P._job(c, "p")
        P._expect(job, processed=n, skipped=0)
        outs = len(c.list_file("p@master:/"))
        if outs != n:
            raise AssertionError(f"the output commit has {outs} files, not {n}")
        ran = _ran(c, "p", job, digest)
    return {"put_s": put_s, "create_s": create_s, "job": job, "ran": ran}


def child_w4_add(store: str, n: int, i: int, kind: str, digest: str | None) -> dict[str, Any]:
    """W4's timed step (``pipelines.child_w4_add``): put file ``i`` (it returns after the job),
    then file ``i + 1`` in the same, now warm, process."""
    out: dict[str, Any] = {}
    t = _job_timers()
    with _connect(store, kind) as c:
        c.list_job("p")  # open the store's connections outside the timed call
        for key, j in (("add", i), ("add_warm", i + 1)):
            t.totals.clear()
            t.counts.clear()
            t0 = time.perf_counter()
            c.put_file(f"in@master:/{P.name(j)}", P.content(j))
            out[f"{key}_s"] = time.perf_counter() - t0
            out[f"{key}_job"] = job = P._job(c, "p")
            P._expect(job, processed=1, skipped=n + j - i)
            got = c.get_file(f"p@master:/{P.name(j)}")
            if got != P.content(j):
                raise AssertionError(f"output {P.name(j)} is {got!r}, not a copy of the input")
            out[f"{key}_ran"] = _ran(c, "p", job, digest)
            out[f"{key}_timers_s"] = dict(t.totals)
    return out


CHILD_OPS: dict[str, Callable[..., dict[str, Any]]] = {
    "resolve": child_resolve,
    "unpack": child_unpack,
    "datums": child_datums,
    "start": child_start,
    "roundtrip": child_roundtrip,
    "timers": child_timers,
    "unpack_job": child_unpack_job,
    "w4_full": child_w4_full,
    "w4_add": child_w4_add,
}


def child_main(arg: str) -> int:
    return P.child_main(arg, CHILD_OPS)


# ============================================================================================
# runner side


@dataclass
class Images:
    """The images of this run: bench tag, resolved digest, where they came from."""

    refs: dict[str, str]  # busybox / python -> localhost/haathi-bench/<name>:1
    digests: dict[str, str]
    cache: Path  # the bwrap runtime's cache for this run (unpacked before any timing)
    python: str  # "python", or "busybox" when the python image is missing

    def env(self) -> dict[str, str]:
        return {"HAATHI_IMAGE_CACHE": str(self.cache)}


def child(op: str, env: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    """Run one child measurement; its result dict (raises with its stderr on failure)."""
    arg = json.dumps({"op": op, **kw})
    p = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", arg],
        capture_output=True,
        text=True,
        cwd=str(PROJECT),
        env=os.environ | (env or {}),
    )
    if p.returncode != 0:
        raise RuntimeError(f"child {op} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"child {op} printed no result:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=False)


def _build_busybox(ref: str) -> None:
    """A busybox image from this host's static ``/bin/busybox`` and applet links."""
    busybox = Path("/bin/busybox")
    with tempfile.TemporaryDirectory(prefix="haathi-bench-busybox-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar, "w") as tf:
            for d in ("bin", "etc", "tmp"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tf.addfile(info)
            tf.add(busybox, "bin/busybox")
            for applet in APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tf.addfile(info)
            for name, text in (
                ("passwd", "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
                ("group", "root:x:0:\nnogroup:x:65534:\n"),
            ):
                data = text.encode()
                info = tarfile.TarInfo(f"etc/{name}")
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
        done = _podman("import", "--change", "ENV PATH=/bin", str(tar), ref)
        if done.returncode != 0:
            raise RuntimeError(f"podman import of the busybox image failed: {done.stderr[-500:]}")


def _copy_image(source: str, ref: str) -> None:
    """``ref``: ``source`` plus a label, so an image of its own in podman's storage. (A second
    tag of ``source`` would share its manifests: when the test suites push ``source`` to their
    registries, podman stores the pushed manifest with it and ``containers-storage:`` then
    reports that one, so the digest would change under the bench.)"""
    with tempfile.TemporaryDirectory(prefix="haathi-bench-image-") as tmp:
        (Path(tmp) / "Containerfile").write_text(
            f"FROM {source}\nLABEL haathi.bench.copy-of={source}\n"
        )
        done = _podman("build", "-q", "--pull=never", "-t", ref, tmp)
        if done.returncode != 0:
            raise RuntimeError(f"podman build of {ref} from {source}: {done.stderr[-300:]}")


def prepare(ctx: Any) -> Images | None:
    """Tag (or build) the images, resolve them, unpack them into the run's bwrap cache."""
    meta = ctx.results.setdefault("images_meta", {})
    if shutil.which("podman") is None:
        ctx.note("images: podman is not installed: the image workloads are skipped")
        return None
    refs: dict[str, str] = {}
    for name, source in SOURCES.items():
        ref = BENCH_TAG.format(name)
        if _podman("image", "exists", source).returncode == 0:
            _copy_image(source, ref)
            meta[f"{name}_from"] = source
        elif name == "busybox":
            _build_busybox(ref)
            meta["busybox_from"] = "built by the bench (/bin/busybox + applet links)"
        else:
            ctx.note(
                f"images: {source} is not in podman storage (the test fixtures build it, "
                "tests/images.py): img_unpack and img_w4 use the busybox image"
            )
            continue
        refs[name] = ref
    python = "python" if "python" in refs else "busybox"
    cache = ctx.work / "image-cache"
    shutil.rmtree(cache, ignore_errors=True)
    imgs = Images(refs, {}, cache, python)
    for name, ref in refs.items():
        r = child("resolve", env=imgs.env(), ref=ref)
        imgs.digests[name] = r["image_digest"]
        meta[name] = {"ref": ref, **r}
        u = child("unpack", env=imgs.env(), ref=ref)
        meta[name]["rootfs_bytes"] = _du(Path(u["rootfs"]))
        meta[name]["rootfs_files"] = sum(len(fs) for _, _, fs in os.walk(u["rootfs"]))
        ctx.log(
            f"images: {ref} = {r['image_digest'][:19]} (image ID {r['image_id'][:19]}), "
            f"unpacked for bwrap in {u['s']:.1f} s: {meta[name]['rootfs_files']} files, "
            f"{meta[name]['rootfs_bytes'] / 2**20:.0f} MiB"
        )
    meta["python_image_used"] = imgs.refs[python]
    meta["bwrap_cache"] = str(cache)
    meta["podman"] = _podman("version", "--format", "{{.Client.Version}}").stdout.strip()
    meta["skopeo"] = subprocess.run(
        ["skopeo", "--version"], capture_output=True, text=True
    ).stdout.strip()
    meta["umoci"] = subprocess.run(
        ["umoci", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return imgs


def cleanup(ctx: Any, imgs: Images) -> None:
    """Drop the run's bwrap cache and the bench's images."""
    shutil.rmtree(imgs.cache, ignore_errors=True)
    for ref in imgs.refs.values():
        _podman("rmi", ref)


def _du(path: Path) -> int:
    total = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(d, f)).st_size
    return total


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (itself included): (inode, size, mtime in ns)."""

    def walk() -> Iterator[tuple[str, os.stat_result]]:
        yield ".", os.lstat(root)
        for d, dirs, fs in os.walk(root):
            for x in dirs + fs:
                p = os.path.join(d, x)
                yield os.path.relpath(p, root), os.lstat(p)

    return {p: (st.st_ino, st.st_size, st.st_mtime_ns) for p, st in walk()}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------------------------
# per-datum overhead


DATUM_KINDS = ["none", "host_bwrap", "bwrap", "podman"]
KIND_LABEL = {
    "none": "no image, sandbox none",
    "host_bwrap": "no image, host sandbox bwrap",
    "bwrap": "busybox image, runtime bwrap",
    "podman": "busybox image, podman",
}


def img_datums(ctx: Any, h: ModuleType, sc: IScale, imgs: Images) -> None:
    out = ctx.work / "out-img-datums"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    n = sc.datums
    res: dict[str, Any] = {
        "datums": n,
        "cmd": ["true"],
        "image": imgs.refs["busybox"],
        "parallelism": 1,
        "runs": [],
    }
    ctx.results["img_datums"] = res
    rt_kinds = ["host_bwrap", "bwrap:busybox", "podman:busybox"]
    kinds = [*DATUM_KINDS, "roundtrip"]
    for k in range(ctx.runs):
        row: dict[str, Any] = {
            "order": P.rotated(kinds, k),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        for kind in row["order"]:
            if kind == "roundtrip":
                r = child(
                    "roundtrip",
                    env=imgs.env(),
                    kinds=P.rotated(rt_kinds, k),
                    n=sc.roundtrips,
                    refs=imgs.refs,
                    digests=imgs.digests,
                    root=str(out),
                )
                row.update({f"roundtrip_{key.split(':')[0]}_ms": v for key, v in r.items()})
                ctx.log(
                    f"img_datums run {k}: bare round trip in a running sandbox/container "
                    f"(new_datum + run true, ms): "
                    + ", ".join(f"{key} {v:.2f}" for key, v in r.items())
                )
                continue
            store = out / f"{kind}-{k}"
            image = imgs.refs["busybox"] if kind in ("bwrap", "podman") else None
            digest = imgs.digests["busybox"] if image else None
            r = child(
                "datums",
                env=imgs.env(),
                store=str(store),
                n=n,
                kind=kind,
                image=image,
                digest=digest,
            )
            row[f"{kind}_ms_per_datum"] = r["job"]["job_s"] / n * 1000
            row[f"{kind}_create_s"] = r["create_s"]
            ctx.log(
                f"img_datums run {k} {kind}: job {r['job']['job_s']:.1f} s for {n} datums "
                f"= {row[f'{kind}_ms_per_datum']:.2f} ms/datum ({r['ran']})"
            )
            h.rm_paths(store)
            P.settle(ctx, f"img_datums run {k}: {kind} store deleted")
        res["runs"].append(row)
        ctx.save()
    runs = res["runs"]
    keys = [f"{kd}_ms_per_datum" for kd in DATUM_KINDS] + [
        f"roundtrip_{kd.split(':')[0]}_ms" for kd in rt_kinds
    ]
    for key in keys:
        res[key] = med([r[key] for r in runs])
    for rt in ("bwrap", "podman"):
        res[f"{rt}_over_none_per_run"] = [
            r[f"{rt}_ms_per_datum"] - r["none_ms_per_datum"] for r in runs
        ]
        res[f"{rt}_over_host_bwrap_per_run"] = [
            r[f"{rt}_ms_per_datum"] - r["host_bwrap_ms_per_datum"] for r in runs
        ]
    missed = False
    for rt in ("bwrap", "podman"):
        v = res[f"{rt}_ms_per_datum"]
        missed |= v >= 5
        ctx.check(
            f"per-datum time in a container, {n:,} x true, parallelism 1, runtime {rt}",
            v,
            "ms/datum",
            "< 5 ms",
            v < 5,
            "per run "
            + "/".join(f"{r[f'{rt}_ms_per_datum']:.2f}" for r in runs)
            + f"; same job with no image: sandbox none {res['none_ms_per_datum']:.2f}, host "
            f"bwrap {res['host_bwrap_ms_per_datum']:.2f} ms/datum (+"
            + "/".join(f"{x:.2f}" for x in res[f"{rt}_over_none_per_run"])
            + f" ms over none per run); bare round trip in a running {rt} container "
            f"{res[f'roundtrip_{rt}_ms']:.2f} ms",
        )
    if missed or ctx.args.profile_all:
        for kind in ("none", "bwrap", "podman"):
            profile_datums(ctx, sc, imgs, kind)
    shutil.rmtree(out, ignore_errors=True)


def profile_datums(ctx: Any, sc: IScale, imgs: Images, kind: str) -> None:
    """Where a ``true`` datum's time goes in a job of ``kind``: wall-clock timers around its
    steps, per datum; written to profiles/ and the results."""
    n = sc.datums
    store = ctx.work / f"out-img-profile-{kind}"
    shutil.rmtree(store, ignore_errors=True)
    image = imgs.refs["busybox"] if kind in ("bwrap", "podman") else None
    P.settle(ctx, f"img_datums profile ({kind}): before the timed job")
    try:
        t = child(
            "timers",
            env=imgs.env(),
            store=str(store),
            n=n,
            kind=kind,
            image=image,
            digest=imgs.digests["busybox"] if image else None,
        )
    except RuntimeError as exc:
        ctx.note(f"timing the {kind} datum path failed: {str(exc)[-600:]}")
        return
    finally:
        shutil.rmtree(store, ignore_errors=True)
    steps = {label: round(v / n * 1000, 3) for label, v in t["totals_s"].items()}
    steps["job, per datum (started -> finished)"] = round(t["job"]["job_s"] / n * 1000, 3)
    sets = t["counts"].get("datum sets, total (run_datum_set)", 0)
    per_call = {
        label: round(v / t["counts"][label] * 1000, 3) for label, v in t["totals_s"].items()
    }
    ctx.results.setdefault("images_meta", {})[f"timers_{kind}"] = {
        "datums": n,
        "datum_sets": sets,
        "ms_per_datum": steps,
        "ms_per_call": per_call,
        "calls": t["counts"],
    }
    text = [
        f"true x {n} datums ({KIND_LABEL[kind]}), parallelism 1, {sets} datum sets.",
        "Wall-clock timers (no profiler): ms per datum, ms per call, calls",
        "",
    ]
    for label, v in steps.items():
        extra = f"{per_call[label]:10.3f} {t['counts'][label]:7d}" if label in per_call else ""
        text.append(f"  {v:8.3f} {extra}  {label}")
    pdir = Path(ctx.args.out).resolve().parent / "profiles"
    pdir.mkdir(exist_ok=True)
    name = f"images_datum_path_{kind}"
    (pdir / f"{name}.txt").write_text("\n".join(text) + "\n")
    ctx.profiles[name] = P.shown(pdir / f"{name}.txt")
    ctx.log(
        f"timed steps of the {kind} datum path ({n} datums, ms/datum): "
        + "; ".join(f"{k.strip()} {v:.2f}" for k, v in steps.items())
    )


# --------------------------------------------------------------------------------------------
# start of a datum set


START_KINDS = [
    "none",
    "host_bwrap",
    "bwrap:busybox",
    "bwrap:python",
    "podman:busybox",
    "podman:python",
]


def img_start(ctx: Any, h: ModuleType, sc: IScale, imgs: Images) -> None:
    out = ctx.work / "out-img-start"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    kinds = [k for k in START_KINDS if k.partition(":")[2] in ("", *imgs.refs)]
    res: dict[str, Any] = {"reps_per_run": sc.start_reps, "kinds": kinds, "runs": []}
    ctx.results["img_start"] = res
    for k in range(ctx.runs):
        os.sync()
        r = child(
            "start",
            env=imgs.env(),
            kinds=P.rotated(kinds, k),
            reps=sc.start_reps,
            refs=imgs.refs,
            digests=imgs.digests,
            root=str(out),
        )
        row: dict[str, Any] = {"loadavg_1m": round(os.getloadavg()[0], 2)}
        for kind, v in r.items():
            row[f"{kind}_first_exit_ms"] = med(v["first_exit_ms"])
            row[f"{kind}_close_ms"] = med(v["close_ms"])
            row[f"{kind}_first_exit_ms_all"] = [round(x, 1) for x in v["first_exit_ms"]]
        res["runs"].append(row)
        ctx.log(
            f"img_start run {k}: open -> first exit / close, median ms: "
            + ", ".join(
                f"{kind} {row[f'{kind}_first_exit_ms']:.0f}/{row[f'{kind}_close_ms']:.0f}"
                for kind in kinds
            )
        )
        ctx.save()
    runs = res["runs"]
    for kind in kinds:
        for what in ("first_exit_ms", "close_ms"):
            res[f"{kind}_{what}"] = med([r[f"{kind}_{what}"] for r in runs])

    def per_run(kind: str) -> str:
        return "/".join(f"{r[f'{kind}_first_exit_ms']:.0f}" for r in runs)

    base = (
        f"host sandbox bwrap {res['host_bwrap_first_exit_ms']:.0f} ms, none "
        f"{res['none_first_exit_ms']:.0f} ms"
    )
    for name in imgs.refs:
        v = res[f"bwrap:{name}_first_exit_ms"]
        ctx.check(
            f"start of a datum set, runtime bwrap, {name} image unpacked: open to first exit",
            v,
            "ms",
            "< 100 ms",
            v < 100,
            f"median of {sc.start_reps} opens x {ctx.runs} runs (per run "
            f"{per_run(f'bwrap:{name}')}); "
            f"close {res[f'bwrap:{name}_close_ms']:.0f} ms; {base}",
        )
    for name in imgs.refs:
        v = res[f"podman:{name}_first_exit_ms"]
        ctx.check(
            f"start of a datum set, podman, {name} image: open to first exit",
            v,
            "ms",
            "- (recorded)",
            None,
            f"per run {per_run(f'podman:{name}')}; close (container gone) "
            f"{res[f'podman:{name}_close_ms']:.0f} ms; {base}",
        )
    shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# first unpack, and a second job in the same image


def img_unpack(ctx: Any, h: ModuleType, sc: IScale, imgs: Images) -> None:
    out = ctx.work / "out-img-unpack"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    name = imgs.python
    ref, digest = imgs.refs[name], imgs.digests[name]
    res: dict[str, Any] = {"image": ref, "digest": digest, "runs": []}
    ctx.results["img_unpack"] = res
    for k in range(ctx.runs):
        cache, store = out / f"cache-{k}", out / f"store-{k}"
        env = {"HAATHI_IMAGE_CACHE": str(cache)}
        os.sync()
        a = child(
            "unpack_job",
            env=env,
            store=str(store),
            pipeline="first",
            image=ref,
            digest=digest,
            first=True,
        )
        snap_a = snapshot(cache)
        time.sleep(1)  # a rewrite would show in the mtimes
        b = child(
            "unpack_job",
            env=env,
            store=str(store),
            pipeline="second",
            image=ref,
            digest=digest,
            first=False,
        )
        snap_b = snapshot(cache)
        changed = sorted(p for p in snap_a.keys() | snap_b.keys() if snap_a.get(p) != snap_b.get(p))
        unpack_label = UNPACK
        row = {
            "first_create_s": a["create_s"],
            "first_job_s": a["job"]["job_s"],
            "first_unpacks": a["calls"].get(unpack_label, 0),
            "first_unpack_s": a["timers_s"].get(unpack_label, 0.0),
            "first_timers_s": a["timers_s"],
            "first_calls": a["calls"],
            "second_create_s": b["create_s"],
            "second_job_s": b["job"]["job_s"],
            "second_unpacks": b["calls"].get(unpack_label, 0),
            "second_timers_s": b["timers_s"],
            "second_calls": b["calls"],
            "cache_entries_before_first": a["cache_entries_before"],
            "cache_entries_before_second": b["cache_entries_before"],
            "cache_paths": len(snap_b),
            "cache_changed": changed[:20],
            "cache_changed_count": len(changed),
            "cache_bytes": _du(cache),
        }
        res["runs"].append(row)
        ctx.log(
            f"img_unpack run {k}: first job (cold cache) {a['create_s']:.2f} s, of which "
            f"unpack {row['first_unpack_s']:.2f} s ({row['first_unpacks']} unpack); second "
            f"pipeline, fresh process: {b['create_s'] * 1000:.0f} ms ({row['second_unpacks']} "
            f"unpacks); cache paths {len(snap_b)}, changed {len(changed)}"
        )
        ctx.save()
        h.rm_paths(cache, store)
        P.settle(ctx, f"img_unpack run {k}: cache and store deleted")
    runs = res["runs"]
    for key in (
        "first_create_s",
        "first_job_s",
        "first_unpack_s",
        "second_create_s",
        "second_job_s",
    ):
        res[key] = med([r[key] for r in runs])
    tools: dict[str, float] = {}
    for label in runs[0]["first_timers_s"]:
        tools[label.strip()] = med([r["first_timers_s"].get(label, 0.0) for r in runs])
    res["first_tools_s"] = tools
    ok = all(
        r["first_unpacks"] == 1 and r["second_unpacks"] == 0 and not r["cache_changed"]
        for r in runs
    )
    v = res["second_create_s"]
    ctx.check(
        f"second job in the same image ({name}, bwrap): unpacks nothing",
        v * 1000,
        "ms",
        "no unpack, cache unchanged",
        ok,
        f"create_pipeline + its 1-datum job in a fresh process; unpack calls "
        f"{'/'.join(str(r['second_unpacks']) for r in runs)}, cache paths changed "
        f"{'/'.join(str(r['cache_changed_count']) for r in runs)} of "
        f"{runs[0]['cache_paths']:,} (inode, size, mtime); per run "
        + "/".join(f"{r['second_create_s'] * 1000:.0f}" for r in runs)
        + " ms",
    )
    ctx.check(
        f"first job in the {name} image, empty cache (cold unpack, bwrap)",
        res["first_create_s"],
        "s",
        "- (recorded)",
        None,
        f"unpack {res['first_unpack_s']:.2f} s of it ("
        + ", ".join(
            f"{label} {s:.2f} s" for label, s in tools.items() if not label.startswith("unpack")
        )
        + f"); {runs[0]['cache_bytes'] / 2**20:.0f} MiB unpacked; per run "
        + "/".join(f"{r['first_create_s']:.2f}" for r in runs)
        + " s; the second job "
        f"{v / res['first_create_s'] * 100:.0f}% of it",
    )
    shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# W4 in an image


W4_KINDS = {"host": ("none", False), "bwrap": ("bwrap", True), "podman": ("podman", True)}


def img_w4(ctx: Any, h: ModuleType, sc: IScale, imgs: Images) -> None:
    out = ctx.work / "out-img-w4"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cal = P.calibrate(ctx, out)
    iters, n = cal["w4_iterations"], sc.w4_files
    dvc = P.dvc_bin(ctx, h)
    name = imgs.python
    ref, digest = imgs.refs[name], imgs.digests[name]
    if dvc is None:
        ctx.note(
            "img_w4: dvc is not installed (bench/run.py --install-peers): only haathi's "
            "side is measured"
        )
    res: dict[str, Any] = {
        "files": n,
        "loop_iterations": iters,
        "image": ref,
        "cmd_cpu_ms": cal["w4_cmd_cpu_ms"],
        "dvc": str(dvc) if dvc else None,
        "runs": [],
    }
    if dvc is not None:
        res["dvc_version"] = subprocess.run(
            [str(dvc), "version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
    ctx.results["img_w4"] = res
    tools = [*W4_KINDS, "dvc"] if dvc else list(W4_KINDS)
    try:
        for k in range(ctx.runs):
            w4_run(ctx, h, res, out, k, P.rotated(tools, k), n, iters, dvc, ref, digest, imgs)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    w4_check(ctx, res, n, dvc, name)


def w4_run(
    ctx: Any,
    h: ModuleType,
    res: dict[str, Any],
    out: Path,
    k: int,
    order: list[str],
    n: int,
    iters: int,
    dvc: Path | None,
    ref: str,
    digest: str,
    imgs: Images,
) -> None:
    row: dict[str, Any] = {"order": order, "loadavg_1m": round(os.getloadavg()[0], 2)}
    droot = out / f"dvc-{k}"
    stores = {t: out / f"{t}-{k}" for t in W4_KINDS}
    for tool in order:  # first full runs
        if tool == "dvc":
            assert dvc is not None
            P.dvc_setup(dvc, droot, n, iters)
            os.sync()
            dt, _ = h.run_proc([dvc, "repro", "-q"], env=P.dvc_env(), cwd=droot)
            P.dvc_check(droot, n)
            row["dvc_full_s"] = dt
            ctx.log(f"img_w4 run {k} dvc first full repro: {dt:.1f} s")
            continue
        kind, in_image = W4_KINDS[tool]
        r = child(
            "w4_full",
            env=imgs.env(),
            store=str(stores[tool]),
            n=n,
            iterations=iters,
            kind=kind,
            image=ref if in_image else None,
            digest=digest if in_image else None,
        )
        row[f"{tool}_full_s"] = r["create_s"]
        ctx.log(
            f"img_w4 run {k} haathi {tool} first full run: {r['create_s']:.1f} s for {n} "
            f"datums ({r['create_s'] / n * 1000:.1f} ms/datum)"
        )
    for tool in order:  # then add one file: time to the finished output
        P.settle(ctx, f"img_w4 run {k}: before the {tool} one-file add")
        if tool == "dvc":
            assert dvc is not None
            (droot / "data" / P.name(n)).write_bytes(P.content(n))
            h.warm(droot / "data")
            dt, _ = h.run_proc([dvc, "repro", "-q"], env=P.dvc_env(), cwd=droot)
            P.dvc_check(droot, n + 1)
            row["dvc_add_s"] = dt
            ctx.log(f"img_w4 run {k} dvc add 1 file + repro: {dt:.1f} s")
            continue
        kind, in_image = W4_KINDS[tool]
        h.warm(stores[tool])
        r = child(
            "w4_add",
            env=imgs.env(),
            store=str(stores[tool]),
            n=n,
            i=n,
            kind=kind,
            digest=digest if in_image else None,
        )
        job = r["add_job"]
        row.update(
            {
                f"{tool}_add_s": r["add_s"],
                f"{tool}_add_job_s": job["job_s"],
                f"{tool}_add_processed": job["processed"],
                f"{tool}_add_skipped": job["skipped"],
                f"{tool}_add_warm_s": r["add_warm_s"],
                f"{tool}_add_warm_job_s": r["add_warm_job"]["job_s"],
                f"{tool}_add_timers_ms": _ms(r["add_timers_s"]),
                f"{tool}_add_warm_timers_ms": _ms(r["add_warm_timers_s"]),
            }
        )
        ctx.log(
            f"img_w4 run {k} haathi {tool} add 1 file: {r['add_s'] * 1000:.0f} ms (job "
            f"{job['job_s'] * 1000:.0f} ms, {job['processed']} processed, {job['skipped']} "
            f"skipped); a second add in the same process {r['add_warm_s'] * 1000:.0f} ms"
        )
    res["runs"].append(row)
    ctx.save()
    h.rm_paths(droot, *stores.values())
    P.settle(ctx, f"img_w4 run {k}: stores deleted")


def _ms(timers_s: dict[str, float]) -> dict[str, float]:
    return {label.strip(): round(v * 1000, 1) for label, v in timers_s.items()}


# what of a +1 job the W4 detail names (timer labels, stripped)
W4_STEPS = {
    "probe": "probe the runtime (once per process)",
    "resolve": "resolve the image (skopeo inspect)",
    "open": "per set: open_container (starts it)",
    "connect": CONNECT.strip(),
    "run": "per datum: Sandbox.run (incl. connect)",
    "close": "per set: Sandbox.close (stop, wait for exit)",
}


def w4_check(ctx: Any, res: dict[str, Any], n: int, dvc: Path | None, name: str) -> None:
    runs = res["runs"]
    for tool in W4_KINDS:
        for what in ("full_s", "add_s", "add_job_s", "add_warm_s"):
            res[f"{tool}_{what}"] = med([r[f"{tool}_{what}"] for r in runs])
        for what in ("add_timers_ms", "add_warm_timers_ms"):
            labels = {label for r in runs for label in r[f"{tool}_{what}"]}
            res[f"{tool}_{what}"] = {
                label: med([r[f"{tool}_{what}"].get(label, 0.0) for r in runs])
                for label in sorted(labels)
            }
    if dvc is not None:
        for what in ("full_s", "add_s"):
            res[f"dvc_{what}"] = med([r[f"dvc_{what}"] for r in runs])
    host = res["host_add_s"]
    for tool in ("bwrap", "podman"):
        v = res[f"{tool}_add_s"]
        detail = (
            f"haathi in the image, {tool}: {v * 1000:.0f} ms (job "
            f"{res[f'{tool}_add_job_s'] * 1000:.0f} ms; a second add in the same process "
            f"{res[f'{tool}_add_warm_s'] * 1000:.0f} ms; of the first: "
            + ", ".join(
                f"{key} {res[f'{tool}_add_timers_ms'].get(label, 0.0):.0f}"
                for key, label in W4_STEPS.items()
            )
            + " ms; per run "
            + "/".join(f"{r[f'{tool}_add_s'] * 1000:.0f}" for r in runs)
            + f"); the same pipeline on the host (no image, sandbox none) "
            f"{host * 1000:.0f} ms; first full run {res[f'{tool}_full_s']:.1f} s "
            f"(host {res['host_full_s']:.1f} s)"
        )
        if dvc is None:
            ctx.check(
                f"W4 in the {name} image ({tool}): add 1 of {n:,} files, put to finished output",
                v * 1000,
                "ms",
                "-",
                None,
                detail + "; dvc not installed",
            )
            continue
        per_run = [r["dvc_add_s"] / r[f"{tool}_add_s"] for r in runs]
        res[f"ratio_dvc_{tool}_per_run"] = per_run
        ratio = med(per_run)
        res[f"ratio_dvc_{tool}"] = ratio
        ctx.check(
            f"W4 in the {name} image ({tool}): add 1 of {n:,} files, dvc repro / haathi",
            ratio,
            "x",
            ">= 50" if not ctx.args.quick else ">= 50 (not judged with --quick)",
            ratio >= 50 if not ctx.args.quick else None,
            detail + f"; dvc repro after the add {res['dvc_add_s']:.1f} s (first "
            f"{res['dvc_full_s']:.1f} s); per run " + "/".join(f"{x:.0f}" for x in per_run),
        )


# --------------------------------------------------------------------------------------------


def run(ctx: Any, h: ModuleType, only: set[str]) -> bool:
    """Run the selected image workloads, each on its own. Returns False when one failed."""
    sc = QUICK if ctx.args.quick else FULL
    meta = ctx.results.setdefault("images_meta", {})
    meta["scale"] = sc.__dict__
    try:
        imgs = prepare(ctx)
    except Exception as exc:
        ctx.note(f"images: preparing the images failed: {type(exc).__name__}: {str(exc)[:500]}")
        return False
    if imgs is None:
        return True
    steps: list[tuple[str, Callable[[], None]]] = []
    for name_, fn in (
        ("img_start", img_start),
        ("img_unpack", img_unpack),
        ("img_datums", img_datums),
        ("img_w4", img_w4),
    ):
        if name_ in only:
            steps.append((name_, functools.partial(fn, ctx, h, sc, imgs)))
    try:
        return P.run_steps(ctx, steps, walls=meta)
    finally:
        cleanup(ctx, imgs)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2]))
    sys.exit("usage: run through bench/run.py --only " + ",".join(IMAGE_WORKLOADS))
