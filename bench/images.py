"""Pipelines in container images (the measurements run in bench/pipeline_child.py).

- ``img_datums``: 10,000 datums of ``true``, parallelism 1, in the busybox image under the
  ``bwrap`` runtime and under ``podman``, against the same job with no image (host sandbox
  ``bwrap``, and ``none``): job time per datum. Informative: the bare round trip of one datum
  in an already running container (``new_datum`` + ``run(true)``).
- ``img_start``: ``open_container`` (image unpacked) until the first command (``true``) has
  exited, for both images and both runtimes, against the host sandbox and ``none``; closing
  timed apart.
- ``img_unpack``: a job in the python image under ``bwrap`` with an empty image cache (the
  first unpack), then in a fresh process a second pipeline's job in the same image: it must
  unpack nothing and leave every path of the cache as it was (inode, size, mtime).
- ``img_w4``: W4 (bench/pipelines.py) with the pipeline in the python image, under ``bwrap``
  and ``podman``, against the same pipeline on the host and ``dvc repro`` of the same stage.

Images: ``localhost/haathi-test/{busybox,python}:1`` (built by the test fixtures,
tests/images.py) are copied to ``localhost/haathi-bench/<name>:1`` for the run (``FROM`` them
plus a label: an image of its own, whose digest a rebuild or a push of the test images cannot
move during the run); a missing busybox image is built here (``/bin/busybox`` + applet links,
``podman import``); with no python image, ``img_unpack`` and ``img_w4`` use busybox. The bwrap
runtime's cache is the bench's own (``HAATHI_IMAGE_CACHE`` under ``--work``), unpacked before
any timing; every job is checked to have run the digest resolved at the start.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import Ctx, Fixture, Row, Skipped, Target, Trials, Workload, alternate, rotated
from measure import dir_bytes, fresh_dir, remove, version
from pipelines import Variant, child, report_timers, true_job, w4_figure, w4_trials

SOURCES = {"busybox": "localhost/haathi-test/busybox:1", "python": "localhost/haathi-test/python:1"}
BENCH_TAG = "localhost/haathi-bench/{}:1"
APPLETS = ("sh", "true", "cat", "echo", "ls", "id")  # of the busybox image built here


@dataclass(frozen=True)
class Scale:
    datums: int  # img_datums: datums per job
    roundtrips: int  # img_datums: bare round trips in a running container
    start_reps: int  # img_start: opens per kind per run (after one warm-up)


FULL = Scale(datums=10_000, roundtrips=2_000, start_reps=10)
QUICK = Scale(datums=1_000, roundtrips=300, start_reps=3)


def scale(ctx: Ctx) -> Scale:
    return QUICK if ctx.quick else FULL


@dataclass
class Images:
    """The images of this run: bench tag and resolved digest per name."""

    refs: dict[str, str]  # busybox / python -> localhost/haathi-bench/<name>:1
    digests: dict[str, str]
    cache: Path  # the bwrap runtime's cache for this run (unpacked before any timing)
    python: str  # "python", or "busybox" when the python image is missing

    def env(self) -> dict[str, str]:
        return {"HAATHI_IMAGE_CACHE": str(self.cache)}

    def variant(self, runtime: str, name: str) -> Variant:
        return Variant(runtime, self.refs[name], self.digests[name])


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False)


def _build_busybox(ref: str) -> None:
    """A busybox image from this host's static ``/bin/busybox`` and applet links."""
    with tempfile.TemporaryDirectory(prefix="haathi-bench-busybox-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar, "w") as tf:
            for d in ("bin", "etc", "tmp"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tf.addfile(info)
            tf.add("/bin/busybox", "bin/busybox")
            for applet in APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tf.addfile(info)
            for name, text in (
                ("passwd", "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
                ("group", "root:x:0:\nnogroup:x:65534:\n"),
            ):
                info = tarfile.TarInfo(f"etc/{name}")
                info.size, info.mode = len(text), 0o644
                tf.addfile(info, io.BytesIO(text.encode()))
        done = _podman("import", "--change", "ENV PATH=/bin", str(tar), ref)
        if done.returncode != 0:
            raise RuntimeError(f"podman import of the busybox image failed: {done.stderr[-500:]}")


def _copy_image(source: str, ref: str) -> None:
    """``ref``: ``source`` plus a label, an image of its own in podman's storage. (A second
    tag would share ``source``'s manifests: when the test suites push ``source`` to their
    registries, podman keeps the pushed manifest and reports that one, moving the digest.)"""
    with tempfile.TemporaryDirectory(prefix="haathi-bench-image-") as tmp:
        (Path(tmp) / "Containerfile").write_text(
            f"FROM {source}\nLABEL haathi.bench.copy-of={source}\n"
        )
        done = _podman("build", "-q", "--pull=never", "-t", ref, tmp)
        if done.returncode != 0:
            raise RuntimeError(f"podman build of {ref} from {source}: {done.stderr[-300:]}")


@contextlib.contextmanager
def _images(ctx: Ctx) -> Iterator[Images]:
    """Copy (or build) the images, resolve them, unpack them into the run's bwrap cache;
    at the end, drop the cache and the copies."""
    if shutil.which("podman") is None:
        raise Skipped("podman is not installed")
    meta = ctx.meta.setdefault("images", {})
    imgs = Images({}, {}, ctx.work / "image-cache", "python")
    shutil.rmtree(imgs.cache, ignore_errors=True)
    try:
        for name, source in SOURCES.items():
            ref = BENCH_TAG.format(name)
            if _podman("image", "exists", source).returncode == 0:
                _copy_image(source, ref)
            elif name == "busybox":
                _build_busybox(ref)
                source = "built by the bench (/bin/busybox + applet links)"
            else:
                ctx.note(
                    f"images: {source} is missing (the test fixtures build it): "
                    "img_unpack and img_w4 use the busybox image"
                )
                imgs.python = "busybox"
                continue
            imgs.refs[name] = ref
            r = child("resolve", imgs.env(), ref=ref)
            imgs.digests[name] = r["image_digest"]
            u = child("unpack", imgs.env(), ref=ref)
            meta[name] = {
                "ref": ref,
                "from": source,
                "digest": r["image_digest"],
                "rootfs_mib": dir_bytes(Path(u["rootfs"])) / 2**20,
            }
            ctx.log(f"images: {ref} = {r['image_digest'][:19]}, unpacked in {u['s']:.1f} s")
        meta.update(
            podman=version(["podman", "--version"]),
            skopeo=version(["skopeo", "--version"]),
            umoci=version(["umoci", "--version"]),
        )
        yield imgs
    finally:
        shutil.rmtree(imgs.cache, ignore_errors=True)
        for ref in imgs.refs.values():
            _podman("rmi", ref)


IMAGES = Fixture("container images", _images)


# --------------------------------------------------------------------------------------------


def img_datums(ctx: Ctx) -> None:
    imgs, sc = ctx.use(IMAGES), scale(ctx)
    n = sc.datums
    out = fresh_dir(ctx.work / "out-img-datums")
    ctx.data.update(datums=n, image=imgs.refs["busybox"])
    rt_kinds = ["host_bwrap", "bwrap:busybox", "podman:busybox"]

    def roundtrip(k: int) -> Row:
        kinds = rotated(rt_kinds, k)
        r = child(
            "roundtrip",
            imgs.env(),
            kinds=kinds,
            n=sc.roundtrips,
            refs=imgs.refs,
            digests=imgs.digests,
            root=str(out),
        )
        return {f"{kind.split(':')[0]}_ms": v for kind, v in r.items()}

    def job(kind: str) -> Callable[[int], Row]:
        v = imgs.variant(kind, "busybox") if kind in ("bwrap", "podman") else Variant(kind)
        return true_job(ctx, out, n, kind, imgs.env(), image=v.image, digest=v.digest)

    trials = alternate(
        ctx,
        {k: job(k) for k in ("none", "host_bwrap", "bwrap", "podman")} | {"roundtrip": roundtrip},
    )
    missed = False
    for rt in ("bwrap", "podman"):
        passed = ctx.figure(
            f"per-datum time in a container, {n:,} x true, parallelism 1, runtime {rt}",
            trials.median(rt, "ms_per_datum"),
            "ms/datum",
            Target("<", 5, "ms"),
            f"per run {trials.per_run(rt, 'ms_per_datum')}; the same job with no image: "
            f"sandbox none {trials.median('none', 'ms_per_datum'):.2f}, host bwrap "
            f"{trials.median('host_bwrap', 'ms_per_datum'):.2f} ms/datum; a bare round trip in "
            f"a running {rt} container {trials.median('roundtrip', f'{rt}_ms'):.2f} ms",
        )
        missed |= passed is False
    if missed or ctx.opts.profile_all:
        for kind in ("none", "bwrap", "podman"):
            _timers(ctx, imgs, kind, n)
    shutil.rmtree(out, ignore_errors=True)


def _timers(ctx: Ctx, imgs: Images, kind: str, n: int) -> None:
    """Timers around the steps of a ``true`` job of ``kind`` (busybox image for a runtime)."""
    store = ctx.work / f"out-img-timers-{kind}"
    v = imgs.variant(kind, "busybox") if kind != "none" else Variant()
    ctx.settle(f"img_datums timers ({kind})")
    try:
        t = child(
            "timers", imgs.env(), store=str(store), n=n, kind=kind, image=v.image, digest=v.digest
        )
        report_timers(ctx, f"images_datum_path_{kind}", n, t, f"true x {n} datums, {kind}")
    except RuntimeError as exc:
        ctx.note(f"timing the {kind} datum path failed: {str(exc)[-600:]}")
    finally:
        shutil.rmtree(store, ignore_errors=True)


def img_start(ctx: Ctx) -> None:
    imgs, sc = ctx.use(IMAGES), scale(ctx)
    out = fresh_dir(ctx.work / "out-img-start")
    kinds = ["none", "host_bwrap"] + [
        f"{rt}:{name}"
        for rt in ("bwrap", "podman")
        for name in ("busybox", "python")
        if name in imgs.refs
    ]

    def starts(k: int) -> Row:
        os.sync()
        r = child(
            "start",
            imgs.env(),
            kinds=rotated(kinds, k),
            reps=sc.start_reps,
            refs=imgs.refs,
            digests=imgs.digests,
            root=str(out),
        )
        return {
            f"{kind}_{what}": statistics.median(v[what])
            for kind, v in r.items()
            for what in ("first_exit_ms", "close_ms")
        }

    trials = alternate(ctx, {"start": starts})
    base = (
        f"host sandbox bwrap {trials.median('start', 'host_bwrap_first_exit_ms'):.0f} ms, "
        f"none {trials.median('start', 'none_first_exit_ms'):.1f} ms"
    )
    for kind in kinds[2:]:
        rt, _, name = kind.partition(":")
        ctx.figure(
            f"start of a datum set, {rt}, {name} image: open to the first exit",
            trials.median("start", f"{kind}_first_exit_ms"),
            "ms",
            Target("<", 100, "ms") if rt == "bwrap" else None,
            f"per run {trials.per_run('start', f'{kind}_first_exit_ms', spec='.0f')}; close "
            f"{trials.median('start', f'{kind}_close_ms'):.0f} ms; {base}",
        )
    shutil.rmtree(out, ignore_errors=True)


def img_unpack(ctx: Ctx) -> None:
    imgs = ctx.use(IMAGES)
    name = imgs.python
    ref, digest = imgs.refs[name], imgs.digests[name]
    out = fresh_dir(ctx.work / "out-img-unpack")

    def unpack(k: int) -> Row:
        cache, store = out / f"cache-{k}", out / f"store-{k}"
        env = {"HAATHI_IMAGE_CACHE": str(cache)}
        os.sync()
        kw = {"store": str(store), "image": ref, "digest": digest}
        a = child("unpack_job", env, pipeline="first", first=True, **kw)
        before = snapshot(cache)
        time.sleep(1)  # a rewrite would show in the mtimes
        b = child("unpack_job", env, pipeline="second", first=False, **kw)
        after = snapshot(cache)
        if a["unpacks"] != 1:
            raise AssertionError(f"the first job unpacked {a['unpacks']} times, not once")
        row = {
            "first_s": a["create_s"],
            "first_unpack_s": a["unpack_s"],
            "s": b["create_s"],
            "second_unpacks": b["unpacks"],
            "cache_paths": len(after),
            "cache_changed": sum(before.get(p) != after.get(p) for p in before | after),
            "cache_mib": dir_bytes(cache) / 2**20,
        }
        remove(ctx, cache, store)
        return row

    trials = alternate(ctx, {"unpack": unpack})
    rows = trials.rows["unpack"]
    ctx.figure(
        f"a second job in the same image ({name}, bwrap): unpacks + cache paths changed",
        max(r["second_unpacks"] + r["cache_changed"] for r in rows),
        "",
        Target("<=", 0),
        f"a new pipeline in a fresh process, {trials.median('unpack') * 1000:.0f} ms (per run "
        f"{trials.per_run('unpack', scale=1000, spec='.0f')}); {rows[0]['cache_paths']:,} "
        "cache paths compared (inode, size, mtime)",
    )
    ctx.figure(
        f"first job in the {name} image, empty cache (cold unpack, bwrap)",
        trials.median("unpack", "first_s"),
        "s",
        None,
        f"of which the unpack {trials.median('unpack', 'first_unpack_s'):.2f} s "
        f"({rows[0]['cache_mib']:.0f} MiB); per run {trials.per_run('unpack', 'first_s')} s",
    )
    shutil.rmtree(out, ignore_errors=True)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (itself included): (inode, size, mtime in ns)."""
    paths = [root] + [Path(d) / x for d, dirs, fs in os.walk(root) for x in dirs + fs]
    return {str(p): (st.st_ino, st.st_size, st.st_mtime_ns) for p in paths for st in [os.lstat(p)]}


def img_w4(ctx: Ctx) -> None:
    imgs = ctx.use(IMAGES)
    name = imgs.python
    ctx.data["image"] = imgs.refs[name]
    trials = w4_trials(
        ctx,
        {
            "host": Variant(),
            "bwrap": imgs.variant("bwrap", name),
            "podman": imgs.variant("podman", name),
        },
        imgs.env(),
    )
    host = f"; the same pipeline on the host {trials.median('host') * 1000:.0f} ms"
    for rt in ("bwrap", "podman"):
        w4_figure(ctx, trials, rt, f"W4 in the {name} image ({rt})", host + _steps(trials, rt))


def _steps(trials: Trials, who: str) -> str:
    """What of ``who``'s first add the job's timers name (medians, ms; 1 ms or more)."""
    rows = trials.rows[who]
    ms = {
        label: statistics.median(r["timers_ms"].get(label, 0.0) for r in rows)
        for label in rows[0]["timers_ms"]
        if label.startswith(("resolve", "per set"))
    }
    return "; of it: " + ", ".join(f"{label} {v:.0f}" for label, v in ms.items() if v >= 1)


WORKLOADS = [
    Workload("img_start", "images", "start of a datum set in a container", img_start),
    Workload(
        "img_unpack", "images", "first unpack of an image; a second job unpacks nothing", img_unpack
    ),
    Workload(
        "img_datums", "images", "10,000 datums of true in a container vs no image", img_datums
    ),
    Workload("img_w4", "images", "W4 in the python image (bwrap, podman) vs dvc repro", img_w4),
]
