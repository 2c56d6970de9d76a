"""Reading sizes (``256MiB``) and durations (``10m``) given on the command line."""

from __future__ import annotations

import re

from haathi.errors import InvalidArgument

_SIZES = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
          "tb": 1000**4, "tib": 1024**4}  # fmt: skip
_DURATIONS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse(text: str, units: dict[str, int], what: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in units:
        raise InvalidArgument(f"invalid {what} {text!r}")
    return float(m.group(1)) * units[m.group(2).lower()]


def parse_size(text: str) -> int:
    """Bytes in ``text`` such as ``1GiB``, ``500MB`` or ``4096``."""
    return int(_parse(text, _SIZES, "size (e.g. 256MiB)"))


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``10m``, ``1h``, ``30s`` or ``0``."""
    return _parse(text, _DURATIONS, "duration (e.g. 10m)")
