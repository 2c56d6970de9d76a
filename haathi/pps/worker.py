"""Running datums: materialize inputs, run the user's code, store its outputs.

A :class:`DatumSetTask` is self-contained and picklable, so the same function runs in a
thread of the job runner (local executor) or on a dask worker. It opens the store through
``task.store`` (a worker on another host must reach the same metadata DB and object store),
writes every output blob itself, and returns only file entries, logs and states.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from haathi.errors import FailedPrecondition, HaathiError
from haathi.models import paths
from haathi.models.ids import split_key
from haathi.models.info import DatumState
from haathi.models.secret import JobSecrets
from haathi.pfs.context import PfsContext
from haathi.pfs.ingest import ingest_stream
from haathi.pps.containers import ContainerSpec, open_container
from haathi.pps.context import StoreOpener
from haathi.pps.hostview import HostView
from haathi.pps.sandbox import RunResult, Sandbox, open_sandbox
from haathi.pps.sidecars import NO_GATEWAY, JobGateways, S3Bucket, Sidecar
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
    s3: bool = False  # a bucket of the job's S3 gateway, not under /pfs


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
    secrets: JobSecrets = field(default_factory=JobSecrets)  # values: in memory only
    gateways: JobGateways | None = None  # serves s3 inputs and s3_out (haathi.pps.sidecars)
    s3_out: bool = False  # the output is written through the gateway's bucket `out`

    @property
    def needs_gateway(self) -> bool:
        return self.s3_out or any(i.s3 for d in self.datums for i in d.inputs)


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
        if not (inp.empty_files or inp.s3):
            for _, chunks in inp.files:
                for digest, _ in iter_chunks(chunks):
                    yield digest


def _materialize(root: Path, datum: DatumTask, blobs: Iterator[bytes]) -> None:
    """Write the datum's input files below ``root``, taking their blobs from ``blobs`` (an s3
    input is read through the job's gateway instead)."""
    for inp in _pfs_inputs(datum):
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


def _pfs_inputs(datum: DatumTask) -> list[TaskInput]:
    """The inputs user code finds under ``/pfs``."""
    return [inp for inp in datum.inputs if not inp.s3]


def _buckets(datum: DatumTask) -> list[S3Bucket]:
    """The inputs user code finds in the job's S3 gateway."""
    return [S3Bucket(inp.name, inp.commit, inp.files) for inp in datum.inputs if inp.s3]


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
    project, name = split_key(task.pipeline)
    env["PACH_PIPELINE_NAME"] = name
    env["PPS_PROJECT_NAME"] = project  # (Pachyderm's name for it)
    return env


def _stdin(lines: Sequence[str]) -> str | None:
    return "\n".join(lines) + "\n" if lines else None


