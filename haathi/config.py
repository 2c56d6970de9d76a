"""Where a store is and what it is made of.

A store is addressed by its directory (``--address`` / ``HAATHI_ADDRESS``, default
``~/.haathi``). The directory may hold ``haathi.toml``, written by ``haathi init``, naming the
metadata database and the object store; without it the store is embedded (SQLite and packs in
the directory itself). ``HAATHI_DB``, ``HAATHI_OBJECTS``, ``HAATHI_S3_ENDPOINT`` and
``HAATHI_S3_REGION`` (and ``HAATHI_EXECUTOR``, ``HAATHI_SANDBOX``, ``HAATHI_RUNTIME``,
``HAATHI_IMAGE_PULL_POLICY``, ``HAATHI_ALLOW_NETWORK`` for pipelines,
``HAATHI_OPENLINEAGE_URL``, ``HAATHI_OPENLINEAGE_FILE``, ``HAATHI_OPENLINEAGE_NAMESPACE`` for
OpenLineage run events, ``HAATHI_SECRETS_KEY_FILE`` for the key that encrypts secrets) override
the file, and explicit overrides (CLI flags) override both.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from haathi.errors import AlreadyExists, InvalidArgument

ENV_ADDRESS = "HAATHI_ADDRESS"
ENV_CONFIG_DIR = "HAATHI_CONFIG_DIR"
ENV_CACHE_DIR = "HAATHI_CACHE_DIR"
DEFAULT_ADDRESS = "~/.haathi"
CONFIG_FILE = "haathi.toml"
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
# An S3 store's streams of reads (a restore, a large file): GETs in flight, bytes read ahead.
DEFAULT_READ_CONCURRENCY = 16
DEFAULT_READ_AHEAD_BYTES = 32 * 1024 * 1024
ENV_OVERRIDES = {
    "HAATHI_DB": "db_url",
    "HAATHI_OBJECTS": "objects_url",
    "HAATHI_S3_ENDPOINT": "s3_endpoint",
    "HAATHI_S3_REGION": "s3_region",
    "HAATHI_EXECUTOR": "executor",
    "HAATHI_SANDBOX": "sandbox",
    "HAATHI_SANDBOX_PATHS": "sandbox_paths",
    "HAATHI_RUNTIME": "runtime",
    "HAATHI_IMAGE_PULL_POLICY": "image_pull_policy",
    "HAATHI_ALLOW_NETWORK": "allow_network",
    "HAATHI_JOB_LEASE": "job_lease_s",
    "HAATHI_OPENLINEAGE_URL": "openlineage_url",
    "HAATHI_OPENLINEAGE_FILE": "openlineage_file",
    "HAATHI_OPENLINEAGE_NAMESPACE": "openlineage_namespace",
    "HAATHI_SECRETS_KEY_FILE": "secrets_key_file",
}
DEFAULT_OPENLINEAGE_NAMESPACE = "haathi"
SECRETS_KEY_FILE = "secrets.key"
_SECRET = "***"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """A store: its directory, its metadata database and its object store."""

    root: Path
    db_url: str = ""
    objects_url: str = ""
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = field(default=None, repr=False)
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_retry_timeout: float = 60.0
    s3_read_concurrency: int = DEFAULT_READ_CONCURRENCY
    s3_read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES
    cache_bytes: int = DEFAULT_CACHE_BYTES
    executor: str | None = None  # where datums run: None (local threads) or dask://host:port
    sandbox: str = "auto"  # how user code runs: auto | bwrap | none
    # host paths user code may read besides the system and its programs (bwrap)
    sandbox_paths: tuple[str, ...] = ()
    runtime: str = "auto"  # how a pipeline with an image runs: auto | bwrap | podman | docker
    image_pull_policy: str = "IfNotPresent"  # IfNotPresent | Always | Never
    allow_network: bool = False  # containers get the host's network (else none)
    job_lease_s: float = 60.0  # a running job whose runner is silent this long is taken over
    # OpenLineage run events of jobs: POSTed to <url>/api/v1/lineage and/or appended to a file
    # as JSON lines (relative: in the store directory); neither set, none are made
    openlineage_url: str | None = None
    openlineage_file: str | None = None
    openlineage_namespace: str = DEFAULT_OPENLINEAGE_NAMESPACE
    # the key that encrypts secrets (never in the metadata database or the object store);
    # relative: in the store directory; unset: <store>/secrets.key
    secrets_key_file: str | None = None

    def __post_init__(self) -> None:
        if not self.db_url:
            object.__setattr__(self, "db_url", f"sqlite:///{self.root / 'meta.db'}")
        if not self.objects_url:
            object.__setattr__(self, "objects_url", str(self.root / "objects"))

    @property
    def is_s3(self) -> bool:
        return self.objects_url.startswith("s3://")

    @property
    def s3_bucket_prefix(self) -> tuple[str, str]:
        """(bucket, key prefix) of an ``s3://bucket/prefix`` objects URL."""
        bucket, _, prefix = self.objects_url.removeprefix("s3://").partition("/")
        return bucket, prefix.strip("/")

    @property
    def objects_dir(self) -> Path:
        """The local objects directory (a relative path is relative to the store dir)."""
        return self.root / Path(self.objects_url).expanduser()

    @property
    def spool_dir(self) -> Path:
        """Where packs are assembled before upload: beside local objects, for atomic renames."""
        if self.is_s3:
            return self.root / "spool"
        return self.objects_dir / ".tmp"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def stat_cache_dir(self) -> Path:
        """The stat cache of puts of local directories into this store (see
        ``haathi.client.statcache``)."""
        return self.root / "statcache"

    @property
    def openlineage_path(self) -> Path | None:
        """The OpenLineage events file (a relative path is relative to the store dir)."""
        if not self.openlineage_file:
            return None
        return self.root / Path(self.openlineage_file).expanduser()

    @property
    def secrets_key_path(self) -> Path:
        """The file holding the key that encrypts secrets (made by the first ``create
        secret``): ``secrets_key_file`` (a relative path is relative to the store dir), else
        ``<store>/secrets.key``."""
        return self.root / Path(self.secrets_key_file or SECRETS_KEY_FILE).expanduser()

    def describe(self) -> dict[str, Any]:
        """The configuration for display: passwords and secret keys are never included."""
        out: dict[str, Any] = {
            "address": str(self.root),
            "metadata": mask_url(self.db_url),
            "objects": self.objects_url,
        }
        if self.is_s3:
            out["s3_endpoint"] = self.s3_endpoint or "(AWS default)"
            out["s3_region"] = self.s3_region or "(from environment)"
            out["s3_credentials"] = "in config" if self.s3_secret_access_key else "from environment"
            out["cache_bytes"] = self.cache_bytes
        out["executor"] = self.executor or "local"
        out["sandbox"] = self.sandbox
        if self.sandbox_paths:
            out["sandbox_paths"] = list(self.sandbox_paths)
        out["runtime"] = self.runtime
        out["image_pull_policy"] = self.image_pull_policy
        out["allow_network"] = self.allow_network
        if self.openlineage_url:
            out["openlineage_url"] = mask_url(self.openlineage_url)
        if self.openlineage_file:
            out["openlineage_file"] = str(self.openlineage_path)
        if self.openlineage_url or self.openlineage_file:
            out["openlineage_namespace"] = self.openlineage_namespace
        out["secrets_key_file"] = str(self.secrets_key_path)
        return out


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", rf"\1{_SECRET}@", url)


