"""The child side of the pipeline and image workloads: one haathi measurement in a fresh
process (``python bench/pipeline_child.py '<json>'``, see :func:`measure.call_child`), on a
store of its own, so that the runner's heap and caches do not weigh on it.

A ``kind`` names how user code runs: ``none`` and ``host_bwrap`` (no image: that host sandbox),
``bwrap`` and ``podman`` (a container runtime; the pipeline names an image).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3
from measure import Timers, child_main, replace

import haathi
from haathi.client import Client
from haathi.client.sources import bytes_op
from haathi.pps import (
    containers,
    image_cache,
    image_sources,
    images,
    isolation,
    job_queue,
    jobs,
    sandbox,
    worker,
)
from haathi.pps.hostview import HostView

# The CPU burner: a dash loop (no process start beyond the shell itself), calibrated per run.
LOOP = 'i=0; while [ "$i" -lt {n} ]; do i=$((i+1)); done'
# The per-file command of W4 and of the parallel workload: burn, then copy the file out.
PER_FILE = LOOP + '; cat "$1" > "$2"'
UNPACK = "unpack (skopeo copy + umoci unpack)"


def content(i: int) -> bytes:
    """The small input file number ``i`` (deterministic, ~60 bytes)."""
    return f"file {i:05d} {blake3.blake3(str(i).encode()).hexdigest()}\n".encode()


def name(i: int) -> str:
    return f"f{i:05d}"


def per_file_spec(iterations: int, parallelism: int, image: str | None) -> dict[str, Any]:
    """Pipeline ``p`` running PER_FILE on each file of ``in``: ``sh`` reading one line from
    stdin, which runs the same ``sh -c PER_FILE sh IN OUT`` as the DVC stage does per file."""
    line = f'sh -c \'{PER_FILE.format(n=iterations)}\' sh "$in" "/pfs/out/${{in##*/}}"'
    return _spec({"cmd": ["sh"], "stdin": [line]}, parallelism, image)


def true_spec(image: str | None = None) -> dict[str, Any]:
    """Pipeline ``p`` running ``true`` on each file of ``in``."""
    return _spec({"cmd": ["true"]}, 1, image)


def _spec(transform: dict[str, Any], parallelism: int, image: str | None) -> dict[str, Any]:
    if image is not None:
        transform["image"] = image
    return {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": transform,
        "parallelism_spec": {"constant": parallelism},
    }


def connect(store: str, kind: str) -> Client:
    if kind in ("none", "host_bwrap"):
        return haathi.connect(store, sandbox="none" if kind == "none" else "bwrap")
    return haathi.connect(store, sandbox="none", runtime=kind)


def fill(c: Client, n: int) -> float:
    """Repo ``in`` with files 0..n-1, put with one ``modify_file``: seconds."""
    c.create_repo("in")
    t0 = time.perf_counter()
    c.modify_file("in@master", [bytes_op(content(i), "/" + name(i)) for i in range(n)])
    return time.perf_counter() - t0


def job_of(
    c: Client, *, processed: int, skipped: int, digest: str | None = None, pipeline: str = "p"
) -> dict[str, Any]:
    """The newest job of ``pipeline``; AssertionError unless it succeeded with these counts,
    in the image ``digest`` (None: no image)."""
    j = c.list_job(pipeline)[0]
    job = {
        "id": j.id,
        "state": j.state.value,
        "processed": j.data_processed,
        "skipped": j.data_skipped,
        "failed": j.data_failed,
        "job_s": (j.finished - j.started).total_seconds() if j.finished and j.started else 0,
    }
    if (job["state"], job["processed"], job["skipped"]) != ("SUCCESS", processed, skipped):
        raise AssertionError(
            f"job {job}: expected SUCCESS, {processed} processed, {skipped} skipped"
        )
    ran = c.inspect_job(f"{pipeline}@{j.id}").context.get("image_digest")
    if ran != digest:
        raise AssertionError(f"job {j.id} ran image {ran}, not {digest}")
    return job


def _create(c: Client, spec: dict[str, Any]) -> float:
    os.sync()
    t0 = time.perf_counter()
    c.create_pipeline(spec)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# jobs


def child_true_job(
    store: str,
    n: int,
    kind: str = "none",
    image: str | None = None,
    digest: str | None = None,
    tmpfs: bool = False,
    noop: bool = False,
) -> dict[str, Any]:
    """A job of ``n`` datums of ``true`` (``tmpfs``: the store's scratch dir in /dev/shm);
    ``noop``: then ``update_pipeline`` with the same spec, every datum skipped."""
    shm = tempfile.mkdtemp(prefix="haathi-bench-", dir="/dev/shm") if tmpfs else None
    if shm:
        Path(store).mkdir(parents=True, exist_ok=True)
        os.symlink(shm, Path(store) / "scratch")
    try:
        with connect(store, kind) as c:
            out: dict[str, Any] = {"put_s": fill(c, n), "create_s": _create(c, true_spec(image))}
            out["job"] = job_of(c, processed=n, skipped=0, digest=digest)
            if noop:
                t0 = time.perf_counter()
                c.update_pipeline(true_spec(image))
                out["noop_s"] = time.perf_counter() - t0
                job_of(c, processed=0, skipped=n, digest=digest)
    finally:
        if shm:
            shutil.rmtree(shm, ignore_errors=True)
    return out


def child_noop(store: str, n: int) -> dict[str, Any]:
    """``update_pipeline`` with the same spec in a fresh process (connecting not timed)."""
    with connect(store, "none") as c:
        c.list_job("p")
        c0, t0 = cpu_s(), time.perf_counter()
        c.update_pipeline(true_spec())
        noop_s, cpu = time.perf_counter() - t0, cpu_s() - c0
        job_of(c, processed=0, skipped=n)
    return {"noop_s": noop_s, "noop_cpu_s": cpu}


def cpu_s() -> float:
    """CPU seconds this process has used (every thread): what a loaded machine's wall time
    hides."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def page_times(c: Client, number: int, reps: int = 5) -> dict[str, Any]:
    """``list_datum`` of the newest job of ``p``, a page of ``number`` at a time: the first
    call (cold in a fresh process), then the median ms of ``reps`` calls for the first page,
    one in the middle and the last full one (each after the previous page's last datum)."""
    job = f"p@{c.list_job('p')[0].id}"
    t0 = time.perf_counter()
    page = c.list_datum(job, number)
    out: dict[str, Any] = {"cold_ms": (time.perf_counter() - t0) * 1000}
    if len(page) != number:
        raise AssertionError(f"a page of {len(page)} datums, not {number}")
    t0 = time.perf_counter()
    ids = [d.id for d in c.list_datum(job)]
    out["all_s"] = time.perf_counter() - t0
    markers = {"first": None, "middle": ids[len(ids) // 2 - 1], "last": ids[-number - 1]}
    for where, marker in markers.items():
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            page = c.list_datum(job, number, marker)
            times.append((time.perf_counter() - t0) * 1000)
        start = 0 if marker is None else ids.index(marker) + 1
        if [d.id for d in page] != ids[start : start + number]:
            raise AssertionError(f"the {where} page is not datums {start}..{start + number}")
        out[f"{where}_ms"] = statistics.median(times)
    out["job"] = job
    return out


def child_datums(store: str, n: int, page: int) -> dict[str, Any]:
    """A job of ``n`` datums of ``true``; then, nothing changed, ``update_pipeline`` with the
    same spec and a commit writing one input file's own bytes again (each a job skipping all
    ``n``; seconds from the call to its return after the job); a commit changing one input file
    (one datum runs, the job forms and compares all ``n``); then ``list_datum`` pages (of that
    last job)."""
    with connect(store, "none") as c:
        out: dict[str, Any] = {"put_s": fill(c, n), "create_s": _create(c, true_spec())}
        out["job"] = job_of(c, processed=n, skipped=0)
        c0, t0 = cpu_s(), time.perf_counter()
        c.update_pipeline(true_spec())
        out["noop_s"], out["noop_cpu_s"] = time.perf_counter() - t0, cpu_s() - c0
        job_of(c, processed=0, skipped=n)
        c0, t0 = cpu_s(), time.perf_counter()
        c.put_file(f"in@master:/{name(0)}", content(0))
        out["recommit_s"], out["recommit_cpu_s"] = time.perf_counter() - t0, cpu_s() - c0
        job_of(c, processed=0, skipped=n)
        c0, t0 = cpu_s(), time.perf_counter()  # for comparison: one datum to run
        c.put_file(f"in@master:/{name(1)}", content(1) + b"changed\n")
        out["change1_s"], out["change1_cpu_s"] = time.perf_counter() - t0, cpu_s() - c0
        job_of(c, processed=1, skipped=n - 1)
        out["pages"] = page_times(c, page)
    return out


def child_pages(store: str, page: int) -> dict[str, Any]:
    """:func:`page_times` in a fresh process."""
    with connect(store, "none") as c:
        return page_times(c, page)


def child_w4_full(
    store: str,
    n: int,
    iterations: int,
    kind: str = "none",
    image: str | None = None,
    digest: str | None = None,
) -> dict[str, Any]:
    """W4's first full run: ``n`` files, the per-file pipeline over all of them."""
    with connect(store, kind) as c:
        put_s = fill(c, n)
        create_s = _create(c, per_file_spec(iterations, 1, image))
        job = job_of(c, processed=n, skipped=0, digest=digest)
        outs = len(c.list_file("p@master:/"))
        if outs != n:
            raise AssertionError(f"the output commit has {outs} files, not {n}")
    return {"put_s": put_s, "create_s": create_s, "job": job}


def child_w4_add(
    store: str, n: int, i: int, kind: str = "none", digest: str | None = None
) -> dict[str, Any]:
    """W4's timed step: put file ``i`` (``put_file`` returns after the job), then file ``i +
    1`` the same way in the same, now warm, process; with timers on the job's steps."""
    out: dict[str, Any] = {}
    t = job_timers()
    with connect(store, kind) as c:
        c.list_job("p")  # open the store's connections outside the timed call
        for key, j in (("add", i), ("add_warm", i + 1)):
            t.reset()
            t0 = time.perf_counter()
            c.put_file(f"in@master:/{name(j)}", content(j))
            out[f"{key}_s"] = time.perf_counter() - t0
            out[f"{key}_job"] = job_of(c, processed=1, skipped=n + j - i, digest=digest)
            if c.get_file(f"p@master:/{name(j)}") != content(j):
                raise AssertionError(f"output {name(j)} is not a copy of the input")
            out[f"{key}_timers_ms"] = {k.strip(): v * 1000 for k, v in t.totals.items()}
    return out


def child_check(store: str, n: int, i: int) -> dict[str, Any]:
    """After the CLI's put of file ``i``: its job processed 1 datum and skipped ``n``."""
    with connect(store, "none") as c:
        job = job_of(c, processed=1, skipped=n)
        if c.get_file(f"p@master:/{name(i)}") != content(i):
            raise AssertionError(f"output {name(i)} is not a copy of the input")
    return {"job": job}


def child_parallel(store: str, n: int, iterations: int, parallelism: int) -> dict[str, Any]:
    with connect(store, "none") as c:
        fill(c, n)
        create_s = _create(c, per_file_spec(iterations, parallelism, None))
        job = job_of(c, processed=n, skipped=0)
        durations = [d.duration_s or 0.0 for d in c.list_datum(f"p@{job['id']}")]
    busy = sum(durations)
    # concurrency: datum time per second of job (2.0 = both slots busy throughout)
    return {
        "create_s": create_s,
        "job": job,
        "datum_mean_ms": busy / len(durations) * 1000,
        "concurrency": busy / job["job_s"],
    }


# --------------------------------------------------------------------------------------------
# bare processes, sandboxes and containers


def child_spawn(argvs: dict[str, list[str]], n: int, order: list[str]) -> dict[str, Any]:
    """Each argv spawned ``n`` times with subprocess.run (output captured, as haathi does):
    seconds per spawn."""
    out: dict[str, Any] = {}
    for key in order:
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run(
                argvs[key],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=True,
            )
        out[key] = (time.perf_counter() - t0) / n
    return out


def child_pool(argv: list[str], n: int, workers: int) -> dict[str, Any]:
    """``argv`` run ``n`` times from a pool of ``workers`` threads: wall seconds."""

    def one(_: int) -> None:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(n)))
    return {"s": time.perf_counter() - t0}


def _container_specs(
    kinds: list[str], refs: dict[str, str], digests: dict[str, str]
) -> dict[str, containers.ContainerSpec]:
    """A resolved ``ContainerSpec`` per ``RUNTIME:IMAGE`` kind (checked against ``digests``)."""
    specs = {}
    for kind in kinds:
        runtime, _, image_name = kind.partition(":")
        if not image_name:
            continue
        image = containers.resolve_image(runtime, refs[image_name], "Never")
        if image.digest != digests[image_name]:
            raise AssertionError(f"{refs[image_name]} is now {image.digest}, not the run's")
        if runtime == "bwrap" and image_cache.cached_rootfs(image.digest) is None:
            raise AssertionError(
                f"{refs[image_name]} is not unpacked in {image_cache.cache_root()}"
            )
        specs[kind] = containers.ContainerSpec(runtime, image)
    return specs


def _open_box(
    kind: str, specs: dict[str, containers.ContainerSpec], scratch: Path
) -> tuple[sandbox.Sandbox, dict[str, str]]:
    """An open sandbox of ``kind`` (``none``, ``host_bwrap``, ``RUNTIME:IMAGE``) and the
    environment a command gets in it."""
    if kind in ("none", "host_bwrap"):
        path = os.environ.get("PATH", "/usr/bin:/bin")
        view = HostView().with_programs(["true"], path)
        return sandbox.open_sandbox(kind.removeprefix("host_"), scratch, view), {"PATH": path}
    return containers.open_container(specs[kind], scratch), specs[kind].env()


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
        for kind in kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]:
            scratch = Path(tempfile.mkdtemp(prefix="start-", dir=root))
            t0 = time.perf_counter()
            box, env = _open_box(kind, specs, scratch)
            try:
                (box.new_datum(["in"]) / "in").mkdir()
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


