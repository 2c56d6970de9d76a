"""Secrets: the Kubernetes Secret document ``create secret -f`` reads (as Pachyderm takes it),
what ``list``/``inspect secret`` show (never a value), and the values a job hands its user code.

A document is a Kubernetes ``v1.Secret`` in JSON (or YAML), as ``kubectl create secret generic
NAME --from-literal=k=v --dry-run=client -o json`` writes it: ``metadata.name``, ``type``
(default ``Opaque``), ``data`` (base64 values) and/or ``stringData`` (plain text, winning over
``data`` for the same key, as Kubernetes merges them). Errors never quote a value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from haathi.errors import InvalidArgument

MAX_SECRET_BYTES = 1 << 20  # Kubernetes' limit on a Secret's data
MAX_NAME = 253
MAX_TYPE = 64
DEFAULT_TYPE = "Opaque"
MASK = "***"
MIN_MASKED = 4  # values shorter than this are not masked in logs (they would mask everything)
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # a DNS subdomain (Kubernetes')
_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_TOP_FIELDS = frozenset(
    {"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"}
)


@dataclass(frozen=True)
class SecretDoc:
    """A parsed Secret document: its name, type and values (``repr`` shows no value)."""

    name: str
    type: str
    data: dict[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class SecretInfo:
    """A secret as ``list``/``inspect secret`` show it: its key names, never a value."""

    name: str
    type: str
    keys: tuple[str, ...]
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "keys": list(self.keys),
            "created": self.created.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SecretInfo:
        return cls(
            str(d["name"]),
            str(d["type"]),
            tuple(str(k) for k in d["keys"]),
            datetime.fromisoformat(d["created"]),
        )


def validate_secret_name(name: object, where: str = "secret name") -> str:
    """A Kubernetes object name: lowercase letters, digits, ``-`` and ``.``, at most 253."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where} is required: a non-empty string")
    if len(name) > MAX_NAME or not _NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"{where} {name[:80]!r} is invalid: use lowercase letters, digits, '-' and '.', "
            f"starting and ending with a letter or digit, at most {MAX_NAME} characters"
        )
    return name


def validate_key(key: object, where: str) -> str:
    """A key of a secret's data: letters, digits, ``-``, ``_`` and ``.`` (Kubernetes')."""
    bad = not isinstance(key, str) or key in (".", "..") or len(key) > MAX_NAME
    if bad or not _KEY_RE.fullmatch(str(key)):
        shown = key[:80] if isinstance(key, str) else key
        raise InvalidArgument(
            f"{where}: key {shown!r} is invalid: use letters, digits, '-', '_' and '.' (not "
            f"'.' or '..'), at most {MAX_NAME} characters"
        )
    assert isinstance(key, str)
    return key


def load_secret_text(text: str, source: str = "secret") -> dict[str, Any]:
    """The one Secret document in ``text`` (JSON, or YAML); bad syntax names only where."""
    stripped = text.lstrip()
    if not stripped:
        raise InvalidArgument(f"{source}: no secret found (empty)")
    if stripped[0] == "{":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}"
            ) from exc
    else:
        import yaml  # on use only

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise InvalidArgument(f"{source}: invalid YAML{where}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{source}: a secret is a JSON object (a Kubernetes Secret)")
    return doc


def parse_secret(doc: Any) -> SecretDoc:
    """Validate a Kubernetes Secret document (see the module docstring)."""
    if not isinstance(doc, dict):
        raise InvalidArgument("a secret is a JSON object (a Kubernetes Secret)")
    unknown = sorted(str(k) for k in doc if k not in _TOP_FIELDS)
    if unknown:
        raise InvalidArgument(
            f"unsupported field {unknown[0]!r} in secret (a Kubernetes Secret has apiVersion, "
            "kind, metadata, type, data and stringData)"
        )
    kind = doc.get("kind")
    if kind is not None and kind != "Secret":
        raise InvalidArgument(f"kind must be 'Secret', got {str(kind)[:80]!r}")
    api_version = doc.get("apiVersion")
    if api_version is not None and api_version != "v1":
        raise InvalidArgument(f"apiVersion must be 'v1', got {str(api_version)[:80]!r}")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        raise InvalidArgument("metadata.name is required")
    name = validate_secret_name(metadata.get("name"), "metadata.name")
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument("metadata.labels must be an object of strings")
    if labels.get("suite") not in (None, "", "pachyderm"):
        raise InvalidArgument(
            f"invalid suite label set on secret: suite={str(labels['suite'])[:80]}"
        )
    kind_of = doc.get("type", DEFAULT_TYPE) or DEFAULT_TYPE
    if not isinstance(kind_of, str) or len(kind_of) > MAX_TYPE or not kind_of.isprintable():
        raise InvalidArgument(f"type must be a string of at most {MAX_TYPE} printable characters")
    data = _data(doc.get("data"), "data", _base64)
    data.update(_data(doc.get("stringData"), "stringData", _text))
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_SECRET_BYTES:
        raise InvalidArgument(
            f"secret {name} is too large: {size} bytes of data, at most {MAX_SECRET_BYTES}"
        )
    return SecretDoc(name, kind_of, data)


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"{where} is not valid base64 (stringData takes plain text)") from exc


def _text(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string")
    return value.encode()


def _data(values: Any, where: str, decode: Any) -> dict[str, bytes]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InvalidArgument(f"{where} must be an object of key: value")
    return {validate_key(k, where): decode(v, f"{where}.{k}") for k, v in values.items()}


@dataclass(frozen=True, slots=True)
class SecretMount:
    """The files of one secret, shown read-only at ``mount_path`` (a file per key)."""

    mount_path: str
    files: tuple[tuple[str, bytes], ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class JobSecrets:
    """The secret values a job's user code gets: environment variables and mounted files.
    Picklable (a Dask worker receives them inside its task, in memory); its ``repr`` names
    variables and paths, never a value."""

    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    mounts: tuple[SecretMount, ...] = ()

    def __repr__(self) -> str:
        names = [k for k, _ in self.env]
        return f"JobSecrets(env={names}, mounts={[m.mount_path for m in self.mounts]})"

    def __bool__(self) -> bool:
        return bool(self.env or self.mounts)

    def masked_env(self) -> dict[str, str]:
        """The variables as records show them: each value ``***``."""
        return dict.fromkeys((k for k, _ in self.env), MASK)

    def values(self) -> list[bytes]:
        """Every value user code may print, longest first (what :func:`redact` masks)."""
        found = {v.encode("utf-8", "surrogateescape") for _, v in self.env}
        found.update(data for m in self.mounts for _, data in m.files)
        return sorted(found, key=len, reverse=True)

    def redact(self, output: bytes) -> bytes:
        """``output`` with every value masked (see :func:`redact`)."""
        return redact(output, self.values()) if self else output


def redact(output: bytes, values: Iterable[bytes]) -> bytes:
    """``output`` with each value of at least :data:`MIN_MASKED` bytes, and the same value
    without surrounding whitespace (a file's trailing newline), replaced by ``***``."""
    for value in values:
        for form in (value, value.strip()):
            if len(form) >= MIN_MASKED and form in output:
                output = output.replace(form, MASK.encode())
    return output