def resolve_address(address: str | None = None) -> str:
    """The explicit address, else ``$HAATHI_ADDRESS``, else ``~/.haathi``."""
    return address or os.environ.get(ENV_ADDRESS) or DEFAULT_ADDRESS


def _root(address: str) -> Path:
    if address.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"{address} is a haathi server: this needs a store directory (create a server's "
            "store on its host, then `haathi serve --store DIR`)"
        )
    if "\x00" in address:
        raise InvalidArgument("invalid store address")
    return Path(address).expanduser().resolve()


_FILE_KEYS = {
    ("metadata", "url"): "db_url",
    ("objects", "url"): "objects_url",
    ("objects", "endpoint"): "s3_endpoint",
    ("objects", "region"): "s3_region",
    ("objects", "access_key_id"): "s3_access_key_id",
    ("objects", "secret_access_key"): "s3_secret_access_key",
    ("objects", "retry_timeout_s"): "s3_retry_timeout",
    ("objects", "read_concurrency"): "s3_read_concurrency",
    ("objects", "read_ahead_bytes"): "s3_read_ahead_bytes",
    ("cache", "max_bytes"): "cache_bytes",
    ("pipelines", "executor"): "executor",
    ("pipelines", "sandbox"): "sandbox",
    ("pipelines", "sandbox_paths"): "sandbox_paths",
    ("pipelines", "runtime"): "runtime",
    ("pipelines", "image_pull_policy"): "image_pull_policy",
    ("pipelines", "allow_network"): "allow_network",
    ("pipelines", "job_lease_s"): "job_lease_s",
    ("openlineage", "url"): "openlineage_url",
    ("openlineage", "file"): "openlineage_file",
    ("openlineage", "namespace"): "openlineage_namespace",
    ("secrets", "key_file"): "secrets_key_file",
}


