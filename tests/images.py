"""Real container images for the tests, built on this machine and cached.

No container registry is reachable from the development and CI machines, so the images that
pipeline tests run in are built here, from Debian packages of the apt mirror the machine
already uses, and imported into podman's storage. Session fixtures return them:

- ``busybox_image``: ``localhost/haathi-test/busybox:1``, a few MB: Debian's static busybox
  with applet links (sh, echo, cat, ls, ...), users ``root``, ``nobody`` (65534) and ``worker``
  (1000:1000, home ``/home/worker``), and a config a runtime must honour or ignore: ``Env``
  ``PATH=/bin`` and ``IMAGE_VAR=from-image``, ``WorkingDir`` ``/work`` (owned by 1000),
  ``Entrypoint`` ``["/bin/false"]`` (a runtime ignores it, as a Pachyderm worker does) and
  ``Cmd`` ``["sh"]``. Also exported as an OCI layout directory, an oci-archive and a
  docker-archive (:class:`BusyboxImage`), so every image source can be tested.
- ``python_image``: ``localhost/haathi-test/python:1``, Debian's essential set plus
  ``python3-minimal``.
- ``opencv_image``: ``localhost/haathi-test/opencv:1``, Python with OpenCV and numpy, and
  ``/edges.py`` (``tests/data/images/edges.py``) for Pachyderm's OpenCV tutorial: about 0.7 GB,
  since the parts of OpenCV's dependencies that ``cv2`` never loads are left out
  (:data:`OPENCV_OPTIONS`).
- ``imagemagick_image``: ``localhost/haathi-test/imagemagick:1``, ImageMagick (``montage``),
  findutils and a shell, for the tutorial's ``montage.json``; ``XDG_CACHE_HOME`` is ``/tmp``.
- ``examples_image``, ``iris_image``, ``hyperparameter_image``: for Pachyderm's examples
  (``tests/test_pipeline_examples_run.py``), each with the code its images hold, at their paths:
  Python (``python`` too) with the group and joins examples' code and the word count's ``app``;
  scikit-learn and pandas (0.4 GB: ``sklearn``, a recipe of its own) with the iris example's
  code, or with the hyperparameter example's (and busybox's ``ash``, ``bc``).

A recipe with a ``base`` is a **derived** image: ``podman build`` of its base with its files
added (one layer) and its config changes, rebuilt when the base is. It shares the base's
layers in podman's storage, and two images that need one file at the same path (the iris and
hyperparameter examples' ``/code/pytrain.py``) share one Debian build.

Debian root filesystems come from ``mmdebstrap --variant=essential`` (no Recommends, no docs,
man pages or translations; a recipe may add options of its own); as root it builds in ``root``
mode (a chroot it mounts /proc, /dev and /sys in). Images are made with ``podman import
--change``.

**Cache.** Each image is labelled ``haathi.test.recipe=<hash of its recipe>`` (packages,
mmdebstrap options, the files put in and which are executable, the config, a derived image's
base's hash, ``RECIPE_VERSION``). A fixture that finds the image in podman storage with its
recipe's label builds nothing; a changed recipe builds again. Builders hold one lock file per
image in the cache directory, so pytest-xdist workers and test runs in other worktrees build
each image once and the others wait for it. The root filesystem tars, the busybox exports and
``build.log`` (what was built, how long it took) are kept in ``$HAATHI_TEST_IMAGE_CACHE``
(default ``/var/tmp/haathi-test-images``), never in the repository; those of an older recipe
are deleted when a new one is built.

**Failure.** A missing tool or a failed build raises :class:`ImageBuildError` with one line
that names what is missing; the fixtures turn it into a test failure, never a skip.

**Host quirks.** ``podman run`` here needs the global flags ``--runtime runc
--cgroup-manager=cgroupfs`` and explicit ``--ulimit`` values (otherwise "error setting rlimit
type 7" inside some sandboxes): :data:`PODMAN` and :data:`RUN_FLAGS` hold them for tests
that run containers directly. ``podman import`` and ``skopeo`` need none of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

# Bump to rebuild every image (for a change in how they are built that the recipes miss).
RECIPE_VERSION = 1
LABEL = "haathi.test.recipe"
SUITE = "bookworm"
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
OCI_TAG = "1"  # the tag in the OCI exports: oci:<dir>:1, oci-archive:<tar>:1

# ``podman`` with this machine's global flags, and flags every ``podman run`` needs here.
PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")
RUN_FLAGS = (
    "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
)  # fmt: skip

DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MMDEBSTRAP_OPTIONS = (
    "--variant=essential",
    '--aptopt=APT::Install-Recommends "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
)
INSTALL = {"podman": "podman runc", "skopeo": "skopeo", "mmdebstrap": "mmdebstrap"}

BUSYBOX_APPLETS = (
    "sh", "echo", "cat", "ls", "wc", "sort", "find", "mkdir", "cp", "sleep", "id", "env", "pwd",
    "true", "false", "tr", "head",
)  # fmt: skip
PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
worker:x:1000:1000:worker:/home/worker:/bin/sh
"""
GROUP = """\
root:x:0:
nogroup:x:65534:
worker:x:1000:
"""


