"""Human sizes (``1MB``, ``256MiB``, ``100K``), as Docker's go-units writes them and
Pachyderm's trigger sizes and pachctl's flags take them.

``k``, ``M``, ``G``, ``T``, ``P`` (either case, with a ``B`` or not) are powers of 1000, as in
go-units; ``KiB``, ``MiB``, ... are powers of 1024 (go-units reads them as powers of 1000 too:
haathi reads them as what they say).
"""

from __future__ import annotations

import math
import re

from haathi.errors import InvalidArgument

_SIZE_RE = re.compile(
    r"\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?:(?P<prefix>[kmgtp])(?P<binary>i(?=b))?b?|b)?\s*",
    re.IGNORECASE,
)
_POWERS = {None: 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(text: str, what: str = "size (e.g. 256MiB)") -> int:
    """Bytes in ``text`` such as ``1GiB``, ``500MB``, ``1K`` or ``4096``; InvalidArgument
    naming ``what`` otherwise."""
    m = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidArgument(f"invalid {what} {text!r}")
    prefix = m["prefix"].lower() if m["prefix"] else None
    base = 1024 if m["binary"] else 1000
    size = float(m["number"]) * base ** _POWERS[prefix]
    if not math.isfinite(size):
        raise InvalidArgument(f"invalid {what} {text!r}: too large")
    return int(size)
