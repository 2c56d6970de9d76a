"""Pipelines in their container image, end to end: issue 15's acceptance tests.

1. **Pachyderm's OpenCV beginner tutorial**, run through the CLI as its text runs it, with its
   ``edges.json`` and ``montage.json`` (``tests/data/tutorial/``) unchanged but for the image
   names, under the daemonless runtime (``bwrap``) and under ``podman``. Its input pictures
   are white rectangles on black, so the edges are known: each edges PNG (decoded here, pixel by
   pixel) has its lines exactly on its rectangle's border, and the montage is a real picture of
   every input and its edges on a SkyBlue ground. Each added picture runs one edges datum; the
   jobs and the lineage name the images' digests.
2. **A join and a group** from Pachyderm's examples, whose code reads ``/pfs/<input>`` and
   writes ``/pfs/out`` by literal path, in the Python and BusyBox images.
3. **The word-count reduce**, verbatim, which collects its sums in ``/tmp/out``: ``/tmp`` is
   the datum set's own, so later jobs do not count earlier jobs' words again.
4. **reproduce** of an output made in an image: it passes; when the image's tag moves to
   another image it re-runs the recorded one (unpacked, or still in podman's storage) and says
   that the tag moved; when the recorded image is gone its datums are UNRUNNABLE, naming both
   digests.

The images are ``tests/images.py``'s session fixtures. The daemonless runtime unpacks them into
the run's unpack cache (``shared_image_cache`` in ``tests/conftest.py``): the OpenCV image
(0.7 GB) is unpacked once per run, here (Pachyderm's examples run it in podman), which takes
most of its time. Tests that do not name a runtime use ``bwrap`` (``HAATHI_RUNTIME``).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import haathi
from haathi.client import Client
from haathi.models.info import DatumState, FileType, JobInfo, JobState
from haathi.models.reproduce import EnvChange
from tests import png
from tests.conftest import Cli, put_all
from tests.images import PODMAN, BusyboxImage, Image
from tests.test_pipeline_examples import REDUCE as PACHYDERMS_REDUCE

SPECS = Path(__file__).parent / "data" / "tutorial"
TUTORIAL_IMAGES = {"edges": "pachyderm/opencv:1.0", "montage": "dpokidov/imagemagick:7.1.0-23"}


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def daemonless() -> Iterator[None]:
    """The module's tests use the daemonless runtime unless they name another."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAATHI_RUNTIME", "bwrap")
        yield


def files(client: Client, ref: str) -> dict[str, bytes]:
    """Every file of ``repo@ref`` with its content."""
    return {
        f.path: client.get_file(f"{ref}:{f.path}")
        for f in client.walk_file(f"{ref}:/")
        if f.type == FileType.FILE
    }


def counts(job: JobInfo) -> tuple[JobState, int, int, int]:
    """(state, datums total, processed, skipped)."""
    return job.state, job.data_total, job.data_processed, job.data_skipped


# ---- pictures ------------------------------------------------------------------------------

SIZE = 30  # the input pictures are SIZE x SIZE; montage scales each to a 300x300 tile
SKY_BLUE = (135, 206, 235)


@dataclass(frozen=True)
class Rectangle:
    """A SIZE x SIZE black picture with a white rectangle: columns x0..x1-1, rows y0..y1-1."""

    name: str
    x0: int
    y0: int
    x1: int
    y1: int

    def gray(self, x: int, y: int) -> int:
        return 255 if self.x0 <= x < self.x1 and self.y0 <= y < self.y1 else 0

    def png(self) -> bytes:
        gray = bytes(self.gray(x, y) for y in range(SIZE) for x in range(SIZE))
        return png.write(SIZE, SIZE, gray)


SQUARE = Rectangle("square", 8, 8, 22, 22)
TALL = Rectangle("tall", 12, 2, 18, 28)
WIDE = Rectangle("wide", 3, 10, 27, 20)