class ImageBuildError(RuntimeError):
    """A test image could not be built; the message is one line naming the cause."""


@dataclass(frozen=True)
class Image:
    """An image in podman storage."""

    name: str  # e.g. localhost/haathi-test/python:1
    digest: str  # its manifest digest, as ``skopeo inspect containers-storage:<name>`` says
    config_digest: str  # the digest of its config (``sha256:`` + podman's image ID)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BusyboxImage(Image):
    """The busybox image, also exported in the three formats a runtime may be given.

    The exports hold the same config (same ``config_digest``) but have manifests of their own:
    the OCI ones gzip their layer (podman storage keeps it uncompressed) and the
    docker-archive has a Docker schema 2 manifest, so each source reports its own digest.
    """

    oci_dir: Path  # an OCI image layout, the image tagged OCI_TAG: ``oci:<dir>:1``
    oci_archive: Path  # the same as a tar: ``oci-archive:<tar>:1``
    docker_archive: Path  # ``docker save`` format: ``docker-archive:<tar>``


@dataclass(frozen=True)
class Recipe:
    """Everything that goes into one image; its hash decides whether to build again."""

    name: str  # the image is localhost/haathi-test/<name>:1
    changes: tuple[str, ...]  # ``podman import --change`` instructions (the image config)
    packages: tuple[str, ...] = ()  # on top of Debian's essential set; () for busybox
    files: tuple[tuple[str, Path], ...] = ()  # (path in the image, file here)
    options: tuple[str, ...] = ()  # mmdebstrap options of this recipe, after MMDEBSTRAP_OPTIONS
    executables: tuple[str, ...] = ()  # paths of ``files`` made executable (0755, else 0644)
    base: Recipe | None = None  # a derived image: ``base``'s, with ``files`` and ``changes``

    @property
    def ref(self) -> str:
        return f"localhost/haathi-test/{self.name}:1"

    @property
    def debian(self) -> bool:
        return bool(self.packages)

    def key(self) -> str:
        """A hash of the recipe and of how it is built (a derived image's: and of its base's)."""
        how: tuple[object, ...] = (BUSYBOX_APPLETS, PASSWD, GROUP)
        if self.base is not None:
            how = ("derived", self.base.key())
        elif self.debian:
            how = (*MMDEBSTRAP_OPTIONS, *self.options)
        recipe = [RECIPE_VERSION, SUITE, self.name, self.changes, self.packages, how]
        if self.executables:
            recipe.append(list(self.executables))
        h = hashlib.sha256(json.dumps(recipe).encode())
        for inside, here in self.files:
            h.update(inside.encode() + b"\0" + here.read_bytes())
        return h.hexdigest()[:16]


