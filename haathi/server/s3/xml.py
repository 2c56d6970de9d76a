"""The S3 XML bodies: the documents the gateway answers with, and the two it reads
(``Delete`` and ``CompleteMultipartUpload``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from haathi.server.s3.errors import s3_error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BYTES = 2 * 1024 * 1024
MAX_DELETE_KEYS = 1000
# characters XML 1.0 cannot carry (shown as \xNN, e.g. in an error naming a bad key)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
Fields = Mapping[str, Any]  # str | int | bool | datetime | None, or nested Fields or lists


def utc(when: datetime) -> datetime:
    """``when`` in UTC (a naive time from the metadata DB is UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso_time(when: datetime) -> str:
    """``2024-05-01T12:00:00.000Z`` (the timestamp format of S3 listings)."""
    when = utc(when)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_time(value)
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _fill(parent: ET.Element, fields: Fields) -> None:
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, list):
            for item in value:
                _fill(ET.SubElement(parent, name), item)
        elif isinstance(value, Mapping):
            _fill(ET.SubElement(parent, name), value)
        else:
            ET.SubElement(parent, name).text = _text(value)


def document(root: str, fields: Fields, *, namespace: bool = True) -> bytes:
    """An XML document ``<root>`` with one element per field (None left out, lists repeated,
    mappings nested)."""
    element = ET.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    _fill(element, fields)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    return document("Error", {"Code": code, "Message": message, "Resource": resource,
                              "RequestId": request_id}, namespace=False)  # fmt: skip


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(body: bytes, root: str) -> ET.Element:
    if len(body) > MAX_XML_BYTES:
        raise s3_error("MalformedXML", f"the XML body is larger than {MAX_XML_BYTES} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise s3_error("MalformedXML", "the XML body may not declare a DTD or entities")
    try:
        element = ET.fromstring(body)
    except ET.ParseError as exc:
        raise s3_error("MalformedXML", f"the XML body is not well-formed: {exc}") from exc
    if _local(element.tag) != root:
        raise s3_error("MalformedXML", f"expected a <{root}> document")
    return element


def _children(element: ET.Element, name: str) -> Iterable[ET.Element]:
    return (c for c in element if _local(c.tag) == name)


def _child_text(element: ET.Element, name: str) -> str | None:
    found = next(iter(_children(element, name)), None)
    return None if found is None else (found.text or "")


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    keys: list[str]
    quiet: bool


def parse_delete(body: bytes) -> DeleteRequest:
    """``<Delete><Quiet>…</Quiet><Object><Key>…</Key></Object>…</Delete>``."""
    root = _parse(body, "Delete")
    keys = []
    for obj in _children(root, "Object"):
        key = _child_text(obj, "Key")
        if not key:
            raise s3_error("MalformedXML", "each <Object> needs a non-empty <Key>")
        keys.append(key)
    if not keys or len(keys) > MAX_DELETE_KEYS:
        raise s3_error("MalformedXML", f"a delete names 1 to {MAX_DELETE_KEYS} objects")
    quiet = (_child_text(root, "Quiet") or "false").strip().lower() == "true"
    return DeleteRequest(keys, quiet)


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag) of each ``<Part>`` of a ``<CompleteMultipartUpload>``."""
    root = _parse(body, "CompleteMultipartUpload")
    parts = []
    for part in _children(root, "Part"):
        number, etag = _child_text(part, "PartNumber"), _child_text(part, "ETag")
        try:
            n = int(number or "")
        except ValueError as exc:
            raise s3_error("MalformedXML", f"bad PartNumber {number!r}") from exc
        parts.append((n, (etag or "").strip()))
    if not parts:
        raise s3_error("MalformedXML", "a multipart upload completes with at least one part")
    return parts