def assert_edges_of(shape: Rectangle, data: bytes) -> None:
    """``data`` is the picture of ``shape``'s edges: a grayscale picture of its size whose white
    pixels all lie on the rectangle's border (on the last pixel inside or the first outside)
    and cover each side along its whole length (Canny cuts the corners a little)."""
    picture = png.read(data)
    assert (picture.width, picture.height) == (SIZE, SIZE)
    values = {picture[x, y] for y in range(SIZE) for x in range(SIZE)}
    assert values == {(0,), (255,)}, values  # black, and white edges
    edges = {(x, y) for y in range(SIZE) for x in range(SIZE) if picture[x, y] == (255,)}
    x0, y0, x1, y1 = shape.x0, shape.y0, shape.x1, shape.y1
    outer = {(x, y) for x in range(x0 - 1, x1 + 1) for y in range(y0 - 1, y1 + 1)}
    inner = {(x, y) for x in range(x0 + 1, x1 - 1) for y in range(y0 + 1, y1 - 1)}
    assert edges <= outer - inner, sorted(edges - (outer - inner))
    for y in range(y0 + 1, y1 - 1):  # the left and right sides
        assert edges & {(x0 - 1, y), (x0, y)} and edges & {(x1 - 1, y), (x1, y)}, y
    for x in range(x0 + 1, x1 - 1):  # the top and the bottom
        assert edges & {(x, y0 - 1), (x, y0)} and edges & {(x, y1 - 1), (x, y1)}, x


