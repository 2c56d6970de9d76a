"""How many items a listing returns (``--number``, ``--limit``): None or 0 means all."""

from __future__ import annotations

from haathi.errors import InvalidArgument

MAX_LIMIT = 2**63 - 1  # a SQL BIGINT (and itertools.islice's bound)


def check_limit(limit: int | None, option: str = "--limit") -> int | None:
    """``limit`` unchanged if it is None or between 0 (all) and :data:`MAX_LIMIT`; otherwise
    InvalidArgument naming ``option``."""
    if limit is not None and not 0 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"{option} must be between 0 (all) and {MAX_LIMIT}, got {limit}")
    return limit