# --------------------------------------------------------------------------------------------
# images


def child_resolve(ref: str) -> dict[str, Any]:
    """The image ``ref`` names now (from local storage only)."""
    return dict(images.resolve(ref, "Never").to_dict())


def child_unpack(ref: str) -> dict[str, Any]:
    """Unpack ``ref`` into ``$HAATHI_IMAGE_CACHE`` (if it is not there yet)."""
    t0 = time.perf_counter()
    rootfs, made = image_cache.unpack(images.resolve(ref, "Never"))
    return {"rootfs": str(rootfs), "unpacked": made, "s": time.perf_counter() - t0}


def unpack_timers() -> Timers:
    """Timers on the image cache's unpacks that made something (``UNPACK``)."""
    t = Timers()
    unpack = image_cache.unpack

    def counted(image: image_sources.Image, root: Path | None = None) -> tuple[Path, bool]:
        t0 = time.perf_counter()
        rootfs, made = unpack(image, root)
        if made:
            t.add(UNPACK, time.perf_counter() - t0)
        return rootfs, made

    replace(image_cache, unpack, counted)
    return t


def child_unpack_job(
    store: str, pipeline: str, image: str, digest: str, first: bool
) -> dict[str, Any]:
    """A pipeline of one ``true`` datum in ``image`` under bwrap (``first``: the store is new
    and gets its input repo): create_pipeline time, its job, the unpacks it made."""
    t = unpack_timers()
    cache = image_cache.cache_root()
    before = sorted(os.listdir(cache)) if cache.exists() else []
    with connect(store, "bwrap") as c:
        if first:
            c.create_repo("in")
            c.put_file(f"in@master:/{name(0)}", content(0))
        c.list_job()  # open the store outside the timed call
        spec = true_spec(image) | {"pipeline": {"name": pipeline}}
        create_s = _create(c, spec)
        job = job_of(c, processed=1, skipped=0, digest=digest, pipeline=pipeline)
    return {
        "create_s": create_s,
        "job": job,
        "cache_entries_before": before,
        "unpacks": t.counts.get(UNPACK, 0),
        "unpack_s": t.totals.get(UNPACK, 0.0),
    }