BUSYBOX_RECIPE = Recipe(
    "busybox",
    changes=(
        "ENV PATH=/bin", "ENV IMAGE_VAR=from-image", "WORKDIR /work",
        'ENTRYPOINT ["/bin/false"]', 'CMD ["sh"]',
    ),
    files=(("/bin/busybox", BUSYBOX),),
)  # fmt: skip
PYTHON_RECIPE = Recipe("python", (f"ENV {DEBIAN_PATH}",), ("python3-minimal",))
OPENCV_PACKAGES = ("python3-minimal", "python3-opencv", "python3-numpy")
# cv2 links every OpenCV library and through them Qt, VTK, GDAL and FFmpeg, which must all be
# there for ``import cv2``; these options leave out what it never loads for imread, Canny and
# imwrite (270 MB; matplotlib, which edges.py does not use, was another 240 MB). The image is
# 0.7 GB, and the tutorial's tests spend most of their setup importing and unpacking it.
_LIB = "/usr/lib/x86_64-linux-gnu"
OPENCV_OPTIONS = (
    # Merged /usr made by mmdebstrap's hook with the usr-is-merged package, not by the
    # usrmerge package, which needs perl (45 MB).
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    # Mesa's DRI drivers, which libGL opens only to create a GL context (Qt and VTK link
    # libGL; edges.py opens no window), and LLVM and Z3, which only those drivers use (160 MB).
    f"--dpkgopt=path-exclude={_LIB}/dri/*",
    f"--dpkgopt=path-exclude={_LIB}/libLLVM-15.so*",
    f"--dpkgopt=path-exclude={_LIB}/libz3.so*",
    # Intel's Quick Sync runtime, which libmfx opens only to code video on an Intel GPU (25 MB).
    f"--dpkgopt=path-exclude={_LIB}/libmfxhw64.so*",
    f"--dpkgopt=path-exclude={_LIB}/mfx/*",
    # Data read only when used: PROJ's grids (GDAL's reprojection) and the ISO code lists
    # (GStreamer's language names) (40 MB).
    "--dpkgopt=path-exclude=/usr/share/proj/*",
    "--dpkgopt=path-exclude=/usr/share/iso-codes/*",
    "--dpkgopt=path-exclude=/usr/share/xml/iso-codes/*",
)
OPENCV_RECIPE = Recipe(
    "opencv",
    (f"ENV {DEBIAN_PATH}",),
    OPENCV_PACKAGES,
    (("/edges.py", Path(__file__).parent / "data" / "images" / "edges.py"),),
    OPENCV_OPTIONS,
)
IMAGEMAGICK_RECIPE = Recipe(
    "imagemagick",
    (f"ENV {DEBIAN_PATH}", "ENV XDG_CACHE_HOME=/tmp"),  # fontconfig's cache, on a read-only root
    ("imagemagick", "findutils", "dash"),
)

