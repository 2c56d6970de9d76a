"""Tokens a user has logged in with, per server address (``haathi auth login``).

Kept in ``$HAATHI_CONFIG_DIR/tokens.json`` (default ``~/.config/haathi``), readable by the
user only. ``$HAATHI_TOKEN`` takes precedence over the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from haathi.config import user_config_dir

ENV_TOKEN = "HAATHI_TOKEN"


def tokens_file() -> Path:
    return user_config_dir() / "tokens.json"


def _load() -> dict[str, str]:
    try:
        data = json.loads(tokens_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _key(address: str) -> str:
    return address.rstrip("/")


def token_for(address: str) -> str | None:
    """The token to send to ``address``: ``$HAATHI_TOKEN``, else the one logged in with."""
    return os.environ.get(ENV_TOKEN) or _load().get(_key(address))


def save_token(address: str, token: str) -> Path:
    """Remember ``token`` for ``address`` (the file is written atomically, mode 0600)."""
    tokens = _load()
    tokens[_key(address)] = token
    return _write(tokens)


def forget_token(address: str) -> bool:
    """Forget the token of ``address``; whether there was one."""
    tokens = _load()
    if tokens.pop(_key(address), None) is None:
        return False
    _write(tokens)
    return True


def _write(tokens: dict[str, str]) -> Path:
    return write_private_json(tokens_file(), tokens)


def write_private_json(path: Path, data: object, *, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (a temp file renamed over it, synced),
    readable by its owner only (mode 0600): the client's tokens and contexts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=sort_keys)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