def _read_file(path: Path) -> dict[str, Any]:
    import tomllib  # ~3 ms: a remote command reads no store config

    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"cannot read store config {path}: {exc}") from exc
    values: dict[str, Any] = {}
    for section, body in doc.items():
        if not isinstance(body, dict):
            raise InvalidArgument(f"{path}: unknown setting {section!r}")
        for key, value in body.items():
            name = _FILE_KEYS.get((section, key))
            if name is None:
                raise InvalidArgument(f"{path}: unknown setting {section}.{key}")
            values[name] = value
    return values


def _validate(cfg: StoreConfig) -> StoreConfig:
    if not cfg.db_url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise InvalidArgument(
            f"unsupported metadata database {mask_url(cfg.db_url)}: use postgresql://... "
            "(or leave it unset for SQLite in the store directory)"
        )
    if "://" in cfg.objects_url and not cfg.is_s3:
        raise InvalidArgument(
            f"unsupported object store {cfg.objects_url}: use s3://bucket/prefix or a directory"
        )
    if cfg.is_s3 and not cfg.s3_bucket_prefix[0]:
        raise InvalidArgument(f"object store {cfg.objects_url} names no bucket")
    if cfg.sandbox not in ("auto", "bwrap", "none"):
        raise InvalidArgument(f"unknown sandbox {cfg.sandbox!r}: use auto, bwrap or none")
    if cfg.runtime not in ("auto", "bwrap", "podman", "docker"):
        raise InvalidArgument(f"unknown runtime {cfg.runtime!r}: use auto, bwrap, podman or docker")
    if cfg.image_pull_policy not in ("IfNotPresent", "Always", "Never"):
        raise InvalidArgument(
            f"unknown image pull policy {cfg.image_pull_policy!r}: use IfNotPresent, Always or "
            "Never"
        )
    if isinstance(cfg.allow_network, str):
        flag = cfg.allow_network.strip().lower()
        if flag not in ("1", "0", "true", "false", "yes", "no", ""):
            raise InvalidArgument(
                f"store config: allow_network must be true or false, not {cfg.allow_network!r}"
            )
        object.__setattr__(cfg, "allow_network", flag in ("1", "true", "yes"))
    if not isinstance(cfg.allow_network, bool):
        raise InvalidArgument("store config: allow_network must be true or false")
    if cfg.executor is not None and not cfg.executor.startswith(("dask://", "tcp://", "local")):
        raise InvalidArgument(f"unknown executor {cfg.executor!r}: use local or dask://host:port")
    for name in (
        "openlineage_url",
        "openlineage_file",
        "openlineage_namespace",
        "secrets_key_file",
    ):
        value = getattr(cfg, name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise InvalidArgument(f"store config: {name} must be a non-empty string")
    if cfg.openlineage_url is not None and not re.match(r"https?://[^/\s]+", cfg.openlineage_url):
        raise InvalidArgument(
            f"unsupported OpenLineage endpoint {mask_url(cfg.openlineage_url)!r}: "
            "use http(s)://host[:port][/path]"
        )
    object.__setattr__(cfg, "sandbox_paths", _paths(cfg.sandbox_paths))
    if isinstance(cfg.job_lease_s, str):
        object.__setattr__(cfg, "job_lease_s", _number(cfg.job_lease_s, "job_lease_s"))
    for name in ("cache_bytes", "s3_retry_timeout", "job_lease_s"):
        value = getattr(cfg, name)
        if not isinstance(value, int | float) or value < 0:
            raise InvalidArgument(f"store config: {name} must be a non-negative number")
    for name in ("s3_read_concurrency", "s3_read_ahead_bytes"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"store config: {name} must be a whole number of at least 1")
    return cfg


def _paths(value: object) -> tuple[str, ...]:
    """``sandbox_paths``: a list of absolute paths, or one string of them joined by ``:``."""
    items = value.split(":") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(p, str) for p in items):
        raise InvalidArgument("store config: sandbox_paths must be a list of absolute paths")
    paths = tuple(p for p in items if p)
    for p in paths:
        if not p.startswith("/") or "\x00" in p:
            raise InvalidArgument(f"store config: sandbox_paths: {p!r} is not an absolute path")
    return paths


