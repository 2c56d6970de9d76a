"""Object requests: GetObject (with Range), HeadObject, PutObject, CopyObject, DeleteObject
and DeleteObjects. Each write is one atomic commit on the bucket's branch."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from starlette.responses import Response, StreamingResponse

from haathi.api import Api
from haathi.errors import NotFound
from haathi.models.info import FileInfo, FileType
from haathi.models.ops import CopyOp, DeleteOp, Op, Opener, PutOp
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.server.s3 import xml
from haathi.server.s3.body import receive, temporary_dir
from haathi.server.s3.buckets import (
    Bucket,
    Snapshot,
    open_bucket,
    parse_bucket,
    read_path,
    write_path,
)
from haathi.server.s3.callers import authorize_write
from haathi.server.s3.errors import s3_error
from haathi.server.s3.gateway import Call
from haathi.server.s3.ranges import parse_range
from haathi.server.s3.responses import etag, object_headers, xml_response


def find_file(api: Api, snapshot: Snapshot, key: str, path: str | None) -> FileInfo:
    """The file a key names in the snapshot, or NoSuchKey."""
    info = None
    if path is not None and snapshot.commit is not None:
        try:
            info = api.inspect_file(snapshot.spec(path))
        except NotFound:
            info = None
    if info is None or info.type != FileType.FILE:
        raise s3_error("NoSuchKey", f"no key {key!r} in bucket {snapshot.bucket.name}", key=key)
    return info


def write(api: Api, bucket: Bucket, ops: Sequence[Op], path: str, what: str) -> FileInfo:
    """Apply ``ops`` to the bucket's branch as one commit; the file at ``path`` after it."""
    commit = api.modify_file(bucket.branch_spec, ops, description=f"S3 {what}")
    return api.inspect_file(FileSpec(CommitSpec(bucket.repo, commit), path, has_path=True))


def opener(path: Path) -> Opener:
    def open_spool() -> BinaryIO:
        return open(path, "rb")

    return open_spool


async def get_object(call: Call, *, head: bool) -> Response:
    snapshot = await call.snapshot()
    key = call.the_key
    path = read_path(key)
    info = await call.run(find_file, call.api, snapshot, key, path)
    headers = object_headers(key, info, snapshot.time)
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
    _, body = await call.run(
        lambda: call.api.read_file(snapshot.spec(path), offset=offset, length=most)
    )  # only the chunks holding the range are read
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
    await call.run(authorize_write, call.api, bucket.repo)
    with temporary_dir() as tmp:
        got = await receive(
            call.request, tmp / "body", limit=call.gateway.max_upload_bytes,
            chain=call.access.chain,
        )  # fmt: skip
        op = PutOp(path, opener(got.path), size_hint=got.size)
        info = await call.run(write, call.api, bucket, [op], path, f"PutObject {key}")
    return Response(status_code=200, headers={"ETag": etag(info)})


def _copy_source(api: Api, text: str) -> FileSpec:
    source = unquote(text.split("?", 1)[0]).lstrip("/")
    name, _, key = source.partition("/")
    if not key:
        raise s3_error("InvalidArgument", "x-amz-copy-source must be BUCKET/KEY")
    snapshot = open_bucket(api, parse_bucket(name))
    path = read_path(key)
    find_file(api, snapshot, key, path)
    assert path is not None
    return snapshot.spec(path)


def _copy(api: Api, bucket: Bucket, path: str, source_text: str, what: str) -> bytes:
    open_bucket(api, bucket)
    source = _copy_source(api, source_text)
    info = write(api, bucket, [CopyOp(source, path)], path, what)
    commit = api.inspect_commit(CommitSpec(bucket.repo, info.commit))
    modified = commit.finished or commit.started
    return xml.document("CopyObjectResult", {"LastModified": modified, "ETag": etag(info)})


async def copy_object(call: Call, path: str, source: str) -> Response:
    """CopyObject: a metadata-only copy (no bytes move), from any bucket the caller reads."""
    body = await call.run(
        _copy, call.api, call.the_bucket, path, source, f"CopyObject {call.the_key}"
    )
    return xml_response(body)


def _is_file(api: Api, snapshot: Snapshot, path: str) -> bool:
    try:
        find_file(api, snapshot, path, path)
    except NotFound:
        return False
    return True


def delete_paths(api: Api, bucket: Bucket, paths: Sequence[str], what: str) -> str | None:
    """Delete the files among ``paths`` that exist, as one commit (None: none existed)."""
    for attempt in range(2):
        snapshot = open_bucket(api, bucket)
        present = sorted({p for p in paths if _is_file(api, snapshot, p)})
        if not present:
            return None
        try:
            return api.modify_file(
                bucket.branch_spec, [DeleteOp(p) for p in present], description=f"S3 {what}"
            )
        except NotFound:
            if attempt:
                raise  # deleted meanwhile: look again once
    return None


async def delete_object(call: Call) -> Response:
    """DeleteObject: 204 whether or not the key existed; a commit only if it did. A key no
    file can have is InvalidArgument, as for a write."""
    bucket, key = call.the_bucket, call.the_key
    bucket.require_writable()
    path = write_path(key)
    await call.snapshot()
    await call.run(authorize_write, call.api, bucket.repo)  # even when there is nothing to do
    await call.run(delete_paths, call.api, bucket, [path], f"DeleteObject {key}")
    return Response(status_code=204)


async def delete_objects(call: Call) -> Response:
    """DeleteObjects (``POST ?delete``): every key in one commit. A key no file can have
    (``..``, control characters, ``a//b``, ``dir/``) fails the whole request: nothing is
    deleted."""
    bucket = call.the_bucket
    bucket.require_writable()
    await call.snapshot()
    await call.run(authorize_write, call.api, bucket.repo)
    with temporary_dir() as tmp:
        got = await receive(
            call.request, tmp / "body", limit=xml.MAX_XML_BYTES, chain=call.access.chain
        )
        request = xml.parse_delete(got.path.read_bytes())
    paths = [write_path(k) for k in request.keys]
    await call.run(
        delete_paths, call.api, bucket, paths, f"DeleteObjects ({len(request.keys)} keys)"
    )
    deleted = [] if request.quiet else [{"Key": k} for k in request.keys]
    return xml_response(xml.document("DeleteResult", {"Deleted": deleted}))
