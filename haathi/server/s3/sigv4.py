"""AWS Signature Version 4 as S3 uses it, checked on the receiving side.

Pure functions over what a request carries (method, raw path, raw query, headers): no I/O.

- :func:`parse` reads the claimed signature from the ``Authorization`` header or from a
  presigned URL's ``X-Amz-*`` query parameters.
- :func:`verify` rebuilds the canonical request and the string to sign, derives the signing
  key from the secret and compares signatures; it returns the signing key, which
  :class:`ChunkChain` needs to check the chunk signatures of a
  ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body.

The canonical URI is the path exactly as sent (S3 does not normalize it); the canonical query
string is re-encoded the AWS way (RFC 3986 unreserved characters kept, everything else
``%XX``), sorted by key then value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from haathi.server.s3.errors import s3_error

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRY = 7 * 24 * 3600
_HEX = frozenset("0123456789abcdef")

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Credential:
    """``AKID/20130524/us-east-1/s3/aws4_request``."""

    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class Signed:
    """What a request claims: who signed it, when, over which headers, and the signature."""

    credential: Credential
    amz_date: str  # 20130524T000000Z
    signed_headers: tuple[str, ...]
    signature: str
    payload_hash: str  # x-amz-content-sha256, or UNSIGNED-PAYLOAD for a presigned URL
    presigned: bool = False
    expires: int | None = None


def is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def _header(headers: Headers, name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name]
    return ",".join(values) if values else None


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """(key, value) pairs of a raw query string, percent-decoded (``+`` stays ``+``)."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _credential(text: str, malformed: str) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise s3_error(malformed, f"malformed credential {text!r}: expected "
                       "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request")  # fmt: skip
    return Credential(parts[0], parts[1], parts[2], parts[3])


def _signed_headers(text: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in text.split(";") if h.strip())


def _payload_hash(value: str | None) -> str:
    if value is None:
        raise s3_error(
            "InvalidRequest", "missing required header for this request: x-amz-content-sha256"
        )
    if value in (UNSIGNED_PAYLOAD, *STREAMING) or is_sha256_hex(value):
        return value
    raise s3_error(
        "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value "
        "or the hex SHA-256 of the body",
    )  # fmt: skip


def _from_header(authorization: str, headers: Headers) -> Signed:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise s3_error(
            "AuthorizationHeaderMalformed",
            f"unsupported authorization {algorithm!r}: sign requests with AWS Signature "
            "Version 4 (AWS4-HMAC-SHA256; boto3: Config(signature_version='s3v4'))",
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            fields[key] = value.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise s3_error(
            "AuthorizationHeaderMalformed", f"authorization header lacks {', '.join(missing)}"
        )
    amz_date = _header(headers, "x-amz-date")
    if amz_date is None:
        raise s3_error(
            "AccessDenied", "AWS authentication requires a valid x-amz-date header"
        )  # (a Date header is not accepted: every SigV4 client sends x-amz-date)
    return Signed(
        credential=_credential(fields["Credential"], "AuthorizationHeaderMalformed"),
        amz_date=amz_date.strip(),
        signed_headers=_signed_headers(fields["SignedHeaders"]),
        signature=fields["Signature"],
        payload_hash=_payload_hash(_header(headers, "x-amz-content-sha256")),
    )


def _from_query(query: dict[str, str], headers: Headers) -> Signed:
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise s3_error(
            "AuthorizationQueryParametersError",
            "X-Amz-Algorithm only supports AWS4-HMAC-SHA256",
        )
    missing = [
        k for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature",
                    "X-Amz-Expires") if k not in query
    ]  # fmt: skip
    if missing:
        raise s3_error(
            "AuthorizationQueryParametersError", f"presigned URL lacks {', '.join(missing)}"
        )
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError:
        expires = -1
    if not 0 < expires <= MAX_PRESIGNED_EXPIRY:
        raise s3_error(
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRY} seconds",
        )
    payload = query.get("X-Amz-Content-Sha256") or _header(headers, "x-amz-content-sha256")
    return Signed(
        credential=_credential(query["X-Amz-Credential"], "AuthorizationQueryParametersError"),
        amz_date=query["X-Amz-Date"],
        signed_headers=_signed_headers(query["X-Amz-SignedHeaders"]),
        signature=query["X-Amz-Signature"],
        payload_hash=_payload_hash(payload or UNSIGNED_PAYLOAD),
        presigned=True,
        expires=expires,
    )


def parse(headers: Headers, raw_query: str) -> Signed | None:
    """The signature a request carries (``Authorization`` header, else presigned query
    parameters), or None for an anonymous request."""
    authorization = _header(headers, "authorization")
    if authorization is not None:
        return _from_header(authorization, headers)
    query = dict(parse_query(raw_query))
    if "X-Amz-Algorithm" in query or "X-Amz-Signature" in query:
        return _from_query(query, headers)
    if "AWSAccessKeyId" in query or "Signature" in query:
        raise s3_error(
            "AuthorizationQueryParametersError",
            "Signature Version 2 URLs are not supported: presign with Signature Version 4 "
            "(boto3: Config(signature_version='s3v4'))",
        )
    return None


