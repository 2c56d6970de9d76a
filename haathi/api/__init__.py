"""The operations of haathi as one surface: what the client, the CLI and the server call."""

from haathi.api.service import Api

__all__ = ["Api"]
