"""Transactions (Pachyderm's ``start transaction`` ... ``finish transaction``): the requests a
transaction holds, what each answered when it was added, and the transaction itself.

A request is one of the frozen ops below; :func:`op_from_dict` reads the JSON form that
:meth:`to_dict` writes (``{"op": "create_branch", ...}``), which is how they are stored and
sent. :meth:`describe` is the line ``inspect transaction`` shows for it, as pachctl's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from haathi.errors import InvalidArgument
from haathi.models.ids import DEFAULT_PROJECT, is_commit_id, qualify, validate_repo_key
from haathi.models.refspec import CommitSpec, parse_commit
from haathi.models.trigger import Trigger


def _spec(data: dict[str, Any], key: str) -> CommitSpec:
    return parse_commit(_text(data, key))


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"a transaction request needs {key} (text)")
    return value


def _opt_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"a transaction request's {key} must be text")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"a transaction request's {key} must be true or false")
    return value


@dataclass(frozen=True, slots=True)
class CreateRepoOp:
    kind: ClassVar[str] = "create_repo"
    repo: str
    description: str = ""

    def describe(self, response: TxnResponse | None = None) -> str:
        return f"create repo {self.repo}"

    def fields(self) -> dict[str, Any]:
        return {"repo": self.repo, "description": self.description}

    @classmethod
    def read(cls, data: dict[str, Any]) -> CreateRepoOp:
        return cls(validate_repo_key(_text(data, "repo")), _opt_text(data, "description") or "")


@dataclass(frozen=True, slots=True)
class DeleteRepoOp:
    kind: ClassVar[str] = "delete_repo"
    repo: str
    force: bool = False

    def describe(self, response: TxnResponse | None = None) -> str:
        return f"delete repo {self.repo}" + (" --force" if self.force else "")

    def fields(self) -> dict[str, Any]:
        return {"repo": self.repo, "force": self.force}

    @classmethod
    def read(cls, data: dict[str, Any]) -> DeleteRepoOp:
        return cls(validate_repo_key(_text(data, "repo")), _flag(data, "force"))


@dataclass(frozen=True, slots=True)
class CreateBranchOp:
    kind: ClassVar[str] = "create_branch"
    branch: CommitSpec
    head: str | None = None
    trigger: Trigger | None = None

    def describe(self, response: TxnResponse | None = None) -> str:
        return f"create branch {self.branch}"

    def fields(self) -> dict[str, Any]:
        trigger = None if self.trigger is None else self.trigger.to_dict()
        return {"branch": str(self.branch), "head": self.head, "trigger": trigger}

    @classmethod
    def read(cls, data: dict[str, Any]) -> CreateBranchOp:
        trigger = data.get("trigger")
        if trigger is not None and not isinstance(trigger, dict):
            raise InvalidArgument("a transaction request's trigger must be an object")
        return cls(
            _spec(data, "branch"),
            _opt_text(data, "head"),
            None if trigger is None else Trigger.from_dict(trigger),
        )


@dataclass(frozen=True, slots=True)
class DeleteBranchOp:
    kind: ClassVar[str] = "delete_branch"
    branch: CommitSpec

    def describe(self, response: TxnResponse | None = None) -> str:
        return f"delete branch {self.branch}"

    def fields(self) -> dict[str, Any]:
        return {"branch": str(self.branch)}

    @classmethod
    def read(cls, data: dict[str, Any]) -> DeleteBranchOp:
        return cls(_spec(data, "branch"))


@dataclass(frozen=True, slots=True)
class StartCommitOp:
    kind: ClassVar[str] = "start_commit"
    branch: CommitSpec
    parent: str | None = None
    description: str = ""

    def describe(self, response: TxnResponse | None = None) -> str:
        commit = response.commit if response is not None else None
        return f"start commit {self.branch}" + (f" ({commit})" if commit else "")

    def fields(self) -> dict[str, Any]:
        return {
            "branch": str(self.branch),
            "parent": self.parent,
            "description": self.description,
        }

    @classmethod
    def read(cls, data: dict[str, Any]) -> StartCommitOp:
        return cls(
            _spec(data, "branch"), _opt_text(data, "parent"), _opt_text(data, "description") or ""
        )


@dataclass(frozen=True, slots=True)
class FinishCommitOp:
    kind: ClassVar[str] = "finish_commit"
    commit: CommitSpec
    description: str | None = None

    def describe(self, response: TxnResponse | None = None) -> str:
        return f"finish commit {self.commit}"

    def fields(self) -> dict[str, Any]:
        return {"commit": str(self.commit), "description": self.description}

    @classmethod
    def read(cls, data: dict[str, Any]) -> FinishCommitOp:
        return cls(_spec(data, "commit"), _opt_text(data, "description"))


@dataclass(frozen=True, slots=True)
class CreatePipelineOp:
    """``spec``: one pipeline spec document (as ``create pipeline`` takes it)."""

    kind: ClassVar[str] = "create_pipeline"
    spec: dict[str, Any]
    update: bool = False
    reprocess: bool = False

    @property
    def pipeline(self) -> str:
        """The pipeline's key, as the spec names it (``?`` if it names none)."""
        p = self.spec.get("pipeline")
        name = p.get("name") if isinstance(p, dict) else None
        project = p.get("project") if isinstance(p, dict) else None
        project = project.get("name") if isinstance(project, dict) else project
        if not isinstance(name, str) or not name:
            return "?"
        try:
            return qualify(name, project if isinstance(project, str) else DEFAULT_PROJECT)
        except InvalidArgument:
            return name

    def describe(self, response: TxnResponse | None = None) -> str:
        return f"{'update' if self.update else 'create'} pipeline {self.pipeline}"

    def fields(self) -> dict[str, Any]:
        return {"spec": self.spec, "update": self.update, "reprocess": self.reprocess}

    @classmethod
    def read(cls, data: dict[str, Any]) -> CreatePipelineOp:
        spec = data.get("spec")
        if not isinstance(spec, dict):
            raise InvalidArgument("a create pipeline request needs its spec (an object)")
        return cls(spec, _flag(data, "update"), _flag(data, "reprocess"))


