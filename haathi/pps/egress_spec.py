"""``egress`` of a pipeline spec: where each successful job's output commit is also written.

As in Pachyderm, one of:

- ``{"URL": "s3://bucket/prefix"}`` (the legacy form) or ``{"object_storage": {"url": ...}}``:
  every file of the output commit goes to ``bucket/prefix/<path>``. The URL's query may name
  ``endpoint`` and ``region`` (gocloud's names). haathi adds ``object_storage.secret``
  (``{"name"}``): a secret holding ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (and
  optionally ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``); without it the
  server's ``AWS_*`` environment is used.
- ``{"sql_database": {"url", "file_format": {"type", "columns"}, "secret": {"name", "key"}}}``:
  the files under each top-level directory are rows of the table it names, loaded in one
  transaction (``postgres://user@host:port/db``; the password is the secret's key).

Targets that Pachyderm has and haathi does not (``gs://``, ``azblob://``, MySQL, Snowflake,
``PARQUET``) are accepted with a note, so that such specs validate; their jobs fail at
egress, saying why. A URL never holds a password (it would show in the spec): a secret does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from haathi.errors import InvalidArgument
from haathi.models.secret import validate_key, validate_secret_name
from haathi.pps.spec_fields import SpecObject, as_str

OBJECT_STORAGE = "object_storage"
SQL_DATABASE = "sql_database"
FILE_FORMATS = ("CSV", "JSON", "PARQUET")
RUNS_FORMATS = ("CSV", "JSON")
POSTGRES_SCHEMES = ("postgres", "postgresql")
SQL_SCHEMES = (*POSTGRES_SCHEMES, "mysql", "snowflake")  # Pachyderm's drivers
STORE_SCHEMES = ("s3", "gs", "gcs", "azblob", "wasb", "minio")  # Pachyderm's (less file://)
# the query parameters of an s3:// URL (gocloud's); disableSSL and s3ForcePathStyle are taken
# for Pachyderm's specs, and need nothing here (the endpoint's scheme says http or https)
S3_PARAMS = ("endpoint", "region", "disableSSL", "s3ForcePathStyle")
# the libpq parameters a PostgreSQL URL may set: none reads a file or picks a host or
# credentials of the server's (passfile, service, sslkey, host, ...)
PG_PARAMS = ("sslmode", "connect_timeout", "application_name", "target_session_attrs", "options")
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_EGRESS_FIELDS = frozenset({"url", OBJECT_STORAGE, SQL_DATABASE})
_STORAGE_FIELDS = frozenset({"url", "secret"})
_SQL_FIELDS = frozenset({"url", "file_format", "secret"})
_FORMAT_FIELDS = frozenset({"type", "columns"})
_SECRET_FIELDS = frozenset({"name", "key"})


@dataclass(frozen=True, slots=True)
class EgressSecret:
    """The secret egress takes its credentials from (never user code)."""

    name: str
    key: str | None = None  # sql_database: the key holding the password

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name} if self.key is None else {"name": self.name, "key": self.key}


@dataclass(frozen=True, slots=True)
class Egress:
    """A validated ``egress``: ``kind`` is ``object_storage`` or ``sql_database``."""

    kind: str
    url: str
    secret: EgressSecret | None = None
    file_format: str = ""  # sql_database: CSV | JSON | PARQUET
    columns: tuple[str, ...] = ()
    legacy: bool = False  # given as {"URL": ...} (written back so)

    @property
    def scheme(self) -> str:
        return self.url.partition("://")[0].lower()

    @property
    def unsupported(self) -> str | None:
        """Why haathi cannot write to this target (its jobs fail at egress), or None."""
        if self.kind == OBJECT_STORAGE and self.scheme != "s3":
            return f"{self.scheme}:// is not supported here (only s3://)"
        if self.kind == SQL_DATABASE and self.scheme not in POSTGRES_SCHEMES:
            return f"{self.scheme} is not supported here (only PostgreSQL)"
        if self.kind == SQL_DATABASE and self.file_format not in RUNS_FORMATS:
            return f"{self.file_format} files are not supported here (only CSV and JSON)"
        return None

    def to_dict(self) -> dict[str, Any]:
        if self.legacy:
            return {"URL": self.url}
        target: dict[str, Any] = {"url": self.url}
        if self.kind == SQL_DATABASE:
            target["file_format"] = {"type": self.file_format}
            if self.columns:
                target["file_format"]["columns"] = list(self.columns)
        if self.secret is not None:
            target["secret"] = self.secret.to_dict()
        return {self.kind: target}


def parse_egress(top: SpecObject) -> Egress | None:
    """The spec's ``egress`` (None without one); InvalidArgument names what is wrong."""
    if not top.has("egress"):
        return None
    obj = SpecObject(top.values["egress"], top.where("egress"), _EGRESS_FIELDS)
    given = [k for k in ("url", OBJECT_STORAGE, SQL_DATABASE) if obj.has(k)]
    if not given:
        raise InvalidArgument(
            f"{obj.where('')} needs a target: URL, object_storage or sql_database"
        )
    if len(given) > 1:
        raise InvalidArgument(
            f"{obj.where('')} takes one target, got {obj.where(given[0])} and {obj.where(given[1])}"
        )
    (kind,) = given
    if kind == "url":
        url = _store_url(as_str(obj.values["url"], obj.where("url")), obj.where("url"))
        return Egress(OBJECT_STORAGE, url, legacy=True)
    if kind == OBJECT_STORAGE:
        return _object_storage(SpecObject(obj.values[kind], obj.where(kind), _STORAGE_FIELDS))
    return _sql_database(SpecObject(obj.values[kind], obj.where(kind), _SQL_FIELDS))


