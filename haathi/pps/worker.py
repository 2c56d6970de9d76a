"""Running datums: materialize inputs, run the user's code, store its outputs.

A :class:`DatumSetTask` is self-contained and picklable, so the same function runs in a
thread of the job runner (local executor) or on a dask worker. It opens the store through
``task.store`` (a worker on another host must reach the same metadata DB and object store),
writes every output blob itself, and returns only file entries, logs and states.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from haathi.errors import HaathiError
from haathi.models import paths
from haathi.models.info import DatumState
from haathi.pfs.context import PfsContext
from haathi.pfs.ingest import ingest_stream
from haathi.pps.containers import ContainerSpec, open_container
from haathi.pps.context import StoreOpener
from haathi.pps.hostview import HostView
from haathi.pps.sandbox import RunResult, Sandbox, open_sandbox
from haathi.pps.transform_spec import Transform
from haathi.storage.blobs import BlobWriter
from haathi.tree.entry import FileEntry, iter_chunks

# Jobs being cancelled in this process (local executor threads poll these).
_CANCEL: dict[str, threading.Event] = {}
_CANCEL_LOCK = threading.Lock()
# The store, opened once per worker process.
_STORES: dict[str, PfsContext] = {}
_STORES_LOCK = threading.Lock()

HOST_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "CONDA_PREFIX",
    "LD_LIBRARY_PATH",
)


def host_env() -> dict[str, str]:
    """The variables user code inherits from the process running it (:data:`HOST_ENV`)."""
    return {k: os.environ[k] for k in HOST_ENV if k in os.environ}


def cancel_event(job_id: str) -> threading.Event:
    """The event that cancels job ``job_id``'s datums running in this process."""
    with _CANCEL_LOCK:
        return _CANCEL.setdefault(job_id, threading.Event())


def forget_job(job_id: str) -> None:
    with _CANCEL_LOCK:
        _CANCEL.pop(job_id, None)


@dataclass(frozen=True, slots=True)
class TaskInput:
    """One input of a datum: where it appears and which stored files it holds."""

    name: str
    path: str
    commit: str
    is_dir: bool
    files: tuple[tuple[str, bytes], ...]  # (path in the repo, packed chunk list)
    join_on: str | None = None
    group_by: str | None = None
    empty_files: bool = False


@dataclass(frozen=True, slots=True)
class DatumTask:
    datum_id: str
    inputs: tuple[TaskInput, ...]


@dataclass(frozen=True, slots=True)
class DatumSetTask:
    store: StoreOpener
    store_key: str  # names the store: tasks of one store share one opened copy per process
    pipeline: str
    job_id: str
    transform: Transform
    datum_tries: int
    datum_timeout: float | None
    sandbox: str
    scratch_root: str | None
    datums: tuple[DatumTask, ...]
    view: HostView = field(default_factory=HostView)  # what of the host bwrap shows
    container: ContainerSpec | None = None  # run in a container of an image, not the host


@dataclass(frozen=True, slots=True)
class DatumResult:
    datum_id: str
    state: DatumState
    attempts: int
    outputs: tuple[FileEntry, ...]
    log: str
    env: dict[str, str]
    reason: str | None
    started_at: float
    duration: float
    digests: tuple[bytes, ...] = field(default=())  # every output chunk (gc bookkeeping)
    exit_code: int | None = None  # of the last attempt (None: never ran, timed out, killed)


def _store(task: DatumSetTask) -> PfsContext:
    with _STORES_LOCK:
        ctx = _STORES.get(task.store_key)
        if ctx is None:
            ctx = _STORES[task.store_key] = task.store()
        return ctx


def _input_digests(datum: DatumTask) -> Iterator[bytes]:
    """The blobs of the datum's input files, in the order :func:`_materialize` writes them."""
    for inp in datum.inputs:
        if not inp.empty_files:
            for _, chunks in inp.files:
                for digest, _ in iter_chunks(chunks):
                    yield digest


def _materialize(root: Path, datum: DatumTask, blobs: Iterator[bytes]) -> None:
    """Write the datum's input files below ``root``, taking their blobs from ``blobs``."""
    for inp in datum.inputs:
        base = root / inp.name
        base.mkdir(parents=True, exist_ok=True)
        for path, chunks in inp.files:
            dest = base / path.lstrip("/")
            if dest.parent != base:
                dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as f:
                if inp.empty_files:
                    continue
                for _ in iter_chunks(chunks):
                    f.write(next(blobs))