TxnOp = (
    CreateRepoOp
    | DeleteRepoOp
    | CreateBranchOp
    | DeleteBranchOp
    | StartCommitOp
    | FinishCommitOp
    | CreatePipelineOp
)
_OPS: dict[str, type[TxnOp]] = {
    cls.kind: cls
    for cls in (
        CreateRepoOp,
        DeleteRepoOp,
        CreateBranchOp,
        DeleteBranchOp,
        StartCommitOp,
        FinishCommitOp,
        CreatePipelineOp,
    )
}


def op_to_dict(op: TxnOp) -> dict[str, Any]:
    """The JSON form of a request: ``{"op": KIND, ...its fields}``."""
    return {"op": op.kind, **op.fields()}


def op_from_dict(data: Any) -> TxnOp:
    """The request :func:`op_to_dict` wrote; InvalidArgument for anything else."""
    if not isinstance(data, dict):
        raise InvalidArgument("a transaction request must be an object")
    kind = data.get("op")
    cls = _OPS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(k.replace("_", " ") for k in _OPS)
        raise InvalidArgument(f"unknown transaction request {data.get('op')!r}: one of {known}")
    return cls.read(data)


@dataclass(frozen=True, slots=True)
class TxnResponse:
    """What a request answered when it was added (a dry run): ``commit`` is the commit a
    ``start commit`` makes (the transaction's ID) or a ``finish commit`` finishes, and a
    ``create pipeline``'s job. ``info``, in the answer to the request just added (not
    stored): what it made as the dry run saw it, the ``-o json`` shape of a RepoInfo
    (``create repo``), BranchInfo (``create branch``) or CommitInfo (``start|finish
    commit``)."""

    commit: str | None = None
    info: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "info": self.info}

    @classmethod
    def from_dict(cls, data: Any) -> TxnResponse:
        commit = data.get("commit") if isinstance(data, dict) else None
        info = data.get("info") if isinstance(data, dict) else None
        if commit is not None and not is_commit_id(commit):
            raise InvalidArgument(f"{commit!r} is not a commit ID")
        return cls(commit, info if isinstance(info, dict) else None)


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """A transaction: its ID (also the ID of the commits it starts), when it started, who
    started it, its requests in order and their responses."""

    id: str
    started: datetime
    created_by: str | None = None
    requests: tuple[TxnOp, ...] = ()
    responses: tuple[TxnResponse, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The ``-o json`` shape."""
        return {
            "id": self.id,
            "started": self.started.isoformat(),
            "created_by": self.created_by,
            "requests": [op_to_dict(op) for op in self.requests],
            "responses": [r.to_dict() for r in self.responses],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransactionInfo:
        return cls(
            str(data["id"]),
            datetime.fromisoformat(data["started"]),
            data.get("created_by"),
            tuple(op_from_dict(op) for op in data.get("requests", ())),
            tuple(TxnResponse.from_dict(r) for r in data.get("responses", ())),
        )

    def describe(self) -> list[str]:
        """The request lines of ``inspect transaction`` (pachctl's), ``  -`` if none."""
        if not self.requests:
            return ["  -"]
        out = []
        for i, op in enumerate(self.requests):
            response = self.responses[i] if i < len(self.responses) else None
            out.append(f"  {op.describe(response)}")
        return out
