"""Object requests: GetObject (with Range), HeadObject, PutObject, CopyObject, DeleteObject
and DeleteObjects. Each write is atomic: one commit on a branch's bucket, one file in a job's
``out`` (:mod:`~haathi.server.s3.backend`)."""

from __future__ import annotations

from itertools import chain
from urllib.parse import unquote

from starlette.responses import Response, StreamingResponse

from haathi.server.s3 import xml
from haathi.server.s3.backend import BucketRef, Buckets, View
from haathi.server.s3.body import receive
from haathi.server.s3.buckets import read_path, write_path
from haathi.server.s3.errors import s3_error
from haathi.server.s3.gateway import Call
from haathi.server.s3.ranges import parse_range
from haathi.server.s3.responses import etag, object_headers, xml_response


async def get_object(call: Call, *, head: bool) -> Response:
    view = await call.snapshot()
    key = call.the_key
    path = read_path(key)
    info = await call.run(call.buckets.find, view, key, path)
    headers = object_headers(key, info, view.time)
    byte_range = parse_range(call.request.headers.get("range"), info.size_bytes)
    status, length = 200, info.size_bytes
    if byte_range is not None:
        first, last = byte_range
        status, length = 206, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size_bytes}"
    headers["Content-Length"] = str(length)
    if head:
        return Response(status_code=status, headers=headers)
    assert path is not None
    offset, most = (0, None) if byte_range is None else (byte_range[0], length)
    body = await call.run(call.buckets.read, view, path, offset, most)
    first_piece = await call.run(next, body, b"")  # errors before the first byte: S3 XML
    return StreamingResponse(chain([first_piece], body), status_code=status, headers=headers)


async def put_object(call: Call) -> Response:
    bucket, key = call.the_bucket, call.the_key
    bucket.require_writable()
    path = write_path(key)
    source = call.request.headers.get("x-amz-copy-source")
    if source is not None:
        return await copy_object(call, path, source)
    await call.snapshot()  # NoSuchBucket, AccessDenied before reading a body
    await call.run(call.buckets.authorize_write, bucket)
    with call.buckets.spool() as tmp:
        got = await receive(
            call.request, tmp / "body", limit=call.gateway.max_upload_bytes,
            chain=call.access.chain,
        )  # fmt: skip
        info = await call.run(
            call.buckets.write, bucket, path, [got.path], got.size, got.md5, f"PutObject {key}"
        )
    return Response(status_code=200, headers={"ETag": etag(info)})


def _copy_source(buckets: Buckets, text: str) -> tuple[View, str]:
    """The bucket's view and the file x-amz-copy-source names (``NoSuchKey``)."""
    source = unquote(text.split("?", 1)[0]).lstrip("/")
    name, _, key = source.partition("/")
    if not key:
        raise s3_error("InvalidArgument", "x-amz-copy-source must be BUCKET/KEY")
    view = buckets.open(buckets.bucket(name))
    path = read_path(key)
    buckets.find(view, key, path)
    assert path is not None
    return view, path


def _copy(buckets: Buckets, bucket: BucketRef, path: str, source_text: str, what: str) -> bytes:
    buckets.open(bucket)
    source, source_path = _copy_source(buckets, source_text)
    info, modified = buckets.copy(bucket, path, source, source_path, what)
    return xml.document("CopyObjectResult", {"LastModified": modified, "ETag": etag(info)})


async def copy_object(call: Call, path: str, source: str) -> Response:
    """CopyObject, from any bucket the caller reads (in ``haathi serve``'s gateway a
    metadata-only copy: no bytes move)."""
    body = await call.run(
        _copy, call.buckets, call.the_bucket, path, source, f"CopyObject {call.the_key}"
    )
    return xml_response(body)


async def delete_object(call: Call) -> Response:
    """DeleteObject: 204 whether or not the key existed; a write only if it did. A key no
    file can have is InvalidArgument, as for a write."""
    bucket, key = call.the_bucket, call.the_key
    bucket.require_writable()
    path = write_path(key)
    await call.snapshot()
    await call.run(call.buckets.authorize_write, bucket)  # even when there is nothing to do
    await call.run(call.buckets.delete, bucket, [path], f"DeleteObject {key}")
    return Response(status_code=204)


async def delete_objects(call: Call) -> Response:
    """DeleteObjects (``POST ?delete``): every key in one write. A key no file can have
    (``..``, control characters, ``a//b``, ``dir/``) fails the whole request: nothing is
    deleted."""
    bucket = call.the_bucket
    bucket.require_writable()
    await call.snapshot()
    await call.run(call.buckets.authorize_write, bucket)
    with call.buckets.spool() as tmp:
        got = await receive(
            call.request, tmp / "body", limit=xml.MAX_XML_BYTES, chain=call.access.chain
        )
        request = xml.parse_delete(got.path.read_bytes())
    paths = [write_path(k) for k in request.keys]
    await call.run(call.buckets.delete, bucket, paths, f"DeleteObjects ({len(request.keys)} keys)")
    deleted = [] if request.quiet else [{"Key": k} for k in request.keys]
    return xml_response(xml.document("DeleteResult", {"Deleted": deleted}))