# Pachyderm's examples whose code is in their images (tests/test_pipeline_examples_run.py).
_EXAMPLES = Path(__file__).parent / "data" / "pachyderm_examples"
_EQUIVALENT = Path(__file__).parent / "data" / "images" / "pachyderm"
EXAMPLES_RECIPE = Recipe(
    "pachyderm-examples",
    (f"ENV PATH=/go/bin:{DEBIAN_PATH.removeprefix('PATH=')}", "WORKDIR /app"),
    ("python3", "python-is-python3", "findutils"),
    (
        ("/app/main.py", _EXAMPLES / "group" / "src" / "main.py"),  # example-group
        ("/app/inner/main.py", _EXAMPLES / "joins" / "src" / "inner" / "main.py"),
        ("/app/outer/main.py", _EXAMPLES / "joins" / "src" / "outer" / "main.py"),
        ("/go/bin/app", _EQUIVALENT / "word_count_app.py"),  # example-wordcount's map.go
    ),
    executables=("/go/bin/app",),
)
# scikit-learn and pandas, with busybox's ash as /bin/ash (Alpine's: ``[ a == b ]`` works) and
# bc. SciPy needs Pythran, which needs g++ and Boost: their headers and compilers (300 MB), the
# libraries' test suites (90 MB) and static libraries are left out: the image is 0.4 GB.
SKLEARN_RECIPE = Recipe(
    "sklearn",
    (f"ENV {DEBIAN_PATH}",),
    ("python3", "python-is-python3", "python3-sklearn", "python3-pandas", "busybox", "bc"),
    options=(
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--dpkgopt=path-exclude=/usr/include/*",
        "--dpkgopt=path-exclude=/usr/lib/gcc/*",
        "--dpkgopt=path-exclude=/usr/bin/x86_64-linux-gnu-lto-dump-*",
        f"--dpkgopt=path-exclude={_LIB}/*.a",
        # py3compile, run as each package is set up, needs its tests in place: removed after
        '--customize-hook=rm -rf "$1"/usr/lib/python3/dist-packages/pythran'
        ' "$1"/usr/lib/python3/dist-packages/*/tests'
        ' "$1"/usr/lib/python3/dist-packages/*/*/tests'
        ' "$1"/usr/lib/python3/dist-packages/*/*/*/tests',
        '--customize-hook=ln -s busybox "$1/usr/bin/ash"',
    ),
)
IRIS_RECIPE = Recipe(  # pachyderm/iris-train:python-svm and pachyderm/iris-infer:python
    "iris",
    ("WORKDIR /code",),
    files=(
        ("/code/pytrain.py", _EQUIVALENT / "iris_pytrain.py"),
        ("/code/pyinfer.py", _EQUIVALENT / "iris_pyinfer.py"),
    ),
    base=SKLEARN_RECIPE,
)
HYPERPARAMETER_RECIPE = Recipe(  # iris-train:python-svm-adj-c-gamma and iris-evaluate
    "hyperparameter",
    ("WORKDIR /code",),
    files=(
        ("/code/pytrain.py", _EQUIVALENT / "hyperparameter_pytrain.py"),
        ("/code/evaluate.py", _EQUIVALENT / "hyperparameter_evaluate.py"),
    ),
    base=SKLEARN_RECIPE,
)


