"""Small typed identifiers: content digests, commit IDs, and the names of repos and branches."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import blake3

from haathi.errors import InvalidArgument

DIGEST_SIZE = 32
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")  # whole names: fullmatch
_HEX32_RE = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A BLAKE3-256 content hash: the name of every blob."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != DIGEST_SIZE:
            raise InvalidArgument(f"a digest has {DIGEST_SIZE} bytes, got {len(self.raw)}")

    @classmethod
    def of(cls, data: bytes | memoryview) -> Digest:
        """Hash ``data`` with BLAKE3."""
        return cls(blake3.blake3(data).digest())

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def __str__(self) -> str:
        return self.hex


def new_commit_id() -> str:
    """A fresh commit (set) ID: 32 lowercase hex characters of a random UUID."""
    return uuid.uuid4().hex


def is_commit_id(text: str) -> bool:
    """True if ``text`` has the shape of a full commit ID."""
    return bool(isinstance(text, str) and _HEX32_RE.fullmatch(text))


def validate_repo_name(name: str) -> str:
    """Repo names: letters, digits, ``_`` and ``-``, starting alphanumeric, at most 63 chars."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid repo name {name!r}: use letters, digits, '_' and '-' (start with a "
            "letter or digit, at most 63 characters)"
        )
    return name


def validate_branch_name(name: str) -> str:
    """Branch names follow repo names and must not look like a commit ID."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid branch name {name!r}: use letters, digits, '_' and '-' (start with a "
            "letter or digit, at most 63 characters)"
        )
    if is_commit_id(name):
        raise InvalidArgument(f"invalid branch name {name!r}: it looks like a commit ID")
    return name