# --------------------------------------------------------------------------------------------
# where the time goes


def job_timers() -> Timers:
    """Timers on the (public) steps of a job in this process."""
    t = unpack_timers()
    t.wrap(jobs, jobs.plan_job, "job: plan_job")
    t.wrap(jobs, isolation.isolation_for, "job: isolation_for (runtime, image, unpacked?)")
    t.wrap(containers, containers.resolve_runtime, "  resolve the runtime (probe it)")
    t.wrap(containers, containers.resolve_image, "  resolve the image (skopeo inspect)")
    t.wrap(jobs, worker.run_datum_set, "datum sets, total (run_datum_set)")
    t.wrap(worker, containers.open_container, "  per set: open_container (starts it)")
    t.wrap(worker, sandbox.open_sandbox, "  per set: open_sandbox (host)")
    t.wrap(sandbox.Sandbox, sandbox.Sandbox.close, "  per set: Sandbox.close")
    t.wrap(tempfile, tempfile.mkdtemp, "  per set: mkdtemp (scratch)")
    t.wrap(shutil, shutil.rmtree, "  rmtree (scratch)")
    t.wrap(worker, worker.run_datum, "  per datum: run_datum (inputs, user code, outputs)")
    t.wrap(sandbox.Sandbox, sandbox.Sandbox.new_datum, "    Sandbox.new_datum")
    t.wrap(sandbox.Sandbox, sandbox.Sandbox.run, "    Sandbox.run (the user code)")
    t.wrap(jobs, job_queue.end_job, "job: end_job")
    return t


