"""``haathi serve``: the Api over HTTP (FastAPI under uvicorn)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from haathi.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    """``create_app`` on first use: a job's sidecar (:mod:`haathi.server.sidecar`) is
    imported by processes that serve no app."""
    if name == "create_app":
        from haathi.server.app import create_app

        return create_app
    raise AttributeError(name)