def _ingest_outputs(
    writer: BlobWriter, scratch: Path, pfs: str, datum: DatumTask
) -> tuple[list[FileEntry], str | None]:
    """Every file under ``/pfs/out`` as an entry tagged with the datum; or why it failed.

    A symlink into an input (``ln -s /pfs/images/a.png /pfs/out/``, Pachyderm's shuffle with
    ``empty_files``) becomes a copy of the input file without copying bytes; a symlink to
    another place under ``/pfs/out`` is followed as user code sees it. Any other symlink fails
    the datum: this runs on the host, with rights user code lacks, so a link to a host file
    (``/etc/shadow``, the store) must not be read. Pachyderm follows it, in the user's own
    container.
    """
    inputs = {
        f"{pfs}/{inp.name}{path}": chunks
        for inp in _pfs_inputs(datum)
        for path, chunks in inp.files
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
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # (no link left)
            with open(fd, "rb") as stream:
                return ingest_stream(writer, path, stream)

        return make

    walking: set[tuple[int, int]] = set()  # the directories being walked (a link loop)

    def walk(host_dir: Path, rel_dir: str) -> str | None:
        st = os.stat(host_dir)
        if (st.st_dev, st.st_ino) in walking:
            return f"output {'/' + rel_dir.rstrip('/')} is a symlink to a directory above it"
        walking.add((st.st_dev, st.st_ino))
        try:
            return walk_in(host_dir, rel_dir)
        finally:
            walking.discard((st.st_dev, st.st_ino))

    def walk_in(host_dir: Path, rel_dir: str) -> str | None:
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
                target = _within_out(scratch, pfs, f"{pfs}/out/{rel}")
                if target is None:
                    return (
                        f"output {'/' + rel} is a symlink to {seen}, which is neither an input"
                        " file nor a file under /pfs/out: write a copy of it instead"
                    )
                host = target
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


MAX_LINKS = 40  # symlinks followed in one path, at most (the kernel's limit)


def _within_out(scratch: Path, pfs: str, path: str) -> Path | None:
    """Where the sandbox path ``path`` leads on the host, every symlink on the way followed as
    user code sees it (an absolute target from the sandbox's root), when it ends at
    ``pfs``/out or an existing file or directory below it, with no symlink left in it; else
    None."""
    out = f"{pfs}/out"
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        done.append(name)
        here = "/" + "/".join(done)
        if not here.startswith(out + "/"):
            if out == here or out.startswith(here + "/"):
                continue  # (on the way down to /pfs/out)
            return None
        host = scratch / "pfs" / here[len(pfs) + 1 :]
        try:
            mode = os.lstat(host).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(host)
            done.pop()
            if target.startswith("/"):
                done = []
            todo[:0] = [p for p in target.split("/") if p]
    here = "/" + "/".join(done)
    inside = here == out or here.startswith(out + "/")
    return scratch / "pfs" / here[len(pfs) + 1 :] if inside else None


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
    log.append(_output_text(task.secrets.redact(res.output)))
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
    sidecar: Sidecar | None = None,
) -> DatumResult:
    """Run one datum with retries (and ``err_cmd`` after the last failure) in the datum set's
    sandbox; ``reads``: the set's input stream (default: the datum reads its own blobs);
    ``sidecar``: the set's S3 gateway (s3 inputs, ``s3_out``)."""
    t0, started = time.perf_counter(), time.time()
    cancel = cancel_event(task.job_id)
    tf = task.transform
    pfs = sandbox.pfs
    env = datum_env(task, datum, pfs)
    base = task.container.env() if task.container else host_env()
    run_env = base | dict(task.secrets.env) | env
    env |= task.secrets.masked_env()  # as the datum's record shows it
    if sidecar is not None:  # (not recorded: the token is the run's secret)
        run_env |= sidecar.env
        sidecar.serve(_buckets(datum))
    log: list[str] = []
    reason: str | None = None
    ok_codes = {0, *tf.accept_return_code}
    attempts = 0
    recovered = False
    code: int | None = None
    # the previous datum's inputs go
    inputs_dir = sandbox.new_datum([i.name for i in _pfs_inputs(datum)])
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
        log.append(_output_text(task.secrets.redact(res.output)))
        if sidecar is not None:
            sidecar.settle()  # what the run wrote to bucket `out` has landed in /pfs/out
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
        with (
            ctx.blobs.writer() as writer,
            _open(task, scratch) as sandbox,
            _sidecar(task, ctx, sandbox) as sidecar,
        ):
            for datum in task.datums:
                if cancel.is_set():
                    break
                results.append(run_datum(ctx, task, datum, writer, sandbox, reads, sidecar))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _sidecar(
    task: DatumSetTask, ctx: PfsContext, sandbox: Sandbox
) -> contextlib.AbstractContextManager[Sidecar | None]:
    """The datum set's S3 gateway, when it has s3 inputs or ``s3_out``."""
    if not task.needs_gateway:
        return contextlib.nullcontext()
    if task.gateways is None:
        raise FailedPrecondition(NO_GATEWAY)
    try:
        return Sidecar(
            task.gateways, ctx, sandbox, pipeline=task.pipeline, job_id=task.job_id,
            s3_out=task.s3_out,
        )  # fmt: skip
    except OSError as exc:
        raise FailedPrecondition(f"cannot start the job's S3 gateway: {exc}") from exc


def _open(task: DatumSetTask, scratch: Path) -> Sandbox:
    """The datum set's container, or its host sandbox showing the transform's programs."""
    mounts = secret_files(scratch, task.secrets)
    if task.container is not None:
        return open_container(task.container, scratch, mounts)
    tf = task.transform
    view = task.view.with_programs([*tf.cmd[:1], *tf.err_cmd[:1]], transform_path(tf))
    return open_sandbox(task.sandbox, scratch, view, mounts)


def transform_path(tf: Transform) -> str:
    """The ``PATH`` user code runs with on the host: the transform's, else the worker's."""
    return (host_env() | dict(tf.env)).get("PATH", "")


def secret_files(scratch: Path, secrets: JobSecrets) -> tuple[tuple[str, str], ...]:
    """The files of the secrets the transform mounts, written below ``S/secrets`` (owner
    only; removed with the scratch directory): (host directory, mount path) of each."""
    out = []
    for i, mount in enumerate(secrets.mounts):
        where = scratch / "secrets" / str(i)
        where.mkdir(mode=0o700, parents=True)
        for key, data in mount.files:
            fd = os.open(where / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        out.append((str(where), mount.mount_path))
    return tuple(out)


def register_store(key: str, ctx: PfsContext) -> None:
    """Let tasks run in this process use an already open store instead of opening one."""
    with _STORES_LOCK:
        _STORES[key] = ctx
