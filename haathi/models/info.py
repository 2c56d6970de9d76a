"""Frozen value types the API returns. Their ``to_dict`` is the stable ``-o json`` shape."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from haathi.errors import InvalidArgument
from haathi.models.ids import split_key

InfoT = TypeVar("InfoT", bound="_Info")


class Origin(str, Enum):
    USER = "USER"
    AUTO = "AUTO"


class CommitState(str, Enum):
    STARTED = "STARTED"
    FINISHED = "FINISHED"


class FileType(str, Enum):
    FILE = "file"
    DIR = "dir"


class ChangeKind(str, Enum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _decode(tp: Any, value: Any) -> Any:
    """``value`` (from JSON) as type ``tp``: the inverse of :func:`_jsonable`."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(args[0], value) if len(args) == 1 else value
    if origin is tuple:
        return tuple(_decode(typing.get_args(tp)[0], v) for v in value)
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return tp(value)
        if issubclass(tp, datetime):
            return datetime.fromisoformat(value)
        if issubclass(tp, _Info):
            return tp.from_dict(value)
    return value


class _Info:
    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (enums as strings, datetimes as ISO 8601)."""
        out = _jsonable(self)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_dict(cls: type[InfoT], data: dict[str, Any]) -> InfoT:
        """The value whose :meth:`to_dict` is ``data`` (what a remote client reads)."""
        hints = typing.get_type_hints(cls)
        kwargs = {
            f.name: _decode(hints[f.name], data[f.name])
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name in data
        }
        return cls(**kwargs)


def _project_of(info: Any, key: str) -> None:
    """Fill an info's ``project`` field from the key it names (``project/name``)."""
    object.__setattr__(info, "project", split_key(key)[0])


@dataclass(frozen=True, slots=True)
class ProjectInfo(_Info):
    name: str
    description: str
    created: datetime
    created_by: str | None = None  # the subject that created it (None: before auth, or root)
    metadata: dict[str, str] = field(default_factory=dict)
    # with auth on, the caller's roles and permissions on it (None: auth is off)
    roles: tuple[str, ...] | None = None
    permissions: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class RepoInfo(_Info):
    name: str  # the key: ``project/name``, or the bare name in the default project
    description: str
    created: datetime
    size_bytes: int
    branches: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)  # user key/value annotations
    project: str = ""  # filled from ``name``

    def __post_init__(self) -> None:
        _project_of(self, self.name)


@dataclass(frozen=True, slots=True)
class BranchInfo(_Info):
    repo: str
    name: str
    head: str | None
    created: datetime
    metadata: dict[str, str] = field(default_factory=dict)  # user key/value annotations
    # Pachyderm's Trigger (models/trigger.py): {"branch": ..., and the conditions set}
    trigger: dict[str, Any] | None = None
    project: str = ""  # filled from ``repo``

    def __post_init__(self) -> None:
        _project_of(self, self.repo)


@dataclass(frozen=True, slots=True)
class CommitInfo(_Info):
    repo: str
    id: str
    branch: str | None
    parent: str | None
    origin: Origin
    state: CommitState
    description: str
    started: datetime
    finished: datetime | None
    size_bytes: int
    file_count: int
    error: str | None = None
    children: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()  # repo@commit this commit was made from (direct)
    pipeline_version: str | None = None  # "pipeline@vN" for a pipeline's output commit
    author: str | None = None  # who made a user commit (None for pipeline output commits)
    metadata: dict[str, str] = field(default_factory=dict)  # user key/value annotations
    # Filled by inspect commit only (repo@commit, nearest first):
    full_provenance: tuple[str, ...] = ()  # every upstream commit, back to user commits
    subvenance: tuple[str, ...] = ()  # every commit made from this one, transitively
    project: str = ""  # filled from ``repo``

    def __post_init__(self) -> None:
        _project_of(self, self.repo)


@dataclass(frozen=True, slots=True)
class FileInfo(_Info):
    repo: str
    commit: str
    path: str
    type: FileType
    size_bytes: int
    hash: str | None = None
    chunks: int = 0
    datum: str | None = None

    def span(self, offset: int = 0, length: int | None = None) -> tuple[int, int]:
        """[start, end) of the bytes a read from ``offset`` of at most ``length`` bytes
        returns (empty past the end of the file)."""
        end = self.size_bytes if length is None else min(self.size_bytes, offset + length)
        return min(offset, end), end

    @property
    def list_key(self) -> str:
        """Where it sorts among its directory's entries (``list file``'s order, and what its
        ``start`` compares): its path, a directory's followed by ``/`` (with the files below
        it)."""
        return self.path + "/" if self.type is FileType.DIR else self.path


@dataclass(frozen=True, slots=True)
class DiffEntry(_Info):
    path: str
    change: ChangeKind
    new: FileInfo | None = None
    old: FileInfo | None = None


