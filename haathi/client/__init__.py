"""The public Python client: ``haathi.connect()`` returns a :class:`Client`."""

from haathi.client.client import Client, CommitHandle, connect, init

__all__ = ["Client", "CommitHandle", "connect", "init"]
