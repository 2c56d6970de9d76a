"""Container images: finding the one a spec's name means now.

A spec's ``transform.image`` is a name (``pachyderm/opencv:1.0``, ``localhost/x:1``,
``name@sha256:...``) or, as haathi's extension, a source spelled as skopeo spells it:
``oci:DIR[:TAG]`` (an OCI layout directory), ``oci-archive:TAR[:TAG]``,
``docker-archive:TAR``, ``docker://NAME`` (a registry), ``containers-storage:NAME`` (podman's
storage). A plain name is looked up where :data:`PULL_POLICIES` says: ``IfNotPresent`` (the
default) tries podman's local storage, then a Docker engine's, then the registry; ``Never``
only the local ones; ``Always`` the registry first.

:func:`resolve` answers which image a name means now: its **manifest digest**
(``sha256:...``, the provenance a job records), its config digest (the image ID) and its
config (``Env``, ``WorkingDir``, ``User``); :func:`kept_image` finds an image a job recorded,
though no tag names it any more. A registry name looked up is noted (its digest, in the
cache's ``tags/``), so ``IfNotPresent`` uses the unpacked copy without asking the registry
again. An image's root filesystem is unpacked once per host
into a cache keyed by the manifest digest (:mod:`haathi.pps.image_cache`); an image at a
source is read with skopeo (:mod:`haathi.pps.image_sources`). Both tools come from the
distribution (``apt install skopeo umoci``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.pps.image_cache import cache_root, cached_image
from haathi.pps.image_sources import TRANSPORTS, Image, digest_hex, inspect, tools_missing

PULL_POLICIES = ("IfNotPresent", "Always", "Never")


def check_ref(ref: str) -> str:
    """``ref`` if it can name an image; InvalidArgument otherwise."""
    if not ref or ref != ref.strip() or any(ord(c) < 32 or c == "\x7f" for c in ref):
        raise InvalidArgument(f"transform.image: bad image name {ref!r}")
    if len(ref) > 4096:
        raise InvalidArgument("transform.image: image name longer than 4096 characters")
    return ref


def resolve(ref: str, pull_policy: str = "IfNotPresent") -> Image:
    """The image ``ref`` means now, looked up as the module docstring says.

    FailedPrecondition naming every place looked when it is nowhere, or when its manifest or
    config cannot be read (a corrupt archive).
    """
    check_ref(ref)
    if pull_policy not in PULL_POLICIES:
        raise InvalidArgument(
            f"unknown image pull policy {pull_policy!r} (expected one of "
            f"{', '.join(PULL_POLICIES)})"
        )
    why = tools_missing()
    if why:
        raise FailedPrecondition(f"cannot look up image {ref!r}: {why}")
    tried: list[str] = []
    for source in _sources(ref, pull_policy):
        if source.startswith("docker://") and pull_policy == "IfNotPresent":
            pulled = _pulled(ref)  # present: pulled into this host's cache before
            if pulled is not None:
                return pulled
        found = inspect(ref, source)
        if isinstance(found, Image):
            if source.startswith("docker://") and not ref.startswith(TRANSPORTS):
                _remember(found)
            return found
        tried.append(f"{source}: {found}")
    if ref.startswith(TRANSPORTS):  # one place, which has no (readable) image
        raise FailedPrecondition(f"cannot read image {tried[0]}", image=ref)
    if pull_policy == "Never":
        pulled = _pulled(ref)  # local too: pulled into this host before
        if pulled is not None:
            return pulled
        tried.append("image_pull_policy is Never: no registry was asked, nothing was pulled")
    raise FailedPrecondition(f"image {ref!r} not found ({'; '.join(tried)})", image=ref)


def _tag_file(ref: str) -> Path:
    return cache_root() / "tags" / hashlib.sha256(ref.encode()).hexdigest()


def _remember(image: Image) -> None:
    """Note which digest a registry name had when it was last looked up (``IfNotPresent``
    then uses the unpacked copy without asking the registry again, as a local tag)."""
    path = _tag_file(image.ref)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"ref": image.ref, "digest": image.digest,
                                   "image_id": image.image_id}))  # fmt: skip
        os.replace(tmp, path)


def _pulled(ref: str) -> Image | None:
    """The image a registry name named when this host last pulled it, if this host still has
    it: unpacked, or in podman's storage by its image ID (an image podman already had under
    another name is run as it is, never pulled, so podman does not know the registry's name)."""
    try:
        doc = json.loads(_tag_file(ref).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("ref") != ref:
        return None
    digest, image_id = str(doc.get("digest")), doc.get("image_id")
    found = cached_image(digest)
    if found is None and isinstance(image_id, str) and _podman_storage():
        with contextlib.suppress(InvalidArgument):
            local = inspect(ref, f"containers-storage:{digest_hex(image_id)}")
            if isinstance(local, Image) and local.image_id == image_id:
                found = dataclasses.replace(local, digest=digest)  # as the registry named it
    return None if found is None else dataclasses.replace(found, ref=ref)


def _sources(ref: str, pull_policy: str) -> list[str]:
    if ref.startswith(TRANSPORTS):
        return [ref]
    local = []
    if _podman_storage():
        local.append(f"containers-storage:{ref}")
    if os.path.exists("/var/run/docker.sock"):
        local.append(f"docker-daemon:{_with_tag(ref)}")
    remote = [f"docker://{ref}"]
    if pull_policy == "Never":
        return local or [f"containers-storage:{ref}"]
    return remote + local if pull_policy == "Always" else local + remote


def _with_tag(ref: str) -> str:
    """docker-daemon: wants a tag or a digest."""
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in last else ref + ":latest"


def _podman_storage() -> bool:
    roots = ["/var/lib/containers/storage"] if os.geteuid() == 0 else []
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    roots.append(os.path.join(data, "containers", "storage"))
    return any(os.path.isdir(r) for r in roots)


def kept_image(runtime: str, ref: str, digest: str, image_id: str | None) -> Image | None:
    """The image with this manifest digest though no tag names it any more, if it can still be
    had: unpacked in this host's cache (``bwrap``), by its image ID in podman's storage
    (``podman``, and ``bwrap``, which unpacks it from there again), or from the registry by
    digest (``name@sha256:...``: a registry keeps a manifest when its tag moves on)."""
    if runtime == "bwrap":
        cached = cached_image(digest)
        if cached is not None:
            return cached
    if runtime in ("bwrap", "podman") and image_id and _podman_storage():
        found = inspect(ref, f"containers-storage:{digest_hex(image_id)}")
        if isinstance(found, Image) and found.image_id == image_id:  # the same image, whatever
            return dataclasses.replace(found, digest=digest)  # manifest podman shows for it
    if not ref.startswith(TRANSPORTS):
        found = inspect(ref, f"docker://{_repository(ref)}@{digest}")
        if isinstance(found, Image) and found.digest == digest:
            return found
    return None


def _repository(ref: str) -> str:
    """A name without its tag or digest: ``host:5000/a/b:1`` is ``host:5000/a/b``."""
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
