"""The container images the tests build for themselves (``tests/images.py``).

Each image is in podman storage with the config a runtime must apply (or, for the busybox
image's ENTRYPOINT, ignore), and its program works in a container without network, as a
pipeline would run it. The busybox image's three exports hold the same image. A recipe is
built once, however many processes ask for it at the same time, and again when it changes; a
machine without the tools fails the tests that need an image, naming what to install.

Once the images are cached these tests take a few seconds; the first run on a machine builds
them (about two minutes, most of it the OpenCV image).
"""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import png
from tests.images import (
    BUSYBOX_RECIPE,
    DEBIAN_PATH,
    LABEL,
    PODMAN,
    PYTHON_RECIPE,
    RUN_FLAGS,
    BusyboxImage,
    Image,
    Recipe,
    ensure,
)

pytestmark = pytest.mark.slow  # builds the test images

REPO = Path(__file__).resolve().parent.parent
MONTAGE = (  # the stdin of montage.json in Pachyderm's OpenCV tutorial
    "montage -shadow -background SkyBlue -geometry 300x300+2+2"
    " $(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"
)


def inspect(name: str) -> dict[str, Any]:
    out = subprocess.run(["podman", "image", "inspect", name], capture_output=True, check=True)
    return dict(json.loads(out.stdout)[0])


