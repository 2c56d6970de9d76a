"""The S3 gateway's Signature Version 4 verifier, against requests botocore itself signs and
the worked examples of AWS's SigV4 documentation (pure: no server)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from haathi.errors import HaathiError
from haathi.server.s3 import sigv4
from haathi.server.s3.chunked import ChunkedDecoder
from haathi.server.s3.errors import s3_code

TOKEN = "3f1c0e4b9a7d4c21b8e5f60718293a4b"  # a haathi token: access key and secret alike
Request = tuple[str, str, str, list[tuple[str, str]]]  # method, raw path, raw query, headers


def signed(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret: str = TOKEN,
    context: dict[str, object] | None = None,
) -> Request:
    """The request as the gateway receives it after botocore signed it."""
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    req.context.update(context or {})
    S3SigV4Auth(Credentials(TOKEN, secret), "s3", "us-east-1").add_auth(req)
    return _received(req)


def presigned(url: str, expires: int = 60) -> Request:
    req = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(Credentials(TOKEN, TOKEN), "s3", "us-east-1", expires=expires).add_auth(req)
    return _received(req)


def _received(req: AWSRequest) -> Request:
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    headers = [(k, str(v)) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):  # http.client adds it when sending
        headers.append(("Host", parts.netloc))
    return prepared.method, parts.path, parts.query, headers


def verify(request: Request, secret: str = TOKEN, now: datetime | None = None) -> bytes:
    method, path, query, headers = request
    claim = sigv4.parse(headers, query)
    assert claim is not None
    return sigv4.verify(method, path, query, headers, claim, secret, now=now)


def s3_code_of(exc: pytest.ExceptionInfo[HaathiError]) -> tuple[int, str]:
    return s3_code(exc.value, has_key=True)


URLS = [
    "http://127.0.0.1:8651/",
    "http://127.0.0.1:8651/master.data",
    "http://127.0.0.1:8651/master.data?list-type=2&prefix=a%20b%2Bc~d%3De&delimiter=%2F"
    "&encoding-type=url&max-keys=3",
    "http://127.0.0.1:8651/master.data?delete",
    "http://127.0.0.1:8651/master.data/dir/a%20b%2Bc~%C3%A9.txt",
    "http://127.0.0.1:8651/master.data/k?partNumber=2&uploadId=abc",
    "http://localhost:9999/dev.repo/x?uploads",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE", "HEAD"])
def test_requests_botocore_signs_verify(method: str, url: str) -> None:
    body = b"some bytes" if method in ("PUT", "POST") else b""
    request = signed(method, url, body, {"Content-Type": "text/plain", "X-Amz-Meta-A": " x  y "})
    claim = sigv4.parse(request[3], request[2])
    assert claim is not None and claim.credential.access_key == TOKEN
    assert claim.payload_hash == hashlib.sha256(body).hexdigest()  # http: botocore signs it
    key = verify(request)
    assert len(key) == 32


@pytest.mark.parametrize("change", ["method", "path", "query", "header", "secret"])
def test_any_change_breaks_the_signature(change: str) -> None:
    method, path, query, headers = signed(
        "PUT", "http://127.0.0.1:8651/master.data/a.txt?uploadId=x&partNumber=1", b"data",
        {"Content-Type": "text/plain"},
    )  # fmt: skip
    secret = TOKEN
    if change == "method":
        method = "POST"
    elif change == "path":
        path = path.replace("a.txt", "b.txt")
    elif change == "query":
        query = query.replace("partNumber=1", "partNumber=2")
    elif change == "header":
        headers = [(k, "text/html" if k == "Content-Type" else v) for k, v in headers]
    else:
        secret = "another-token"
    with pytest.raises(HaathiError) as exc:
        verify((method, path, query, headers), secret)
    assert s3_code_of(exc) == (403, "SignatureDoesNotMatch")


def test_a_signed_header_that_is_missing_is_refused() -> None:
    method, path, query, headers = signed("GET", "http://127.0.0.1:8651/b.r/k",
                                          headers={"Range": "bytes=0-1"})  # fmt: skip
    without = [(k, v) for k, v in headers if k.lower() != "range"]
    with pytest.raises(HaathiError) as exc:
        verify((method, path, query, without))
    assert s3_code_of(exc) == (403, "AccessDenied")


def test_unsigned_payload_is_accepted_as_claimed() -> None:
    request = signed(
        "PUT", "https://127.0.0.1:8651/master.data/a", b"body", {"Content-MD5": "x"},
        context={"has_streaming_input": True},
    )  # fmt: skip
    claim = sigv4.parse(request[3], request[2])
    assert claim is not None and claim.payload_hash == sigv4.UNSIGNED_PAYLOAD
    verify(request)


def test_a_signature_from_too_long_ago_is_refused() -> None:
    request = signed("GET", "http://127.0.0.1:8651/master.data")
    verify(request, now=datetime.now(UTC) + timedelta(minutes=14))
    with pytest.raises(HaathiError) as exc:
        verify(request, now=datetime.now(UTC) + timedelta(minutes=16))
    assert s3_code_of(exc) == (403, "RequestTimeTooSkewed")


def test_presigned_urls_verify_until_they_expire() -> None:
    request = presigned("http://127.0.0.1:8651/master.data/a%20b.txt", expires=60)
    claim = sigv4.parse(request[3], request[2])
    assert claim is not None and claim.presigned and claim.expires == 60
    assert claim.payload_hash == sigv4.UNSIGNED_PAYLOAD
    verify(request)
    with pytest.raises(HaathiError) as exc:
        verify(request, now=datetime.now(UTC) + timedelta(seconds=120))
    assert s3_code_of(exc) == (403, "AccessDenied")
    method, path, query, headers = request
    with pytest.raises(HaathiError) as exc:
        verify((method, path.replace("a%20b", "c"), query, headers))
    assert s3_code_of(exc) == (403, "SignatureDoesNotMatch")


def test_malformed_authorization_is_a_clear_error() -> None:
    for header, code in [
        ("AWS AKID:c2lnbmF0dXJl", "AuthorizationHeaderMalformed"),  # Signature Version 2
        ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request",
         "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=00",
         "AuthorizationHeaderMalformed"),
    ]:  # fmt: skip
        headers = [("Authorization", header), ("x-amz-date", "20240101T000000Z"),
                   ("x-amz-content-sha256", sigv4.UNSIGNED_PAYLOAD)]  # fmt: skip
        with pytest.raises(HaathiError) as exc:
            sigv4.parse(headers, "")
        assert s3_code_of(exc) == (400, code)
    assert sigv4.parse([("Host", "h")], "a=b") is None  # anonymous


# AWS's worked examples (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
# and sigv4-streaming.html): access key AKIAIOSFODNN7EXAMPLE, this secret, 2013-05-24.

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_DAY = datetime(2013, 5, 24, tzinfo=UTC)
AWS_CREDENTIAL = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"


def test_the_aws_get_object_example() -> None:
    headers = [
        ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", sigv4.EMPTY_SHA256), ("x-amz-date", "20130524T000000Z"),
        ("Authorization", f"AWS4-HMAC-SHA256 Credential={AWS_CREDENTIAL},SignedHeaders=host;"
         "range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44"
         "f0170aba48dd91039c6036bdb41"),
    ]  # fmt: skip
    verify(("GET", "/test.txt", "", headers), AWS_SECRET, now=AWS_DAY)
    with pytest.raises(HaathiError):
        verify(("GET", "/test.txt", "", headers), AWS_SECRET + "x", now=AWS_DAY)


def _streaming_example(
    payload: str, seed: str, extra: list[tuple[str, str]], chunk_sigs: list[str], trailer: str
) -> tuple[sigv4.ChunkChain, bytes]:
    headers = [
        ("Host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("Content-Encoding", "aws-chunked"),
        ("x-amz-content-sha256", payload), ("x-amz-decoded-content-length", "66560"), *extra,
    ]  # fmt: skip
    names = ";".join(sorted(k.lower() for k, _ in headers))
    headers.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={AWS_CREDENTIAL},"
                                     f"SignedHeaders={names},Signature={seed}"))  # fmt: skip
    key = verify(("PUT", "/examplebucket/chunkObject.txt", "", headers), AWS_SECRET, AWS_DAY)
    claim = sigv4.parse(headers, "")
    assert claim is not None
    body = (
        f"10000;chunk-signature={chunk_sigs[0]}\r\n".encode() + b"a" * 65536 + b"\r\n"
        + f"400;chunk-signature={chunk_sigs[1]}\r\n".encode() + b"a" * 1024 + b"\r\n"
        + f"0;chunk-signature={chunk_sigs[2]}\r\n".encode() + trailer.encode() + b"\r\n"
    )  # fmt: skip
    return sigv4.ChunkChain(key, claim), body


def _decode(chain: sigv4.ChunkChain, body: bytes, step: int) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder(chain=chain, signed=True)
    out = b"".join(p for i in range(0, len(body), step) for p in decoder.feed(body[i : i + step]))
    return out, decoder.finish()


STREAMING = [
    ("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
     "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
     "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
     "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]  # fmt: skip


@pytest.mark.parametrize("step", [1, 7, 8192, 1 << 20])
def test_the_aws_streaming_example(step: int) -> None:
    seed, *sigs = STREAMING[0]
    chain, body = _streaming_example(
        sigv4.STREAMING_SIGNED, seed, [("Content-Length", "66824")], sigs, ""
    )
    out, trailers = _decode(chain, body, step)
    assert out == b"a" * 66560 and trailers == {}


def test_the_aws_streaming_example_with_a_trailer() -> None:
    sigs = ["b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"]  # fmt: skip
    trailer = (
        "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:"
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
    )
    chain, body = _streaming_example(
        sigv4.STREAMING_SIGNED_TRAILER,
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        [("x-amz-trailer", "x-amz-checksum-crc32c")], sigs, trailer,
    )  # fmt: skip
    out, trailers = _decode(chain, body, 4096)
    assert out == b"a" * 66560 and trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    chain, body = _streaming_example(
        sigv4.STREAMING_SIGNED_TRAILER,
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        [("x-amz-trailer", "x-amz-checksum-crc32c")], sigs, trailer.replace("sOO8", "xOO8"),
    )  # fmt: skip
    with pytest.raises(HaathiError) as exc:
        _decode(chain, body, 4096)
    assert s3_code_of(exc) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("damage", ["data", "signature", "truncated", "extra"])
def test_a_damaged_streaming_body_is_refused(damage: str) -> None:
    seed, *sigs = STREAMING[0]
    chain, body = _streaming_example(
        sigv4.STREAMING_SIGNED, seed, [("Content-Length", "66824")], sigs, ""
    )
    if damage == "data":
        body = body[:200] + b"b" + body[201:]
    elif damage == "signature":
        body = body.replace(sigs[1].encode(), sigs[0].encode())
    elif damage == "truncated":
        body = body[:-40]
    else:
        body += b"5\r\nmore!\r\n"
    with pytest.raises(HaathiError) as exc:
        _decode(chain, body, 65536)
    assert s3_code_of(exc) in ((403, "SignatureDoesNotMatch"), (400, "IncompleteBody"))
    assert s3_code_of(exc)[1] == ("IncompleteBody" if damage in ("truncated", "extra")
                                  else "SignatureDoesNotMatch")  # fmt: skip


def test_an_unsigned_chunked_body_decodes_without_a_chain() -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
    decoder = ChunkedDecoder()
    assert b"".join(decoder.feed(body)) == b"hello world"
    assert decoder.finish() == {"x-amz-checksum-crc32": "DUoRhQ=="}
    assert base64.b64decode("DUoRhQ==") == (0x0D4A1185).to_bytes(4, "big")  # crc32 of it
