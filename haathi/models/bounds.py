"""Bounds on the text users store beside file content: descriptions (of repos, commits and
pipelines), commit messages and key/value metadata.

They live in metadata rows that listings return whole (``list commit`` shows every
description), so each is bounded well above any honest use and well below what would make a
listing slow or a row huge: a description or commit message at most 64 KiB; a metadata key at
most 256 bytes (a name, as Kubernetes label keys are at most 253), a value at most 64 KiB, and
one object's whole map at most 256 KiB (the bound Kubernetes puts on an object's annotations).
Sizes are counted in UTF-8 bytes. A value over its bound is InvalidArgument naming it, and
nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from haathi.errors import InvalidArgument

MAX_DESCRIPTION_BYTES = 64 * 1024
MAX_METADATA_KEY_BYTES = 256
MAX_METADATA_VALUE_BYTES = 64 * 1024
MAX_METADATA_BYTES = 256 * 1024


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_description(text: str, what: str = "description") -> str:
    """``text`` unchanged if it is at most :data:`MAX_DESCRIPTION_BYTES`."""
    size = _size(text)
    if size > MAX_DESCRIPTION_BYTES:
        raise InvalidArgument(
            f"{what} is too long: {size} bytes, at most {MAX_DESCRIPTION_BYTES}",
            size=size, limit=MAX_DESCRIPTION_BYTES,
        )  # fmt: skip
    return text


def check_metadata(metadata: Mapping[str, str], what: str) -> None:
    """Raise InvalidArgument unless every key and value of ``what``'s metadata, and the whole
    map, are within their bounds."""
    for key, value in metadata.items():
        if _size(key) > MAX_METADATA_KEY_BYTES:
            raise InvalidArgument(
                f"metadata key {key[:40]!r}... of {what} is too long: {_size(key)} bytes, at "
                f"most {MAX_METADATA_KEY_BYTES}", limit=MAX_METADATA_KEY_BYTES,
            )  # fmt: skip
        if _size(value) > MAX_METADATA_VALUE_BYTES:
            raise InvalidArgument(
                f"metadata value of {key!r} on {what} is too long: {_size(value)} bytes, at "
                f"most {MAX_METADATA_VALUE_BYTES}", key=key, limit=MAX_METADATA_VALUE_BYTES,
            )  # fmt: skip
    total = _size(json.dumps(dict(metadata), ensure_ascii=False))
    if total > MAX_METADATA_BYTES:
        raise InvalidArgument(
            f"the metadata of {what} would be too large: {total} bytes, at most "
            f"{MAX_METADATA_BYTES}", limit=MAX_METADATA_BYTES,
        )  # fmt: skip
