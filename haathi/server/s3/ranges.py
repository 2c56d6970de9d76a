"""The ``Range`` header of GetObject and HeadObject: one byte range, as S3 serves it."""

from __future__ import annotations

import re

from haathi.server.s3.errors import s3_error

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _unsatisfiable(size: int) -> Exception:
    return s3_error("InvalidRange", "the requested range is not satisfiable", actual_size=size)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, inclusive, of a ``bytes=`` range over ``size`` bytes; None for the
    whole object (no header, or one S3 ignores: several ranges, or not ``bytes=first-last``).
    A range that starts past the end is InvalidRange (416)."""
    if header is None:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first_text, last_text = m.groups()
    if first_text == "":  # the last N bytes
        n = int(last_text)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - n, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise _unsatisfiable(size)
    return first, min(int(last_text), size - 1) if last_text else size - 1
