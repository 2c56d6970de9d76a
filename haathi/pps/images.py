"""Container images: finding one by the name a spec gives, and its unpacked root filesystem.

A spec's ``transform.image`` is a name (``pachyderm/opencv:1.0``, ``localhost/x:1``,
``name@sha256:...``) or, as haathi's extension, a source spelled as skopeo spells it:
``oci:DIR[:TAG]`` (an OCI layout directory), ``oci-archive:TAR[:TAG]``,
``docker-archive:TAR``, ``docker://NAME`` (a registry), ``containers-storage:NAME`` (podman's
storage). A plain name is looked up where :data:`PULL_POLICIES` says: ``IfNotPresent`` (the
default) tries podman's local storage, then a Docker engine's, then the registry; ``Never``
only the local ones; ``Always`` the registry first.

:func:`resolve` answers which image a name means now: its **manifest digest**
(``sha256:...``, the provenance a job records), its config digest (the image ID) and its
config (``Env``, ``WorkingDir``, ``User``). :func:`unpack` gives the image's root filesystem,
unpacked once per host into a cache keyed by the manifest digest (``skopeo copy`` into an OCI
layout, then ``umoci unpack``: whiteouts, hard links and permissions as the OCI spec says),
shared read-only by every datum set that runs it. Both tools come from the distribution
(``apt install skopeo umoci``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haathi.errors import FailedPrecondition, InvalidArgument

PULL_POLICIES = ("IfNotPresent", "Always", "Never")
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
_DONE = "image.json"  # in a cache entry: written last, so its presence means complete


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
        found = _inspect(ref, source)
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
            local = _inspect(ref, f"containers-storage:{_hex(image_id)}")
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


def _inspect(ref: str, source: str) -> Image | str:
    """The image at ``source``, or why it cannot be read there (one line)."""
    raw = _skopeo("inspect", "--raw", source)
    if isinstance(raw, str):
        return raw
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        manifest = json.loads(raw)
        if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
            digest = _platform_entry(manifest)
        config_raw = _skopeo("inspect", "--config", "--raw", source)
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


def _skopeo(*args: str) -> bytes | str:
    """skopeo's standard output, or its last line of error as a string. skopeo is given the
    registries.conf that ``CONTAINERS_REGISTRIES_CONF`` names, which podman reads (skopeo
    1.9, Debian 12's, ignores the variable): both then agree on which registries are insecure."""
    conf = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    return _tool(["skopeo", *(["--registries-conf", conf] if conf else []), *args])


def _tool(argv: list[str]) -> bytes | str:
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


# ---------------------------------------------------------------------------------------------
# The unpacked root filesystems


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
    entry = (root or cache_root()) / _hex(digest)
    return entry / "rootfs" if (entry / _DONE).is_file() else None


def cached_image(digest: str, root: Path | None = None) -> Image | None:
    """The image with this manifest digest as this host's cache has it (unpacked earlier),
    whatever its tag names now; None if it is not here."""
    try:
        entry = (root or cache_root()) / _hex(digest)
        doc = json.loads((entry / _DONE).read_text())
        conf = doc["config"]
        config = ImageConfig(
            tuple((str(k), str(v)) for k, v in conf["env"]), conf["working_dir"], conf["user"]
        )
        return Image(doc["image"], doc["source"], doc["image_digest"], doc["image_id"], config)
    except (OSError, ValueError, KeyError, TypeError, InvalidArgument):
        return None


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
        found = _inspect(ref, f"containers-storage:{_hex(image_id)}")
        if isinstance(found, Image) and found.image_id == image_id:  # the same image, whatever
            return dataclasses.replace(found, digest=digest)  # manifest podman shows for it
    if not ref.startswith(TRANSPORTS):
        found = _inspect(ref, f"docker://{_repository(ref)}@{digest}")
        if isinstance(found, Image) and found.digest == digest:
            return found
    return None


def _repository(ref: str) -> str:
    """A name without its tag or digest: ``host:5000/a/b:1`` is ``host:5000/a/b``."""
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def unpack(image: Image, root: Path | None = None) -> tuple[Path, bool]:
    """The image's root filesystem, unpacked into the cache if it is not there yet; returns
    (path, whether this call unpacked it). Safe against concurrent callers (one unpacks, the
    others wait). FailedPrecondition when the image cannot be copied or unpacked."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    found = cached_rootfs(image.digest, root)
    if found is not None:
        return found, False
    with _locked(root / f".{_hex(image.digest)}.lock"):
        found = cached_rootfs(image.digest, root)
        if found is not None:
            return found, False
        _unpack_into(image, root)
    done = cached_rootfs(image.digest, root)
    assert done is not None
    return done, True


def _unpack_into(image: Image, root: Path) -> None:
    entry = root / _hex(image.digest)
    shutil.rmtree(entry, ignore_errors=True)  # a half-made one from a crash
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=root) as tmp:
        layout = f"oci:{tmp}/layout:image"
        copied = _skopeo("copy", "--quiet", image.source, layout)
        if isinstance(copied, str):
            raise FailedPrecondition(f"cannot copy image {image.ref!r}: {copied}", image=image.ref)
        # The copy may re-encode the config (docker-archive to OCI): the same image has the
        # same layers and settings, whatever the bytes.
        config = _skopeo("inspect", "--config", "--raw", layout)
        source = _skopeo("inspect", "--config", "--raw", image.source)
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
        argv = ["umoci", "unpack"] + (["--rootless"] if os.geteuid() != 0 else [])
        unpacked = _tool([*argv, "--image", f"{tmp}/layout:image", f"{tmp}/bundle"])
        if isinstance(unpacked, str):
            raise FailedPrecondition(
                f"cannot unpack image {image.ref!r}: {unpacked}", image=image.ref
            )
        entry.mkdir()
        os.rename(f"{tmp}/bundle/rootfs", entry / "rootfs")
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


def _layers_and_settings(config: bytes) -> tuple[Any, ImageConfig] | None:
    """What of an image config decides what runs: its layers' diff IDs and its settings."""
    try:
        doc = json.loads(config)
        return doc["rootfs"]["diff_ids"], ImageConfig.from_oci(doc)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise InvalidArgument(f"bad image digest {digest!r}")
    return hexpart


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
