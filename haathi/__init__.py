"""haathi: version control for data with data-driven, incremental pipelines and provenance."""

from __future__ import annotations

__version__ = "0.1.0"

# not typing's: importing typing costs every `haathi` command ~2 ms (haathi/cli/launcher.py)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from haathi.client import Client


def connect(address: str | None = None, **overrides: Any) -> Client:
    """Open a store: a directory path, else ``$HAATHI_ADDRESS``, else ~/.haathi.

    ``overrides`` replace settings of the store's config (``db_url``, ``objects_url``, ...).
    """
    from haathi.client import connect as _connect

    return _connect(address, **overrides)


def init(address: str | None = None, **settings: Any) -> Client:
    """Create a store (see :func:`haathi.client.init`) and connect to it."""
    from haathi.client import init as _init

    return _init(address, **settings)


__all__ = ["__version__", "connect", "init"]
