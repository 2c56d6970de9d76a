"""Egress to an S3-compatible object store: every file of the output commit is written to
``bucket/prefix/<path>`` (overwritten; nothing is deleted at the target), streamed, the large
ones as multipart uploads.

The endpoint is the URL's ``endpoint`` parameter (gocloud's name), else the secret's
``AWS_ENDPOINT_URL``, else the runner's ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT`` (else AWS itself); the region likewise (``region``, ``AWS_REGION``). The
credentials are the secret's, else the runner's ``AWS_*`` environment.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from haathi.pps.egress import EgressFailed, OutputFile, S3Credentials

PART_BYTES = 8 << 20  # a file larger than this goes up as a multipart upload of such parts
UPLOAD_CONCURRENCY = 4
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
_STATUS = re.compile(r"status code: (\d{3}[^:<]*)")
_XML = re.compile(r"<(Code|Message)>([^<]*)</")
# where the AWS credential chain asks when the environment has none (EC2, ECS metadata)
_CREDENTIAL_HOSTS = ("169.254.169.254", "169.254.170.2")


def env_endpoint() -> str | None:
    """The endpoint the runner's environment names (None: AWS itself)."""
    return next((os.environ[v] for v in ENDPOINT_VARS if os.environ.get(v)), None)


@dataclass(frozen=True)
class S3Target:
    """Where the files go, and how to reach it."""

    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None
    creds: S3Credentials | None

    @classmethod
    def of(cls, url: str, creds: S3Credentials | None) -> S3Target:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        endpoint = params.get("endpoint") or (creds.endpoint if creds else None) or env_endpoint()
        if endpoint and "://" not in endpoint:  # gocloud takes a bare host:port
            secure = params.get("disableSSL", "").lower() not in ("true", "1")
            endpoint = f"{'https' if secure else 'http'}://{endpoint}"
        region = params.get("region") or (creds.region if creds else None)
        prefix = unquote(parts.path).strip("/")
        return cls(parts.hostname or "", prefix, endpoint, region, creds)

    def key(self, path: str) -> str:
        """The object key of the output file at ``path``."""
        return f"{self.prefix}{path}" if self.prefix else path.lstrip("/")

    def where(self) -> str:
        at = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/") + at

    def _store(self) -> Any:
        from obstore.store import S3Store

        config: dict[str, Any] = {}
        if self.endpoint:
            config["endpoint"] = self.endpoint
        if self.region:
            config["region"] = self.region
        creds = self.creds
        provider = None
        if creds is not None:  # the secret's, and none of the environment's

            def provider() -> dict[str, Any]:
                return {
                    "access_key_id": creds.access_key_id,
                    "secret_access_key": creds.secret_access_key,
                    "token": creds.session_token,
                    "expires_at": None,
                }

        try:
            return S3Store(
                self.bucket,
                config=config,  # type: ignore[arg-type]  # the rest from AWS_* variables
                client_options={
                    "allow_http": bool(self.endpoint and self.endpoint.startswith("http://")),
                    "connect_timeout": "5s",
                    "timeout": "300s",
                },
                retry_config={  # a part that failed in passing; run_egress retries the rest
                    "max_retries": 2,
                    "retry_timeout": timedelta(seconds=30),
                    "backoff": {
                        "init_backoff": timedelta(milliseconds=200),
                        "max_backoff": timedelta(seconds=2),
                        "base": 2,
                    },
                },
                credential_provider=provider,  # type: ignore[arg-type]
            )
        except Exception as exc:  # obstore's: a bad endpoint or region
            raise EgressFailed(f"cannot use {self.where()}: {_why(exc)}") from exc

    def write(self, files: Iterator[OutputFile], cancel: threading.Event) -> tuple[int, int]:
        """Upload every file; (files, bytes) written. EgressFailed says why one failed."""
        import obstore
        from obstore.exceptions import (
            BaseError,
            NotFoundError,
            PermissionDeniedError,
            UnauthenticatedError,
        )

        store = self._store()
        count = total = 0
        for f in files:
            if cancel.is_set():
                raise EgressFailed("the job was stopped")
            key = self.key(f.path)
            try:
                if f.size <= PART_BYTES:
                    obstore.put(store, key, b"".join(f.chunks), use_multipart=False)
                else:
                    obstore.put(
                        store, key, f.chunks,
                        chunk_size=PART_BYTES, max_concurrency=UPLOAD_CONCURRENCY,
                    )  # fmt: skip
            except (PermissionDeniedError, UnauthenticatedError, NotFoundError) as exc:
                raise EgressFailed(f"writing {key}: {_why(exc)}") from exc
            except (BaseError, OSError) as exc:
                if any(host in str(exc) for host in _CREDENTIAL_HOSTS):
                    raise EgressFailed(
                        "no credentials: none in the runner's environment (AWS_ACCESS_KEY_ID, "
                        "AWS_SECRET_ACCESS_KEY) nor a secret (object_storage.secret), and the "
                        f"instance metadata service did not give any ({_why(exc)})"
                    ) from exc
                raise EgressFailed(f"writing {key}: {_why(exc)}", transient=True) from exc
            count += 1
            total += f.size
        return count, total


def _why(exc: BaseException) -> str:
    """obstore's error in one line: the HTTP status and the service's code and message, or
    what went wrong on the way."""
    text = str(exc)
    status = _STATUS.search(text)
    if status:
        xml = dict(_XML.findall(text))
        detail = ": ".join(x for x in (xml.get("Code"), xml.get("Message")) if x)
        return status.group(1).strip() + (f" ({detail})" if detail else "")
    if "error sending request" in text:
        return "cannot connect (error sending request)"
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r" in [\d.]+\w*s\b", "", first)