class InputReads:
    """The input blobs of a datum set's datums, read as one stream in datum order: locations
    are looked up, and adjacent blobs read, in batches across datums (a datum of one small
    file no longer costs a metadata query of its own). After a read error the stream is
    dropped and every datum from then on reads its own blobs, so a missing or corrupt blob
    fails the datum that needs it and no other."""

    def __init__(self, ctx: PfsContext, datums: Sequence[DatumTask]) -> None:
        self._ctx = ctx
        digests = (d for datum in datums for d in _input_digests(datum))
        self._stream: Iterator[bytes] | None = ctx.blobs.iter_blobs(digests)

    def materialize(self, root: Path, datum: DatumTask) -> None:
        """Write the input files of ``datum``, the next datum of the set, below ``root``."""
        if self._stream is not None:
            try:
                return _materialize(root, datum, self._stream)
            except HaathiError:
                self._stream = None  # where it stood is lost: read this datum's on its own
        _materialize(root, datum, self._ctx.blobs.iter_blobs(_input_digests(datum)))


def datum_env(task: DatumSetTask, datum: DatumTask, pfs: str) -> dict[str, str]:
    """The variables Pachyderm gives user code, plus the transform's ``env``."""
    env = dict(task.transform.env)
    for inp in datum.inputs:
        env[inp.name] = pfs + "/" + inp.name + (inp.path if inp.path != "/" else "")
        env[f"{inp.name}_COMMIT"] = inp.commit
        if inp.join_on is not None:
            env[f"PACH_DATUM_{inp.name}_JOIN_ON"] = inp.join_on
        if inp.group_by is not None:
            env[f"PACH_DATUM_{inp.name}_GROUP_BY"] = inp.group_by
    env["PACH_DATUM_ID"] = datum.datum_id
    env["PACH_JOB_ID"] = task.job_id
    env["PACH_OUTPUT_COMMIT_ID"] = task.job_id
    env["PACH_PIPELINE_NAME"] = task.pipeline
    return env


def _stdin(lines: Sequence[str]) -> str | None:
    return "\n".join(lines) + "\n" if lines else None


def _ingest_outputs(
    writer: BlobWriter, scratch: Path, pfs: str, datum: DatumTask
) -> tuple[list[FileEntry], str | None]:
    """Every file under ``/pfs/out`` as an entry tagged with the datum; or why it failed.

    A symlink into an input (``ln -s /pfs/images/a.png /pfs/out/``, Pachyderm's shuffle with
    ``empty_files``) becomes a copy of the input file without copying bytes; other symlinks
    are followed.
    """
    inputs = {
        f"{pfs}/{inp.name}{path}": chunks for inp in datum.inputs for path, chunks in inp.files
    }
    out = scratch / "pfs" / "out"
    entries: list[FileEntry] = []

    def add(rel: str, make: Callable[[str], FileEntry]) -> str | None:
        try:
            path = paths.normalize_for_write("/" + rel)
        except HaathiError as exc:
            return f"invalid output file name {'/' + rel!r}: {exc}"
        e = make(path)
        entries.append(FileEntry(e.path, e.size, e.hash, e.chunks, datum.datum_id))
        return None

    def from_host(host: Path) -> Callable[[str], FileEntry]:
        def make(path: str) -> FileEntry:
            with open(host, "rb") as stream:
                return ingest_stream(writer, path, stream)

        return make

    def walk(host_dir: Path, rel_dir: str) -> str | None:
        for item in sorted(os.scandir(host_dir), key=lambda d: d.name):
            rel = f"{rel_dir}{item.name}"
            host = Path(item.path)
            if item.is_symlink():
                seen = posixpath.normpath(posixpath.join(f"{pfs}/out/{rel_dir}", os.readlink(host)))
                linked = [
                    (k, c) for k, c in inputs.items() if k == seen or k.startswith(seen + "/")
                ]
                for key, chunks in linked:
                    sub = rel + key[len(seen) :]
                    made = add(sub, _copy_of(chunks))
                    if made:
                        return made
                if linked:
                    continue
                inside = seen.startswith(pfs + "/")
                host = scratch / "pfs" / seen.removeprefix(pfs + "/") if inside else Path(seen)
                if not host.exists():
                    return f"output {'/' + rel} is a symlink to {seen}, which does not exist"
            if host.is_dir():
                err = walk(host, rel + "/")
            elif host.is_file():
                err = add(rel, from_host(host))
            else:
                err = None
            if err:
                return err
        return None

    reason = walk(out, "")
    return ([], reason) if reason else (entries, None)


def _copy_of(chunks: bytes) -> Callable[[str], FileEntry]:
    """An entry maker for a metadata-only copy of an input file's chunks."""

    def make(path: str) -> FileEntry:
        return FileEntry.from_chunks(path, list(iter_chunks(chunks)))

    return make


def _attempt_header(n: int, tries: int, res: RunResult, timeout: float | None) -> str:
    if res.timed_out:
        why = f"timed out after {timeout:g}s"
    elif res.cancelled:
        why = "cancelled"
    elif res.returncode is None:
        why = "the sandbox failed"
    else:
        why = f"exit code {res.returncode}"
    return f"haathi: attempt {n} of {tries} failed: {why}\n"


