"""File paths inside a commit: normalization and validation.

Paths are absolute (``/a/b.txt``), use ``/`` as separator, and never contain ``..``, ``.``
components, NUL or other control characters, or lone surrogates (they are not Unicode). Paths
that are written must also be free of glob characters, so that every stored path can be
matched literally by a glob, and fit every common file system: each name at most
:data:`MAX_NAME_BYTES` bytes of UTF-8 (Linux's NAME_MAX) and the whole path at most
:data:`MAX_PATH_BYTES` (Linux's PATH_MAX less its terminating NUL), so ``get file -r`` can
restore what was stored. Names are kept byte for byte (no Unicode normalization).
"""

from __future__ import annotations

import re

from haathi.errors import InvalidArgument
from haathi.models.text import check_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GLOB = re.compile(r"[*?\[\]{}]")
# An ASCII path already canonical: "/"-separated names, none empty, "." or "..", and no
# control character (most paths a put or a restore names: they skip the checks one by one).
_CANONICAL_ASCII = re.compile(r"(?:/(?!\.\.?(?:/|$))[^/\x00-\x1f\x7f]+)+")
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


def _check_chars(path: str) -> None:
    m = _CONTROL.search(path)
    if m:
        raise InvalidArgument(f"invalid path {path!r}: control character {m.group()!r} not allowed")


def normalize(path: str) -> str:
    """Return the canonical form of ``path`` (``/`` for the root) or raise InvalidArgument."""
    if not isinstance(path, str):
        raise InvalidArgument(f"invalid path {path!r}: not a string")
    if path.isascii() and _CANONICAL_ASCII.fullmatch(path):
        return path
    return _normalize(path)


def _normalize(path: str) -> str:
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
            f"invalid path {path!r}: glob characters {''.join(bad)!r} are not allowed in file names"
        )
    if norm == "/":
        raise InvalidArgument("invalid path '/': a file needs a name")
    check_length(norm)
    return norm


def check_length(path: str) -> str:
    """``path`` (normalized) unless a name in it or the whole of it is too long to restore."""
    if len(path) * 4 <= MAX_NAME_BYTES:  # a code point is at most 4 bytes of UTF-8
        return path
    for name in path.split("/"):
        size = len(name.encode())
        if size > MAX_NAME_BYTES:
            raise InvalidArgument(
                f"invalid path {_shown(path)}: the name {_shown(name)} is {size} bytes long "
                f"(UTF-8); a file or directory name can be at most {MAX_NAME_BYTES} bytes"
            )
    size = len(path.encode())
    if size > MAX_PATH_BYTES:
        raise InvalidArgument(
            f"invalid path {_shown(path)}: it is {size} bytes long (UTF-8); a path can be at "
            f"most {MAX_PATH_BYTES} bytes"
        )
    return path


def _shown(text: str, most: int = 40) -> str:
    """``text`` quoted, its middle elided when long (an error message stays one line)."""
    return repr(text) if len(text) <= most else repr(text[: most // 2] + "..." + text[-most // 2 :])


def join(directory: str, name: str) -> str:
    """Join a normalized directory and a relative name."""
    return normalize(directory.rstrip("/") + "/" + name)


def dir_prefix(directory: str) -> str:
    """The key prefix all files below ``directory`` share (``/`` for the root)."""
    return "/" if directory == "/" else directory + "/"
