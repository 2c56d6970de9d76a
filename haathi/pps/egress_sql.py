"""Egress into PostgreSQL, with the semantics of Pachyderm 2.x's SQL egress.

- Each top-level directory of the output commit names a table (``table``, in schema
  ``public``, or ``schema.table``), matched without regard to case as Pachyderm's lookup in
  ``information_schema`` does; every file below it, at any depth, holds rows of that table. A
  file at the top level is an error. Tables must exist.
- All tables are written in **one transaction**: on first sight of a table its rows are
  deleted (``DELETE FROM``), then the rows of its files are inserted (``COPY``), so after a
  success each table holds exactly the output commit's rows, and after a failure nothing
  changed.
- ``CSV`` without ``columns``: no header; each record's values are the table's columns in
  order. With ``columns`` (one name per table column, in the table's order): each file starts
  with a header naming those columns, in any order. An unquoted empty value is NULL, a quoted
  one an empty string; blank lines are skipped (as Pachyderm's reader does).
- ``JSON``: a stream of objects; column ``i`` takes the key ``columns[i]`` (haathi: the
  column's own name when ``columns`` is empty); a missing key or ``null`` is NULL; nested
  values are written as JSON text.
- Values are converted by PostgreSQL to each column's type; one that does not convert fails
  the egress, naming the file.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from haathi.pps.egress import EgressFailed, OutputFile

CONNECT_TIMEOUT_S = 10
COPY_BLOCK = 1 << 20  # bytes per write to a COPY


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[str, ...]

    def ref(self) -> Any:
        from psycopg import sql

        return sql.Identifier(self.schema, self.name)

    def column_list(self, columns: tuple[str, ...]) -> Any:
        from psycopg import sql

        return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database to egress into (``repr`` shows no password)."""

    host: str
    port: int
    user: str
    dbname: str
    params: dict[str, str]
    password: str = field(repr=False)

    @classmethod
    def of(cls, url: str, password: str) -> Database:
        parts = urlsplit(url)
        return cls(
            parts.hostname or "",
            parts.port or 5432,
            unquote(parts.username or ""),
            unquote(parts.path).strip("/"),
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            password,
        )

    def _connect(self) -> Any:
        """A connection made from the URL and the secret alone: libpq reads no password file
        (nor the runner's ``PG*`` defaults for what the URL names)."""
        import psycopg

        args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, **self.params}
        args |= {
            "host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname,
            "password": self.password, "passfile": os.devnull,
        }  # fmt: skip
        try:
            return psycopg.connect(**args)
        except psycopg.Error as exc:
            text = _first_line(exc).removeprefix("connection failed: ")
            refused = "FATAL:" in text  # the server answered: a password, role, database
            text = text.partition("FATAL:")[2].strip() if refused else text
            raise EgressFailed(
                f"cannot connect to {self.host}:{self.port}: {text}", transient=not refused
            ) from exc

    def write(
        self,
        files: Iterator[OutputFile],
        file_format: str,
        columns: tuple[str, ...],
        cancel: threading.Event,
    ) -> dict[str, int]:
        """Load the files into their tables in one transaction; the rows written per table.
        EgressFailed (after a rollback: nothing changed) says why it could not."""
        import psycopg

        conn = self._connect()
        done = threading.Event()
        watch = threading.Thread(target=_cancel_when, args=(conn, cancel, done), daemon=True)
        watch.start()
        rows: dict[str, int] = {}
        where = ""
        try:
            with conn.transaction(), conn.cursor() as cur:
                tables: dict[str, Table] = {}
                for f in files:
                    where = ""
                    if cancel.is_set():
                        raise EgressFailed("the job was stopped")
                    parts = f.path.split("/")
                    if len(parts) < 3:
                        raise EgressFailed(
                            f"{f.path} is not under a table directory (each top-level "
                            "directory names the table its files are loaded into)"
                        )
                    name = parts[1]
                    where = f"table {name}: "
                    if name not in tables:
                        tables[name] = _first_sight(cur, name)
                        rows[name] = 0
                    where = f"table {name}, file {f.path}: "
                    load = _load_json if file_format == "JSON" else _load_csv
                    rows[name] += load(cur, tables[name], columns, f)
        except psycopg.Error as exc:
            if cancel.is_set():
                raise EgressFailed("the job was stopped") from exc
            raise EgressFailed(where + _describe(exc), transient=_transient(exc)) from exc
        except EgressFailed as exc:
            raise EgressFailed(where + exc.reason) from exc
        finally:
            done.set()
            conn.close()
        return rows


def _cancel_when(conn: Any, cancel: threading.Event, done: threading.Event) -> None:
    """Cancel the statement the connection runs once ``cancel`` is set (a stopped job)."""
    while not done.wait(0.2):
        if cancel.is_set():
            conn.cancel_safe()
            return


def _first_sight(cur: Any, name: str) -> Table:
    """Table ``name`` (``schema.table``, else in ``public``) with its columns, its rows
    deleted."""
    schema, _, table = name.rpartition(".")
    schema = schema or "public"
    found: dict[tuple[str, str], list[str]] = {}
    cur.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE lower(table_schema) = lower(%s) AND lower(table_name) = lower(%s) "
        "ORDER BY table_schema, table_name, ordinal_position",
        (schema, table),
    )
    for s, t, column in cur.fetchall():
        found.setdefault((s, t), []).append(column)
    if not found:
        raise EgressFailed(f"table {schema}.{table} does not exist (create it before egress)")
    key = (schema, table) if (schema, table) in found else next(iter(found))
    if len(found) > 1 and (schema, table) not in found:
        raise EgressFailed(
            f"{len(found)} tables match {schema}.{table} but for case: name the directory "
            "exactly as the table"
        )
    t = Table(key[0], key[1], tuple(found[key]))
    from psycopg import sql

    cur.execute(sql.SQL("DELETE FROM {}").format(t.ref()))
    return t


