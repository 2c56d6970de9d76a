"""The unpacked root filesystems of container images, cached once per host and keyed by the
manifest digest (``skopeo copy`` into an OCI layout, then ``umoci raw unpack``: whiteouts, hard
links and permissions as the OCI spec says), shared read-only by every datum set that runs
the image; and the users an unpacked image knows (:func:`user_ids`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.pps.image_sources import Image, ImageConfig, digest_hex, run_tool, skopeo

_DONE = "image.json"  # in a cache entry: written last, so its presence means complete


def cache_root() -> Path:
    """Where unpacked images live on this host: ``$HAATHI_IMAGE_CACHE``, else
    ``$XDG_CACHE_HOME/haathi/images`` (``~/.cache/haathi/images``)."""
    explicit = os.environ.get("HAATHI_IMAGE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "haathi" / "images"


def cached_rootfs(digest: str, root: Path | None = None) -> Path | None:
    """The unpacked root filesystem of the image with this manifest digest, if this host has
    it."""
    entry = (root or cache_root()) / digest_hex(digest)
    return entry / "rootfs" if (entry / _DONE).is_file() else None


def cached_image(digest: str, root: Path | None = None) -> Image | None:
    """The image with this manifest digest as this host's cache has it (unpacked earlier),
    whatever its tag names now; None if it is not here."""
    try:
        entry = (root or cache_root()) / digest_hex(digest)
        doc = json.loads((entry / _DONE).read_text())
        conf = doc["config"]
        config = ImageConfig(
            tuple((str(k), str(v)) for k, v in conf["env"]), conf["working_dir"], conf["user"]
        )
        return Image(doc["image"], doc["source"], doc["image_digest"], doc["image_id"], config)
    except (OSError, ValueError, KeyError, TypeError, InvalidArgument):
        return None


def unpack(image: Image, root: Path | None = None) -> tuple[Path, bool]:
    """The image's root filesystem, unpacked into the cache if it is not there yet; returns
    (path, whether this call unpacked it). Safe against concurrent callers (one unpacks, the
    others wait). FailedPrecondition when the image cannot be copied or unpacked."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    found = cached_rootfs(image.digest, root)
    if found is not None:
        return found, False
    with _locked(root / f".{digest_hex(image.digest)}.lock"):
        found = cached_rootfs(image.digest, root)
        if found is not None:
            return found, False
        _unpack_into(image, root)
    done = cached_rootfs(image.digest, root)
    assert done is not None
    return done, True


def _unpack_into(image: Image, root: Path) -> None:
    entry = root / digest_hex(image.digest)
    shutil.rmtree(entry, ignore_errors=True)  # a half-made one from a crash
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=root) as tmp:
        layout = f"oci:{tmp}/layout:image"
        copied = skopeo("copy", "--quiet", *_compression(image.source), image.source, layout)
        if isinstance(copied, str):
            raise FailedPrecondition(f"cannot copy image {image.ref!r}: {copied}", image=image.ref)
        # The copy may re-encode the config (docker-archive to OCI): the same image has the
        # same layers and settings, whatever the bytes.
        config = skopeo("inspect", "--config", "--raw", layout)
        source = skopeo("inspect", "--config", "--raw", image.source)
        if (
            isinstance(config, str)
            or isinstance(source, str)
            or "sha256:" + hashlib.sha256(source).hexdigest() != image.image_id
            or _layers_and_settings(config) != _layers_and_settings(source)
        ):
            raise FailedPrecondition(
                f"image {image.ref!r} changed while it was being copied (its tag moved?): "
                "run the job again", image=image.ref,
            )  # fmt: skip
        # (raw: the root filesystem only, without the bundle's mtree manifest, which hashes
        # every file again: 15% of the unpack of a 0.7 GB image)
        argv = ["umoci", "raw", "unpack"] + (["--rootless"] if os.geteuid() != 0 else [])
        unpacked = run_tool([*argv, "--image", f"{tmp}/layout:image", f"{tmp}/rootfs"])
        if isinstance(unpacked, str):
            raise FailedPrecondition(
                f"cannot unpack image {image.ref!r}: {unpacked}", image=image.ref
            )
        entry.mkdir()
        os.rename(f"{tmp}/rootfs", entry / "rootfs")
        os.chmod(entry / "rootfs", 0o755)
        done = entry / _DONE
        with open(f"{done}.tmp", "w") as f:
            json.dump(
                {
                    **image.to_dict(),
                    "source": image.source,
                    "config": dataclasses.asdict(image.config),
                },
                f,
            )
            f.flush()
            os.fsync(f.fileno())
        os.rename(f"{done}.tmp", done)


def _compression(source: str) -> tuple[str, ...]:
    """skopeo's options for layers it has to compress (the layout is unpacked at once and
    deleted): none for podman's storage, whose layers umoci reads as tar (a 0.7 GB image copies
    and unpacks in 16 s of CPU, 21-24 s with gzip level 1); elsewhere gzip level 1, not 6 (an
    archive's tar layers copied as they are keep a gzip media type: skopeo 1.9)."""
    if source.startswith("containers-storage:"):
        return ("--dest-oci-accept-uncompressed-layers",)
    return ("--dest-compress-level", "1")


def _layers_and_settings(config: bytes) -> tuple[Any, ImageConfig] | None:
    """What of an image config decides what runs: its layers' diff IDs and its settings."""
    try:
        doc = json.loads(config)
        return doc["rootfs"]["diff_ids"], ImageConfig.from_oci(doc)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def user_ids(rootfs: Path, user: str) -> tuple[int, int]:
    """The uid and gid ``user`` (``name``, ``uid``, ``name:group``, ``uid:gid``; ``""`` is
    root) means in the image, read from its ``/etc/passwd`` and ``/etc/group`` as a container
    runtime does. InvalidArgument when the image has no such user or group."""
    name, _, group = (user or "0").partition(":")
    passwd = _table(rootfs, "etc/passwd")
    if name.isdigit():
        uid = int(name)
        gid = next((int(r[3]) for r in passwd if r[2] == name and r[3].isdigit()), uid)
    else:
        row = next((r for r in passwd if r[0] == name and r[2].isdigit()), None)
        if row is None:
            raise InvalidArgument(f"user {name!r} does not exist in the image (/etc/passwd)")
        uid, gid = int(row[2]), int(row[3]) if row[3].isdigit() else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            grow = next((r for r in _table(rootfs, "etc/group") if r[0] == group), None)
            if grow is None or not grow[2].isdigit():
                raise InvalidArgument(f"group {group!r} does not exist in the image (/etc/group)")
            gid = int(grow[2])
    return uid, gid


def _table(rootfs: Path, rel: str) -> list[list[str]]:
    """The rows of a colon-separated file of the image (none when absent); a file that is a
    link out of the image is not read."""
    path = rootfs / rel
    real = os.path.realpath(path)
    if not real.startswith(os.path.realpath(rootfs) + os.sep):
        return []
    try:
        text = Path(real).read_text(errors="replace")
    except OSError:
        return []
    return [ln.split(":") + [""] * 4 for ln in text.splitlines() if ln and not ln.startswith("#")]