def egress_notes(egress: Egress | None) -> tuple[str, ...]:
    """What ``validate pipeline`` says of an egress its jobs cannot write."""
    why = egress.unsupported if egress is not None else None
    return () if why is None else (f"egress: {why}: this pipeline's jobs will fail at egress",)


def _object_storage(obj: SpecObject) -> Egress:
    url = _store_url(obj.need_str("url"), obj.where("url"))
    secret = None
    if obj.has("secret"):
        s = SpecObject(obj.values["secret"], obj.where("secret"), frozenset({"name"}))
        secret = EgressSecret(validate_secret_name(s.get_str("name"), s.where("name")))
    return Egress(OBJECT_STORAGE, url, secret)


def _split(url: str, where: str) -> tuple[str, Any]:
    """(scheme, urlsplit of ``url``); InvalidArgument when it is no ``scheme://`` URL."""
    if not _SCHEME_RE.match(url):
        raise InvalidArgument(f"{where} {url[:80]!r} is not a URL (scheme://...)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidArgument(f"{where} {url[:80]!r} is not a URL: {exc}") from exc
    return parts.scheme.lower(), parts


def _store_url(url: str, where: str) -> str:
    scheme, parts = _split(url, where)
    if scheme == "file":
        raise InvalidArgument(
            f"{where}: egress to file:// is not allowed (it would write on the server's disk)"
        )
    if scheme not in STORE_SCHEMES:
        raise InvalidArgument(
            f"{where} {url[:80]!r}: unsupported object store {scheme!r} (use s3://bucket/prefix)"
        )
    if scheme == "s3":
        if not parts.hostname:
            raise InvalidArgument(f"{where} {url[:80]!r} names no bucket (s3://bucket/prefix)")
        if parts.username or parts.password:
            raise InvalidArgument(
                f"{where}: an s3:// URL holds no credentials (use the environment or "
                "object_storage.secret)"
            )
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if key not in S3_PARAMS:
                raise InvalidArgument(
                    f"{where}: unsupported parameter {key!r} (use {', '.join(S3_PARAMS)})"
                )
    return url


def _sql_database(obj: SpecObject) -> Egress:
    if not obj.has("secret"):
        raise InvalidArgument("egress.sql_database.secret is required")
    s = SpecObject(obj.values["secret"], obj.where("secret"), _SECRET_FIELDS)
    if not s.get_str("name") or not s.get_str("key"):
        raise InvalidArgument(
            "egress.sql_database.secret.name and egress.sql_database.secret.key are required"
        )
    secret = EgressSecret(
        validate_secret_name(s.get_str("name"), s.where("name")),
        validate_key(s.get_str("key"), s.where("key")),
    )
    url = _sql_url(obj.need_str("url"), obj.where("url"))
    if not obj.has("file_format"):
        raise InvalidArgument(f"{obj.where('file_format')}.type is required (CSV or JSON)")
    fmt = SpecObject(obj.values["file_format"], obj.where("file_format"), _FORMAT_FIELDS)
    kind = fmt.need_str("type", " (CSV or JSON)").upper()
    if kind not in FILE_FORMATS:
        raise InvalidArgument(
            f"{fmt.where('type')} must be one of {', '.join(FILE_FORMATS)}, got "
            f"{fmt.values['type'][:40]!r}"
        )
    columns = fmt.strs("columns")
    if any(not c for c in columns) or len(set(columns)) != len(columns):
        raise InvalidArgument(f"{fmt.where('columns')} must name each column once")
    return Egress(SQL_DATABASE, url, secret, kind, columns)


def _sql_url(url: str, where: str) -> str:
    scheme, parts = _split(url, where)
    if scheme not in SQL_SCHEMES:
        raise InvalidArgument(
            f"{where}: unsupported database {scheme!r} (use postgresql://user@host:port/db)"
        )
    if parts.password is not None:
        raise InvalidArgument(
            f"{where} holds a password, which would show in the spec: put it in the secret"
        )
    if scheme not in POSTGRES_SCHEMES:
        return url  # a note says it is not supported here
    path = unquote(parts.path).strip("/")
    if not parts.hostname or not parts.username or not path:
        raise InvalidArgument(
            f"{where} {url[:80]!r} needs a user, a host and a database "
            "(postgresql://user@host:5432/db)"
        )
    if "/" in path:
        raise InvalidArgument(
            f"{where}: a PostgreSQL URL names no schema (name tables schema.table instead)"
        )
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key not in PG_PARAMS:
            raise InvalidArgument(
                f"{where}: unsupported parameter {key!r} (use {', '.join(PG_PARAMS)})"
            )
    return url