def _check_columns(table: Table, columns: tuple[str, ...]) -> None:
    if columns and len(columns) != len(table.columns):
        raise EgressFailed(
            f"file_format.columns names {len(columns)} columns; the table has "
            f"{len(table.columns)} ({', '.join(table.columns)})"
        )


# ---- CSV -----------------------------------------------------------------------------------


class _BlankLines:
    """CSV text as Go's CSV reader (Pachyderm's) reads it, for PostgreSQL's: blank lines
    (outside quoted values) are dropped, and ``\\r\\n`` is ``\\n`` (PostgreSQL refuses a
    file that mixes the two)."""

    def __init__(self) -> None:
        self.quoted = False  # inside a quoted value
        self.start = True  # at the start of a record
        self.held = b""  # a CR that may be half of a CRLF

    def feed(self, chunk: bytes) -> bytes:
        data, self.held = self.held + chunk, b""
        if data.endswith(b"\r"):
            data, self.held = data[:-1], b"\r"
        pieces = data.split(b"\n")
        out: list[bytes] = []
        for piece in pieces[:-1]:
            piece = piece.removesuffix(b"\r")
            if self.start and not self.quoted and not piece:
                continue  # a blank line
            out.append(piece + b"\n")
            self.quoted ^= bool(piece.count(b'"') & 1)
            self.start = not self.quoted
        if pieces[-1]:  # the start of a line whose end is to come
            out.append(pieces[-1])
            self.quoted ^= bool(pieces[-1].count(b'"') & 1)
            self.start = False
        return b"".join(out)

    def end(self) -> bytes:
        return self.held


def _csv_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    lines = _BlankLines()
    for chunk in chunks:
        data = lines.feed(chunk)
        if data:
            yield data
    if rest := lines.end():
        yield rest


def _split_header(stream: Iterator[bytes]) -> tuple[str | None, Iterator[bytes]]:
    """(the first line, the bytes after it) of CSV text (None: the text is empty)."""
    buf = b""
    for data in stream:
        buf += data
        if b"\n" in buf:
            break
    if not buf:
        return None, iter(())
    head, _, rest = buf.partition(b"\n")
    return head.rstrip(b"\r").decode("utf-8", "replace"), _chain(rest, stream)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _load_csv(cur: Any, table: Table, columns: tuple[str, ...], f: OutputFile) -> int:
    from psycopg import sql

    _check_columns(table, columns)
    stream = _csv_stream(f.chunks)
    order = table.columns
    if columns:
        header, stream = _split_header(stream)
        if header is None:
            return 0
        named = next(csv.reader([header]))
        if len(named) != len(columns):
            raise EgressFailed(
                f"the header has {len(named)} columns, file_format.columns names {len(columns)}"
            )
        by_name = dict(zip(columns, table.columns, strict=True))
        unknown = [n for n in named if n not in by_name]
        if unknown:
            raise EgressFailed(
                f"unexpected header column {unknown[0]!r} (not in file_format.columns)"
            )
        order = tuple(by_name[n] for n in named)
    query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        table.ref(), table.column_list(order)
    )
    with cur.copy(query) as copy:
        for data in stream:
            copy.write(data)
    return int(cur.rowcount)


# ---- JSON ----------------------------------------------------------------------------------


def _json_values(chunks: Iterator[bytes]) -> Iterator[Any]:
    """The JSON values of a stream of them (separated by whitespace, or not at all); numbers
    lose no precision (integers are exact, the others decimals)."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    text = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    pos = 0
    ended = False
    values = 0
    while True:
        while pos < len(buf) and buf[pos].isspace():
            pos += 1
        if pos < len(buf):
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if ended:
                    raise EgressFailed(f"invalid JSON after {values} values: {exc.msg}") from exc
            else:
                if end < len(buf) or ended:  # a number may go on in the next block
                    values += 1
                    yield value
                    pos = end
                    continue
        if ended:
            return
        chunk = next(chunks, None)
        try:
            more = text.decode(b"", final=True) if chunk is None else text.decode(chunk)
        except UnicodeDecodeError as exc:
            raise EgressFailed("not UTF-8 text") from exc
        buf, pos = buf[pos:] + more, 0
        ended = chunk is None


def _json_text(value: Any) -> str | None:
    """A JSON value as the text PostgreSQL converts to the column's type."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return json.dumps(value, default=float)  # an object or a list: JSON text


def _load_json(cur: Any, table: Table, columns: tuple[str, ...], f: OutputFile) -> int:
    from psycopg import sql

    _check_columns(table, columns)
    keys = columns or table.columns
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(table.ref(), table.column_list(table.columns))
    count = 0
    with cur.copy(query) as copy:
        for value in _json_values(f.chunks):
            count += 1
            if not isinstance(value, dict):
                raise EgressFailed(f"value {count} is not a JSON object")
            copy.write_row([_json_text(value.get(k)) for k in keys])
    return count


# ---- errors --------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _describe(exc: BaseException) -> str:
    """PostgreSQL's message, with where in the COPY it happened."""
    lines = str(exc).strip().splitlines()
    marked = (ln.removeprefix("CONTEXT:").strip() for ln in lines if ln.startswith("CONTEXT:"))
    context = next(marked, "")
    return _first_line(exc) + (f" ({context})" if context else "")


def _transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: the connection broke, a serialization failure or
    deadlock, the server short of resources or shutting down."""
    state = getattr(exc, "sqlstate", None) or ""
    if state[:2] in ("08", "40", "53", "57"):
        return True
    import psycopg

    return not state and isinstance(exc, psycopg.OperationalError)
