"""Secrets, stored encrypted: the owner of the ``secrets`` table, and the store's key.

Each secret's values are sealed with AES-256-GCM (``cryptography``'s ``AESGCM``): the JSON
``{key: base64 value}`` under a random 96-bit nonce, the secret's name as associated data (a
ciphertext moved to another row does not open). The metadata database holds the name, type,
key names and ciphertext, never a value; the 256-bit key is in a file outside it
(:attr:`~haathi.config.StoreConfig.secrets_key_path`: ``<store>/secrets.key`` unless
configured, mode 0600, made by the first ``create secret``), nor is it in the object store.
Each row names its key (``key_id``: the first 16 hex digits of the key's BLAKE3), so a missing
or foreign key file is a clear error, not garbage.

Values are opened only where a job starts (:func:`job_secrets`), in the process that runs it,
and handed to its user code as the spec's ``transform.secrets`` say.
"""

from __future__ import annotations

import contextlib
import json
import os
from base64 import b64decode, b64encode
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from haathi.errors import AlreadyExists, FailedPrecondition, NotFound
from haathi.meta.schema import secrets
from haathi.models.secret import JobSecrets, SecretDoc, SecretInfo, SecretMount
from haathi.pfs.context import as_utc
from haathi.pps.context import PpsContext
from haathi.pps.isolation import Isolation
from haathi.pps.secret_spec import SecretRef

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12


def _hint(name: str) -> str:
    return f"secret {name} not found (create it: haathi create secret -f FILE)"


# ---- the key --------------------------------------------------------------------------------


def key_id(key: bytes) -> str:
    """The key's name in the rows it sealed: 16 hex digits of its BLAKE3."""
    import blake3

    return blake3.blake3(key).hexdigest()[:16]


