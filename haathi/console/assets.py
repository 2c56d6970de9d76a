"""The console's assets (CSS, its own JS, vendored libraries): files of the installed package
(``haathi/console/static``), never fetched from elsewhere.

Each is addressed as ``/static/{name}?v={hash}`` (:func:`url`): its content's hash makes the
URL change when the file does, so a browser may keep it for a year and never ask again.
Third-party files live in ``static/vendor/NAME/`` with their licence and a ``SOURCE`` file
naming the npm package, its pinned version and its integrity hash
(``scripts/vendor-console-assets`` fetches them again).
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response

IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # the first 12 hex digits of the content's SHA-256


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for item in folder.iterdir():
        name = prefix + item.name
        if item.is_dir():
            found.update(_walk(item, name + "/"))
        elif not item.name.startswith("."):
            body = item.read_bytes()
            media = TYPES.get("." + name.rpartition(".")[2]) or (
                mimetypes.guess_type(name)[0] or "text/plain; charset=utf-8"
            )
            found[name] = Asset(body, media, hashlib.sha256(body).hexdigest()[:12])
    return found


@cache
def catalog() -> dict[str, Asset]:
    """Every asset by name (read once, when first asked for)."""
    return _walk(files("haathi.console") / "static")


def url(name: str) -> str:
    """The URL of asset ``name`` (KeyError for one the package lacks: a template's typo fails
    its test)."""
    return f"/static/{name}?v={catalog()[name].version}"


async def serve(request: Request) -> Response:
    """``GET /static/{name}``: the asset, cached for good when asked for by its current
    version, else revalidated each time."""
    asset = catalog().get(request.path_params["name"])
    if asset is None:
        return Response("no such asset\n", status_code=404, media_type="text/plain")
    etag = f'"{asset.version}"'
    cached = request.query_params.get("v") == asset.version
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if cached else "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
