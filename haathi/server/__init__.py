"""``haathi serve``: the Api over HTTP (FastAPI under uvicorn)."""

from haathi.server.app import create_app

__all__ = ["create_app"]
