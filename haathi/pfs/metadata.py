"""User key/value metadata on repos, branches and commits (Pachyderm's ``edit metadata``).

Each object's ``metadata`` column holds a JSON object of strings. An edit reads, changes and
writes it in one transaction holding the repo's lock, so concurrent edits never lose each
other's keys. Actions:

- ``add``: new keys; fails if any already exists;
- ``edit``: new values for existing keys; fails if any does not exist;
- ``delete``: removes keys; fails if any does not exist;
- ``replace``: the whole map (an empty one clears it).

A failed edit changes nothing. Keys, values and the whole map are bounded
(:mod:`haathi.models.bounds`); a delete is always allowed. Metadata is not content: a
finished commit's metadata can be edited, and editing it never makes a commit or starts a
job.

Stricter than Pachyderm, whose ``edit`` also creates a missing key and whose ``delete`` ignores
one: here a typo in a key is an error, not a silent new key or a silent no-op.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from haathi.errors import AlreadyExists, InvalidArgument, NotFound
from haathi.models.bounds import check_metadata
from haathi.models.ids import validate_branch_name
from haathi.models.refspec import CommitSpec, parse_ancestry
from haathi.models.text import check_text
from haathi.pfs import branches, commits, repos
from haathi.pfs.context import PfsContext, metadata_of

KINDS = ("repo", "branch", "commit")
ACTIONS = ("add", "edit", "delete", "replace")

Items = Mapping[str, str] | Sequence[str]


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidArgument("metadata keys must be non-empty strings")
    return check_text(key, f"metadata key {key!r}")


def _pairs(action: str, items: Items) -> dict[str, str]:
    if not isinstance(items, Mapping):
        raise InvalidArgument(f"metadata {action} takes key=value pairs")
    out: dict[str, str] = {}
    for key, value in items.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"metadata value of {key!r} must be a string")
        out[_check_key(key)] = check_text(value, f"metadata value of {key!r}")
    return out


def _keys(items: Items) -> list[str]:
    if isinstance(items, str):
        return [_check_key(items)]
    return [_check_key(k) for k in items]  # a mapping's keys, or a sequence of keys


def apply_edit(current: dict[str, str], action: str, items: Items, what: str) -> dict[str, str]:
    """``current`` with the edit applied (a new dict); errors name the key and ``what``."""
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown metadata action {action!r}: use {', '.join(ACTIONS)}")
    if action == "replace":
        out = _pairs(action, items)
        check_metadata(out, what)
        return out
    if action == "delete":
        keys = _keys(items)
        if not keys:
            raise InvalidArgument("metadata delete needs a key")
        out = dict(current)
        for key in keys:
            if key not in out:
                raise NotFound(f"{what} has no metadata key {key!r}", key=key)
            del out[key]
        return out
    pairs = _pairs(action, items)
    if not pairs:
        raise InvalidArgument(f"metadata {action} needs a key=value pair")
    for key in pairs:
        if action == "add" and key in current:
            raise AlreadyExists(
                f"{what} already has metadata key {key!r} (use edit to change it)", key=key
            )
        if action == "edit" and key not in current:
            raise NotFound(f"{what} has no metadata key {key!r} (use add to create it)", key=key)
    out = {**current, **pairs}
    check_metadata(out, what)
    return out


def _encode(md: dict[str, str]) -> str:
    return json.dumps(md, sort_keys=True, ensure_ascii=False)


def _edit_repo(conn: Connection, spec: CommitSpec, action: str, items: Items) -> dict[str, str]:
    if spec.ref is not None:
        raise InvalidArgument(f"edit metadata repo takes a repo name, got {spec}")
    r = repos.repo_row(conn, spec.repo, lock=True)
    md = apply_edit(metadata_of(r.metadata), action, items, f"repo {spec.repo}")
    repos.set_metadata(conn, r.id, _encode(md))
    return md


def _edit_branch(conn: Connection, spec: CommitSpec, action: str, items: Items) -> dict[str, str]:
    if spec.ref is None:
        raise InvalidArgument(f"edit metadata branch takes repo@branch, got {spec}")
    if parse_ancestry(spec.ref).base != spec.ref:
        raise InvalidArgument(f"edit metadata branch takes a branch name, got {spec}")
    validate_branch_name(spec.ref)
    r = repos.repo_row(conn, spec.repo, lock=True)
    b = branches.branch_row(conn, r.id, spec.repo, spec.ref)
    md = apply_edit(metadata_of(b.metadata), action, items, f"branch {spec}")
    branches.set_metadata(conn, b.id, _encode(md))
    return md


def _edit_commit(conn: Connection, spec: CommitSpec, action: str, items: Items) -> dict[str, str]:
    repos.lock(conn, spec.repo)
    c = commits.resolve(conn, spec)
    md = apply_edit(c.metadata or {}, action, items, f"commit {c.repo}@{c.id}")
    commits.set_metadata(conn, c.repo_id, c.id, _encode(md))
    return md


_EDITORS = {"repo": _edit_repo, "branch": _edit_branch, "commit": _edit_commit}


def edit_metadata(
    ctx: PfsContext, kind: str, spec: CommitSpec, action: str, items: Items
) -> dict[str, str]:
    """Apply one edit to the metadata of a repo, branch or commit; the new metadata."""
    editor = _EDITORS.get(kind)
    if editor is None:
        raise InvalidArgument(f"unknown metadata target {kind!r}: use {', '.join(KINDS)}")
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown metadata action {action!r}: use {', '.join(ACTIONS)}")
    with ctx.db.write() as conn:
        return editor(conn, spec, action, items)