@dataclass(frozen=True, slots=True)
class Problem(_Info):
    """One finding of ``fsck``: what is wrong, how bad, and how to repair it."""

    severity: str  # "error" | "warning"
    kind: str
    subject: str
    message: str
    repair: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class JobState(str, Enum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    EGRESSING = "EGRESSING"  # its datums succeeded; its output commit is being egressed
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    KILLED = "KILLED"
    UNRUNNABLE = "UNRUNNABLE"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.CREATED, JobState.RUNNING, JobState.EGRESSING)

    @classmethod
    def parse(cls, name: str) -> JobState:
        """A state by name as pachctl takes it: any case, with or without ``JOB_``;
        ``EGRESS`` is ``EGRESSING`` (pachctl's help names it so)."""
        canon = name.strip().upper().removeprefix("JOB_")
        canon = {"EGRESS": "EGRESSING"}.get(canon, canon)
        if canon not in cls.__members__:
            names = ", ".join(s.value.lower() for s in cls)
            raise InvalidArgument(f"state {name[:40]!r} must be one of {names}")
        return cls(canon)


class DatumState(str, Enum):
    STARTING = "STARTING"
    SUCCESS = "SUCCESS"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    RECOVERED = "RECOVERED"

    @classmethod
    def parse(cls, name: str) -> DatumState:
        """A state by name, in any case (``failed``, ``SKIPPED``)."""
        canon = name.strip().upper()
        if canon not in cls.__members__:
            names = ", ".join(s.value.lower() for s in cls)
            raise InvalidArgument(f"datum state {name[:40]!r} must be one of {names}")
        return cls(canon)


@dataclass(frozen=True, slots=True)
class PipelineInfo(_Info):
    name: str
    version: int
    state: str  # RUNNING | PAUSED; a spout's or service's: STARTING | RUNNING | CRASHING | PAUSED
    spec: dict[str, Any]
    created: datetime
    updated: datetime
    inputs: tuple[str, ...]  # input repo@branch, in spec order
    output_branch: str
    last_job: str | None = None  # the newest job's state
    notes: tuple[str, ...] = ()
    project: str = ""  # filled from ``name``
    reason: str | None = None  # why a spout or service is in its state (e.g. CRASHING)
    # a spout's or service's program: kind, state, reason, runner (the worker running it),
    # restarts, address (127.0.0.1:PORT where a service is published), job (the one served)
    daemon: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _project_of(self, self.name)


@dataclass(frozen=True, slots=True)
class JobInfo(_Info):
    pipeline: str
    id: str
    state: JobState
    version: int
    created: datetime
    started: datetime | None
    finished: datetime | None
    data_total: int = 0
    data_processed: int = 0
    data_skipped: int = 0
    data_failed: int = 0
    data_recovered: int = 0
    reason: str | None = None
    inputs: tuple[str, ...] = ()  # repo@commit the job read
    output_commit: str = ""  # pipeline@id
    context: dict[str, Any] = field(default_factory=dict)
    # the spec's egress as this job ran it: target, state, attempts, files and bytes or rows
    # per table, error (None: the pipeline has no egress, or the job did not reach it)
    egress: dict[str, Any] | None = None
    project: str = ""  # filled from ``pipeline``

    def __post_init__(self) -> None:
        _project_of(self, self.pipeline)


@dataclass(frozen=True, slots=True)
class DatumInfo(_Info):
    job: str  # pipeline@job id
    id: str
    state: DatumState
    hash: str
    attempts: int
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    started: datetime | None = None
    duration_s: float | None = None
    exit_code: int | None = None  # of the last attempt (None: not run, timed out or killed)


@dataclass(frozen=True, slots=True)
class LogLine(_Info):
    """One line a spout's or service's program printed (stdout and stderr; the values of its
    secrets masked)."""

    seq: int  # grows with each line the pipeline's program prints: ``since`` of the next read
    at: datetime
    run: int  # which start of the program printed it (1, 2, ...: it is started again)
    text: str


@dataclass
class JobProgress:
    """What a job runner reports as a job advances."""

    pipeline: str
    job: str
    state: JobState
    total: int = 0
    skipped: int = 0
    done: int = 0  # datums run so far (any outcome)
    failed: int = 0
    reason: str | None = None
    sandbox: str = ""  # where its user code runs: "bwrap", or "none (why)"


@dataclass
class RunSummary:
    """What a job runner did, and the jobs it left queued with the reason each waits."""

    ran: dict[str, JobState] = field(default_factory=dict)  # "pipeline@id" -> final state
    waiting: dict[str, str] = field(default_factory=dict)  # "pipeline@id" -> why

    def to_dict(self) -> dict[str, Any]:
        return {"ran": {k: v.value for k, v in self.ran.items()}, "waiting": dict(self.waiting)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        return cls(
            {k: JobState(v) for k, v in data.get("ran", {}).items()},
            dict(data.get("waiting", {})),
        )
