"""A container image at a source, as skopeo spells one (``oci:DIR[:TAG]``,
``oci-archive:TAR[:TAG]``, ``docker-archive:TAR``, ``docker://NAME``,
``containers-storage:NAME``, ``docker-daemon:NAME``): what haathi knows of it (:class:`Image`,
:class:`ImageConfig`), reading it there (:func:`inspect`: its manifest digest, image ID and
config), and the tools that read images, skopeo and umoci, whose errors come back as one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from haathi.errors import InvalidArgument

TRANSPORTS = (
    "oci:", "oci-archive:", "docker-archive:", "docker://", "containers-storage:",
    "docker-daemon:",
)  # fmt: skip
TOOL_TIMEOUT = 600.0  # seconds a skopeo or umoci call may take (a pull of a large image)
PATH_TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:")
"""Sources that read a path on this host (refused while auth is on: any user could read any
image the server can)."""
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x"}  # fmt: skip
_NOISE_RE = re.compile(
    r"^(Error parsing image name|Error reading manifest [^ ]+ in [^ ]+|"
    r'initializing source) "?[^"]*"?: |reference "\[[^\]]*\][^"]*" '
)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What of an image's config applies to a run: its environment, working directory and
    user (``""``: not set)."""

    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""

    @classmethod
    def from_oci(cls, doc: dict[str, Any]) -> ImageConfig:
        """From an OCI/Docker image config document (its ``config`` member)."""
        conf = doc.get("config") or {}
        env: list[tuple[str, str]] = []
        for item in conf.get("Env") or ():
            key, _, value = str(item).partition("=")
            if key:
                env.append((key, value))
        return cls(tuple(env), str(conf.get("WorkingDir") or ""), str(conf.get("User") or ""))


@dataclass(frozen=True, slots=True)
class Image:
    """An image as resolved now: the name it was asked by, where it was found, and what it
    is."""

    ref: str  # as the spec names it
    source: str  # skopeo's spelling of where it was found, e.g. containers-storage:localhost/x:1
    digest: str  # the manifest digest, sha256:...
    image_id: str  # the config digest, sha256:...
    config: ImageConfig

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.ref, "image_digest": self.digest, "image_id": self.image_id}


def tools_missing() -> str:
    """Why images cannot be resolved and unpacked here (``""``: they can)."""
    missing = [tool for tool in ("skopeo", "umoci") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH (apt install skopeo umoci)"
    return ""


def inspect(ref: str, source: str) -> Image | str:
    """The image at ``source``, or why it cannot be read there (one line)."""
    raw = skopeo("inspect", "--raw", source)
    if isinstance(raw, str):
        return raw
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        manifest = json.loads(raw)
        if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
            digest = _platform_entry(manifest)
        config_raw = skopeo("inspect", "--config", "--raw", source)
        if isinstance(config_raw, str):
            return config_raw
        config = json.loads(config_raw)
        if not isinstance(config, dict):
            return "its config is not a JSON object"
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        return f"unreadable manifest or config ({exc})"
    image_id = "sha256:" + hashlib.sha256(config_raw).hexdigest()
    return Image(ref, source, digest, image_id, ImageConfig.from_oci(config))


def _platform_entry(index: dict[str, Any]) -> str:
    arch = _ARCH.get(platform.machine(), platform.machine())
    for entry in index.get("manifests") or ():
        plat = entry.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == arch:
            return str(entry["digest"])
    raise KeyError(f"no linux/{arch} image in the manifest list")


def skopeo(*args: str) -> bytes | str:
    """skopeo's standard output, or its last line of error as a string. skopeo is given the
    registries.conf that ``CONTAINERS_REGISTRIES_CONF`` names, which podman reads (skopeo
    1.9, Debian 12's, ignores the variable): both then agree on which registries are insecure."""
    conf = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    return run_tool(["skopeo", *(["--registries-conf", conf] if conf else []), *args])


def run_tool(argv: list[str]) -> bytes | str:
    """``argv``'s standard output, or its last line of error (as one line) as a string."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=TOOL_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[0]}: {exc}"
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
        said = lines[-1].strip() if lines else f"exit status {done.returncode}"
        if 'msg="' in said:  # logrus: time="..." level=fatal msg="..."
            said = said.split('msg="', 1)[1].removesuffix('"').replace('\\"', '"')
        return _NOISE_RE.sub("", said)
    return done.stdout


def digest_hex(digest: str) -> str:
    """The hex part of a ``sha256:`` digest; InvalidArgument for anything else."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise InvalidArgument(f"bad image digest {digest!r}")
    return hexpart
