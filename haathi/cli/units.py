"""Reading sizes (``256MiB``) and durations (``10m``) given on the command line."""

from __future__ import annotations

import re

from haathi.errors import InvalidArgument
from haathi.models.units import parse_size

__all__ = ["parse_duration", "parse_size"]

_DURATIONS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse(text: str, units: dict[str, int], what: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in units:
        raise InvalidArgument(f"invalid {what} {text!r}")
    return float(m.group(1)) * units[m.group(2).lower()]


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``10m``, ``1h``, ``30s`` or ``0``."""
    return _parse(text, _DURATIONS, "duration (e.g. 10m)")
