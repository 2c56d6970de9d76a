"""Jsonnet pipeline templates (``create pipeline --jsonnet T --arg k=v``), as Pachyderm's.

A template is Jsonnet (https://jsonnet.org), evaluated here, on the client, by the official
implementation's Python binding. Each ``--arg key=value`` is a top-level argument (a string)
of the template's top-level function; the result is one pipeline spec or a list of them. A
template may import files beside it (a local template) and ``http(s)://`` URLs; a template
read from a URL imports URLs only (relative ones against its own), never the client's files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from haathi.client import urls
from haathi.errors import HaathiError, InvalidArgument

_WHERE = re.compile(r"^\s*(\S+:\d+:\d+(?:-\d+(?::\d+)?)?)")
IMPORT_LIMIT = urls.TEXT_LIMIT


def parse_args(args: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """``key=value`` texts (or a mapping) as the template's arguments; a key given twice
    keeps its last value, as pachctl."""
    if isinstance(args, Mapping):
        return {str(k): str(v) for k, v in args.items()}
    out: dict[str, str] = {}
    for text in args:
        key, sep, value = str(text).partition("=")
        if not sep or not key:
            raise InvalidArgument(f'invalid template argument "{text}": must have form "key=value"')
        out[key] = value
    return out


def render(template: str, args: Mapping[str, str] | Sequence[str] = ()) -> list[dict[str, Any]]:
    """The pipeline specs the template at ``template`` (a path, a URL or ``-``) makes with
    ``args``; a Jsonnet error is an :class:`InvalidArgument` naming its line."""
    import _jsonnet

    from haathi.pps.spec import load_documents

    values = parse_args(args)
    with urls.Fetcher() as fetcher:
        text = urls.read_text(template, fetcher)
        name = "stdin" if template == "-" else template
        try:
            out = _jsonnet.evaluate_snippet(
                name, text, tla_vars=values, import_callback=_importer(fetcher)
            )
        except RuntimeError as exc:
            raise InvalidArgument(f"cannot render {name}: {_one_line(str(exc))}") from exc
    return load_documents(out, f"{name} (rendered)")


def _importer(fetcher: urls.Fetcher) -> Any:
    """Jsonnet's import callback: ``(directory of the importing file, imported path)`` to
    ``(its full name, its bytes)``. What a file at a URL imports is a URL (a path is taken
    relative to its own URL, as a browser takes a link)."""

    def load(base: str, rel: str) -> tuple[str, bytes]:
        if urls.is_url(rel) or urls.is_url(base):
            url = rel if urls.is_url(rel) else urljoin(base, rel)
            if not url.startswith(("http://", "https://")):
                raise RuntimeError(f"cannot import {rel}: only http(s) URLs may be imported")
            try:
                return url, fetcher.read_text(url, limit=IMPORT_LIMIT).encode()
            except HaathiError as exc:
                raise RuntimeError(str(exc)) from exc
        path = os.path.join(base, rel)
        try:
            return path, Path(path).read_bytes()
        except OSError as exc:
            raise RuntimeError(f"cannot import {rel}: {exc.strerror or exc}") from exc

    return load


def _one_line(message: str) -> str:
    """Jsonnet's error (a message, then a trace of where) as one line: the message and the
    innermost place in a file that the trace names."""
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    head = lines[0].strip() if lines else "error"
    for line in lines[1:]:
        found = _WHERE.match(line)
        if found:
            return f"{head} (at {found.group(1)})"
    if "not bound in call" in head:
        head += " (give it with --arg NAME=VALUE)"
    return head
