"""What the signed-in caller may do with what a page shows, asked of the Api: a write action
is offered only to a caller who may write, and a link only to a page the caller may read.

These only decide what a page offers: the Api still checks every read and write itself, so a
forced request is refused as it would be over the REST API.
"""

from __future__ import annotations

from collections.abc import Iterable

from haathi.api import Api
from haathi.errors import NotFound, PermissionDenied
from haathi.models.auth import Permission


def may(api: Api, permission: Permission, repo: str) -> bool:
    """Whether the caller has ``permission`` on ``repo`` (with auth off: yes)."""
    try:
        api.authorize(permission, repo)
    except (PermissionDenied, NotFound):
        return False
    return True


def may_write(api: Api, repo: str) -> bool:
    return may(api, Permission.WRITE, repo)


def readable(api: Api, repos: Iterable[str]) -> frozenset[str]:
    """Those of ``repos`` the caller may read (one check per distinct repo)."""
    return frozenset(r for r in set(repos) if may(api, Permission.READ, r))
