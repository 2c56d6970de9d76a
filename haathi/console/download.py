"""Downloads (``{commit}/download/{path}``): a file's bytes, or a directory as a tar archive,
streamed as they are read (never held whole).

A file comes as ``application/octet-stream``, an attachment named as the file, so that no
file in a repo is ever run as a page or a script of the console's origin (a browser with
``nosniff`` will not take it for one); with ``?inline=1`` an image the console previews
(:func:`haathi.console.preview.image_type`: raster formats, not SVG) comes as its image
type, for an ``<img>``. Every answer carries ``Content-Security-Policy: sandbox``: opened on
its own, it runs nothing with the console's rights. A directory comes as a tar archive of
the files below it (one walk of the tree, their bytes read in batches), named after the
directory, its members under that name.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from haathi.console import preview
from haathi.console.browse import At, file_at
from haathi.console.pages import Page
from haathi.models import paths
from haathi.models.info import FileInfo, FileType
from haathi.models.tar_stream import pax_stream

SANDBOX = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
BATCH_BYTES = 256 * 1024  # what one write to the socket carries at most


def disposition(kind: str, name: str) -> str:
    """A ``Content-Disposition`` naming the file ``name`` (any characters: RFC 6266's
    ``filename*``, with a plain ASCII ``filename`` for old clients)."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"{kind}; filename=\"{plain or 'download'}\"; filename*=UTF-8''{quote(name, safe='')}"


def download(page: Page) -> Response:
    where, found = file_at(page)
    if found.type is FileType.DIR:
        return _archive(page, where, found)
    image = preview.image_type(found.path) if page.request.query_params.get("inline") else None
    _, chunks = page.api.read_file(where.spec)
    name = found.path.rpartition("/")[2]
    headers = {
        "Content-Length": str(found.size_bytes),
        "Content-Disposition": disposition("inline" if image else "attachment", name),
        "Content-Security-Policy": SANDBOX,
    }
    media = image or "application/octet-stream"
    return StreamingResponse(chunks, media_type=media, headers=headers)


def _archive(page: Page, where: At, info: FileInfo) -> Response:
    top = info.path.rpartition("/")[2] or where.key.rpartition("/")[2]
    files = page.api.read_files(where.spec)
    headers = {
        "Content-Disposition": disposition("attachment", f"{top}.tar"),
        "Content-Security-Policy": SANDBOX,
    }
    below = len(paths.dir_prefix(info.path))
    body = _batched(_tar(files, top, below))
    return StreamingResponse(body, media_type="application/x-tar", headers=headers)


def _tar(
    files: Iterator[tuple[FileInfo, Iterator[bytes]]], top: str, below: int
) -> Iterator[bytes]:
    """A POSIX (pax) tar stream of ``files``, each named ``top/`` and its path below the
    directory (``below``: the length of the directory's prefix)."""
    return pax_stream(files, lambda info: tarfile.TarInfo(f"{top}/{info.path[below:]}"))


def _batched(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``pieces`` joined into writes of up to :data:`BATCH_BYTES` (small files' headers and
    bytes would otherwise each be a write)."""
    held: list[bytes] = []
    size = 0
    for piece in pieces:
        held.append(piece)
        size += len(piece)
        if size >= BATCH_BYTES:
            yield b"".join(held)
            held, size = [], 0
    if held:
        yield b"".join(held)
