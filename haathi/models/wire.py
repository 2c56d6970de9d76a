"""The HTTP wire format shared by ``haathi serve`` and the remote client.

JSON bodies are the value types' ``to_dict()`` (the ``-o json`` shapes of docs/json.md); an
error is the :meth:`haathi.errors.HaathiError.to_dict` envelope with the class's HTTP status.

Refs travel as one URL path segment; :data:`DEFAULT_REF` stands for "no ref given" (the
default branch), which some operations treat differently from an explicit ``master``.

A ``modify`` request body is framed so that uploads stream:

    <decimal length of the header>\\n<JSON header>
    then, for each ``put`` op of the header in order, its bytes as frames:
    <4-byte big-endian length><that many bytes> ... and an empty frame (length 0) ending it.

The header is ``{"description": str, "ops": [op, ...]}`` with ops
``{"op": "put", "path", "append"}``, ``{"op": "delete", "path", "recursive"}`` and
``{"op": "copy", "source": "repo@ref:/path", "path", "append"}``. A body that ends before its
last frame is truncated: the server commits nothing.
"""

from __future__ import annotations

import struct
from urllib.parse import quote

from haathi.models.refspec import CommitSpec, FileSpec

API_PREFIX = "/v1"
DEFAULT_REF = "~"
FRAME = struct.Struct(">I")
FRAME_BYTES = 1024 * 1024  # the client's frame size (the server accepts any up to MAX_FRAME)
MAX_FRAME = 64 * 1024 * 1024
MAX_HEADER = 64 * 1024 * 1024
FILE_INFO_HEADER = "X-Haathi-File-Info"


def ref_segment(spec: CommitSpec) -> str:
    return quote(spec.ref, safe="") if spec.ref is not None else DEFAULT_REF


def ref_from_segment(segment: str) -> str | None:
    return None if segment == DEFAULT_REF else segment


def commit_path(spec: CommitSpec) -> str:
    """``/v1/repos/{repo}/commits/{ref}``."""
    return f"{API_PREFIX}/repos/{quote(spec.repo, safe='')}/commits/{ref_segment(spec)}"


def file_path(kind: str, spec: FileSpec) -> str:
    """``/v1/repos/{repo}/commits/{ref}/{kind}`` plus ``/{path}`` when the spec names one."""
    base = f"{commit_path(spec.commit)}/{kind}"
    return f"{base}/{quote(spec.path.lstrip('/'), safe='/')}" if spec.has_path else base


def file_spec_text(spec: FileSpec) -> str:
    """The refspec text that :func:`haathi.models.refspec.parse_file` reads back."""
    return f"{spec.commit}:{spec.path}" if spec.has_path else str(spec.commit)