# ---- building ------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where build artifacts are kept: ``$HAATHI_TEST_IMAGE_CACHE`` or /var/tmp."""
    path = Path(os.environ.get("HAATHI_TEST_IMAGE_CACHE", "/var/tmp/haathi-test-images"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageBuildError(f"cannot make the test image cache {path}: {exc}") from None
    return path


def _need(tool: str, ref: str) -> None:
    if shutil.which(tool) is None:
        raise ImageBuildError(
            f"{tool} is not installed (apt-get install {INSTALL[tool]}); it builds {ref}"
        )


def _run(argv: Sequence[str], what: str, timeout: float = 600) -> str:
    """Run a build step; a failure raises ImageBuildError with the step's own first error."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{what}: {argv[0]} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "Error:", "FATA", "error"))]
        reason = (errors or lines or [f"exit status {proc.returncode}"])[0]
        raise ImageBuildError(f"{what}: {reason[:300]}")
    return proc.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (across processes: xdist workers, other runs)."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_static(path: Path) -> bool:
    """Whether the ELF executable at ``path`` needs no dynamic loader (no PT_INTERP header)."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":  # 64-bit ELF
        return False
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 not in types  # PT_INTERP


def _check_busybox() -> None:
    if not BUSYBOX.is_file() or not _is_static(BUSYBOX):
        raise ImageBuildError(
            f"{BUSYBOX} is not a static busybox (apt-get install busybox-static); "
            f"it builds {BUSYBOX_RECIPE.ref}"
        )


def _busybox_rootfs(out: Path) -> None:
    """A root filesystem tar: busybox, its applet links, users, and the usual directories."""
    mtime = int(BUSYBOX.stat().st_mtime)

    def add(name: str, kind: bytes, mode: int, owner: int = 0, data: bytes = b"") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, owner, owner, mtime
        if kind == tarfile.SYMTYPE:
            info.linkname = data.decode()
            data = b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "dev", "proc", "sys", "home", "var"):
            add(d, tarfile.DIRTYPE, 0o755)
        add("root", tarfile.DIRTYPE, 0o700)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        add("home/worker", tarfile.DIRTYPE, 0o755, 1000)
        add("work", tarfile.DIRTYPE, 0o755, 1000)
        add("bin/busybox", tarfile.REGTYPE, 0o755, data=BUSYBOX.read_bytes())
        for applet in BUSYBOX_APPLETS:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, data=b"busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, data=PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, data=GROUP.encode())


def _debian_rootfs(recipe: Recipe, out: Path) -> None:
    """A Debian root filesystem tar from mmdebstrap, with the recipe's files put in."""
    _need("mmdebstrap", recipe.ref)
    hooks = []
    for inside, here in recipe.files:
        mode = "0755" if inside in recipe.executables else "0644"
        if Path(inside).parent != Path("/"):
            hooks += [f'--customize-hook=mkdir -p "$1{Path(inside).parent}"']
        hooks += [f"--customize-hook=upload {here} {inside}"]
        hooks += [f'--customize-hook=chmod {mode} "$1{inside}"']
    _run(
        ["mmdebstrap", "--quiet", "--format=tar", *MMDEBSTRAP_OPTIONS, *recipe.options,
         f"--include={','.join(recipe.packages)}", *hooks, SUITE, str(out)],
        f"mmdebstrap could not build {recipe.ref}", timeout=1800,
    )  # fmt: skip


def _labelled(ref: str) -> tuple[str, str] | None:
    """(image ID, recipe label) of ``ref`` in podman storage, or None if it is not there."""
    proc = subprocess.run(
        ["podman", "image", "inspect", ref], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        return None
    info = json.loads(proc.stdout)[0]
    labels = info.get("Labels") or info.get("Config", {}).get("Labels") or {}
    return str(info["Id"]), str(labels.get(LABEL, ""))


def _log(cache: Path, line: str) -> None:
    with (cache / "build.log").open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def ensure(recipe: Recipe) -> Image:
    """The recipe's image in podman storage, built first unless it is there already."""
    _need("podman", recipe.ref)
    _need("skopeo", recipe.ref)
    if recipe.base is not None:
        ensure(recipe.base)
    elif not recipe.debian:
        _check_busybox()
    cache = cache_dir()
    with _locked(cache / f"{recipe.name}.lock"):
        key = recipe.key()
        found = _labelled(recipe.ref)
        if found is None or found[1] != key:
            start = time.monotonic()
            if recipe.base is not None:
                _derive(recipe, key)
                made = f"on {recipe.base.ref}"
            else:
                made = _import(recipe, key, cache)
            if found is not None:  # the old build, now untagged; it may still be in use
                subprocess.run(["podman", "rmi", found[0]], capture_output=True)
            _log(cache, f"built {recipe.ref} ({key}) in {time.monotonic() - start:.1f} s, {made}")
        found = _labelled(recipe.ref)
        if found is None:
            raise ImageBuildError(f"podman does not list {recipe.ref} after importing it")
        return Image(recipe.ref, _digest(f"containers-storage:{recipe.ref}"), f"sha256:{found[0]}")


def _import(recipe: Recipe, key: str, cache: Path) -> str:
    """Build the recipe's root filesystem tar (unless cached) and import it as its image."""
    tar = cache / f"{recipe.name}-{key}.tar"
    if not tar.exists():
        for old in cache.glob(f"{recipe.name}-*.tar"):
            old.unlink()
        partial = cache / f"{recipe.name}-{key}.partial.tar"
        if recipe.debian:
            _debian_rootfs(recipe, partial)
        else:
            _busybox_rootfs(partial)
        partial.rename(tar)
    changes = [f"--change={c}" for c in (*recipe.changes, f"LABEL {LABEL}={key}")]
    _run(
        ["podman", "import", "--quiet", *changes, str(tar), recipe.ref],
        f"podman could not import {recipe.ref}",
    )
    return f"rootfs tar {tar.stat().st_size / 1e6:.0f} MB"


def _derive(recipe: Recipe, key: str) -> None:
    """A derived recipe's image: ``podman build`` of its base with its files (a layer) and its
    config changes, which are Containerfile instructions as ``podman import --change`` takes."""
    assert recipe.base is not None
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        for inside, here in recipe.files:
            copy = context / "root" / inside.lstrip("/")
            copy.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            shutil.copyfile(here, copy)
            copy.chmod(0o755 if inside in recipe.executables else 0o644)
        lines = [f"FROM {recipe.base.ref}", "COPY root/ /", *recipe.changes]
        lines.append(f"LABEL {LABEL}={key}")
        (context / "Containerfile").write_text("\n".join(lines) + "\n")
        _run(
            [*PODMAN, "build", "--pull=never", "--quiet", "--tag", recipe.ref, str(context)],
            f"podman could not build {recipe.ref}",
        )


def _digest(source: str) -> str:
    """The manifest digest of ``source`` (a skopeo image name)."""
    out = _run(["skopeo", "inspect", source], f"skopeo could not inspect {source}", timeout=120)
    return str(json.loads(out)["Digest"])


def ensure_busybox() -> BusyboxImage:
    """The busybox image, and its three exports (made again when the image changes)."""
    image = ensure(BUSYBOX_RECIPE)
    cache = cache_dir()
    exports = cache / f"busybox-exports-{image.digest.split(':')[-1][:16]}"
    result = BusyboxImage(
        image.name, image.digest, image.config_digest, oci_dir=exports / "oci",
        oci_archive=exports / "busybox.oci.tar", docker_archive=exports / "busybox.docker.tar",
    )  # fmt: skip
    with _locked(cache / "busybox.lock"):
        if exports.is_dir():
            return result
        for old in cache.glob("busybox-exports-*"):
            shutil.rmtree(old)
        partial = exports.with_name(exports.name + ".partial")
        partial.mkdir()
        source = f"containers-storage:{image.name}"
        for target in (
            f"oci:{partial / 'oci'}:{OCI_TAG}",
            f"oci-archive:{partial / result.oci_archive.name}:{OCI_TAG}",
            f"docker-archive:{partial / result.docker_archive.name}:{image.name}",
        ):
            _run(["skopeo", "copy", "--quiet", source, target], f"skopeo could not make {target}")
        partial.rename(exports)
    return result


# ---- fixtures ------------------------------------------------------------------------------

T = TypeVar("T")


def _or_fail(build: Callable[[], T]) -> T:
    """``build()``, or a test failure (not a skip) with its one-line reason."""
    try:
        return build()
    except ImageBuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    except (OSError, subprocess.SubprocessError) as exc:  # a full disk, a hung podman
        pytest.fail(f"could not build a test image: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def busybox_image() -> BusyboxImage:
    """``localhost/haathi-test/busybox:1`` and its OCI, oci-archive and docker-archive exports."""
    return _or_fail(ensure_busybox)


@pytest.fixture(scope="session")
def python_image() -> Image:
    """``localhost/haathi-test/python:1``: Debian's essential set and python3-minimal."""
    return _or_fail(lambda: ensure(PYTHON_RECIPE))


@pytest.fixture(scope="session")
def opencv_image() -> Image:
    """``localhost/haathi-test/opencv:1``: Python, OpenCV and ``/edges.py``."""
    return _or_fail(lambda: ensure(OPENCV_RECIPE))


@pytest.fixture(scope="session")
def imagemagick_image() -> Image:
    """``localhost/haathi-test/imagemagick:1``: ImageMagick's ``montage``, find and sh."""
    return _or_fail(lambda: ensure(IMAGEMAGICK_RECIPE))


@pytest.fixture(scope="session")
def examples_image() -> Image:
    """``localhost/haathi-test/pachyderm-examples:1``: Python, and the code of Pachyderm's
    group, joins and word count examples where their images have it."""
    return _or_fail(lambda: ensure(EXAMPLES_RECIPE))


@pytest.fixture(scope="session")
def iris_image() -> Image:
    """``localhost/haathi-test/iris:1``: scikit-learn, pandas and the iris example's code."""
    return _or_fail(lambda: ensure(IRIS_RECIPE))


@pytest.fixture(scope="session")
def hyperparameter_image() -> Image:
    """``localhost/haathi-test/hyperparameter:1``: scikit-learn, pandas, ash, bc and the
    hyperparameter example's code."""
    return _or_fail(lambda: ensure(HYPERPARAMETER_RECIPE))
