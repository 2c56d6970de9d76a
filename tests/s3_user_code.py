"""User code's S3 client for the tests of ``input.pfs.s3`` and ``s3_out``: requests signed with
AWS Signature Version 4, as any AWS client signs them, from nothing but the modules Debian's
``python3-minimal`` has (no ``hmac``, ``http`` or ``json``), so the same text runs in the host
sandbox and in a container of the test image. Tests pass this file's text to
``python3 -c`` followed by the user code's own lines.

``s3(method, path, body)`` returns (status, body) of one request to ``$S3_ENDPOINT``,
signed with ``$AWS_ACCESS_KEY_ID`` / ``$AWS_SECRET_ACCESS_KEY`` unless told otherwise.
"""

import datetime
import hashlib
import os
import re
import socket
from urllib.parse import quote, urlsplit

REGION = "us-east-1"


def _hmac(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104), written out: python3-minimal has no ``hmac``."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + msg).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).digest()


def _query(text: str) -> str:
    """The canonical query string: pairs encoded the AWS way, sorted."""
    pairs = []
    for item in filter(None, text.split("&")):
        name, _, value = item.partition("=")
        pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def s3(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    key: str | None = None,
    secret: str | None = None,
    signed: bool = True,
    endpoint: str | None = None,
) -> tuple[int, bytes]:
    """(status, body) of ``method target`` (``/bucket/key?query``) to the job's gateway."""
    url = urlsplit(endpoint or os.environ["S3_ENDPOINT"])
    key = key or os.environ["AWS_ACCESS_KEY_ID"]
    secret = secret or os.environ["AWS_SECRET_ACCESS_KEY"]
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (any python3)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    path, _, query = target.partition("?")
    path = quote(path, safe="/-_.~")
    digest = hashlib.sha256(body).hexdigest()
    headers = {"host": url.netloc, "x-amz-content-sha256": digest, "x-amz-date": stamp}
    if signed:
        names = sorted(headers)
        canonical = "\n".join([
            method, path, _query(query), "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names), digest,
        ])  # fmt: skip
        scope = f"{day}/{REGION}/s3/aws4_request"
        text = "\n".join(
            ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signing = ("AWS4" + secret).encode()
        for part in (day, REGION, "s3", "aws4_request"):
            signing = _hmac(signing, part.encode())
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={';'.join(names)}, "
            f"Signature={_hmac(signing, text.encode()).hex()}"
        )
    headers["content-length"] = str(len(body))
    headers["connection"] = "close"
    request = f"{method} {path}{'?' + query if query else ''} HTTP/1.1\r\n"
    request += "".join(f"{n}: {v}\r\n" for n, v in headers.items()) + "\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(request.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        rest = _unchunk(rest)
    return int(head.split()[1]), rest


def _unchunk(data: bytes) -> bytes:
    out = b""
    while True:
        size, _, data = data.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if not n:
            return out
        out, data = out + data[:n], data[n + 2 :]


def keys(listing: bytes) -> list[str]:
    """The keys of a ListObjects answer."""
    return re.findall(r"<Key>(.*?)</Key>", listing.decode())


def code(answer: bytes) -> str:
    """The S3 error code of an error answer."""
    found = re.search(r"<Code>(.*?)</Code>", answer.decode())
    return found.group(1) if found else ""
