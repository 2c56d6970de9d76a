"""The one place errors become S3 error codes.

Everything the gateway raises is a :class:`haathi.errors.HaathiError`. A condition only S3 has
a name for (``InvalidRange``, ``NoSuchUpload``, ``SignatureDoesNotMatch``, ...) is raised with
:func:`s3_error`: an error of the haathi family that fits, carrying the S3 code in its details.
:func:`s3_code` turns any haathi error into the (status, code) S3 clients expect.
"""

from __future__ import annotations

from typing import Any

from haathi.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    HaathiError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StorageError,
    TooLarge,
    Unauthenticated,
)

S3_CODE = "s3_code"

# S3 code -> (the haathi family raised for it, HTTP status)
CODES: dict[str, tuple[type[HaathiError], int]] = {
    "AccessDenied": (PermissionDenied, 403),
    "AuthorizationHeaderMalformed": (InvalidArgument, 400),
    "AuthorizationQueryParametersError": (InvalidArgument, 400),
    "BadDigest": (InvalidArgument, 400),
    "BucketAlreadyOwnedByYou": (AlreadyExists, 409),
    "EntityTooLarge": (TooLarge, 400),
    "IncompleteBody": (InvalidArgument, 400),
    "InternalError": (HaathiError, 500),
    "InvalidAccessKeyId": (Unauthenticated, 403),
    "InvalidArgument": (InvalidArgument, 400),
    "InvalidBucketName": (InvalidArgument, 400),
    "InvalidDigest": (InvalidArgument, 400),
    "InvalidPart": (InvalidArgument, 400),
    "InvalidPartOrder": (InvalidArgument, 400),
    "InvalidRange": (InvalidArgument, 416),
    "InvalidRequest": (InvalidArgument, 400),
    "InvalidURI": (InvalidArgument, 400),
    "MalformedXML": (InvalidArgument, 400),
    "MethodNotAllowed": (InvalidArgument, 405),
    "NoSuchBucket": (NotFound, 404),
    "NoSuchKey": (NotFound, 404),
    "NoSuchUpload": (NotFound, 404),
    "NotImplemented": (InvalidArgument, 501),
    "OperationAborted": (Conflict, 409),
    "RequestTimeTooSkewed": (Unauthenticated, 403),
    "ServiceUnavailable": (StorageError, 503),
    "SignatureDoesNotMatch": (Unauthenticated, 403),
    "SlowDown": (FailedPrecondition, 503),
    "XAmzContentSHA256Mismatch": (InvalidArgument, 400),
}

# haathi family -> S3 code, most specific class first (NotFound depends on the request)
_FAMILIES: tuple[tuple[type[HaathiError], str], ...] = (
    (TooLarge, "EntityTooLarge"),
    (InvalidArgument, "InvalidArgument"),
    (PermissionDenied, "AccessDenied"),
    (Unauthenticated, "InvalidAccessKeyId"),
    (AlreadyExists, "BucketAlreadyOwnedByYou"),
    (Conflict, "OperationAborted"),
    (FailedPrecondition, "InvalidRequest"),
    (StorageError, "ServiceUnavailable"),
)


def s3_error(code: str, message: str, **details: Any) -> HaathiError:
    """The haathi error to raise for the S3 condition ``code`` (a key of :data:`CODES`)."""
    cls, _ = CODES[code]
    err = cls(message, **details)
    err.details[S3_CODE] = code
    return err


def s3_code(exc: HaathiError, *, has_key: bool) -> tuple[int, str]:
    """(HTTP status, S3 code) of ``exc``. A plain NotFound names the object of an object
    request (``NoSuchKey``) and the bucket otherwise (``NoSuchBucket``)."""
    code = exc.details.get(S3_CODE)
    if not isinstance(code, str) or code not in CODES:
        if isinstance(exc, NotFound):
            code = "NoSuchKey" if has_key else "NoSuchBucket"
        else:
            code = next((c for cls, c in _FAMILIES if isinstance(exc, cls)), "InternalError")
    return CODES[code][1], code
