"""Shapes of S3 responses: XML bodies, object headers, times and ETags."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from email.utils import format_datetime

from starlette.responses import Response

from haathi.models.info import FileInfo
from haathi.server.s3.xml import utc

XML_TYPE = "application/xml"


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=XML_TYPE, headers=headers)


def http_date(when: datetime) -> str:
    """``Wed, 01 May 2024 12:00:00 GMT`` (Last-Modified)."""
    return format_datetime(utc(when).replace(microsecond=0), usegmt=True)


def etag(info: FileInfo) -> str:
    """The object's ETag: its content hash as haathi stores it (BLAKE3 of the chunk digests),
    quoted. Equal content has an equal ETag, in every branch and commit."""
    return f'"{info.hash}"'


def content_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or "binary/octet-stream"


def object_headers(key: str, info: FileInfo, modified: datetime) -> dict[str, str]:
    return {
        "ETag": etag(info),
        "Last-Modified": http_date(modified),
        "Content-Type": content_type(key),
        "Accept-Ranges": "bytes",
    }
