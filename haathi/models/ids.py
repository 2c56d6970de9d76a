"""Small typed identifiers: content digests, commit IDs, and the names of repos and branches."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import blake3

from haathi.errors import InvalidArgument

DIGEST_SIZE = 32
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")  # whole names: fullmatch
_PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,50}")
DEFAULT_PROJECT = "default"
MAX_PROJECT_NAME = 51  # Pachyderm's: 63 - len("-v99") - 8
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


def validate_project_name(name: str) -> str:
    """Project names: letters, digits, ``_`` and ``-``, starting alphanumeric, at most 51
    characters (Pachyderm's rules)."""
    if not isinstance(name, str) or not _PROJECT_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid project name {name!r}: use letters, digits, '_' and '-' (start with a "
            f"letter or digit, at most {MAX_PROJECT_NAME} characters)"
        )
    return name


def repo_key(project: str, name: str) -> str:
    """The key of repo (or pipeline) ``name`` in ``project``: the bare name in the default
    project, else ``project/name``. Every layer below the client names repos by key."""
    validate_project_name(project)
    validate_repo_name(name)
    return name if project == DEFAULT_PROJECT else f"{project}/{name}"


def split_key(key: str) -> tuple[str, str]:
    """``(project, name)`` of a repo key (a bare name is in the default project)."""
    project, sep, name = key.partition("/")
    return (project, name) if sep else (DEFAULT_PROJECT, key)


def validate_repo_key(key: str) -> str:
    """A repo key (``name`` or ``project/name``), normalized: ``default/x`` is ``x``."""
    if not isinstance(key, str):
        raise InvalidArgument(f"invalid repo name {key!r}")
    if "/" not in key:
        return validate_repo_name(key)
    project, name = split_key(key)
    return repo_key(project, name)


def qualify(name: str, project: str) -> str:
    """The key of ``name`` (a bare name, or ``project/name``) when the current project is
    ``project``: an explicit ``project/`` wins."""
    return validate_repo_key(name) if "/" in name else repo_key(project, name)
