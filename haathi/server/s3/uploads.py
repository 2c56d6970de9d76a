"""Multipart upload requests: Create, UploadPart, Complete (one commit), Abort, ListParts
and ListMultipartUploads."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from haathi.server.s3 import xml
from haathi.server.s3.body import declared_size, receive, temporary_dir
from haathi.server.s3.buckets import write_path
from haathi.server.s3.errors import s3_error
from haathi.server.s3.gateway import Call
from haathi.server.s3.listing import max_keys
from haathi.server.s3.multipart import Part, Upload, part_number
from haathi.server.s3.responses import etag, xml_response


def _too_large(limit: int) -> Exception:
    return s3_error("EntityTooLarge", f"the upload's parts exceed the maximum allowed size "
                    f"({limit} bytes); nothing was written", limit=limit)  # fmt: skip


def _upload(call: Call) -> Upload:
    upload_id = call.request.query_params.get("uploadId", "")
    return call.gateway.uploads.get(upload_id, call.the_bucket, call.the_key, call.access.caller)


async def create_upload(call: Call) -> Response:
    bucket, key = call.the_bucket, call.the_key
    bucket.require_writable()
    path = write_path(key)
    await call.snapshot()
    await call.run(call.buckets.authorize_write, bucket)
    upload = call.gateway.uploads.create(bucket, key, path, call.access.caller)
    body = xml.document("InitiateMultipartUploadResult",
                        {"Bucket": bucket.name, "Key": key, "UploadId": upload.id})  # fmt: skip
    return xml_response(body)


async def upload_part(call: Call) -> Response:
    if "x-amz-copy-source" in call.request.headers:
        raise s3_error("NotImplemented", "UploadPartCopy is not supported by this gateway")
    number = part_number(call.request.query_params.get("partNumber"))
    upload = _upload(call)
    limit = call.gateway.max_upload_bytes
    uploads = call.gateway.uploads
    room = None if limit is None else max(limit - uploads.size_without(upload, number), 0)
    declared = declared_size(call.request)
    if room is not None and declared is not None and declared > room:
        assert limit is not None
        raise _too_large(limit)  # before a byte of it is read
    reserved = uploads.reserve(upload, declared, room)
    spool = uploads.spool_file(upload, number)
    try:
        got = await receive(call.request, spool, limit=reserved if room is None
                            else min(room, reserved), chain=call.access.chain)  # fmt: skip
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    finally:
        uploads.release(reserved)
    part = Part(number, spool, got.size, f'"{got.md5}"', datetime.now(UTC))
    uploads.add_part(upload, part)
    return Response(status_code=200, headers={"ETag": part.etag})


async def complete_upload(call: Call) -> Response:
    """Write the listed parts, in order, as the object: one commit."""
    bucket, key = call.the_bucket, call.the_key
    upload = _upload(call)
    with temporary_dir() as tmp:
        got = await receive(
            call.request, tmp / "body", limit=xml.MAX_XML_BYTES, chain=call.access.chain
        )
        chosen = xml.parse_complete(got.path.read_bytes())
    uploads = call.gateway.uploads
    parts = uploads.start_completing(upload, chosen)
    try:
        total = sum(p.size for p in parts)
        limit = call.gateway.max_upload_bytes
        if limit is not None and total > limit:
            raise _too_large(limit)
        info = await call.run(
            call.buckets.write, bucket, upload.path, [p.file for p in parts], total, None,
            f"CompleteMultipartUpload {key} ({len(parts)} parts)",
        )  # fmt: skip
    except BaseException:
        uploads.resume(upload)
        raise
    uploads.finish(upload)
    body = xml.document("CompleteMultipartUploadResult", {
        "Location": f"/{bucket.name}/{key}", "Bucket": bucket.name, "Key": key,
        "ETag": etag(info),
    })  # fmt: skip
    return xml_response(body)


async def abort_upload(call: Call) -> Response:
    call.gateway.uploads.finish(_upload(call))
    return Response(status_code=204)


async def list_parts(call: Call) -> Response:
    upload = _upload(call)
    query = call.request.query_params
    try:
        marker = int(query.get("part-number-marker") or 0)
    except ValueError as exc:
        raise s3_error("InvalidArgument", "part-number-marker must be an integer") from exc
    most = max_keys(query.get("max-parts"), "max-parts")
    after = [p for p in call.gateway.uploads.parts(upload) if p.number > marker]
    shown = after[:most]
    body = xml.document("ListPartsResult", {
        "Bucket": call.the_bucket.name, "Key": call.the_key, "UploadId": upload.id,
        "PartNumberMarker": marker,
        "NextPartNumberMarker": shown[-1].number if shown else marker,
        "MaxParts": most, "IsTruncated": len(after) > len(shown),
        "Part": [{"PartNumber": p.number, "LastModified": p.uploaded, "ETag": p.etag,
                  "Size": p.size} for p in shown],
    })  # fmt: skip
    return xml_response(body)


async def list_uploads(call: Call) -> Response:
    """ListMultipartUploads: the caller's uploads in progress in this bucket."""
    bucket = call.the_bucket
    await call.snapshot()
    mine = [u for u in call.gateway.uploads.of_bucket(bucket) if u.owner == call.access.caller]
    body = xml.document("ListMultipartUploadsResult", {
        "Bucket": bucket.name, "KeyMarker": "", "UploadIdMarker": "", "MaxUploads": 1000,
        "IsTruncated": False,
        "Upload": [{"Key": u.key, "UploadId": u.id, "Initiated": u.initiated} for u in mine],
    })  # fmt: skip
    return xml_response(body)
