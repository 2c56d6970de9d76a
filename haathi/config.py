"""Where the store is: HAATHI_ADDRESS / --address, defaulting to ~/.haathi."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from haathi.errors import InvalidArgument

ENV_ADDRESS = "HAATHI_ADDRESS"
DEFAULT_ADDRESS = "~/.haathi"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """An embedded store: one directory holding the metadata DB and the objects."""

    root: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'meta.db'}"

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def spool_dir(self) -> Path:
        return self.root / "objects" / ".tmp"


def resolve_address(address: str | None = None) -> str:
    """The explicit address, else ``$HAATHI_ADDRESS``, else ``~/.haathi``."""
    return address or os.environ.get(ENV_ADDRESS) or DEFAULT_ADDRESS


def store_config(address: str) -> StoreConfig:
    if address.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"{address}: connecting to a haathi server is not available in this version; "
            "use a store directory"
        )
    if "\x00" in address:
        raise InvalidArgument("invalid store address")
    return StoreConfig(Path(address).expanduser().resolve())
