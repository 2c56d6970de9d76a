"""Egress: a job whose datums succeeded writes its whole output commit to the spec's target.

As in Pachyderm, the job goes to EGRESSING once its output commit is made (finished, so that
downstream pipelines run), then writes every file of that commit: to an object store
(:mod:`haathi.pps.egress_s3`; files are overwritten, nothing is deleted there) or into the
tables of a SQL database (:mod:`haathi.pps.egress_sql`; one transaction). Unlike Pachyderm,
which retries a failing egress for ever and leaves the job EGRESSING, a target that refuses
fails the job with the reason (after :data:`MAX_ATTEMPTS` tries when the failure may pass: a
connection refused, a timeout, a server error). Every job egresses its whole output, so the
next job (a new input commit, or ``rerun pipeline``) retries; it builds on the failed job's
output and skips its datums.

It runs in the job's runner, with the runner's rights: credentials come from the secret the
spec names (opened here; user code never sees it) or, for an object store without one, the
runner's ``AWS_*`` environment. It never writes into the store's own object store or metadata
database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection

from haathi.config import mask_url
from haathi.errors import HaathiError, NotFound
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.pfs.files import read_files
from haathi.pps import secrets
from haathi.pps.context import PpsContext
from haathi.pps.egress_spec import OBJECT_STORAGE, S3_SECRET_KEYS, Egress

MAX_ATTEMPTS = 3
BACKOFF_S = (1.0, 2.0)  # before the second and the third attempt


class EgressFailed(Exception):
    """Why an egress attempt failed; ``transient``: another attempt may succeed."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class OutputFile:
    """A file of the output commit: its path, size and bytes (read only once, in order)."""

    path: str
    size: int
    chunks: Iterator[bytes]


Files = Callable[[], Iterator[OutputFile]]  # a new walk of the output commit (one per attempt)


@dataclass
class EgressRecord:
    """How a job's egress went (the job's ``egress`` field)."""

    target: str  # the URL, any password masked
    kind: str  # object_storage | sql_database
    state: str = "EGRESSING"  # then SUCCESS, FAILURE, or KILLED (the job was stopped)
    attempts: int = 0
    files: int = 0  # object storage: files and bytes written
    bytes: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # SQL: rows written per table
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "state": self.state}
        out["attempts"] = self.attempts
        if self.kind == OBJECT_STORAGE:
            out["files"], out["bytes"] = self.files, self.bytes
        else:
            out["rows"] = dict(self.rows)
        out["error"] = self.error
        return out

    @classmethod
    def start(cls, egress: Egress) -> EgressRecord:
        return cls(mask_url(egress.url), egress.kind)


