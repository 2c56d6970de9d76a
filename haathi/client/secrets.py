"""Secret methods of the Client (Pachyderm's ``pachctl create/list/inspect/delete secret``).
A secret is given as a Kubernetes Secret document; no method returns a value."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.contract import ApiContract
from haathi.models.secret import SecretInfo, load_secret_text

SecretSource = dict[str, Any] | str | os.PathLike[str]


def load_secret(source: SecretSource) -> dict[str, Any]:
    """A Secret document from a dict, a JSON/YAML text, or a file path (``-``: stdin)."""
    if isinstance(source, dict):
        return source
    text = str(source)
    if isinstance(source, os.PathLike) or (
        text and not text.lstrip().startswith("{") and "\n" not in text
    ):
        if text == "-":
            return load_secret_text(sys.stdin.read(), "stdin")
        try:
            return load_secret_text(Path(text).read_text(), text)
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise InvalidArgument(f"cannot read {text}: {why}") from exc
    return load_secret_text(text)


class SecretMethods:
    """Mixed into :class:`haathi.client.client.Client`."""

    _api: ApiContract

    def create_secret(self, secret: SecretSource) -> SecretInfo:
        """Store a secret, encrypted, from a Kubernetes Secret (a dict, its JSON or YAML text,
        or a file path; ``data`` base64, ``stringData`` plain text). Cluster admins only."""
        return self._api.create_secret(load_secret(secret))

    def inspect_secret(self, name: str) -> SecretInfo:
        """A secret's name, type, key names and creation time (never a value)."""
        return self._api.inspect_secret(name)

    def list_secret(self) -> list[SecretInfo]:
        """Every secret, by name (never a value)."""
        return self._api.list_secret()

    def delete_secret(self, name: str) -> None:
        """Delete a secret: jobs of pipelines that use it fail until it is created again."""
        self._api.delete_secret(name)