def _run_err_cmd(
    task: DatumSetTask,
    env: dict[str, str],
    sandbox: Sandbox,
    cancel: threading.Event,
    log: list[str],
) -> bool:
    """Run ``err_cmd`` after a failed attempt (as Pachyderm); True if it exited 0."""
    tf = task.transform
    if cancel.is_set():
        return False
    res = sandbox.run(
        tf.err_cmd,
        stdin=_stdin(tf.err_stdin),
        env=env,
        working_dir=tf.working_dir,
        timeout=task.datum_timeout,
        cancel=cancel,
    )
    log.append(_output_text(res.output))
    return res.returncode == 0


def _output_text(output: bytes) -> str:
    """User code's output as log text: bad UTF-8 and NUL (PostgreSQL cannot store it in text)
    become U+FFFD."""
    return output.decode("utf-8", "replace").replace("\x00", "\ufffd")


def run_datum(
    ctx: PfsContext,
    task: DatumSetTask,
    datum: DatumTask,
    writer: BlobWriter,
    sandbox: Sandbox,
    reads: InputReads | None = None,
) -> DatumResult:
    """Run one datum with retries (and ``err_cmd`` after the last failure) in the datum set's
    sandbox; ``reads``: the set's input stream (default: the datum reads its own blobs)."""
    t0, started = time.perf_counter(), time.time()
    cancel = cancel_event(task.job_id)
    tf = task.transform
    pfs = sandbox.pfs
    env = datum_env(task, datum, pfs)
    run_env = (task.container.env() if task.container else host_env()) | env
    log: list[str] = []
    reason: str | None = None
    ok_codes = {0, *tf.accept_return_code}
    attempts = 0
    recovered = False
    code: int | None = None
    inputs_dir = sandbox.new_datum([i.name for i in datum.inputs])  # the previous datum's go
    try:
        (reads or InputReads(ctx, [datum])).materialize(inputs_dir, datum)
    except HaathiError as exc:
        return DatumResult(
            datum.datum_id,
            DatumState.FAILED,
            0,
            (),
            "",
            env,
            f"cannot read the datum's inputs: {exc}",
            started,
            time.perf_counter() - t0,
        )
    for attempts in range(1, task.datum_tries + 1):
        sandbox.clear_out()  # each attempt starts with an empty /pfs/out
        res = sandbox.run(
            tf.cmd,
            stdin=_stdin(tf.stdin),
            env=run_env,
            working_dir=tf.working_dir,
            timeout=task.datum_timeout,
            cancel=cancel,
        )
        log.append(_output_text(res.output))
        code = res.returncode
        if res.returncode in ok_codes and not res.timed_out and not res.cancelled:
            entries, reason = _ingest_outputs(writer, sandbox.scratch, pfs, datum)
            if reason is None:
                digests = tuple(d for e in entries for d, _ in iter_chunks(e.chunks))
                return DatumResult(
                    datum.datum_id,
                    DatumState.SUCCESS,
                    attempts,
                    tuple(entries),
                    "".join(log),
                    env,
                    None,
                    started,
                    time.perf_counter() - t0,
                    digests,
                    code,
                )
            log.append(f"haathi: {reason}\n")
            continue
        log.append(_attempt_header(attempts, task.datum_tries, res, task.datum_timeout))
        reason = log[-1].removeprefix("haathi: ").strip()
        if res.cancelled:
            break
        recovered = bool(tf.err_cmd) and _run_err_cmd(task, run_env, sandbox, cancel, log)
    state = DatumState.FAILED
    if recovered:
        state = DatumState.RECOVERED
        log.append("haathi: err_cmd succeeded after the last attempt: datum RECOVERED\n")
    return DatumResult(
        datum.datum_id,
        state,
        attempts,
        (),
        "".join(log),
        env,
        reason,
        started,
        time.perf_counter() - t0,
        exit_code=code,
    )


def run_datum_set(task: DatumSetTask) -> list[DatumResult]:
    """Run every datum of the set in order, in one sandbox (as a Pachyderm worker runs its
    datums in one user container); outputs are durable when this returns."""
    ctx = _store(task)
    results: list[DatumResult] = []
    root = Path(task.scratch_root or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    cancel = cancel_event(task.job_id)
    scratch = Path(tempfile.mkdtemp(prefix="datums-", dir=root))
    try:
        reads = InputReads(ctx, task.datums)
        with ctx.blobs.writer() as writer, _open(task, scratch) as sandbox:
            for datum in task.datums:
                if cancel.is_set():
                    break
                results.append(run_datum(ctx, task, datum, writer, sandbox, reads))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _open(task: DatumSetTask, scratch: Path) -> Sandbox:
    """The datum set's container, or its host sandbox showing the transform's programs."""
    if task.container is not None:
        return open_container(task.container, scratch)
    tf = task.transform
    path = (host_env() | dict(tf.env)).get("PATH", "")
    view = task.view.with_programs([*tf.cmd[:1], *tf.err_cmd[:1]], path)
    return open_sandbox(task.sandbox, scratch, view)


def register_store(key: str, ctx: PfsContext) -> None:
    """Let tasks run in this process use an already open store instead of opening one."""
    with _STORES_LOCK:
        _STORES[key] = ctx
