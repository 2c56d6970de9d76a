"""Which S3 operation a request is (method, bucket, key and query subresources), and the
service and bucket operations that fit in a few lines: ListBuckets, HeadBucket,
CreateBucket, GetBucketLocation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from haathi.server.s3 import listing, objects, uploads, xml
from haathi.server.s3.errors import s3_error
from haathi.server.s3.gateway import Call
from haathi.server.s3.responses import xml_response

Handler = Callable[[Call], Awaitable[Response]]

# subresources of S3 this gateway does not serve: NotImplemented rather than a wrong answer
UNSUPPORTED = frozenset({
    "accelerate", "acl", "analytics", "attributes", "cors", "encryption",
    "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging", "metrics",
    "notification", "object-lock", "ownershipControls", "policy", "policyStatus",
    "publicAccessBlock", "replication", "requestPayment", "restore", "retention", "select",
    "tagging", "torrent", "versionId", "versioning", "versions", "website",
})  # fmt: skip


async def _list_buckets(call: Call) -> Response:
    found = await call.run(call.buckets.list_buckets)
    body = xml.document("ListAllMyBucketsResult", {
        "Owner": {"ID": "haathi", "DisplayName": "haathi"},
        "Buckets": {"Bucket": [{"Name": n, "CreationDate": c} for n, c in found]},
    })  # fmt: skip
    return xml_response(body)


async def _head_bucket(call: Call) -> Response:
    await call.snapshot()
    return Response(status_code=200)


async def _create_bucket(call: Call) -> Response:
    await call.run(call.buckets.create_bucket, call.the_bucket)
    return Response(status_code=200, headers={"Location": f"/{call.the_bucket.name}"})


async def _location(call: Call) -> Response:
    await call.snapshot()
    return xml_response(xml.document("LocationConstraint", {}))


async def _get_object(call: Call) -> Response:
    return await objects.get_object(call, head=False)


async def _head_object(call: Call) -> Response:
    return await objects.get_object(call, head=True)


def _not_implemented(what: str) -> Exception:
    return s3_error("NotImplemented", f"{what} is not supported by haathi's S3 gateway")


def handler(call: Call) -> Handler:
    """The operation of the request (or an S3 error naming why there is none)."""
    method = call.request.method
    query = call.request.query_params
    unsupported = sorted(UNSUPPORTED.intersection(query.keys()))
    if unsupported:
        raise _not_implemented(f"the {unsupported[0]!r} subresource")
    if call.bucket is None:
        if method in ("GET", "HEAD"):
            return _list_buckets
        raise s3_error("MethodNotAllowed", f"{method} is not allowed on the service")
    if call.key is None:
        return _bucket_handler(method, set(query.keys()))
    return _object_handler(method, set(query.keys()))


def _bucket_handler(method: str, keys: set[str]) -> Handler:
    if method == "GET":
        if "location" in keys:
            return _location
        if "uploads" in keys:
            return uploads.list_uploads
        return listing.list_objects_v2 if "list-type" in keys else listing.list_objects_v1
    if method == "HEAD":
        return _head_bucket
    if method == "PUT":
        return _create_bucket
    if method == "POST" and "delete" in keys:
        return objects.delete_objects
    if method == "DELETE":
        raise _not_implemented("DeleteBucket (delete the branch with haathi delete branch)")
    raise s3_error("MethodNotAllowed", f"{method} is not allowed on a bucket")


def _object_handler(method: str, keys: set[str]) -> Handler:
    upload = "uploadId" in keys
    if method == "GET":
        return uploads.list_parts if upload else _get_object
    if method == "HEAD":
        return _head_object
    if method == "PUT":
        return uploads.upload_part if upload else objects.put_object
    if method == "POST":
        if "uploads" in keys:
            return uploads.create_upload
        if upload:
            return uploads.complete_upload
    if method == "DELETE":
        return uploads.abort_upload if upload else objects.delete_object
    raise s3_error("MethodNotAllowed", f"{method} is not allowed on an object")