def _aws_quote(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str, *, presigned: bool = False) -> str:
    """The canonical query string (without ``X-Amz-Signature`` for a presigned URL)."""
    pairs = [
        (_aws_quote(k), _aws_quote(v)) for k, v in parse_query(raw_query)
        if not (presigned and k == "X-Amz-Signature")
    ]  # fmt: skip
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_headers(headers: Headers, signed: Iterable[str]) -> str:
    """``name:value\\n`` per signed header (values trimmed, inner whitespace collapsed,
    repeated headers joined with commas)."""
    lines = []
    for name in signed:
        values = [" ".join(v.split()) for k, v in headers if k.lower() == name]
        if not values:
            raise s3_error(
                "AccessDenied", f"there were headers present in the request which were not "
                f"signed, or a signed header is missing: {name}",
            )  # fmt: skip
        lines.append(f"{name}:{','.join(values)}\n")
    return "".join(lines)


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Headers, signed: Signed
) -> str:
    return "\n".join([
        method.upper(),
        raw_path or "/",
        canonical_query(raw_query, presigned=signed.presigned),
        canonical_headers(headers, signed.signed_headers),
        ";".join(signed.signed_headers),
        signed.payload_hash,
    ])  # fmt: skip


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def string_to_sign(signed: Signed, canonical: str) -> str:
    return "\n".join([ALGORITHM, signed.amz_date, signed.credential.scope, _sha256_hex(canonical)])


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, credential: Credential) -> bytes:
    """HMAC chain: ``AWS4`` + secret, then date, region, service, ``aws4_request``."""
    key = _hmac(("AWS4" + secret).encode(), credential.date)
    key = _hmac(key, credential.region)
    key = _hmac(key, credential.service)
    return _hmac(key, "aws4_request")


def signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _parse_time(amz_date: str) -> datetime:
    try:
        return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise s3_error(
            "AccessDenied", f"x-amz-date {amz_date!r} is not of the form YYYYMMDDTHHMMSSZ"
        ) from exc


def check_time(signed: Signed, now: datetime) -> None:
    """A header signature within 15 minutes of ``now``; a presigned URL not expired."""
    when = _parse_time(signed.amz_date)
    if signed.credential.date != signed.amz_date[:8]:
        raise s3_error(
            "SignatureDoesNotMatch",
            f"the credential date {signed.credential.date} is not the request's date",
        )
    if signed.presigned:
        if now > when + timedelta(seconds=signed.expires or 0):
            raise s3_error("AccessDenied", "request has expired")
        if when - now > MAX_SKEW:
            raise s3_error("RequestTimeTooSkewed", "the request's date is in the future")
    elif abs(now - when) > MAX_SKEW:
        raise s3_error(
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        )


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Headers,
    signed: Signed,
    secret: str,
    *,
    now: datetime | None = None,
) -> bytes:
    """Check ``signed`` against the request and ``secret``; returns the signing key."""
    if "host" not in signed.signed_headers:
        raise s3_error("AccessDenied", "the host header must be signed")
    check_time(signed, now or datetime.now(UTC))
    canonical = canonical_request(method, raw_path, raw_query, headers, signed)
    key = signing_key(secret, signed.credential)
    expected = signature(key, string_to_sign(signed, canonical))
    if not hmac.compare_digest(expected, signed.signature.lower()):
        raise s3_error(
            "SignatureDoesNotMatch",
            "the request signature we calculated does not match the signature you provided: "
            "check your key and signing method",
        )
    return key


class ChunkChain:
    """The signatures of an aws-chunked body: each chunk's signature signs its data's hash and
    the previous signature, starting from the request's own (the seed)."""

    def __init__(self, key: bytes, signed: Signed) -> None:
        self._key = key
        self._signed = signed
        self.previous = signed.signature.lower()

    def _check(self, kind: str, digest: str, claimed: str) -> None:
        text = "\n".join([kind, self._signed.amz_date, self._signed.credential.scope,
                          self.previous, digest])  # fmt: skip
        expected = signature(self._key, text)
        if not hmac.compare_digest(expected, claimed.lower()):
            raise s3_error(
                "SignatureDoesNotMatch", "a chunk signature of the aws-chunked body is wrong"
            )
        self.previous = expected

    def check_chunk(self, data_sha256: str, claimed: str) -> None:
        """Check the next chunk's signature (``data_sha256``: hex SHA-256 of its data)."""
        self._check(f"{ALGORITHM}-PAYLOAD", f"{EMPTY_SHA256}\n{data_sha256}", claimed)

    def check_trailer(self, trailer: str, claimed: str) -> None:
        """Check the trailer signature (``trailer``: the ``name:value\\n`` lines it signs)."""
        self._check(f"{ALGORITHM}-TRAILER", _sha256_hex(trailer), claimed)
