"""``transform.secrets`` of a pipeline spec: which secrets user code gets, and how.

As in Pachyderm, each entry names a secret and either an ``env_var`` (with the ``key`` whose
value it holds) or a ``mount_path`` (a directory holding one file per key), or both. The spec
keeps only names; values never enter it (:mod:`haathi.pps.secrets` opens them for a job).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.secret import validate_key, validate_secret_name
from haathi.pps.spec_fields import SpecObject, type_name

_FIELDS = frozenset({"name", "key", "env_var", "mount_path"})
_ENV_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")  # Kubernetes' rule for variable names
# where a mount would hide what the sandbox itself provides
_RESERVED = ("/pfs", "/proc", "/dev", "/.haathi")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """One entry of ``transform.secrets``."""

    name: str
    key: str | None = None
    env_var: str | None = None
    mount_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for field in ("key", "env_var", "mount_path"):
            if getattr(self, field) is not None:
                out[field] = getattr(self, field)
        return out


def parse_secret_refs(tf: SpecObject) -> tuple[SecretRef, ...]:
    """``transform.secrets`` of the transform ``tf`` (whose ``env`` names a secret's
    ``env_var`` may not take)."""
    env = tf.values.get("env") or {}
    items = tf.values.get("secrets", [])
    where = tf.where("secrets")
    if not isinstance(items, list):
        raise InvalidArgument(f"{where} must be a list of objects, got {type_name(items)}")
    refs = tuple(_ref(item, f"{where}[{i}]") for i, item in enumerate(items))
    seen_env: set[str] = set()
    seen_mount: set[str] = set()
    for ref in refs:
        if ref.env_var is not None:
            if ref.env_var in env:
                raise InvalidArgument(
                    f"secret {ref.name}'s env_var {ref.env_var} is also set in transform.env"
                )
            if ref.env_var in seen_env:
                raise InvalidArgument(f"{where}: env_var {ref.env_var} is given twice")
            seen_env.add(ref.env_var)
        if ref.mount_path is not None:
            if ref.mount_path in seen_mount:
                raise InvalidArgument(f"{where}: mount_path {ref.mount_path} is given twice")
            seen_mount.add(ref.mount_path)
    return refs


def _ref(item: Any, where: str) -> SecretRef:
    obj = SpecObject(item, where, _FIELDS)
    name = validate_secret_name(obj.get_str("name"), obj.where("name"))
    key = obj.get_str("key") or None
    env_var = obj.get_str("env_var") or None
    mount_path = obj.get_str("mount_path") or None
    if env_var is not None and key is None:
        raise InvalidArgument(f"secret {name} has env_var set but is missing key")
    if env_var is None and mount_path is None:
        raise InvalidArgument(
            f"{where}: secret {name} needs env_var (with key) or mount_path, or both"
        )
    if key is not None:
        validate_key(key, obj.where("key"))
    if env_var is not None and not _ENV_RE.fullmatch(env_var):
        raise InvalidArgument(
            f"{obj.where('env_var')} {env_var[:80]!r} is not a variable name (letters, digits, "
            "'_', '-' and '.', not starting with a digit)"
        )
    if mount_path is not None:
        mount_path = _mount_path(mount_path, obj.where("mount_path"))
    return SecretRef(name, key, env_var, mount_path)


def _mount_path(path: str, where: str) -> str:
    norm = posixpath.normpath(path)
    if not path.startswith("/") or "\0" in path or norm in ("/", "/tmp") or norm.startswith("//"):
        raise InvalidArgument(
            f"{where} must be an absolute directory path other than / and /tmp, got {path[:80]!r}"
        )
    if any(norm == r or norm.startswith(r + "/") for r in _RESERVED):
        raise InvalidArgument(
            f"{where} {norm!r} is inside {', '.join(_RESERVED)}, which the sandbox provides"
        )
    return norm
