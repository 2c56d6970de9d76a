"""Uploading files and deleting paths, as one commit (``POST {commit}/modify``, ``{ref}`` a
branch): the form of a directory's page, sent by ``upload.js`` as ``multipart/form-data``
with the session's CSRF token in its ``X-CSRF-Token`` header.

Its fields: ``dir`` (where the files go), ``file`` (any number), ``delete`` (paths, each a
file or a directory with all below it) and ``message`` (the commit's, required). The caller
must be allowed to write the repo, checked before the body is read. The body is parsed as it
arrives (python-multipart, through Starlette), each file spooled (in memory up to 1 MiB, then
to a temporary file), and refused whole, committing nothing, when it is

- larger than the server's ``--max-upload`` (:data:`DEFAULT_MAX_UPLOAD` when it has none:
  bigger files go through ``haathi put file``), as soon as it passes it (413);
- truncated: the browser went away, or the body ends before the form's closing boundary
  (python-multipart takes a cut-off body for a shorter form: we check the end ourselves);
- malformed, or holding more than :data:`MAX_PARTS` files or fields, or a bad path (400).

Then the deletes and the puts are one ``modify_file`` on the branch (all paths checked
before any byte is stored), and the answer is a redirect (303) to the directory's page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator
from functools import partial
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from haathi.api import Api
from haathi.console import locate, pages, session, urls
from haathi.console.pages import Page
from haathi.errors import HaathiError, InvalidArgument, NotFound, TooLarge, Unauthenticated
from haathi.models import paths
from haathi.models.auth import Permission
from haathi.models.ops import DeleteOp, Op, PutOp
from haathi.models.refspec import CommitSpec

log = logging.getLogger("haathi.console")

DEFAULT_MAX_UPLOAD = 1024**3  # a form's files are spooled before they are committed
MAX_PARTS = 1000  # files, and other fields, in one form
_BOUNDARY = re.compile(r';\s*boundary="?([^";]+)"?', re.IGNORECASE)
NOTHING = "; nothing was committed"


def limit_of(request: Request) -> int:
    """The largest upload the console takes (the server's ``--max-upload``, or the default)."""
    limit = getattr(request.app.state, "max_upload_bytes", None)
    return DEFAULT_MAX_UPLOAD if limit is None else int(limit)


def _target(page: Page) -> tuple[str, str]:
    """The repo and branch the URL names, once the caller is known to may write there."""
    info = locate.repo(page)
    ref = page.request.path_params["ref"]
    if ref not in info.branches:
        raise NotFound(f"{info.name} has no branch {ref}: files are uploaded to a branch")
    page.api.authorize(Permission.WRITE, info.name)
    return info.name, ref


async def _body(request: Request, limit: int, closing: bytes) -> AsyncGenerator[bytes, None]:
    """The request's body as it arrives: refused past ``limit`` bytes, or if it does not end
    with ``closing`` (the form's last boundary) or the browser goes away first."""
    total = 0
    tail = b""
    keep = len(closing) + 4
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the upload is larger than this server takes ({limit:,} bytes)"
                               + NOTHING, limit=limit)  # fmt: skip
            tail = (tail + chunk[-keep:])[-keep:]
            yield chunk
    except ClientDisconnect as exc:
        raise InvalidArgument("the upload was cut off: the browser went away" + NOTHING) from exc
    if not tail.rstrip(b"\r\n").endswith(closing):
        raise InvalidArgument("the upload was cut off before its end" + NOTHING)


async def _form(request: Request, limit: int) -> FormData:
    kind = request.headers.get("content-type", "")
    boundary = _BOUNDARY.search(kind)
    if not kind.lower().startswith("multipart/form-data") or boundary is None:
        raise InvalidArgument("an upload is a multipart/form-data form" + NOTHING)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is larger than this server takes ({limit:,} bytes)"
                       + NOTHING, limit=limit)  # fmt: skip
    closing = b"--" + boundary[1].encode("latin-1") + b"--"
    parser = MultiPartParser(
        request.headers, _body(request, limit, closing), max_files=MAX_PARTS, max_fields=MAX_PARTS
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidArgument(f"the upload is not a form this page sent: {exc.message.rstrip('.')}"
                              + NOTHING) from exc  # fmt: skip


def _opener(upload: UploadFile) -> BinaryIO:
    upload.file.seek(0)
    return upload.file


def _texts(form: FormData, name: str) -> list[str]:
    """The form's ``name`` fields (a file where a text belongs: InvalidArgument)."""
    values = form.getlist(name)
    if not all(isinstance(v, str) for v in values):
        raise InvalidArgument(f"the form's {name} field is a file, not a text" + NOTHING)
    return [str(v) for v in values]


def ops_of(form: FormData) -> tuple[list[Op], str, str]:
    """The form's deletes and puts, its message, and the directory it was sent from."""
    message = "".join(_texts(form, "message")[:1]).strip()
    if not message:
        raise InvalidArgument("a commit needs a message" + NOTHING)
    directory = paths.normalize("".join(_texts(form, "dir")[:1]) or "/")
    ops: list[Op] = []
    for deleted in _texts(form, "delete"):
        path = paths.normalize(deleted)
        if path == "/":
            raise InvalidArgument("the root cannot be deleted: tick what is in it" + NOTHING)
        ops.append(DeleteOp(path, recursive=True))
    for sent in form.getlist("file"):
        if isinstance(sent, UploadFile) and sent.filename:  # (no file chosen: no name)
            path = paths.normalize_for_write(paths.dir_prefix(directory) + sent.filename)
            ops.append(PutOp(path, partial(_opener, sent), size_hint=sent.size))
    if not ops:
        raise InvalidArgument("choose files to upload or entries to delete" + NOTHING)
    return ops, message, directory


def _commit(api: Api, key: str, ref: str, form: FormData) -> str:
    ops, message, directory = ops_of(form)
    api.modify_file(CommitSpec(key, ref), ops, description=message)
    return directory


async def modify(request: Request) -> Response:
    """``POST {commit}/modify``: the form's files and deletes as one commit on the branch."""
    api: Api | None = None
    form: FormData | None = None
    try:
        api = await run_in_threadpool(session.caller_api, request)
        key, ref = await run_in_threadpool(_target, Page(request, api))
        form = await _form(request, limit_of(request))
        directory = await run_in_threadpool(_commit, api, key, ref, form)
        return RedirectResponse(urls.files(key, ref, directory), status_code=303)
    except Unauthenticated:
        return session.to_sign_in(request)
    except HaathiError as exc:
        refused: Response = pages.error_page(request, api, exc)
    except Exception as exc:
        log.error("console: internal error on %s", request.url.path, exc_info=exc)
        refused = pages.error_page(
            request, api, HaathiError(f"internal error ({type(exc).__name__})")
        )
    finally:
        if form is not None:
            await form.close()
    refused.headers["Connection"] = "close"  # the browser may still be sending: stop it
    return refused