def read_key(path: Path) -> bytes | None:
    """The key in ``path`` (64 hex digits), None if there is no such file."""
    try:
        st = os.stat(path)
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FailedPrecondition(
            f"cannot read the secrets key file {path}: {exc.strerror}"
        ) from exc
    if st.st_mode & 0o077:
        raise FailedPrecondition(
            f"the secrets key file {path} may be read by other users (mode "
            f"{st.st_mode & 0o777:04o}): chmod 600 it"
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise FailedPrecondition(
            f"the secrets key file {path} does not hold a key ({KEY_BYTES * 2} hex digits)"
        )
    return key


def _make_key(path: Path) -> bytes:
    """A new random key in ``path`` (mode 0600, written whole before it appears); the key
    already there if another process made one first."""
    key = os.urandom(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            found = read_key(path)
            assert found is not None
            return found
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return key


def _mismatch(stored: str, path: Path, key: bytes | None) -> FailedPrecondition:
    have = f"holds key {key_id(key)}" if key is not None else "is missing"
    return FailedPrecondition(
        f"secrets were encrypted with key {stored}; this store's key file {path} {have} "
        "(restore the key file, or set [secrets] key_file / HAATHI_SECRETS_KEY_FILE to it)"
    )


def _sealing_key(conn: Connection, path: Path) -> bytes:
    """The key new secrets are sealed with: the key file's, made now if there is none and no
    secret was sealed yet (a store whose key is lost does not silently start another)."""
    key = read_key(path)
    stored = conn.execute(select(secrets.c.key_id).limit(1)).scalar()
    if key is None:
        if stored is not None:
            raise _mismatch(str(stored), path, None)
        return _make_key(path)
    if stored is not None and stored != key_id(key):
        raise _mismatch(str(stored), path, key)
    return key


# ---- the table ------------------------------------------------------------------------------


def _info(r: Row[Any]) -> SecretInfo:
    m = r._mapping
    created = as_utc(m["created_at"])
    assert created is not None
    return SecretInfo(str(m["name"]), str(m["type"]), tuple(json.loads(m["keys"])), created)


def create_secret(
    conn: Connection, doc: SecretDoc, key_path: Path, created_at: datetime, created_by: str
) -> SecretInfo:
    """Seal and store a new secret; AlreadyExists if one has its name."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if conn.execute(select(secrets.c.name).where(secrets.c.name == doc.name)).first():
        raise AlreadyExists(f"secret {doc.name} already exists", secret=doc.name)
    key = _sealing_key(conn, key_path)
    plain = json.dumps({k: b64encode(v).decode() for k, v in sorted(doc.data.items())})
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plain.encode(), doc.name.encode())
    keys = sorted(doc.data)
    conn.execute(
        insert(secrets).values(
            name=doc.name,
            type=doc.type,
            keys=json.dumps(keys),
            key_id=key_id(key),
            nonce=nonce,
            ciphertext=sealed,
            created_at=created_at,
            created_by=created_by,
        )
    )
    return SecretInfo(doc.name, doc.type, tuple(keys), created_at)


def inspect_secret(conn: Connection, name: str) -> SecretInfo:
    r = conn.execute(select(secrets).where(secrets.c.name == name)).first()
    if r is None:
        raise NotFound(_hint(name), secret=name)
    return _info(r)


def list_secrets(conn: Connection) -> list[SecretInfo]:
    return [_info(r) for r in conn.execute(select(secrets).order_by(secrets.c.name))]


def delete_secret(conn: Connection, name: str) -> None:
    if conn.execute(delete(secrets).where(secrets.c.name == name)).rowcount == 0:
        raise NotFound(_hint(name), secret=name)


def open_secret(conn: Connection, name: str, key_path: Path) -> dict[str, bytes]:
    """A secret's values: NotFound if there is none, FailedPrecondition if this store's key
    file does not open it."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    r = conn.execute(select(secrets).where(secrets.c.name == name)).first()
    if r is None:
        raise NotFound(_hint(name), secret=name)
    m = r._mapping
    key = read_key(key_path)
    if key is None or key_id(key) != m["key_id"]:
        raise _mismatch(str(m["key_id"]), key_path, key)
    try:
        plain = AESGCM(key).decrypt(bytes(m["nonce"]), bytes(m["ciphertext"]), name.encode())
    except InvalidTag as exc:
        raise FailedPrecondition(
            f"secret {name} does not open with this store's key (its stored ciphertext was "
            "changed): delete and create it again"
        ) from exc
    return {k: b64decode(v) for k, v in json.loads(plain).items()}


# ---- pipelines ------------------------------------------------------------------------------


def check_refs(conn: Connection, refs: tuple[SecretRef, ...]) -> None:
    """At create/update pipeline: every secret the spec names exists, with the key its
    ``env_var`` reads (Pachyderm's messages)."""
    for ref in refs:
        r = conn.execute(select(secrets.c["keys"]).where(secrets.c.name == ref.name)).first()
        if r is None:
            raise NotFound(
                f"missing secret {ref.name} (create it: haathi create secret -f FILE)",
                secret=ref.name,
            )
        if ref.env_var is not None and ref.key not in json.loads(r[0]):
            raise NotFound(f"secret {ref.name} missing key {ref.key}", secret=ref.name)


def job_secrets(conn: Connection, refs: tuple[SecretRef, ...], key_path: Path) -> JobSecrets:
    """The values a job's user code gets, opened now: NotFound names a secret (or key)
    deleted since the pipeline was made."""
    env: list[tuple[str, str]] = []
    mounts: list[SecretMount] = []
    opened: dict[str, dict[str, bytes]] = {}
    for ref in refs:
        if ref.name not in opened:
            opened[ref.name] = open_secret(conn, ref.name, key_path)
        values = opened[ref.name]
        if ref.env_var is not None:
            assert ref.key is not None
            if ref.key not in values:
                raise NotFound(
                    f"secret {ref.name} missing key {ref.key} (needed by env_var {ref.env_var})",
                    secret=ref.name,
                )
            if b"\0" in values[ref.key]:
                raise FailedPrecondition(
                    f"secret {ref.name} key {ref.key} holds a NUL byte: it cannot be the "
                    f"environment variable {ref.env_var} (mount it as a file instead)"
                )
            env.append((ref.env_var, values[ref.key].decode("utf-8", "surrogateescape")))
        if ref.mount_path is not None:
            mounts.append(SecretMount(ref.mount_path, tuple(sorted(values.items()))))
    return JobSecrets(tuple(env), tuple(mounts))


def for_job(ctx: PpsContext, refs: tuple[SecretRef, ...], isolation: Isolation) -> JobSecrets:
    """The values of a job (or a re-run) whose transform names ``refs``, running as
    ``isolation`` says: FailedPrecondition when files are to be mounted where there is no
    sandbox to mount them in."""
    if not refs:
        return JobSecrets()
    if isolation.container is None and isolation.sandbox == "none":
        mounted = next((r for r in refs if r.mount_path is not None), None)
        if mounted is not None:
            raise FailedPrecondition(
                f"secrets with mount_path need a sandbox (bwrap or a container): secret "
                f"{mounted.name} cannot be shown at {mounted.mount_path} with sandbox none"
            )
    with ctx.pfs.db.read() as conn:
        return job_secrets(conn, refs, key_path(ctx))


def key_path(ctx: PpsContext) -> Path:
    """Where the store's key is (its config's ``secrets_key_path``)."""
    if ctx.secrets_key_path is None:
        raise FailedPrecondition("this store has no secrets key file configured")
    return ctx.secrets_key_path
