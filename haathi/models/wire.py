"""The HTTP wire format shared by ``haathi serve`` and the remote client.

JSON bodies are the value types' ``to_dict()`` (the ``-o json`` shapes of docs/json.md); an
error is the :meth:`haathi.errors.HaathiError.to_dict` envelope with the class's HTTP status.

Refs travel as one URL path segment; :data:`DEFAULT_REF` stands for "no ref given" (the
default branch), which some operations treat differently from an explicit ``master``.

A repo or pipeline key (``project/name``) cannot travel in the path: servers percent-decode the
path before routing, so ``p%2Fdata`` would become two segments. The path carries the bare name
and the query ``project=P`` its project (left out for the default project).

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
from urllib.parse import quote, urlencode

from haathi.models.ids import DEFAULT_PROJECT, split_key
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


def project_query(key: str) -> str:
    """``?project=P`` for a key in project ``P``; empty in the default project."""
    project, _ = split_key(key)
    return "" if project == DEFAULT_PROJECT else "?" + urlencode({"project": project})


def keyed_path(collection: str, key: str, suffix: str = "") -> str:
    """``/v1/{collection}/{name}{suffix}?project=P`` (``repos`` or ``pipelines``)."""
    name = split_key(key)[1]
    return f"{API_PREFIX}/{collection}/{quote(name, safe='')}{suffix}{project_query(key)}"


def commit_path(spec: CommitSpec, suffix: str = "") -> str:
    """``/v1/repos/{repo}/commits/{ref}{suffix}`` (and the project's query)."""
    return keyed_path("repos", spec.repo, f"/commits/{ref_segment(spec)}{suffix}")


def file_path(kind: str, spec: FileSpec) -> str:
    """``/v1/repos/{repo}/commits/{ref}/{kind}`` plus ``/{path}`` when the spec names one."""
    path = f"/{kind}/{quote(spec.path.lstrip('/'), safe='/')}" if spec.has_path else f"/{kind}"
    return commit_path(spec.commit, path)


def file_spec_text(spec: FileSpec) -> str:
    """The refspec text that :func:`haathi.models.refspec.parse_file` reads back."""
    return f"{spec.commit}:{spec.path}" if spec.has_path else str(spec.commit)