def user_config_dir() -> Path:
    """haathi's per-user client config (saved tokens): ``$HAATHI_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/haathi``, else ``~/.config/haathi``."""
    base = os.environ.get(ENV_CONFIG_DIR)
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")) / "haathi"


def user_cache_dir() -> Path:
    """haathi's per-user client cache (the stat cache of puts to a server):
    ``$HAATHI_CACHE_DIR``, else ``$XDG_CACHE_HOME/haathi``, else ``~/.cache/haathi``."""
    base = os.environ.get(ENV_CACHE_DIR)
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "haathi"


def protected_paths(cfg: StoreConfig) -> tuple[str, ...]:
    """Host paths user code must never see: the store (its directory, a SQLite database or
    objects directory elsewhere, the OpenLineage file) and the user's haathi config."""
    paths = [cfg.root, cfg.cache_dir, user_config_dir()]
    if cfg.db_url.startswith("sqlite:///"):
        paths.append(Path(cfg.db_url.removeprefix("sqlite:///")))
    if not cfg.is_s3:
        paths.append(cfg.objects_dir)
    if cfg.openlineage_path is not None:
        paths.append(cfg.openlineage_path)
    paths.append(cfg.secrets_key_path)
    return tuple(dict.fromkeys(str(p) for p in paths))


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidArgument(f"store config: {name} must be a number, got {text!r}") from exc


def store_config(address: str, overrides: dict[str, Any] | None = None) -> StoreConfig:
    """The store at ``address``: its config file, then the environment, then ``overrides``."""
    root = _root(address)
    values: dict[str, Any] = {}
    path = root / CONFIG_FILE
    if path.is_file():
        values.update(_read_file(path))
    for env, name in ENV_OVERRIDES.items():
        if os.environ.get(env):
            values[name] = os.environ[env]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(StoreConfig)}
    unknown = set(values) - known
    if unknown:
        raise InvalidArgument(f"unknown store settings: {', '.join(sorted(unknown))}")
    return _validate(StoreConfig(root, **values))


def _toml_value(value: object) -> str:
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return json.dumps([str(v) for v in value])  # a JSON array of strings is valid TOML
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def check_no_store(root: Path) -> None:
    """AlreadyExists if ``root`` already holds a store."""
    if (root / CONFIG_FILE).exists() or (root / "meta.db").exists():
        raise AlreadyExists(f"a store already exists at {root}")


def write_config(cfg: StoreConfig) -> Path:
    """Write ``cfg`` as the store's ``haathi.toml`` (mode 0600: it may hold secrets)."""
    _validate(cfg)
    path = cfg.root / CONFIG_FILE
    defaults = StoreConfig(cfg.root)
    sections: dict[str, list[str]] = {}
    for (section, key), name in _FILE_KEYS.items():
        value = getattr(cfg, name)
        if value is None or value == getattr(defaults, name):
            continue
        sections.setdefault(section, []).append(f"{key} = {_toml_value(value)}")
    body = "# haathi store configuration, written by `haathi init`.\n"
    for section, lines in sections.items():
        body += f"\n[{section}]\n" + "\n".join(lines) + "\n"
    cfg.root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise AlreadyExists(f"a store already exists at {cfg.root}") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(body)
    return path