@dataclass(frozen=True)
class S3Credentials:
    """Credentials from a secret (``repr`` shows none of them)."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint: str | None = None


def run_egress(
    ctx: PpsContext,
    pipeline: str,
    commit_id: str,
    egress: Egress,
    cancel: threading.Event,
    progress: Callable[[EgressRecord], None] = lambda _r: None,
) -> EgressRecord:
    """Egress output commit ``pipeline@commit_id``; the record says how it went (``state``
    SUCCESS or FAILURE, ``error`` why). ``progress`` hears of each attempt; ``cancel`` set
    (the job was stopped, or its runner is stopping) ends it early, FAILURE."""
    record = EgressRecord.start(egress)
    try:
        write = _writer(ctx, egress)
    except (HaathiError, EgressFailed) as exc:
        record.state, record.error = "FAILURE", f"egress to {record.target} failed: {exc}"
        return record

    def files() -> Iterator[OutputFile]:
        spec = FileSpec(CommitSpec(pipeline, commit_id), "/")
        for info, chunks in read_files(ctx.pfs, spec):
            if cancel.is_set():
                raise EgressFailed("the job was stopped")
            yield OutputFile(info.path, info.size_bytes, chunks)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        record.attempts = attempt
        progress(record)
        try:
            write(files, record, cancel)
        except EgressFailed as exc:
            record.error = f"egress to {record.target} failed: {exc.reason}"
            if not exc.transient or attempt == MAX_ATTEMPTS or cancel.wait(BACKOFF_S[attempt - 1]):
                break
            continue
        except HaathiError as exc:  # reading the output commit (a damaged blob, ...)
            record.error = f"egress to {record.target} failed: {exc}"
            break
        record.state, record.error = "SUCCESS", None
        return record
    record.state = "FAILURE"
    return record


Writer = Callable[[Files, EgressRecord, threading.Event], None]


def _writer(ctx: PpsContext, egress: Egress) -> Writer:
    """How to write to the egress target, its credentials opened: EgressFailed (or a
    HaathiError: a secret deleted since) if it cannot be written at all."""
    if egress.unsupported is not None:
        raise EgressFailed(egress.unsupported)
    if egress.kind == OBJECT_STORAGE:
        from haathi.pps import egress_s3

        creds = _s3_credentials(ctx, egress)
        target = egress_s3.S3Target.of(egress.url, creds)
        _refuse_own_objects(ctx, target)

        def write_objects(files: Files, record: EgressRecord, cancel: threading.Event) -> None:
            record.files, record.bytes = target.write(files(), cancel)

        return write_objects
    from haathi.pps import egress_sql

    assert egress.secret is not None and egress.secret.key is not None
    password = _open(ctx, egress.secret.name).get(egress.secret.key)
    if password is None:
        raise EgressFailed(f"secret {egress.secret.name} has no key {egress.secret.key}")
    db = egress_sql.Database.of(egress.url, password.decode("utf-8", "surrogateescape"))
    _refuse_own_database(ctx, db)

    def write_rows(files: Files, record: EgressRecord, cancel: threading.Event) -> None:
        record.rows = db.write(files(), egress.file_format, egress.columns, cancel)

    return write_rows


def _open(ctx: PpsContext, name: str) -> dict[str, bytes]:
    with ctx.pfs.db.read() as conn:
        return secrets.open_secret(conn, name, secrets.key_path(ctx))


def _s3_credentials(ctx: PpsContext, egress: Egress) -> S3Credentials | None:
    """The secret's credentials, or None: the runner's environment."""
    if egress.secret is None:
        return None
    opened = _open(ctx, egress.secret.name)
    values = {k: v.decode("utf-8", "surrogateescape") for k, v in opened.items()}
    missing = [k for k in S3_SECRET_KEYS if not values.get(k)]
    if missing:
        raise EgressFailed(f"secret {egress.secret.name} has no key {missing[0]}")
    return S3Credentials(
        values["AWS_ACCESS_KEY_ID"],
        values["AWS_SECRET_ACCESS_KEY"],
        values.get("AWS_SESSION_TOKEN") or None,
        values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION") or None,
        values.get("AWS_ENDPOINT_URL_S3") or values.get("AWS_ENDPOINT_URL") or None,
    )


def check_secret(conn: Connection, egress: Egress) -> None:
    """At create/update pipeline: the secret the egress names exists, with the keys it
    reads (NotFound, as for ``transform.secrets``)."""
    if egress.secret is None:
        return
    name = egress.secret.name
    keys = secrets.inspect_secret(conn, name).keys
    wanted = (egress.secret.key,) if egress.secret.key is not None else S3_SECRET_KEYS
    missing = [k for k in wanted if k not in keys]
    if missing:
        raise NotFound(f"secret {name} has no key {missing[0]} (egress needs it)", secret=name)


# ---- never into the store itself ------------------------------------------------------------


def _refuse_own_objects(ctx: PpsContext, target: Any) -> None:
    """An egress whose keys would land among the store's own objects is refused."""
    own = ctx.own_objects
    if own is None:
        return
    from haathi.pps.egress_s3 import env_endpoint

    bucket, prefix, endpoint = own
    if target.bucket != bucket or _norm(target.endpoint) != _norm(endpoint or env_endpoint()):
        return
    a, b = target.prefix.strip("/"), prefix.strip("/")
    if not a or not b or a == b or a.startswith(b + "/") or b.startswith(a + "/"):
        raise EgressFailed(
            f"s3://{bucket}/{target.prefix} is where this store keeps its own objects "
            f"(s3://{bucket}/{prefix}): egress may not write there"
        )


def _refuse_own_database(ctx: PpsContext, db: Any) -> None:
    """An egress into the store's own metadata database is refused."""
    if not ctx.own_db_url or not ctx.own_db_url.startswith("postgres"):
        return
    parts = urlsplit(ctx.own_db_url)
    own = (parts.hostname or "", parts.port or 5432, unquote(parts.path).strip("/"))
    if own == (db.host, db.port, db.dbname):
        raise EgressFailed(
            f"database {db.dbname} at {db.host}:{db.port} is this store's own metadata "
            "database: egress may not write there"
        )


def _norm(endpoint: str | None) -> str:
    return (endpoint or "").rstrip("/").lower()
