"""The client's context per store or server: its default project (Pachyderm's
``pachctl config update context --project P``) and the CLI's active transaction (``start``,
``stop`` and ``resume transaction`` set it; the transactional commands add to it).

Kept in ``$HAATHI_CONFIG_DIR/config.json`` (default ``~/.config/haathi``), readable by the
user only, as ``{"contexts": {ADDRESS: {"project": P, "active_transaction": ID}}}``;
``ADDRESS`` is the resolved address
(a store directory's absolute path, or a server URL). ``$HAATHI_PROJECT`` takes precedence
over the file. The project is not checked here: a command naming a project that does not
exist fails then, as in Pachyderm.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from haathi.client.session import write_private_json
from haathi.config import user_config_dir
from haathi.errors import InvalidArgument
from haathi.models.ids import DEFAULT_PROJECT, validate_project_name

ENV_PROJECT = "HAATHI_PROJECT"


def config_file() -> Path:
    return user_config_dir() / "config.json"


def context_key(address: str) -> str:
    """How ``address`` (as resolved) names its context: a server URL without a trailing
    ``/``, or a store directory's absolute path."""
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    if "\x00" in address:
        raise InvalidArgument("invalid store address")
    return str(Path(address).expanduser().resolve())


def _load() -> dict[str, Any]:
    try:
        data = json.loads(config_file().read_text())
    except (OSError, ValueError):
        return {"contexts": {}}
    if not isinstance(data, dict) or not isinstance(data.get("contexts"), dict):
        return {"contexts": {}}
    return data


def context(address: str) -> dict[str, Any]:
    """The context of ``address`` (``{}``: none saved)."""
    found = _load()["contexts"].get(context_key(address))
    return dict(found) if isinstance(found, dict) else {}


def project_for(address: str) -> str:
    """The project commands on ``address`` use by default: ``$HAATHI_PROJECT``, else the
    context's, else ``default``."""
    env = os.environ.get(ENV_PROJECT)
    if env:
        return validate_project_name(env)
    saved = context(address).get("project")
    return validate_project_name(saved) if isinstance(saved, str) and saved else DEFAULT_PROJECT


def update_context(address: str, *, project: str | None = None) -> dict[str, Any]:
    """Change the context of ``address`` (``project``: its default project); the context."""
    data = _load()
    key = context_key(address)
    current = data["contexts"].get(key)
    entry = dict(current) if isinstance(current, dict) else {}
    if project is not None:
        entry["project"] = validate_project_name(project)
    data["contexts"][key] = entry
    _write(data)
    return entry


def active_transaction(address: str) -> str | None:
    """The transaction the CLI's commands on ``address`` add to (None: they act)."""
    found = context(address).get("active_transaction")
    return found if isinstance(found, str) and found else None


def set_active_transaction(address: str, transaction: str | None) -> None:
    """Make ``transaction`` the active one on ``address`` (None: there is none)."""
    data = _load()
    key = context_key(address)
    current = data["contexts"].get(key)
    entry = dict(current) if isinstance(current, dict) else {}
    if transaction is None:
        entry.pop("active_transaction", None)
    else:
        entry["active_transaction"] = transaction
    data["contexts"][key] = entry
    _write(data)


def _write(data: dict[str, Any]) -> None:
    write_private_json(config_file(), data, sort_keys=True)
