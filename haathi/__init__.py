"""haathi: version control for data with data-driven, incremental pipelines and provenance."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from haathi.client import Client


def connect(address: str | None = None) -> Client:
    """Open a store: a directory path (embedded), else ``$HAATHI_ADDRESS``, else ~/.haathi."""
    from haathi.client import connect as _connect

    return _connect(address)


__all__ = ["__version__", "connect"]