def child_timers(
    store: str, n: int, kind: str, image: str | None = None, digest: str | None = None
) -> dict[str, Any]:
    """The ``true`` job of ``n`` datums with :func:`job_timers`: seconds per step, summed."""
    with connect(store, kind) as c:
        fill(c, n)
        t = job_timers()
        create_s = _create(c, true_spec(image))
        job = job_of(c, processed=n, skipped=0, digest=digest)
    return {"create_s": create_s, "job": job, "totals_s": t.totals, "counts": t.counts}


def child_profile(store: str, n: int, kind: str, out: str) -> dict[str, Any]:
    """The ``true`` job of ``n`` datums under cProfile, its datum threads included."""
    profiles: list[cProfile.Profile] = []
    run_datum_set = worker.run_datum_set

    def profiled(task: worker.DatumSetTask) -> list[worker.DatumResult]:
        prof = cProfile.Profile()
        profiles.append(prof)
        return prof.runcall(run_datum_set, task)

    replace(jobs, run_datum_set, profiled)
    with connect(store, kind) as c:
        fill(c, n)
        main = cProfile.Profile()
        t0 = time.perf_counter()
        main.runcall(c.create_pipeline, true_spec())
        create_s = time.perf_counter() - t0
        job = job_of(c, processed=n, skipped=0)
    stats = pstats.Stats(main)
    for p in profiles:
        stats.add(p)
    stats.dump_stats(out)
    return {"create_s": create_s, "job": job}


