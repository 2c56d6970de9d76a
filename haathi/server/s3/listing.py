"""ListObjects (V1 and V2): a bucket's keys under a prefix, rolled up at a delimiter into
common prefixes, one page at a time.

Keys and common prefixes form one sorted sequence; a page is up to ``max-keys`` of it after a
marker (V2: the continuation token or ``start-after``; V1: ``marker``). The marker of the
next page is the last key or common prefix returned, so a page never repeats a key and a
common prefix is returned once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from haathi.errors import InvalidArgument
from haathi.models import paths
from haathi.models.info import FileInfo
from haathi.server.s3 import xml
from haathi.server.s3.backend import Buckets, View
from haathi.server.s3.errors import s3_error
from haathi.server.s3.gateway import Call
from haathi.server.s3.responses import etag, xml_response

MAX_KEYS = 1000

Entry = tuple[str, FileInfo | None]  # (key, file), or (common prefix, None)


@dataclass
class Page:
    contents: list[tuple[str, FileInfo]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None  # the last key or common prefix in the page

    @property
    def count(self) -> int:
        return len(self.contents) + len(self.prefixes)


def paginate(
    entries: Iterable[Entry], *, prefix: str, delimiter: str, after: str, max_keys: int
) -> Page:
    """One page of ``entries`` (sorted by key; keys under ``prefix``) after ``after``."""
    page = Page()
    if max_keys == 0:
        return page
    for key, info in entries:
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        name = key if cut < 0 else key[: cut + len(delimiter)]
        # a common prefix stands for every key below it: it is past ``after`` if any is
        last_key = key if info is not None else key + "\U0010ffff"
        if last_key <= after or name == after or name == page.last:
            continue
        if page.count >= max_keys:
            page.truncated = True
            break
        if cut >= 0:
            page.prefixes.append(name)
        elif info is not None:
            page.contents.append((key, info))
        page.last = name
    return page


def _past(prefix: str) -> str:
    """The least string after every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _entries(
    buckets: Buckets, view: View, prefix: str, delimiter: str, after: str, batch: int
) -> Iterator[Entry]:
    """The view's keys under ``prefix`` after ``after``, in order, rolled up at the
    delimiter. Files are walked in batches from a seek; past a common prefix the walk seeks
    again, so a page costs its own keys and prefixes, not the keys before it or under them."""
    directory = prefix[: prefix.rfind("/") + 1]
    try:
        under = paths.normalize("/" + directory)
    except InvalidArgument:
        return  # a prefix no key can have: nothing under it
    start = max(prefix, after + "\x00") if after else prefix
    while True:
        files = buckets.walk(view, under, "/" + start, batch)
        for info in files:
            key = info.path[1:]
            if not key.startswith(prefix):
                return
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                yield common, None
                start = _past(common)
                break
            yield key, info
            start = key + "\x00"  # the least string after the key
        else:
            if len(files) < batch:
                return


def list_objects(
    buckets: Buckets, view: View, *, prefix: str, delimiter: str, after: str, max_keys: int
) -> Page:
    return paginate(
        _entries(buckets, view, prefix, delimiter, after, batch=min(max_keys, MAX_KEYS) + 1),
        prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys,
    )  # fmt: skip


def max_keys(text: str | None, name: str = "max-keys") -> int:
    """``max-keys`` (default and at most 1000)."""
    if text is None:
        return MAX_KEYS
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise s3_error("InvalidArgument", f"{name} must be a non-negative integer")
    return min(n, MAX_KEYS)


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise s3_error("InvalidArgument", "the continuation token provided is incorrect") from exc


def _encoder(encoding: str | None) -> Callable[[str], str]:
    """``encoding-type=url``: keys and prefixes percent-encoded (as botocore asks, to carry
    any character through XML)."""
    if encoding is None:
        return lambda text: text
    if encoding != "url":
        raise s3_error("InvalidArgument", "invalid encoding-type: only 'url' is supported")
    return lambda text: quote(text, safe="/")


def _contents(page: Page, enc: Callable[[str], str], modified: datetime) -> dict[str, list[Any]]:
    return {
        "Contents": [
            {"Key": enc(key), "LastModified": modified, "ETag": etag(info),
             "Size": info.size_bytes, "StorageClass": "STANDARD"}
            for key, info in page.contents
        ],
        "CommonPrefixes": [{"Prefix": enc(p)} for p in page.prefixes],
    }  # fmt: skip


async def list_objects_v2(call: Call) -> Response:
    """ListObjectsV2 (``?list-type=2``): continuation tokens name the last key returned."""
    query = call.request.query_params
    snapshot = await call.snapshot()
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    token, start_after = query.get("continuation-token"), query.get("start-after", "")
    after = decode_token(token) if token is not None else start_after
    most = max_keys(query.get("max-keys"))
    enc = _encoder(query.get("encoding-type"))
    page = await call.run(list_objects, call.buckets, snapshot, prefix=prefix,
                          delimiter=delimiter, after=after, max_keys=most)  # fmt: skip
    body = xml.document("ListBucketResult", {
        "Name": snapshot.bucket.name, "Prefix": enc(prefix),
        "Delimiter": enc(delimiter) if delimiter else None,
        "StartAfter": enc(start_after) if start_after else None,
        "ContinuationToken": token,
        "NextContinuationToken": encode_token(page.last)
        if page.truncated and page.last else None,
        "KeyCount": page.count, "MaxKeys": most, "IsTruncated": page.truncated,
        "EncodingType": query.get("encoding-type"),
        **_contents(page, enc, snapshot.time),
    })  # fmt: skip
    return xml_response(body)


async def list_objects_v1(call: Call) -> Response:
    """ListObjects (V1): ``marker`` and ``NextMarker`` are keys."""
    query = call.request.query_params
    snapshot = await call.snapshot()
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    marker = query.get("marker", "")
    most = max_keys(query.get("max-keys"))
    enc = _encoder(query.get("encoding-type"))
    page = await call.run(list_objects, call.buckets, snapshot, prefix=prefix,
                          delimiter=delimiter, after=marker, max_keys=most)  # fmt: skip
    body = xml.document("ListBucketResult", {
        "Name": snapshot.bucket.name, "Prefix": enc(prefix), "Marker": enc(marker),
        "NextMarker": enc(page.last) if page.truncated and page.last else None,
        "Delimiter": enc(delimiter) if delimiter else None,
        "MaxKeys": most, "IsTruncated": page.truncated,
        "EncodingType": query.get("encoding-type"),
        **_contents(page, enc, snapshot.time),
    })  # fmt: skip
    return xml_response(body)
