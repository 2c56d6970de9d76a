"""haathi: version control for data with data-driven, incremental pipelines and provenance."""

from __future__ import annotations

__version__ = "0.1.0"

# not typing's: importing typing costs every `haathi` command ~2 ms (haathi/cli/launcher.py)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from haathi.client import Client


def connect(address: str | None = None, **overrides: Any) -> Client:
    """Open a store: a directory path, else ``$HAATHI_ADDRESS``, else ~/.haathi (or connect
    to a server at an ``http(s)://`` address); see :func:`haathi.client.connect`.

    ``overrides`` replace settings of the store's config (``db_url``, ``objects_url``, ...).
    The jobs a store's client runs get their S3 gateways (s3 inputs, ``s3_out``) from
    :mod:`haathi.server.sidecar`.
    """
    from haathi.client import connect as _connect
    from haathi.server.sidecar import JobGatewayFactory

    overrides.setdefault("gateways", JobGatewayFactory())
    return _connect(address, **overrides)


def init(address: str | None = None, **settings: Any) -> Client:
    """Create a store (see :func:`haathi.client.init`) and connect to it."""
    from haathi.client import init as _init
    from haathi.server.sidecar import JobGatewayFactory

    settings.setdefault("gateways", JobGatewayFactory())
    return _init(address, **settings)


__all__ = ["__version__", "connect", "init"]