def child_profile_skip(store: str, n: int, which: str, out: str) -> dict[str, Any]:
    """``n`` processed datums, then cProfile of the skip path: one file added (``add``) or
    ``update_pipeline`` with the same spec (``noop``)."""
    with connect(store, "none") as c:
        fill(c, n)
        c.create_pipeline(true_spec())
        c.put_file(f"in@master:/{name(n)}", content(n))  # the add path once, warm
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        if which == "add":
            prof.runcall(c.put_file, f"in@master:/{name(n + 1)}", content(n + 1))
        else:
            prof.runcall(c.update_pipeline, true_spec())
        dt = time.perf_counter() - t0
        job = job_of(c, processed=1 if which == "add" else 0, skipped=n + 1)
    prof.dump_stats(out)
    return {"s": dt, "job": job}


OPS: dict[str, Callable[..., dict[str, Any]]] = {
    fn.__name__.removeprefix("child_"): fn
    for fn in (
        child_true_job,
        child_noop,
        child_datums,
        child_pages,
        child_w4_full,
        child_w4_add,
        child_check,
        child_parallel,
        child_spawn,
        child_pool,
        child_start,
        child_roundtrip,
        child_resolve,
        child_unpack,
        child_unpack_job,
        child_timers,
        child_profile,
        child_profile_skip,
    )
}

if __name__ == "__main__":
    sys.exit(child_main(OPS))
