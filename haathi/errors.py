"""The one exception hierarchy of haathi.

Every error a user can see is a :class:`HaathiError`. Each class carries a stable ``code``, an
HTTP status and a process exit code; this module is the only place those mappings live.
Library errors are translated where the library is called (``raise ... from exc``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class HaathiError(Exception):
    """Base of every haathi error: a one-line message plus optional structured details."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON envelope an error travels in (over HTTP, or with ``-o json``)."""
        return {"code": self.code, "message": self.message, "details": self.details}


class NotFound(HaathiError, LookupError):
    """A repo, branch, commit, file or other object does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 3


class InvalidArgument(HaathiError, ValueError):
    """The request itself is malformed: a bad name, path, refspec or option."""

    code = "invalid_argument"
    http_status = 400
    exit_code = 2


class TooLarge(InvalidArgument):
    """A request (an upload) is larger than the server accepts."""

    code = "too_large"
    http_status = 413


class AlreadyExists(HaathiError):
    """An object with that name already exists."""

    code = "already_exists"
    http_status = 409
    exit_code = 4


class Conflict(HaathiError):
    """A concurrent change won a race (retry may succeed)."""

    code = "conflict"
    http_status = 409
    exit_code = 5


class FailedPrecondition(HaathiError):
    """The object is in the wrong state for this operation (e.g. a finished commit)."""

    code = "failed_precondition"
    http_status = 412
    exit_code = 6


class PermissionDenied(HaathiError):
    """The caller is known but lacks the role for this operation."""

    code = "permission_denied"
    http_status = 403
    exit_code = 7


class Unauthenticated(HaathiError):
    """The caller did not prove who they are."""

    code = "unauthenticated"
    http_status = 401
    exit_code = 8


class Corrupt(HaathiError):
    """Stored data does not match its hash or cannot be decoded."""

    code = "corrupt"
    http_status = 500
    exit_code = 9


class StorageError(HaathiError):
    """The object store or metadata database failed; ``retryable`` when it may pass if the
    operation runs again (a lock, a lost race, a lost connection)."""

    code = "storage"
    http_status = 503
    exit_code = 10

    def __init__(self, message: str, *, retryable: bool = False, **details: Any) -> None:
        super().__init__(message, **details)
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        """The envelope; ``details.retryable`` is true when it is (``from_dict`` restores it)."""
        out = super().to_dict()
        if self.retryable:
            out["details"] = {**self.details, "retryable": True}
        return out


class IncompatibleStore(FailedPrecondition):
    """The store was written by a newer haathi, is not a haathi store, or its metadata and
    objects are not one store's (missing, empty or foreign metadata: see pfs/identity.py)."""

    code = "incompatible_store"


ERROR_CLASSES: dict[str, type[HaathiError]] = {
    cls.code: cls
    for cls in (
        HaathiError,
        NotFound,
        InvalidArgument,
        TooLarge,
        AlreadyExists,
        Conflict,
        FailedPrecondition,
        PermissionDenied,
        Unauthenticated,
        Corrupt,
        StorageError,
        IncompatibleStore,
    )
}


def from_dict(envelope: dict[str, Any]) -> HaathiError:
    """Rebuild the error a remote side raised from its JSON envelope (a ``StorageError``'s
    ``details.retryable`` becomes its ``retryable`` again)."""
    cls = ERROR_CLASSES.get(str(envelope.get("code")), HaathiError)
    return cls(str(envelope.get("message", "")), **dict(envelope.get("details") or {}))