def assert_montage_of(tiles: list[png.Picture], data: bytes) -> None:
    """``data`` is ``montage -shadow -background SkyBlue -geometry 300x300+2+2`` of ``tiles``:
    a grid of ceil(sqrt(n)) columns of 300x300 tiles (each picture scaled up 10 times) with a
    2-pixel SkyBlue margin and a shadow, 304 pixels apart across and 308 down; every 10x10
    block of each tile has its source pixel's gray (give or take the blur of scaling one-pixel
    lines up), and the margins are SkyBlue."""
    montage = png.read(data)
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    assert (montage.width, montage.height) == (304 * columns + 4, 308 * rows)
    assert {montage[x, y] for x in range(montage.width) for y in (0, 1)} == {SKY_BLUE}
    assert {montage[x, y] for x in (0, 1) for y in range(montage.height)} == {SKY_BLUE}
    for i, tile in enumerate(tiles):
        left, top = 2 + 304 * (i % columns), 2 + 308 * (i // columns)
        for y in range(SIZE):
            for x in range(SIZE):
                want = tile[x, y][0]
                got = montage[left + 10 * x + 5, top + 10 * y + 5]
                assert max(abs(c - want) for c in got) <= 64, (i, x, y, want, got)


# ---- 1. Pachyderm's OpenCV beginner tutorial ---------------------------------------------


@dataclass(frozen=True)
class Tutorial:
    """The tutorial's store after its steps, and the commit each picture was added in."""

    runtime: str
    client: Client
    cli: Cli
    commits: dict[str, str]  # picture name -> the images commit that added it (a commit set)
    specs: dict[str, str]  # pipeline -> the spec file given to ``create pipeline -f``


def tutorial_spec(pipeline: str, image: Image, out: Path) -> Path:
    """The tutorial's ``<pipeline>.json`` with only its image name replaced."""
    text = (SPECS / f"{pipeline}.json").read_text()
    original = json.dumps(TUTORIAL_IMAGES[pipeline])
    assert text.count(original) == 1
    path = out / f"{pipeline}.json"
    path.write_text(text.replace(original, json.dumps(image.name)))
    return path


@pytest.fixture(scope="session", params=["bwrap", "podman"])
def tutorial(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    opencv_image: Image,
    imagemagick_image: Image,
) -> Iterator[Tutorial]:
    """The tutorial's steps, through the CLI under the runtime given (``--runtime``); made
    once per test process (session-scoped: a pytest-xdist worker runs this module's tests
    among others', and would tear a module's fixtures down between them)."""
    made = _tutorial(str(request.param), tmp_path_factory, opencv_image, imagemagick_image)
    yield made
    made.client.close()


def _tutorial(
    runtime: str,
    tmp_path_factory: pytest.TempPathFactory,
    opencv_image: Image,
    imagemagick_image: Image,
) -> Tutorial:
    work = tmp_path_factory.mktemp(f"tutorial-{runtime}")
    cli = Cli(work / "store", work)
    specs = {
        "edges": tutorial_spec("edges", opencv_image, work),
        "montage": tutorial_spec("montage", imagemagick_image, work),
    }

    def run(*args: str) -> None:
        cli("--runtime", runtime, *args)

    def put_picture(shape: Rectangle) -> None:
        (work / f"{shape.name}.png").write_bytes(shape.png())
        run("put", "file", f"images@master:/{shape.name}.png", "-f", f"{shape.name}.png")

    run("create", "repo", "images")
    put_picture(SQUARE)
    run("create", "pipeline", "-f", str(specs["edges"]))
    run("create", "pipeline", "-f", str(specs["montage"]))
    put_picture(TALL)
    put_picture(WIDE)

    client = haathi.connect(str(work / "store"), runtime=runtime)
    ids = [c.id for c in client.list_commit("images@master")]  # newest first
    commits = dict(zip(("wide", "tall", "square"), ids, strict=True))
    return Tutorial(runtime, client, cli, commits, {k: str(v) for k, v in specs.items()})


def test_the_tutorial_specs_are_pachyderms_but_for_the_image(
    tutorial: Tutorial, opencv_image: Image, imagemagick_image: Image
) -> None:
    for pipeline, image in (("edges", opencv_image), ("montage", imagemagick_image)):
        original = json.loads((SPECS / f"{pipeline}.json").read_text())
        given = json.loads(Path(tutorial.specs[pipeline]).read_text())
        assert given["transform"].pop("image") == image.name
        assert original["transform"].pop("image") == TUTORIAL_IMAGES[pipeline]
        assert given == original
        assert tutorial.client.inspect_pipeline(pipeline).name == pipeline


def test_edges_finds_the_edges_of_every_picture(tutorial: Tutorial) -> None:
    edges = files(tutorial.client, "edges@master")
    assert sorted(edges) == ["/square.png", "/tall.png", "/wide.png"]
    for shape in (SQUARE, TALL, WIDE):
        assert_edges_of(shape, edges[f"/{shape.name}.png"])


def test_the_montage_shows_every_picture_and_its_edges(tutorial: Tutorial) -> None:
    """Each montage job (one when montage.json was created, then one per picture) shows every
    picture so far and its edges, in the order ``find ... | sort`` lists them: /pfs/edges/*
    before /pfs/images/*."""
    c = tutorial.client
    jobs = c.list_job("montage")[::-1]  # oldest first
    assert len(jobs) == 3
    for n, job in enumerate(jobs, start=1):
        shown = sorted((SQUARE, TALL, WIDE)[:n], key=lambda s: s.name)
        ran_on = dict(ref.split("@") for ref in job.inputs)
        output = files(c, job.output_commit)
        assert sorted(output) == ["/montage.png"]
        edges = [png.read(c.get_file(f"edges@{ran_on['edges']}:/{s.name}.png")) for s in shown]
        assert_montage_of(edges + [png.read(s.png()) for s in shown], output["/montage.png"])


def test_adding_a_picture_runs_exactly_one_edges_datum(tutorial: Tutorial) -> None:
    c = tutorial.client
    jobs = c.list_job("edges")[::-1]  # oldest first: at create pipeline, then one per picture
    assert [job.inputs for job in jobs[1:]] == [
        (f"images@{tutorial.commits[name]}",) for name in ("tall", "wide")
    ]
    for n, (job, shape) in enumerate(zip(jobs, (SQUARE, TALL, WIDE), strict=True), start=1):
        assert counts(job) == (JobState.SUCCESS, n, 1, n - 1)
        states = {d.inputs[0]["path"]: d.state for d in c.list_datum(f"edges@{job.id}")}
        assert states == {
            f"/{s.name}.png": DatumState.SUCCESS if s == shape else DatumState.SKIPPED
            for s in (SQUARE, TALL, WIDE)[:n]
        }
    for job in c.list_job("montage"):
        assert counts(job) == (JobState.SUCCESS, 1, 1, 0)
    # The edges of the first picture are the ones the first job wrote.
    assert c.inspect_file("edges@master:/square.png").datum == (
        c.inspect_file(f"{jobs[0].output_commit}:/square.png").datum
    )


def test_the_jobs_and_the_lineage_name_the_images_digests(
    tutorial: Tutorial, opencv_image: Image, imagemagick_image: Image
) -> None:
    c = tutorial.client
    made_in = {"edges": opencv_image, "montage": imagemagick_image}
    for pipeline, image in made_in.items():
        jobs = c.list_job(pipeline)
        assert len(jobs) == 3
        for job in jobs:
            assert job.context["runtime"] == tutorial.runtime
            assert job.context["image"] == image.name
            assert job.context["image_digest"] == image.digest
            assert job.context["image_id"] == image.config_digest
        shown = tutorial.cli("inspect", "job", f"{pipeline}@{jobs[0].id}").out.split()
        assert ["Image:", image.name, image.digest] == shown[shown.index("Image:") :][:3]

    (montage,) = c.lineage("montage@master:/montage.png")
    assert montage.image == f"{imagemagick_image.name}@{imagemagick_image.digest}"
    by_repo: dict[str, set[str | None]] = {}
    for node in montage.walk()[1:]:
        by_repo.setdefault(node.repo, set()).add(node.image)
    assert by_repo == {
        "edges": {f"{opencv_image.name}@{opencv_image.digest}"},
        "images": {None},  # user commits
    }


def test_cli_lineage_shows_each_files_image_in_full(
    tutorial: Tutorial, opencv_image: Image, imagemagick_image: Image
) -> None:
    """``haathi lineage`` prints a tree with a line per file; a line with an image is over 200
    characters, and it is wrapped, never cut short (the digest is the provenance)."""
    words = tutorial.cli("lineage", "montage@master:/montage.png").out.split()
    images = [words[i + 1] for i, word in enumerate(words) if word == "image"]
    assert (
        images
        == [f"{imagemagick_image.name}@{imagemagick_image.digest}"]
        + [f"{opencv_image.name}@{opencv_image.digest}"] * 3
    )


# ---- 2. a join and a group, by literal paths ---------------------------------------------

# Pachyderm's examples/joins: purchases joined with their store on the store ID in the names.
STORES = {  # name,zipcode
    "/STOREID1.txt": "Mission,94107\n",
    "/STOREID2.txt": "Chelsea,10001\n",
    "/STOREID3.txt": "Loop,60601\n",
}
PURCHASES = {
    "/P1_STOREID1.txt": "apples 3\n", "/P2_STOREID1.txt": "pears 2\n",
    "/P3_STOREID2.txt": "plums 7\n", "/P4_STOREID4.txt": "figs 1\n",
}  # fmt: skip
INNER_JOIN = """\
import os

for name in os.listdir("/pfs/stores"):
    with open(os.path.join("/pfs/stores", name)) as f:
        store, zipcode = f.read().strip().split(",")
for name in os.listdir("/pfs/purchases"):
    with open(os.path.join("/pfs/purchases", name)) as f:
        purchase = f.read()
    os.makedirs(os.path.join("/pfs/out", zipcode), exist_ok=True)
    with open(os.path.join("/pfs/out", zipcode, name), "w") as out:
        out.write(store + ": " + purchase)
"""


def test_an_inner_join_reads_and_writes_by_literal_paths(
    client: Client, python_image: Image
) -> None:
    client.create_repo("stores")
    client.create_repo("purchases")
    put_all(client, "stores", STORES)
    put_all(client, "purchases", PURCHASES)
    client.create_pipeline({
        "pipeline": {"name": "inner_join"},
        "input": {"join": [
            {"pfs": {"repo": "stores", "glob": "/STOREID(*).txt", "join_on": "$1"}},
            {"pfs": {"repo": "purchases", "glob": "/*_STOREID(*).txt", "join_on": "$1"}},
        ]},
        "transform": {"image": python_image.name, "cmd": ["python3", "-"],
                      "stdin": INNER_JOIN.splitlines()},
    })  # fmt: skip

    job = client.list_job("inner_join")[0]  # P4 has no store: the inner join leaves it out
    assert counts(job) == (JobState.SUCCESS, 3, 3, 0)
    assert job.context["runtime"] == "bwrap"
    assert job.context["image_digest"] == python_image.digest
    assert files(client, "inner_join@master") == {
        "/94107/P1_STOREID1.txt": b"Mission: apples 3\n",
        "/94107/P2_STOREID1.txt": b"Mission: pears 2\n",
        "/10001/P3_STOREID2.txt": b"Chelsea: plums 7\n",
    }

    cid = client.put_file("purchases@master:/P5_STOREID3.txt", b"limes 4\n")
    assert counts(client.inspect_job(f"inner_join@{cid}")) == (JobState.SUCCESS, 4, 1, 3)
    assert client.get_file("inner_join@master:/60601/P5_STOREID3.txt") == b"Loop: limes 4\n"


# Pachyderm's examples/group: lab results grouped by the hospital in their names.
LAB = {
    "/LIPID-patient1-CLIA24D9871327.txt": "lipid 1\n",
    "/LIPID-patient2-CLIA24D9871327.txt": "lipid 2\n",
    "/T4-patient1-CLIA3D0664329.txt": "t4 1\n",
    "/HB-patient3-CLIA3D0664329.txt": "hb 3\n",
    "/HB-patient4-CLIA99X.txt": "hb 4\n",
}


def test_a_group_reads_and_writes_by_literal_paths(
    client: Client, busybox_image: BusyboxImage
) -> None:
    client.create_repo("labresults")
    put_all(client, "labresults", LAB)
    # examples/group's lab_group_by_hospital, whose bash runs as sh in the BusyBox image.
    client.create_pipeline({
        "pipeline": {"name": "group_by_hospital"},
        "input": {"group": [{"pfs": {"repo": "labresults", "branch": "master",
                                     "glob": "/*-CLIA(*).txt", "group_by": "$1"}}]},
        "transform": {"image": busybox_image.name, "cmd": ["sh"], "stdin": [
            "mkdir -p /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/",
            "cp /pfs/labresults/* /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/",
        ]},
    })  # fmt: skip

    job = client.list_job("group_by_hospital")[0]
    assert counts(job) == (JobState.SUCCESS, 3, 3, 0)
    assert job.context["runtime"] == "bwrap"
    assert job.context["image_digest"] == busybox_image.digest
    assert files(client, "group_by_hospital@master") == {
        f"/{path.rsplit('CLIA', 1)[1][:-4]}{path}": text.encode() for path, text in LAB.items()
    }

    cid = client.put_file("labresults@master:/HB-patient5-CLIA99X.txt", b"hb 5\n")
    assert counts(client.inspect_job(f"group_by_hospital@{cid}")) == (JobState.SUCCESS, 3, 1, 2)
    out = files(client, "group_by_hospital@master")
    assert {path: out[path] for path in out if path.startswith("/99X/")} == {
        "/99X/HB-patient4-CLIA99X.txt": b"hb 4\n",
        "/99X/HB-patient5-CLIA99X.txt": b"hb 5\n",
    }


# ---- 3. a reduce that keeps its sums in /tmp ----------------------------------------------

MAP = [  # one file per word and document: /pfs/out/<datum>/<word> holds its count
    'mkdir -p "/pfs/out/$PACH_DATUM_ID"',
    'awk -v out="/pfs/out/$PACH_DATUM_ID" '
    "'{ for (i = 1; i <= NF; i++) n[$i]++ } END { for (w in n) print n[w] > (out \"/\" w) }'"
    ' "$docs"',
]
REDUCE = PACHYDERMS_REDUCE["transform"]["stdin"]  # examples/word_count, verbatim


def word_counts(*docs: str) -> dict[str, bytes]:
    n: dict[str, int] = {}
    for doc in docs:
        for w in doc.split():
            n[w] = n.get(w, 0) + 1
    # The example's `find /tmp/out/` also lists /tmp/out/ itself: an empty sum in /out.
    return {f"/{w}": f"{c}\n".encode() for w, c in n.items()} | {"/out": b"\n"}


@pytest.mark.parametrize("runtime", ["bwrap", "podman"])
def test_a_reduce_using_tmp_counts_right_on_every_job(
    runtime: str, tmp_path: Path, python_image: Image
) -> None:
    client = haathi.connect(str(tmp_path / "store"), runtime=runtime)
    client.create_repo("docs")
    docs = ["the cat sat on the mat\n", "the dog sat\nthe end\n"]
    put_all(client, "docs", {"/a.txt": docs[0], "/b.txt": docs[1]})
    for name, input_, lines in (("map", "docs", MAP), ("reduce", "map", REDUCE)):
        glob = "/*" if name == "map" else "/"
        client.create_pipeline({
            "pipeline": {"name": name},
            "input": {"pfs": {"repo": input_, "glob": glob}},
            "transform": {"image": python_image.name, "cmd": ["sh"], "stdin": lines},
        })  # fmt: skip
    assert files(client, "reduce@master") == word_counts(*docs)

    for name, text in (("/c.txt", "a cat and a dog\n"), ("/d.txt", "the end of the cat\n")):
        docs.append(text)
        cid = client.put_file(f"docs@master:{name}", text.encode())
        assert counts(client.inspect_job(f"reduce@{cid}")) == (JobState.SUCCESS, 1, 1, 0)
        assert files(client, f"reduce@{cid}") == word_counts(*docs)
    assert client.get_file("reduce@master:/the") == b"6\n"
    assert client.get_file("reduce@master:/cat") == b"3\n"
    client.close()


def test_podman_runs_the_pipelines_of_a_store_at_a_long_path(
    tmp_path: Path, busybox_image: BusyboxImage
) -> None:
    """The store's scratch directory holds the Unix socket a podman container's launcher
    connects to; a socket's own path is limited to 107 bytes, a store's path is not."""
    store = tmp_path / ("a-long-directory-name-" * 4) / "store"
    client = haathi.connect(str(store), runtime="podman")
    client.create_repo("words")
    put_all(client, "words", {"/a.txt": "apple\n"})
    client.create_pipeline({
        "pipeline": {"name": "copy"},
        "input": {"pfs": {"repo": "words", "glob": "/*"}},
        "transform": {"image": busybox_image.name, "cmd": ["sh"],
                      "stdin": ["cp /pfs/words/* /pfs/out/"]},
    })  # fmt: skip
    job = client.list_job("copy")[0]
    assert (job.state, job.reason) == (JobState.SUCCESS, None)
    assert files(client, "copy@master") == {"/a.txt": b"apple\n"}
    client.close()


# ---- 4. reproduce, and an image tag that moves ---------------------------------------------


def podman(*args: str) -> str:
    """``podman`` with this host's flags; its output (the test fails if it does)."""
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def skopeo_digest(ref: str) -> str:
    """The manifest digest of ``ref`` in podman's storage."""
    out = subprocess.run(
        ["skopeo", "inspect", f"containers-storage:{ref}"], capture_output=True, check=True
    ).stdout
    return str(json.loads(out)["Digest"])


@dataclass
class Moving:
    """A pipeline run in an image of its own, under a throw-away tag that the test moves."""

    client: Client
    tag: str  # localhost/haathi-test/moving-<random>:1
    cache: Path  # the daemonless runtime's unpack cache, this test's own
    made: list[str]  # the IDs of the images made for the test (removed afterwards)
    first: str = ""  # the digest of the image the pipeline ran in

    def new_image(self, base: Image, label: str) -> str:
        """An image of its own (``base`` with one more label) now under the tag; its
        digest."""
        container = podman("create", base.name)
        try:
            image_id = podman("commit", "--quiet", "--change",
                              f"LABEL haathi.test.moving={label}", container, self.tag)  # fmt: skip
        finally:
            podman("rm", container)
        self.made.append(image_id)
        return skopeo_digest(self.tag)


@pytest.fixture
def moving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, busybox_image: BusyboxImage
) -> Iterator[Moving]:
    """``copy``, run by the daemonless runtime in a new image under a new tag; the tag and
    the images are removed afterwards (the shared test images are never retagged)."""
    monkeypatch.setenv("HAATHI_IMAGE_CACHE", str(tmp_path / "image-cache"))
    client = haathi.connect(str(tmp_path / "store"), runtime="bwrap")
    m = Moving(client, f"localhost/haathi-test/moving-{uuid.uuid4().hex[:8]}:1",
               tmp_path / "image-cache", [])  # fmt: skip
    try:
        m.first = m.new_image(busybox_image, "first")
        client.create_repo("words")
        put_all(client, "words", {"/a.txt": "apple\n", "/b.txt": "banana\n"})
        client.create_pipeline({
            "pipeline": {"name": "copy"},
            "input": {"pfs": {"repo": "words", "glob": "/*"}},
            "transform": {"image": m.tag, "cmd": ["sh"], "stdin": ["cp /pfs/words/* /pfs/out/"]},
        })  # fmt: skip
        yield m
    finally:
        client.close()
        subprocess.run([*PODMAN, "rmi", "--force", *m.made], capture_output=True, timeout=120)
        subprocess.run([*PODMAN, "untag", m.tag], capture_output=True, timeout=120)


