"""File paths inside a commit: normalization and validation.

Paths are absolute (``/a/b.txt``), use ``/`` as separator, and never contain ``..``, ``.``
components, NUL or other control characters, or lone surrogates (they are not Unicode). Paths
that are written must also be free of glob characters, so that every stored path can be
matched literally by a glob.
"""

from __future__ import annotations

import re

from haathi.errors import InvalidArgument
from haathi.models.text import check_text

GLOB_CHARS = frozenset("*?[]{}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GLOB = re.compile(r"[*?\[\]{}]")


def _check_chars(path: str) -> None:
    m = _CONTROL.search(path)
    if m:
        raise InvalidArgument(
            f"invalid path {path!r}: control character {m.group()!r} not allowed"
        )


def normalize(path: str) -> str:
    """Return the canonical form of ``path`` (``/`` for the root) or raise InvalidArgument."""
    if not isinstance(path, str):
        raise InvalidArgument(f"invalid path {path!r}: not a string")
    check_text(path, f"path {_shown(path)}")
    _check_chars(path)
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidArgument(f"invalid path {path!r}: '..' is not allowed")
        parts.append(part)
    return "/" + "/".join(parts)


def normalize_for_write(path: str) -> str:
    """Like :func:`normalize`, also rejecting glob characters and the root itself."""
    norm = normalize(path)
    if _GLOB.search(norm):
        bad = sorted(set(_GLOB.findall(norm)))
        raise InvalidArgument(
            f"invalid path {path!r}: glob characters {''.join(bad)!r} are not allowed in file "
            "names"
        )
    if norm == "/":
        raise InvalidArgument("invalid path '/': a file needs a name")
    return norm


def _shown(text: str, most: int = 40) -> str:
    """``text`` quoted, its middle elided when long (an error message stays one line)."""
    return repr(text) if len(text) <= most else repr(text[: most // 2] + "..." + text[-most // 2 :])


def join(directory: str, name: str) -> str:
    """Join a normalized directory and a relative name."""
    return normalize(directory.rstrip("/") + "/" + name)


def dir_prefix(directory: str) -> str:
    """The key prefix all files below ``directory`` share (``/`` for the root)."""
    return "/" if directory == "/" else directory + "/"
