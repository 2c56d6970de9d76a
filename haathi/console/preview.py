"""A file's preview: what its page shows of it, reading only what that needs.

By its name and its first bytes, a file previews as

- an **image** (PNG, JPEG, GIF, WebP, BMP, ICO, AVIF, up to :data:`IMAGE_BYTES`): shown from
  its download URL (its content type, an ``<img>`` the CSP's ``img-src 'self'`` allows);
  SVG is a document that can hold scripts, so it previews as text;
- a **table**: CSV or TSV (the first :data:`TABLE_ROWS` rows, from its first
  :data:`TABLE_BYTES`), or Parquet (the first rows of the first columns, read through
  pyarrow from ranged reads of the file: its footer, then the pages those rows are in);
- **JSON**, pretty-printed when it is small enough to parse whole (:data:`TEXT_BYTES`), else
  its first bytes;
- **text**, highlighted on the server by Pygments (a lexer chosen by the file's name), its
  first :data:`TEXT_BYTES`;
- **binary**, ``binary, N bytes``: a NUL byte or bytes that are not UTF-8 among its first
  bytes (nothing more is read).

No preview reads a file whole unless it is smaller than what it shows; a big one says how
much of it is shown. Text has the control and bidirectional-override characters shown as
escapes (as every name on every page), before highlighting.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import JsonLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from haathi.api import Api
from haathi.console.render import size, visible
from haathi.errors import HaathiError
from haathi.models.info import FileInfo
from haathi.models.refspec import FileSpec

TEXT_BYTES = 128 * 1024  # highlighted text shown of a file
PRETTY_CHARS = 256 * 1024  # of a JSON file (of at most TEXT_BYTES) pretty-printed
TABLE_BYTES = 256 * 1024  # read of a CSV for its first rows
TABLE_ROWS = 50
TABLE_COLUMNS = 50  # of a Parquet file (its others are named, not read)
CELL_CHARS = 200
IMAGE_BYTES = 32 * 1024 * 1024  # an image bigger than this is a download, not a preview

IMAGES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
    ".avif": "image/avif",
}
DELIMITERS = {".csv": ",", ".tsv": "\t"}
PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Preview:
    """What the page shows of a file: ``kind`` is ``image``, ``table``, ``text``, ``binary``
    or ``empty``; ``note`` says what part of it is shown."""

    kind: str
    note: str = ""
    html: Markup | None = None  # highlighted text
    header: list[str] = field(default_factory=list)  # a table's column names
    rows: list[list[str]] = field(default_factory=list)
    language: str = ""  # the highlighting's (a table's format)


def image_type(path: str) -> str | None:
    """The content type of an image the console shows (None: not one of those)."""
    return IMAGES.get(posixpath.splitext(path)[1].lower())


def preview(api: Api, spec: FileSpec, info: FileInfo) -> Preview:
    """The preview of the file ``info`` at ``spec``."""
    if info.size_bytes == 0:
        return Preview("empty", "an empty file")
    ext = posixpath.splitext(info.path)[1].lower()
    if ext in IMAGES and info.size_bytes <= IMAGE_BYTES:
        return Preview("image")
    if ext in PARQUET:
        return _parquet(api, spec, info)
    head = _read(api, spec, TABLE_BYTES if ext in DELIMITERS else TEXT_BYTES)
    text = _text(head, truncated=len(head) < info.size_bytes)
    if text is None:
        return binary(info)
    if ext in DELIMITERS:
        return _table(text, DELIMITERS[ext], info, complete=len(head) == info.size_bytes)
    if ext == ".json":
        return _json(text, info, len(head))
    return _highlighted(text, _lexer(info.path), info, len(head))


def binary(info: FileInfo, why: str = "") -> Preview:
    return Preview("binary", f"binary, {info.size_bytes:,} bytes{why}")


def _read(api: Api, spec: FileSpec, length: int) -> bytes:
    _, chunks = api.read_file(spec, length=length)
    return b"".join(chunks)


def _text(head: bytes, *, truncated: bool) -> str | None:
    """``head`` as text (None: binary). A multi-byte character cut by the end of a partial
    read is dropped."""
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not truncated or exc.start < len(head) - 3 or exc.reason != "unexpected end of data":
            return None
        text = head[: exc.start].decode("utf-8")
    return text.replace("\r\n", "\n")


def _shown(read: int, info: FileInfo) -> str:
    if read >= info.size_bytes:
        return ""
    return f"the first {size(read)} of {size(info.size_bytes)} ({info.size_bytes:,} bytes)"


@cache
def _formatter() -> HtmlFormatter[str]:
    return HtmlFormatter(linenos="table", cssclass="highlight", wrapcode=True)


def _lexer(path: str) -> Lexer:
    try:
        return get_lexer_for_filename(posixpath.basename(path), stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _highlighted(text: str, lexer: Lexer, info: FileInfo, read: int, note: str = "") -> Preview:
    html = Markup(highlight(visible(text), lexer, _formatter()))  # Pygments escapes the text
    shown = _shown(read, info)
    return Preview("text", "; ".join(filter(None, [note, shown])), html, language=lexer.name)


def _json(text: str, info: FileInfo, read: int) -> Preview:
    lexer = JsonLexer(stripnl=False, ensurenl=False)
    if read < info.size_bytes:  # too big to parse whole: its first bytes, as they are
        return _highlighted(text, lexer, info, read)
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError) as exc:
        return _highlighted(text, lexer, info, read, f"not valid JSON: {exc}")
    note = ""
    if len(pretty) > PRETTY_CHARS:
        pretty = pretty[:PRETTY_CHARS]
        note = f"the first {PRETTY_CHARS:,} characters of it pretty-printed"
    return _highlighted(pretty, lexer, info, read, note)


def _cell(value: Any) -> str:
    if value is None:
        text = "null"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = repr(value)
    elif isinstance(value, (list, dict, tuple)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _table(text: str, delimiter: str, info: FileInfo, *, complete: bool) -> Preview:
    if not complete:
        text = text[: text.rfind("\n") + 1]  # the last line may be cut: not a row
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter, strict=True):
            rows.append([_cell(v) for v in row])
            if len(rows) > TABLE_ROWS + 1:  # the header, the rows shown, and one to know
                break
    except csv.Error as exc:
        return _highlighted(text[:TEXT_BYTES], TextLexer(), info, min(len(text), TEXT_BYTES),
                            f"not a table ({exc})")  # fmt: skip
    if not rows:
        return _highlighted(text, TextLexer(), info, len(text))
    header, body = rows[0], rows[1:]
    more = len(body) > TABLE_ROWS or not complete
    note = f"the first {min(len(body), TABLE_ROWS)} rows" if more else f"all {len(body)} rows"
    kind = "TSV" if delimiter == "\t" else "CSV"
    return Preview("table", note, header=header, rows=body[:TABLE_ROWS], language=kind)


class _RangedFile(io.RawIOBase):
    """A file at a commit as a seekable binary stream: each read a ranged read through the
    Api (only the chunks that hold its bytes)."""

    def __init__(self, api: Api, spec: FileSpec, length: int) -> None:
        self.api, self.spec, self.length, self.pos = api, spec, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        _, chunks = self.api.read_file(self.spec, offset=self.pos, length=len(view))
        n = 0
        for chunk in chunks:
            view[n : n + len(chunk)] = chunk
            n += len(chunk)
        self.pos += n
        return n


def _batches(parquet: Any, columns: list[str]) -> Iterator[Any]:
    return iter(parquet.iter_batches(batch_size=TABLE_ROWS, columns=columns))


def _parquet(api: Api, spec: FileSpec, info: FileInfo) -> Preview:
    try:
        import pyarrow  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return binary(info, " (Parquet: install haathi[console], with pyarrow, to see its rows)")
    source = _RangedFile(api, spec, info.size_bytes)
    try:
        parquet = pq.ParquetFile(source, pre_buffer=False, buffer_size=64 * 1024)
        names = list(parquet.schema_arrow.names)
        batch = next(_batches(parquet, names[:TABLE_COLUMNS]), None)
        rows = [] if batch is None else batch.slice(0, TABLE_ROWS).to_pylist()
        total = parquet.metadata.num_rows
    except HaathiError:
        raise  # reading the file failed: the page says so
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        return binary(info, f" (not a Parquet file this preview can read: {exc})")
    shown = names[:TABLE_COLUMNS]
    hidden = len(names) - len(shown)
    note = f"the first {len(rows)} of {total:,} rows" if total > len(rows) else f"all {total} rows"
    if hidden:
        note += f", the first {len(shown)} of {len(names)} columns"
    body = [[_cell(row.get(name)) for name in shown] for row in rows]
    return Preview("table", note, header=shown, rows=body, language="Parquet")