def test_reproduce_runs_the_recorded_image_and_says_when_its_tag_moved(
    moving: Moving, busybox_image: BusyboxImage
) -> None:
    client, first = moving.client, moving.first
    job = client.list_job("copy")[0]
    assert job.state == JobState.SUCCESS and job.context["image_digest"] == first
    report = client.reproduce("copy@master:/")
    assert report.ok and len(report.datums) == 2
    assert all(d.env_changes == () for d in report.datums)

    # The tag now names another image; the first is still unpacked here: it runs again.
    second = moving.new_image(busybox_image, "second")
    assert second != first
    report = client.reproduce("copy@master:/")
    assert report.ok and len(report.datums) == 2
    moved = EnvChange(f"image {moving.tag}", first, second, variable=False)
    assert all(d.env_changes == (moved,) for d in report.datums)
    assert str(moved) == f"image {moving.tag} was '{first}', now '{second}'"

    # The first image is gone from this host: from the unpack cache and from podman.
    podman("rmi", moving.made[0])
    shutil.rmtree(moving.cache / first.removeprefix("sha256:"))
    report = client.reproduce("copy@master:/")
    assert not report.ok
    assert [d.state for d in report.datums] == ["UNRUNNABLE", "UNRUNNABLE"]
    for d in report.datums:
        assert d.reason is not None and first in d.reason and second in d.reason
        assert [f.status for f in d.files] == ["missing"]
    assert files(client, "copy@master") == {"/a.txt": b"apple\n", "/b.txt": b"banana\n"}


def test_reproduce_unpacks_the_recorded_image_again_while_podman_has_it(
    moving: Moving, busybox_image: BusyboxImage
) -> None:
    """The README: a re-run is UNRUNNABLE when the recorded image is "not in podman's storage
    or the unpack cache". Here the tag has moved and the unpacked copy is gone, but podman
    still has the image (by its ID): the daemonless runtime unpacks it again and re-runs it."""
    second = moving.new_image(busybox_image, "second")
    shutil.rmtree(moving.cache / moving.first.removeprefix("sha256:"))
    report = moving.client.reproduce("copy@master:/")
    assert [(d.state, d.reason) for d in report.datums] == [("SUCCESS", None)] * 2
    assert report.ok
    moved = EnvChange(f"image {moving.tag}", moving.first, second, variable=False)
    assert all(d.env_changes == (moved,) for d in report.datums)