def run(image: Image, *argv: str, stdin: str = "", mounts: dict[str, Path] | None = None) -> str:
    """Run ``argv`` in ``image`` as a pipeline would: no network, ENTRYPOINT ignored,
    read-only root; ``mounts`` maps container paths to host directories (``/pfs/out`` is
    writable, every other mount read-only). Returns stdout."""
    volumes = [
        f"--volume={here}:{there}" + ("" if there == "/pfs/out" else ":ro")
        for there, here in (mounts or {}).items()
    ]
    proc = subprocess.run(
        [*PODMAN, "run", *RUN_FLAGS, "--read-only", "--interactive", "--entrypoint=",
         *volumes, image.name, *argv],
        input=stdin.encode(), capture_output=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{argv} in {image.name} failed ({proc.returncode}): {err}"
    noise = [ln for ln in err.splitlines() if "level=info" not in ln]  # podman's own chatter
    assert not noise, err  # the program ran without a warning
    return proc.stdout.decode()


def png_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG file."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    return width, height, depth, colour


# A 32x24 black picture with a white 16x12 rectangle at x 8..23, y 6..17.
SQUARE = png.write(32, 24, bytes(
    255 if 8 <= x < 24 and 6 <= y < 18 else 0 for y in range(24) for x in range(32)
))  # fmt: skip


def pfs(tmp_path: Path, **inputs: dict[str, bytes]) -> dict[str, Path]:
    """Host directories for ``/pfs/<input>`` (with the given files) and an empty ``/pfs/out``."""
    mounts = {}
    for name, files in {**inputs, "out": {}}.items():
        mounts[f"/pfs/{name}"] = tmp_path / name
        (tmp_path / name).mkdir()
        for file, data in files.items():
            (tmp_path / name / file).write_bytes(data)
    return mounts


# ---- the images --------------------------------------------------------------------------


def test_busybox_image_has_the_config_a_runtime_must_apply(busybox_image: BusyboxImage) -> None:
    info = inspect(busybox_image.name)
    assert info["Config"]["Env"] == ["PATH=/bin", "IMAGE_VAR=from-image"]
    assert info["Config"]["WorkingDir"] == "/work"
    assert info["Config"]["Entrypoint"] == ["/bin/false"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert busybox_image.config_digest == f"sha256:{info['Id']}"

    out = run(busybox_image, "sh", "-c", "echo ok; pwd; id worker; ls -nd /work /home/worker")
    lines = out.splitlines()
    assert lines[:3] == ["ok", "/work", "uid=1000(worker) gid=1000(worker) groups=1000(worker)"]
    assert [ln.split()[2:4] for ln in lines[3:]] == [["1000", "1000"], ["1000", "1000"]]


def test_busybox_exports_hold_the_same_image(busybox_image: BusyboxImage) -> None:
    sources = {
        f"containers-storage:{busybox_image.name}": busybox_image.digest,
        f"oci:{busybox_image.oci_dir}:1": None,
        f"oci-archive:{busybox_image.oci_archive}:1": None,
        f"docker-archive:{busybox_image.docker_archive}": None,
    }
    for source, digest in sources.items():
        raw = subprocess.run(["skopeo", "inspect", "--raw", source], capture_output=True)
        assert raw.returncode == 0, f"skopeo cannot read {source}: {raw.stderr.decode()}"
        assert json.loads(raw.stdout)["config"]["digest"] == busybox_image.config_digest
        if digest is not None:
            out = subprocess.run(["skopeo", "inspect", source], capture_output=True, check=True)
            assert json.loads(out.stdout)["Digest"] == digest


def test_python_image_runs_python(python_image: Image) -> None:
    config = inspect(python_image.name)["Config"]
    assert config["Env"] == [DEBIAN_PATH]
    assert not config.get("WorkingDir")
    assert run(python_image, "python3", "-c", "print(1+1)") == "2\n"


def test_opencv_image_finds_the_edges_of_each_image(opencv_image: Image, tmp_path: Path) -> None:
    """``/edges.py`` turns /pfs/images/square.png into a grayscale PNG of its edges, on a
    read-only root and without a warning."""
    mounts = pfs(tmp_path, images={"square.png": SQUARE})
    check = (
        "import json, cv2, numpy;"
        "e = cv2.imread('/pfs/out/square.png', cv2.IMREAD_UNCHANGED);"
        "print(json.dumps(numpy.argwhere(e).tolist()))"
    )
    out = run(opencv_image, "sh", "-c", f'python3 /edges.py && python3 -c "{check}"', mounts=mounts)

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["square.png"]
    assert png_header((tmp_path / "out" / "square.png").read_bytes()) == (32, 24, 8, 0)
    edges = [tuple(p) for p in json.loads(out)]  # (y, x) of every non-zero pixel
    assert all(5 <= y <= 18 and 7 <= x <= 24 for y, x in edges)  # nothing far outside
    assert not [p for p in edges if 8 <= p[0] <= 15 and 10 <= p[1] <= 21]  # nor inside
    sides = [[y for y, _ in edges if y <= 6], [y for y, _ in edges if y >= 17],
             [x for _, x in edges if x <= 8], [x for _, x in edges if x >= 23]]  # fmt: skip
    assert all(len(side) >= 8 for side in sides), sides


def test_opencv_image_leaves_out_what_cv2_never_loads(opencv_image: Image) -> None:
    """Mesa's GL drivers, LLVM, perl and matplotlib are not in it, so it is well under the
    1.2 GB its packages hold: the tutorial's tests spend most of their setup on this image."""
    assert inspect(opencv_image.name)["Size"] < 750_000_000
    lib = "/usr/lib/x86_64-linux-gnu"
    left_out = [
        f"{lib}/dri/swrast_dri.so", f"{lib}/libLLVM-15.so.1", f"{lib}/libperl.so.5.36",
        "/usr/lib/python3/dist-packages/matplotlib",
    ]  # fmt: skip
    code = f"import os; print([p for p in {left_out} if os.path.lexists(p)])"
    assert run(opencv_image, "python3", "-c", code) == "[]\n"


def test_imagemagick_image_renders_the_tutorial_montage(
    imagemagick_image: Image, tmp_path: Path
) -> None:
    """montage.json's command, unchanged: two pictures become one PNG on a SkyBlue ground."""
    mounts = pfs(tmp_path, images={"a.png": SQUARE}, edges={"a.png": SQUARE})
    run(imagemagick_image, "sh", stdin=MONTAGE, mounts=mounts)
    assert png_header((tmp_path / "out" / "montage.png").read_bytes())[:2] == (612, 308)

    pixels = "%[pixel:p{0,0}] %[pixel:p{154,154}] %[pixel:p{458,154}] %[pixel:p{20,154}]"
    out = run(imagemagick_image, "convert", "/pfs/out/montage.png", "-format", pixels, "info:",
              mounts={"/pfs/out": tmp_path / "out"})  # fmt: skip
    sky_blue, white, black = "srgb(135,206,235)", "srgb(255,255,255)", "srgb(0,0,0)"
    # the ground, each tile's rectangle, a tile's margin
    assert out.split() == [sky_blue, white, white, black]


# ---- building and caching ----------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recipe]:
    """A busybox recipe of a name of its own (removed afterwards), building into tmp_path."""
    monkeypatch.setenv("HAATHI_TEST_IMAGE_CACHE", str(tmp_path / "cache"))
    recipe = dataclasses.replace(BUSYBOX_RECIPE, name=f"scratch-{uuid.uuid4().hex[:8]}")
    yield recipe
    subprocess.run(["podman", "rmi", "--force", recipe.ref], capture_output=True)


def builds(cache: Path) -> list[str]:
    log = cache / "build.log"
    return [ln.split()[3] for ln in log.read_text().splitlines()] if log.exists() else []


def test_a_recipe_is_built_once_and_again_when_it_changes(scratch: Recipe, tmp_path: Path) -> None:
    first = ensure(scratch)
    assert ensure(scratch) == first
    assert builds(tmp_path / "cache") == [scratch.ref]
    assert inspect(scratch.ref)["Labels"][LABEL] == scratch.key()

    changed = dataclasses.replace(scratch, changes=(*scratch.changes, "ENV CHANGED=1"))
    second = ensure(changed)
    assert builds(tmp_path / "cache") == [scratch.ref, scratch.ref]
    assert second.config_digest != first.config_digest
    assert "CHANGED=1" in inspect(scratch.ref)["Config"]["Env"]
    gone = subprocess.run(["podman", "image", "exists", first.config_digest.split(":")[1]])
    assert gone.returncode == 1, "the old build is left behind"
    tars = [p.name for p in (tmp_path / "cache").glob("*.tar")]
    assert tars == [f"{scratch.name}-{changed.key()}.tar"]  # the old recipe's tar is deleted


def test_a_derived_recipe_is_its_base_with_its_files_and_is_rebuilt_with_it(
    scratch: Recipe, tmp_path: Path
) -> None:
    (tmp_path / "tool").write_text("#!/bin/sh\necho tool ran\n")
    (tmp_path / "note.txt").write_text("a note\n")
    derived = Recipe(
        f"{scratch.name}-derived", ("WORKDIR /opt",), base=scratch,
        files=(("/opt/bin/tool", tmp_path / "tool"), ("/opt/note.txt", tmp_path / "note.txt")),
        executables=("/opt/bin/tool",),
    )  # fmt: skip
    try:
        image = ensure(derived)
        assert ensure(derived) == image
        assert builds(tmp_path / "cache") == [scratch.ref, derived.ref]
        config = inspect(derived.ref)["Config"]
        assert config["WorkingDir"] == "/opt" and "IMAGE_VAR=from-image" in config["Env"]
        out = run(image, "sh", "-c", "bin/tool; cat note.txt; ls -l bin/tool note.txt")
        lines = out.splitlines()
        assert lines[:2] == ["tool ran", "a note"]
        assert [line.split()[0] for line in lines[2:]] == ["-rwxr-xr-x", "-rw-r--r--"]

        changed = dataclasses.replace(scratch, changes=(*scratch.changes, "ENV CHANGED=1"))
        ensure(dataclasses.replace(derived, base=changed))
        assert builds(tmp_path / "cache") == [scratch.ref, derived.ref] * 2
        assert "CHANGED=1" in inspect(derived.ref)["Config"]["Env"]
    finally:
        subprocess.run(["podman", "rmi", "--force", derived.ref], capture_output=True)


def test_a_recipes_own_mmdebstrap_options_are_in_its_key() -> None:
    with_option = dataclasses.replace(PYTHON_RECIPE, options=("--dpkgopt=path-exclude=/srv/*",))
    assert with_option.key() != PYTHON_RECIPE.key()


def test_processes_asking_at_once_build_once(scratch: Recipe, tmp_path: Path) -> None:
    code = (
        "import dataclasses, sys; from tests.images import BUSYBOX_RECIPE, ensure;"
        "print(ensure(dataclasses.replace(BUSYBOX_RECIPE, name=sys.argv[1])).digest)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
           "HAATHI_TEST_IMAGE_CACHE": str(tmp_path / "cache")}  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-c", code, scratch.name], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.decode() for _, err in outs]
    assert len({out for out, _ in outs}) == 1
    assert builds(tmp_path / "cache") == [scratch.ref]


def test_a_missing_tool_fails_the_test_naming_it(tmp_path: Path) -> None:
    """Without podman, a test that needs an image fails (it is not skipped) with one line."""
    (tmp_path / "test_needs_an_image.py").write_text(
        "from tests.images import busybox_image\n\ndef test_it(busybox_image):\n    pass\n"
    )
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(REPO),
           "HAATHI_TEST_IMAGE_CACHE": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rE", tmp_path],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout, proc.stdout
    assert (
        "podman is not installed (apt-get install podman runc); "
        "it builds localhost/haathi-test/busybox:1"
    ) in proc.stdout
