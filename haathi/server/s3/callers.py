"""Who an S3 request to ``haathi serve``'s gateway acts as (:class:`RepoBackend`).

With auth off every request acts through the server's Api and signatures are not checked.
With auth on, as in Pachyderm's S3 gateway, a user's haathi token is both their access key ID
and their secret key: the access key names the caller (an unknown or revoked token is
``InvalidAccessKeyId``), the request must be signed with it (``SignatureDoesNotMatch``
otherwise; an unsigned request is ``AccessDenied``), and the request acts through the Api's view
for that caller, whose operations check the caller's roles.
"""

from __future__ import annotations

from haathi.api import Api
from haathi.errors import Unauthenticated
from haathi.server.s3 import sigv4
from haathi.server.s3.backend import Access
from haathi.server.s3.errors import s3_error
from haathi.server.s3.repo_buckets import RepoBuckets


class RepoBackend:
    """The buckets of every repo, as each request's caller may use them."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def authenticate(
        self, method: str, raw_path: str, raw_query: str, headers: sigv4.Headers
    ) -> Access:
        return authenticate(self.api, method, raw_path, raw_query, headers)

    def close(self) -> None:
        pass  # the server closes its Api


def authenticate(
    api: Api, method: str, raw_path: str, raw_query: str, headers: sigv4.Headers
) -> Access:
    """The request's :class:`Access`, or an S3 error refusing it."""
    if not api.auth_active():
        return Access(RepoBuckets(api))
    signed = sigv4.parse(headers, raw_query)
    if signed is None:
        raise s3_error(
            "AccessDenied", "auth is on: sign requests with your haathi token as both the "
            "access key ID and the secret access key",
        )  # fmt: skip
    token = signed.credential.access_key
    try:
        caller = api.caller_for_token(token)
    except Unauthenticated as exc:
        raise s3_error(
            "InvalidAccessKeyId", "the access key ID is not a valid haathi token"
        ) from exc
    key = sigv4.verify(method, raw_path, raw_query, headers, signed, token)
    chain = (
        sigv4.ChunkChain(key, signed)
        if signed.payload_hash in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER)
        else None
    )
    return Access(RepoBuckets(api.as_caller(caller)), caller, chain)
