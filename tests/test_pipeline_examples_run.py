"""Pachyderm's example pipelines, run end to end from their own spec files.

Every spec file of Pachyderm's ``examples/`` (``tests/data/pachyderm_examples``, unchanged) is
in one of two tables: :data:`RUNS`, the examples that run here, or :data:`NOT_RUN`, with why not
(the network, a GPU, an outside service, software that takes too long to build or run here, or
an issue 18 part still being built). A file in neither fails
:func:`test_every_example_spec_file_is_in_one_table`.

A RUNS example's spec is read from its file and given to ``create pipeline`` unchanged but for
``transform.image``, swapped for an image built on this machine (``tests/images.py``; no
registry is reachable). Where an example's code lives in its image, the local image carries it
at the path the spec's ``cmd`` names: the example's own file where it runs as it is, else a
script written from its source (each :class:`Run` says which), and runs in podman
(:func:`podman_runtime`). A spec with no image runs in the host sandbox, as it is. Its input
data is made as the example's README or Makefile makes it, kept small; each group of related
examples shares one store, built once and then only read by the tests, which check the content
of the outputs, not only the jobs' states. The stores are session fixtures, as in
test_images_tutorial: a pytest-xdist worker may run this module's tests among others', and
would tear a module's fixtures down (and build them again) between them. The ``group`` lab
pipelines and the ``opencv`` DAG are created through the CLI, the rest through the Client; the
transactions and the deferred processing examples replay their README's command sequence
through the CLI, transactions included. One example, the inner join, also runs in every shape.
"""

from __future__ import annotations

import functools
import json
import pickletools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ParamSpec

import pytest

import haathi
from haathi.client import Client
from haathi.client.projects import in_project
from haathi.models.ids import DEFAULT_PROJECT
from haathi.models.info import FileType, JobState
from haathi.pps.spec import load_documents
from tests import png
from tests.conftest import Cli
from tests.images import Image
from tests.images import examples_image as examples_image
from tests.images import hyperparameter_image as hyperparameter_image
from tests.images import iris_image as iris_image
from tests.test_images_tutorial import (
    SQUARE,
    TALL,
    WIDE,
    Rectangle,
    assert_edges_of,
    assert_montage_of,
)

EXAMPLES = Path(__file__).parent / "data" / "pachyderm_examples"
P = ParamSpec("P")


def in_podman(build: Callable[P, Store]) -> Callable[P, Store]:
    """A store fixture whose jobs run in podman (``HAATHI_RUNTIME``), as the module's own tests
    do (:func:`podman_runtime`)."""

    @functools.wraps(build)
    def built(*args: P.args, **kwargs: P.kwargs) -> Store:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HAATHI_RUNTIME", "podman")
            return build(*args, **kwargs)

    return built


@pytest.fixture(autouse=True)
def podman_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's tests run their jobs in podman: it runs an image from its own storage,
    where the daemonless runtime first unpacks it (0.1-0.7 GB, once per run here: the
    examples' four images cost the suite 30 s); ``test_images_tutorial`` runs under both."""
    monkeypatch.setenv("HAATHI_RUNTIME", "podman")


pytestmark = pytest.mark.slow  # container images, and several DAGs per store


@dataclass(frozen=True)
class Run:
    """How a RUNS example runs: in which store (a fixture of this module), in which local
    image (``None``: the spec names none and runs in the host sandbox), and with what code."""

    store: str
    image: str | None
    code: str = ""  # where the code its cmd names comes from, when its image holds it


UNCHANGED = "its code, {}, unchanged"
DEFERRED = "deferred-processing/deferred_processing_plus_transactions"
RUNS: dict[str, Run] = {
    "group/pipelines/lab/lab_group_by_hospital.pipeline.json": Run("retail", None),
    "group/pipelines/lab/lab_group_by_patient.pipeline.json": Run("retail", None),
    "group/pipelines/lab/reduce_group_by_hospital.pipeline.json": Run("retail", None),
    "group/pipelines/lab/reduce_group_by_patient.pipeline.json": Run("retail", None),
    "group/pipelines/retail/retail_group.pipeline.json": Run(
        "retail", "examples", UNCHANGED.format("group/src/main.py at /app/main.py")
    ),
    "joins/pipelines/inner/inner_join.pipeline.json": Run(
        "retail", "examples", UNCHANGED.format("joins/src/inner/main.py at /app/inner/main.py")
    ),
    "joins/pipelines/inner/reduce_inner.pipeline.json": Run("retail", None),
    "joins/pipelines/outer/outer_join.pipeline.json": Run(
        "retail", "examples", UNCHANGED.format("joins/src/outer/main.py at /app/outer/main.py")
    ),
    "joins/pipelines/outer/reduce_outer.pipeline.json": Run("retail", None),
    "word_count/pipelines/map.pipeline.json": Run(
        "word_count", "examples", "/go/bin/app: src/map.go (Go) written in Python"
    ),
    "word_count/pipelines/reduce.pipeline.json": Run("word_count", None),
    "shuffle/shuffle.pipeline.json": Run("shuffle", "examples"),
    "opencv/edges-union.pipeline.json": Run(
        "opencv", "opencv", "/edges.py: the tutorial's edges.py (Canny) without matplotlib"
    ),
    "opencv/edges.pipeline.json": Run("opencv", "opencv", "/edges.py, as edges-union"),
    "opencv/montage.pipeline.json": Run("opencv", "imagemagick"),
    "globalID/pipelines/edges.pipeline.json": Run("global_id", "opencv", "/edges.py, as opencv"),
    "globalID/pipelines/montage.pipeline.json": Run("global_id", "imagemagick"),
    "ml/iris/python_train.pipeline.json": Run(
        "iris", "iris", "/code/pytrain.py: the example's, importing joblib itself"
    ),
    "ml/iris/python_infer.pipeline.json": Run(
        "iris", "iris", "/code/pyinfer.py: the example's, importing joblib itself"
    ),
    "ml/hyperparameter/split.pipeline.json": Run("hyperparameter", None),
    "ml/hyperparameter/model.pipeline.json": Run(
        "hyperparameter", "hyperparameter", "/code/pytrain.py: the example's, importing joblib"
    ),
    "ml/hyperparameter/test.pipeline.json": Run(
        "hyperparameter",
        "hyperparameter",
        "/code/evaluate.py: not in Pachyderm's repository; written from the README",
    ),
    "ml/hyperparameter/select.pipeline.json": Run("hyperparameter", "hyperparameter"),
    "transactions/model.pipeline.json": Run(
        "transactions",
        "hyperparameter",
        "/code/pytrain.py: the hyperparameter example's (the same image, and the same code)",
    ),
    f"{DEFERRED}/edges_dp.pipeline.json": Run("deferred", "opencv", "/edges.py, as opencv"),
    f"{DEFERRED}/montage_dp.pipeline.json": Run("deferred", "imagemagick"),
}

SPOUTS = "run by tests/test_spouts_services.py: a spout runs in a worker, with haathi's client"
NOT_RUN: dict[str, str] = {
    "churn/churn.pipeline.json": "an outside service: it egresses to Snowflake",
    "db/query.pipeline.json": "an outside service: it queries a MongoDB Atlas cluster",
    "deferred-processing/automated_deferred_processing/branch-mover.pipeline.json": (
        "the network: its code is pachctl in its image, calling pachd at grpc://pachd:650"
    ),
    "deferred-processing/automated_deferred_processing/branch-mover-no-auth.pipeline.json": (
        "the network: its code is pachctl in its image, calling pachd at grpc://pachd:650"
    ),
    "gatk/joint-call.pipeline.json": (
        "the network: GATK 3.8 (Java, not in Debian) and a reference genome and samples "
        "downloaded from Google Drive"
    ),
    "gatk/likelihoods.pipeline.json": (
        "the network: GATK 3.8 (Java, not in Debian) and a reference genome and samples "
        "downloaded from Google Drive"
    ),
    "kubeflow/mnist/pipeline.yaml": "an outside service: a Kubeflow cluster",
    "kubeflow/mnist/standalone_pipeline.yaml": "an outside service: a Kubeflow cluster",
    "ml/gpt-2/generate.pipeline.json": "a GPU",
    "ml/gpt-2/train.pipeline.json": "a GPU",
    "ml/gpt-2/tweets.pipeline.json": "the network: it scrapes tweets from Twitter",
    "ml/housing-prices/regression.pipeline.json": (
        "too slow for the suite: matplotlib and seaborn besides scikit-learn, and 60 random "
        "forests fitted per datum (cross-validation and a learning curve); its code also uses "
        "np.bool, which NumPy 1.24 removed"
    ),
    "ml/iris/julia_infer.pipeline.json": "the network: Julia is not in Debian 12",
    "ml/iris/julia_train.pipeline.json": "the network: Julia is not in Debian 12",
    "ml/iris/rstats_infer.pipeline.json": (
        "too slow for the suite: R's caret and kernlab are 84 Debian packages, minutes to build"
    ),
    "ml/iris/rstats_train.pipeline.json": (
        "too slow for the suite: R's caret and kernlab are 84 Debian packages, minutes to build"
    ),
    "ml/neon/infer.pipeline.json": (
        "the network: Intel's neon (not in Debian) and the IMDB reviews it trains on"
    ),
    "ml/neon/train.pipeline.json": (
        "the network: Intel's neon (not in Debian) and the IMDB reviews it trains on"
    ),
    "ml/tensorflow/pre-processing_and_generation.pipeline.json": (
        "the network: TensorFlow's pix2pix (not in Debian) and a model trained on "
        "downloaded pictures"
    ),
    "ml/tensorflow/training_and_export.pipeline.json": (
        "the network: TensorFlow's pix2pix (not in Debian) trained on downloaded pictures"
    ),
    "ml/tensorflow/training_and_export_gpu.pipeline.json": "a GPU",
    "redshift/pipeline.pipeline.json": "an outside service: Amazon Redshift",
    "run/config/pipeline.pipeline.json": "an envsubst template, not a spec: validate refuses it",
    "scraper/scraper.pipeline.json": "the network: it downloads web pages",
    "spark/pi/estimate_pi.pipeline.json": "an outside service: a Spark cluster",
    "spouts/go-rabbitmq-spout/pipelines/spout.pipeline.json": "an outside service: RabbitMQ",
    "spouts/spout101/pipelines/processor.pipeline.json": SPOUTS,
    "spouts/spout101/pipelines/spout.pipeline.json": SPOUTS,
    "word_count/pipelines/scraper.pipeline.json": (
        "the network: it downloads web pages (here the pages it would write are put by hand)"
    ),
}


def example_files() -> list[str]:
    specs = [p for p in EXAMPLES.rglob("*.*") if p.suffix in (".json", ".yaml")]
    return sorted(str(p.relative_to(EXAMPLES)) for p in specs)


def test_every_example_spec_file_is_in_one_table() -> None:
    assert len(example_files()) == 55
    assert not set(RUNS) & set(NOT_RUN), "in both tables"
    assert not set(example_files()) - set(RUNS) - set(NOT_RUN), "in neither table"
    assert sorted([*RUNS, *NOT_RUN]) == example_files()  # and no other file


# ---- helpers -------------------------------------------------------------------------------


def spec(name: str, image: Image | None) -> dict[str, Any]:
    """The example's spec as its file has it, ``transform.image`` swapped for ``image``."""
    (doc,) = load_documents((EXAMPLES / name).read_text(), name)
    assert ("image" in doc["transform"]) == (RUNS[name].image is not None) == (image is not None)
    if image is not None:
        doc["transform"]["image"] = image.name
    return doc


def spec_file(name: str, image: Image, out: Path) -> Path:
    """The example's spec file, its image name (and nothing else) replaced, written to ``out``
    (for ``haathi create pipeline -f``)."""
    text = (EXAMPLES / name).read_text()
    (doc,) = load_documents(text, name)
    original = json.dumps(doc["transform"]["image"])
    assert text.count(original) == 1
    path = out / Path(name).name
    path.write_text(text.replace(original, json.dumps(image.name)))
    return path


def files(client: Client, ref: str) -> dict[str, bytes]:
    """Every file of ``repo@ref`` with its content."""
    return {
        f.path: client.get_file(f"{ref}:{f.path}")
        for f in client.walk_file(f"{ref}:/")
        if f.type == FileType.FILE
    }


def put_all(client: Client, repo: str, content: dict[str, bytes]) -> str:
    """Put ``{path: bytes}`` into ``repo@master`` as one commit (``put file -r``)."""
    with client.start_commit(f"{repo}@master") as commit:
        for path, data in content.items():
            commit.put_file(path, data)
    return commit.id


def all_succeeded(client: Client, pipelines: list[str]) -> None:
    for pipeline in pipelines:
        jobs = client.list_job(pipeline)
        assert jobs, f"{pipeline} ran no job"
        assert [(j.state, j.reason) for j in jobs] == [(JobState.SUCCESS, None)] * len(jobs)


def concatenated(content: dict[str, bytes], parent: str) -> bytes:
    """The files directly under ``parent`` concatenated in name order (a shell glob's)."""
    under = sorted(p for p in content if p.rsplit("/", 1)[0] == parent)
    return b"".join(content[p] for p in under)


@dataclass(frozen=True)
class Store:
    """A store where a group of related examples ran (a fixture of this module)."""

    client: Client
    specs: dict[str, Image | None]  # example file -> the local image it ran in
    data: dict[str, Any] = field(default_factory=dict)  # what the fixture kept for its tests
    # example file -> the pipelines made of it (by default: its pipeline.name, in default)
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def stores() -> Iterator[dict[str, Store]]:
    """The module's stores, closed at the end of the session."""
    made: dict[str, Store] = {}
    yield made
    for store in made.values():
        store.client.close()


# ---- joins and group: stores, purchases, returns, lab results --------------------------------

# The Makefiles' mock-up data (examples/joins and examples/group, `make setup-retail`).
STORE = {  # ID: (name, zipcode)
    "1": ("washington st.", "02108"), "2": ("hollywood bvd.", "02108"),
    "3": ("beverly hills", "90210"), "4": ("mariposa st.", "94107"), "5": ("tremont st.", "90210"),
}  # fmt: skip
STORES = {
    f"/STOREID{n}.txt": f'{{"storeid":"{n}", "name":"{name}","address":'
    f'{{"zipcode":"{zipcode}","country":"US"}}}}'
    for n, (name, zipcode) in STORE.items()
}


def order(order: str, date: str, sku: str, qty: int, price: str) -> str:
    return f"ORDER_HEADER|{order}|{date}\nSKU|{sku}|QTY|{qty}|UNIT_PRICE|{price}\n"


PURCHASES = {
    "/ORDERW080520_STOREID1.txt": order("W080520", "2020-10-10", "1001", 2, "100.00"),
    "/ORDERW080521_STOREID1.txt": order("W080521", "2020-10-10", "2002", 1, "250.00"),
    "/ORDERW078929_STOREID2.txt": order("W078929", "2020-10-10", "0615", 1, "75.00"),
    "/ORDERW598471_STOREID3.txt": order("W598471", "2020-10-10", "1001", 3, "100.00"),
    "/ORDERW080231_STOREID5.txt": order("W080231", "2020-10-10", "1001", 2, "100.00"),
    "/ORDERW080528_STOREID5.txt": order("W080528", "2020-10-10", "2002", 1, "250.00"),
}
RETURNS = {
    "/ORDERW080520_STOREID1.txt": order("W080520", "2020-10-12", "1001", 1, "100.00"),
    "/ORDERW080231_STOREID5.txt": order("W080231", "2020-10-10", "1001", 1, "100.00"),
    "/ORDERW080528_STOREID5.txt": order("W080528", "2020-10-10", "2002", 1, "250.00"),
    "/ORDERW261452_STOREID0.txt": order("W261452", "2020-10-10", "0246", 1, "50.00"),
}


def lab(patient: int, order: int, cholesterol: int, triglyceride: int) -> str:
    """A lab result as examples/group's `make setup-lab` prints it (no newline at the end)."""
    return (
        f"PID|PATID{patient}\nORC|ORD{order}\nOBX|1|NM|2093-3^Cholesterol|{cholesterol}|mg/dL\n"
        f"OBX|2|NM|2571-8^Triglyceride|{triglyceride}|mg/dL"
    )


LAB = {
    "T1606707557-LIPID-PATID1-CLIA24D9871327.txt": lab(1, 777888, 196, 100),
    "T1606331395-LIPID-PATID2-CLIA24D9871327.txt": lab(2, 777889, 212, 110),
    "T1606707579-LIPID-PATID3-CLIA24D9871327.txt": lab(3, 777890, 188, 89),
    "T1606707597-LIPID-PATID4-CLIA24D9871327.txt": lab(4, 777891, 230, 132),
    "T1606707613-LIPID-PATID1-CLIA24D9871328.txt": lab(1, 777892, 199, 101),
    "T1606707635-LIPID-PATID3-CLIA24D9871328.txt": lab(3, 777893, 187, 92),
}
LAB_PIPELINES = [
    "group/pipelines/lab/lab_group_by_hospital.pipeline.json",
    "group/pipelines/lab/lab_group_by_patient.pipeline.json",
    "group/pipelines/lab/reduce_group_by_hospital.pipeline.json",
    "group/pipelines/lab/reduce_group_by_patient.pipeline.json",
]
RETAIL_PIPELINES = [
    "joins/pipelines/inner/inner_join.pipeline.json",
    "joins/pipelines/inner/reduce_inner.pipeline.json",
    "joins/pipelines/outer/outer_join.pipeline.json",
    "joins/pipelines/outer/reduce_outer.pipeline.json",
    "group/pipelines/retail/retail_group.pipeline.json",
]


def encoded(content: dict[str, str]) -> dict[str, bytes]:
    return {path: text.encode() for path, text in content.items()}


def run_retail(client: Client, examples_image: Image) -> dict[str, Image | None]:
    """Both joins and the retail group: the Makefiles' `make setup deploy`, then each
    pipeline."""
    for repo, content in (("stores", STORES), ("purchases", PURCHASES), ("returns", RETURNS)):
        client.create_repo(repo)
        put_all(client, repo, encoded(content))
    ran: dict[str, Image | None] = {}
    for name in RETAIL_PIPELINES:
        image = examples_image if RUNS[name].image else None
        client.create_pipeline(spec(name, image))
        ran[name] = image
    return ran


@pytest.fixture(scope="session")
@in_podman
def retail(
    stores: dict[str, Store], tmp_path_factory: pytest.TempPathFactory, examples_image: Image
) -> Store:
    """The joins and the group examples in one store: the lab pipelines through the CLI (the
    spec files as they are: they name no image), the retail ones through the Client."""
    work = tmp_path_factory.mktemp("retail")
    cli = Cli(work / "store", work)
    (work / "labresults").mkdir()
    for name, text in LAB.items():  # `make setup-lab`
        (work / "labresults" / name).write_text(text)
    cli("create", "repo", "labresults")  # `make deploy-lab create-lab`
    cli("put", "file", "-r", "labresults@master:/", "-f", "labresults")
    for name in LAB_PIPELINES:
        cli("create", "pipeline", "-f", str(EXAMPLES / name))
    client = haathi.connect(str(work / "store"))
    ran = run_retail(client, examples_image) | dict.fromkeys(LAB_PIPELINES)
    data = {"labresults": {f"/{n}": t.encode() for n, t in LAB.items()}}
    data |= {"stores": encoded(STORES), "purchases": encoded(PURCHASES)}
    stores["retail"] = Store(client, ran, data | {"returns": encoded(RETURNS)})
    return stores["retail"]


def test_the_lab_results_are_grouped_by_hospital_and_by_patient(retail: Store) -> None:
    """examples/group, lab: each group's files copied into a directory named after its
    capture group (hospital, patient), then each directory concatenated into one file."""
    c = retail.client
    all_succeeded(c, ["group_by_hospital", "group_by_patient"])
    lab = retail.data["labresults"]

    def group(pattern: str) -> dict[str, bytes]:
        return {f"/{re.search(pattern, p)[1]}{p}": t for p, t in lab.items()}  # type: ignore[index]

    by_hospital, by_patient = group(r"-CLIA(\w+)\.txt$"), group(r"-PATID(\d+)-")
    assert files(c, "group_by_hospital@master") == by_hospital
    assert files(c, "group_by_patient@master") == by_patient
    assert sorted(files(c, "group_by_hospital@master")) == [
        "/24D9871327/T1606331395-LIPID-PATID2-CLIA24D9871327.txt",
        "/24D9871327/T1606707557-LIPID-PATID1-CLIA24D9871327.txt",
        "/24D9871327/T1606707579-LIPID-PATID3-CLIA24D9871327.txt",
        "/24D9871327/T1606707597-LIPID-PATID4-CLIA24D9871327.txt",
        "/24D9871328/T1606707613-LIPID-PATID1-CLIA24D9871328.txt",
        "/24D9871328/T1606707635-LIPID-PATID3-CLIA24D9871328.txt",
    ]
    (job,) = c.list_job("group_by_hospital")
    assert (job.data_total, job.data_processed) == (2, 2)  # a datum per hospital

    all_succeeded(c, ["reduce_group_by_hospital", "reduce_group_by_patient"])
    for reduce, grouped in (("hospital", by_hospital), ("patient", by_patient)):
        dirs = sorted({p.split("/")[1] for p in grouped})
        assert files(c, f"reduce_group_by_{reduce}@master") == {
            f"/{d}.txt": concatenated(grouped, f"/{d}") for d in dirs
        }
    patient1 = c.get_file("reduce_group_by_patient@master:/1.txt")
    assert patient1 == (
        b"PID|PATID1\nORC|ORD777888\nOBX|1|NM|2093-3^Cholesterol|196|mg/dL\n"
        b"OBX|2|NM|2571-8^Triglyceride|100|mg/dLPID|PATID1\nORC|ORD777892\n"
        b"OBX|1|NM|2093-3^Cholesterol|199|mg/dL\nOBX|2|NM|2571-8^Triglyceride|101|mg/dL"
    )


def store_of(path: str) -> str:
    return path.rsplit("STOREID", 1)[1].removesuffix(".txt")


def test_the_inner_join_files_each_purchase_under_its_stores_zipcode(retail: Store) -> None:
    """examples/joins, inner: a datum per (store, purchase) pair; STOREID4 has no purchase."""
    c = retail.client
    all_succeeded(c, ["inner_join", "reduce_inner"])
    (job,) = c.list_job("inner_join")
    assert (job.data_total, job.data_processed) == (6, 6)
    joined = {
        f"/{STORE[store_of(p)][1]}{p}": (
            f"\nPurchase at store: {store_of(p)} - {STORE[store_of(p)][0]} \n{text}".encode()
        )
        for p, text in PURCHASES.items()
    }
    assert files(c, "inner_join@master") == joined
    assert files(c, "reduce_inner@master") == {
        "/02108.txt": concatenated(joined, "/02108"),
        "/90210.txt": concatenated(joined, "/90210"),
    }


def test_the_outer_join_keeps_stores_without_returns_and_returns_without_a_store(
    retail: Store,
) -> None:
    """examples/joins, outer on both sides (Case 3 of its README): the return of STOREID0 is
    filed under UNKNOWN (its datum has no store, so ``PACH_DATUM_stores_JOIN_ON`` is unset),
    stores 2, 3 and 4 without returns get a file of their own with only the separator line."""
    c = retail.client
    all_succeeded(c, ["outer_join", "reduce_outer"])
    (job,) = c.list_job("outer_join")
    assert (job.data_total, job.data_processed) == (7, 7)
    returned = {
        f"/{STORE[store_of(p)][1]}{p}": (
            f"\nReturn at store: {store_of(p)} - {STORE[store_of(p)][0]} \n{text}".encode()
        )
        for p, text in RETURNS.items()
        if store_of(p) != "0"
    }
    returned["/UNKNOWN/ORDERW261452_STOREID0.txt"] = (
        b"\nThis return store does not exist \n" + RETURNS["/ORDERW261452_STOREID0.txt"].encode()
    )
    for store in ("2", "3", "4"):
        returned[f"/{STORE[store][1]}/STOREID{store}.txt"] = (
            f"\nReturn at store: {store} - {STORE[store][0]} \n".encode()
        )
    assert files(c, "outer_join@master") == returned
    assert files(c, "reduce_outer@master") == {
        f"/{zipcode}.txt": concatenated(returned, f"/{zipcode}")
        for zipcode in ("02108", "90210", "94107", "UNKNOWN")
    }


def test_the_retail_group_nets_each_stores_purchases_and_returns(retail: Store) -> None:
    """examples/group, retail: a datum per store ID across three repos; store 0 has only a
    return (its group has no store file: ``PACH_DATUM_stores_GROUP_BY`` is unset), store 4
    only its store file."""
    c = retail.client
    all_succeeded(c, ["group_store_revenue"])
    (job,) = c.list_job("group_store_revenue")
    assert (job.data_total, job.data_processed) == (6, 6)

    def revenue(header: str, orders: float, returns: float) -> bytes:
        amounts = f"ORDER_AMOUNT|{orders}|RETURN_AMOUNT|{returns}|NET_AMOUNT|{orders - returns}"
        return f"\n{header} \n\n{amounts}\n".encode()

    assert files(c, "group_store_revenue@master") == {
        "/0.txt": revenue("This return store does not exist", 0.0, 50.0),
        "/1.txt": revenue("Store: 1 - washington st.", 450.0, 100.0),
        "/2.txt": revenue("Store: 2 - hollywood bvd.", 75.0, 0.0),
        "/3.txt": revenue("Store: 3 - beverly hills", 300.0, 0.0),
        "/4.txt": revenue("Store: 4 - mariposa st.", 0.0, 0.0),
        "/5.txt": revenue("Store: 5 - tremont st.", 450.0, 350.0),
    }


@pytest.mark.every_shape
def test_the_inner_join_runs_in_every_shape(client: Client, examples_image: Image) -> None:
    """The joins example's inner join and its reduce, on both backend pairs and over HTTP."""
    for repo, content in (("stores", STORES), ("purchases", PURCHASES)):
        client.create_repo(repo)
        put_all(client, repo, encoded(content))
    for name in RETAIL_PIPELINES[:2]:
        client.create_pipeline(spec(name, examples_image if RUNS[name].image else None))
    all_succeeded(client, ["inner_join", "reduce_inner"])
    (job,) = client.list_job("inner_join")
    assert job.context["image_digest"] == examples_image.digest
    purchase = {p: f"\nPurchase at store: {store_of(p)} - {STORE[store_of(p)][0]} \n{t}"
                for p, t in PURCHASES.items()}  # fmt: skip
    assert client.get_file("reduce_inner@master:/90210.txt").decode() == (
        purchase["/ORDERW080231_STOREID5.txt"] + purchase["/ORDERW080528_STOREID5.txt"]
        + purchase["/ORDERW598471_STOREID3.txt"]  # the files of /90210/ in name order
    )  # fmt: skip


# ---- word count ----------------------------------------------------------------------------

# What examples/word_count's scraper writes for the URLs of data/Wikipedia (then data/Github):
# a directory per URL file, a page per URL. Small pages by hand: scraping needs the network.
PAGES = {
    "/Wikipedia/Main_Page.html": (
        "<html><head><title>Wikipedia, the free encyclopedia</title></head>\n<body>\n"
        "<p>Welcome to Wikipedia, the free encyclopedia that anyone can edit.</p>\n"
        "<p>Text is available under the Creative Commons license; license terms, license "
        "details, license FAQ and license history apply.</p>\n</body></html>\n"
    ),
    "/Wikipedia/Pachyderm.html": (
        "<html><head><title>Pachyderm - Wikipedia</title></head>\n<body>\n"
        "<p>Pachyderm is a name for large mammals: elephants, rhinoceroses and hippos.</p>\n"
        "<p>license, license, license, license and license (5).</p>\n</body></html>\n"
    ),
}
GITHUB_PAGE = {
    "/Github/pachyderm.html": (
        "<html><body><h1>pachyderm/pachyderm</h1>\n<p>Data-centric pipelines and data "
        "versioning. Apache-2.0 license.</p></body></html>\n"
    )
}


def word_counts(pages: dict[str, str]) -> dict[str, bytes]:
    """What map then reduce make of ``pages``: each word (a run of letters, lowercased) and
    its count over every page. ``reduce``'s ``find /tmp/out/`` also lists ``/tmp/out/``
    itself, which leaves an empty sum in ``/out`` (none of these pages has the word "out")."""
    n = Counter(w for page in pages.values() for w in re.findall("[a-z]+", page.lower()))
    assert "out" not in n
    return {f"/{w}": f"{c}\n".encode() for w, c in n.items()} | {"/out": b"\n"}


@pytest.fixture(scope="session")
@in_podman
def word_count(
    stores: dict[str, Store], tmp_path_factory: pytest.TempPathFactory, examples_image: Image
) -> Store:
    """examples/word_count's `make wordcount` with the scraper's output put by hand, then its
    README's step 4 (a page from data/Github)."""
    work = tmp_path_factory.mktemp("word-count")
    client = haathi.connect(str(work / "store"))
    client.create_repo("scraper")
    put_all(client, "scraper", encoded(PAGES))
    ran: dict[str, Image | None] = {}
    for name, image in (
        ("word_count/pipelines/map.pipeline.json", examples_image),
        ("word_count/pipelines/reduce.pipeline.json", None),
    ):
        client.create_pipeline(spec(name, image))
        ran[name] = image
    first = files(client, "reduce@master")
    put_all(client, "scraper", encoded(GITHUB_PAGE))
    stores["word_count"] = Store(client, ran, {"first reduce": first})
    return stores["word_count"]


def test_word_count_counts_each_word_of_every_page(word_count: Store) -> None:
    c = word_count.client
    all_succeeded(c, ["map", "reduce"])
    first, second = c.list_job("map")[::-1]
    assert (first.data_total, first.data_processed) == (2, 2)  # a datum per page (glob /*/*)
    assert (second.data_total, second.data_processed, second.data_skipped) == (3, 1, 2)
    assert word_count.data["first reduce"] == word_counts(PAGES)
    assert word_count.data["first reduce"]["/license"] == b"10\n"  # 5 + 5, as in its README
    assert files(c, "reduce@master") == word_counts(PAGES | GITHUB_PAGE)
    assert c.get_file("reduce@master:/license") == b"11\n"
    # map writes each page's counts under its datum's ID
    by_datum = {d.inputs[0]["path"]: d.id for d in c.list_datum(f"map@{second.id}")}
    page = "/Github/pachyderm.html"
    words = Counter(re.findall("[a-z]+", GITHUB_PAGE[page].lower()))
    assert {
        p.rsplit("/", 1)[1]: data for p, data in files(c, "map@master").items()
        if p.startswith(f"/{by_datum[page]}/")
    } == {w: f"{n}\n".encode() for w, n in words.items()}  # fmt: skip


# ---- shuffle -------------------------------------------------------------------------------

FRUITS = {"/mango.jpeg": b"\xff\xd8\xff\xe0 a mango", "/apple.jpeg": b"\xff\xd8\xff\xe0 an apple"}
PRICING = {
    "/mango.json": b'{\n  "price_usd": 10\n}\n',
    "/apple.json": b'{\n  "price_usd": 100\n}\n',
}


@pytest.fixture(scope="session")
@in_podman
def shuffle(
    stores: dict[str, Store], tmp_path_factory: pytest.TempPathFactory, examples_image: Image
) -> Store:
    """examples/shuffle's README: a file per ``put file``, then the pipeline."""
    work = tmp_path_factory.mktemp("shuffle")
    client = haathi.connect(str(work / "store"))
    for repo, content in (("fruits", FRUITS), ("pricing", PRICING)):
        client.create_repo(repo)
        for path, data in content.items():
            client.put_file(f"{repo}@master:{path}", data)
    name = "shuffle/shuffle.pipeline.json"
    client.create_pipeline(spec(name, examples_image))
    stores["shuffle"] = Store(client, {name: examples_image})
    return stores["shuffle"]


def test_shuffle_links_each_fruits_files_into_its_directory(shuffle: Store) -> None:
    """The user code sees empty files (``empty_files``) and links them into ``/pfs/out``; the
    output holds the inputs' content, as its README shows (img.jpeg 5 KiB)."""
    c = shuffle.client
    all_succeeded(c, ["shuffle"])
    (job,) = c.list_job("shuffle")
    assert (job.data_total, job.data_processed) == (4, 4)  # a union: a datum per file
    assert files(c, "shuffle@master") == {
        f"/{fruit}/{kind}": content[f"/{fruit}.{ext}"]
        for fruit in ("apple", "mango")
        for kind, ext, content in (("img.jpeg", "jpeg", FRUITS), ("cost.json", "json", PRICING))
    }


# ---- OpenCV: edges and montage, in two projects ----------------------------------------------


OPENCV = [
    "opencv/edges-union.pipeline.json",
    "opencv/edges.pipeline.json",
    "opencv/montage.pipeline.json",
]


@pytest.fixture(scope="session")
@in_podman
def opencv(
    stores: dict[str, Store],
    tmp_path_factory: pytest.TempPathFactory,
    opencv_image: Image,
    imagemagick_image: Image,
) -> Store:
    """examples/opencv's `make opencv-union`, through the CLI: ``images`` in the default and
    the staging project, the union edges in default, edges in staging, a montage in each.
    Local pictures stand for its images.txt and images2.txt (URLs)."""
    work = tmp_path_factory.mktemp("opencv")
    cli = Cli(work / "store", work)
    images = {"opencv": opencv_image, "imagemagick": imagemagick_image}
    ran = {n: images[str(RUNS[n].image)] for n in OPENCV}
    union, edges, montage = (spec_file(n, image, work) for n, image in ran.items())
    (work / "square.png").write_bytes(SQUARE.png())
    (work / "two").mkdir()
    for shape in (TALL, WIDE):
        (work / "two" / f"{shape.name}.png").write_bytes(shape.png())
    for command in (
        "create project staging",
        "create repo images",
        "create repo images --project staging",
        f"create pipeline -f {union}",
        f"create pipeline -f {edges} --project staging",
        f"create pipeline -f {montage}",
        f"create pipeline -f {montage} --project staging",
        "put file images@master:/square.png -f square.png",  # images.txt: a picture
        "put file -r images@master:/ -f two --project staging",  # images2.txt: two, one commit
    ):
        cli(*command.split())
    client = haathi.connect(str(work / "store"))
    made_as = [("edges",), ("staging/edges",), ("montage", "staging/montage")]
    keys = dict(zip(OPENCV, made_as, strict=True))
    stores["opencv"] = Store(client, ran, keys=keys)
    return stores["opencv"]


def test_the_union_finds_the_edges_of_both_projects_images(opencv: Store) -> None:
    c = opencv.client
    all_succeeded(c, ["edges", "montage", "staging/edges", "staging/montage"])
    edges = files(c, "edges@master")  # default: the union of images and staging/images
    assert sorted(edges) == ["/square.png", "/tall.png", "/wide.png"]
    for shape in (SQUARE, TALL, WIDE):
        assert_edges_of(shape, edges[f"/{shape.name}.png"])
    assert files(c, "staging/edges@master") == {p: edges[p] for p in ("/tall.png", "/wide.png")}
    jobs = [(j.data_total, j.data_processed, j.data_skipped) for j in c.list_job("edges")]
    assert jobs[:2] == [(3, 2, 1), (1, 1, 0)]  # newest first: staging's two, default's one


def test_each_projects_montage_shows_its_pictures_and_their_edges(opencv: Store) -> None:
    """montage.pipeline.json: ``find -L /pfs/images /pfs/edges -type f | sort``, so the edges
    come first; the default montage crosses default's images with the union's edges."""
    c = opencv.client
    for project, edges, pictures in (
        ("", (SQUARE, TALL, WIDE), (SQUARE,)),
        ("staging/", (TALL, WIDE), (TALL, WIDE)),
    ):
        tiles = [png.read(c.get_file(f"{project}edges@master:/{s.name}.png")) for s in edges]
        tiles += [png.read(s.png()) for s in pictures]
        assert_montage_of(tiles, c.get_file(f"{project}montage@master:/montage.png"))


# ---- globalID: one ID for a commit and every job and commit it caused ------------------------


@pytest.fixture(scope="session")
@in_podman
def global_id(
    stores: dict[str, Store],
    tmp_path_factory: pytest.TempPathFactory,
    opencv_image: Image,
    imagemagick_image: Image,
) -> Store:
    """examples/globalID's `make init globalid`, its images.txt and images2.txt (URLs) stood
    for by local pictures: one, then two more in a second commit."""
    work = tmp_path_factory.mktemp("global-id")
    client = haathi.connect(str(work / "store"))
    client.create_repo("images")
    ran: dict[str, Image | None] = {}
    for name, image in (
        ("globalID/pipelines/edges.pipeline.json", opencv_image),
        ("globalID/pipelines/montage.pipeline.json", imagemagick_image),
    ):
        client.create_pipeline(spec(name, image))
        ran[name] = image
    first = put_all(client, "images", {"/square.png": SQUARE.png()})
    second = put_all(client, "images", {"/tall.png": TALL.png(), "/wide.png": WIDE.png()})
    stores["global_id"] = Store(client, ran, {"commits": [first, second]})
    return stores["global_id"]


def test_a_put_file_and_the_jobs_it_caused_share_one_id(global_id: Store) -> None:
    c = global_id.client
    all_succeeded(c, ["edges", "montage"])
    for commit in global_id.data["commits"]:
        assert {ci.repo for ci in c.list_commit(commit)} == {"images", "edges", "montage"}
        for pipeline in ("edges", "montage"):
            assert c.inspect_job(f"{pipeline}@{commit}").state == JobState.SUCCESS
    second = c.inspect_job(f"edges@{global_id.data['commits'][1]}")
    assert (second.data_total, second.data_processed, second.data_skipped) == (3, 2, 1)


def test_the_global_id_montage_shows_every_file_under_pfs(global_id: Store) -> None:
    """Its montage takes ``find /pfs -type f | sort``: every input file (/pfs/edges/*, then
    /pfs/images/*), and nothing else."""
    c = global_id.client
    shapes = (SQUARE, TALL, WIDE)
    tiles = [png.read(c.get_file(f"edges@master:/{s.name}.png")) for s in shapes]
    tiles += [png.read(s.png()) for s in shapes]
    assert_montage_of(tiles, c.get_file("montage@master:/montage.png"))


# ---- iris: train, then infer ---------------------------------------------------------------

IRIS = EXAMPLES / "ml" / "iris" / "data"


@pytest.fixture(scope="session")
@in_podman
def iris(
    stores: dict[str, Store], tmp_path_factory: pytest.TempPathFactory, iris_image: Image
) -> Store:
    """examples/ml/iris's README with the Python pipelines: iris.csv into ``training``, the
    training pipeline, data/test/*.csv into ``attributes``, the inference pipeline."""
    work = tmp_path_factory.mktemp("iris")
    client = haathi.connect(str(work / "store"))
    client.create_repo("training")
    client.create_repo("attributes")
    client.put_file("training@master:/iris.csv", IRIS / "iris.csv")
    ran: dict[str, Image | None] = {"ml/iris/python_train.pipeline.json": iris_image}
    client.create_pipeline(spec("ml/iris/python_train.pipeline.json", iris_image))
    put_all(client, "attributes", {f"/{n}.csv": (IRIS / "test" / f"{n}.csv").read_bytes()
                                   for n in (1, 2)})  # fmt: skip
    ran["ml/iris/python_infer.pipeline.json"] = iris_image
    client.create_pipeline(spec("ml/iris/python_infer.pipeline.json", iris_image))
    stores["iris"] = Store(client, ran)
    return stores["iris"]


def test_iris_infers_the_species_its_readme_shows(iris: Store) -> None:
    c = iris.client
    all_succeeded(c, ["model", "inference"])
    model = files(c, "model@master")
    assert sorted(model) == ["/model.pkl", "/model.txt"]
    assert model["/model.txt"] == b"SVC(kernel='linear')"
    (job,) = c.list_job("inference")
    assert (job.data_total, job.data_processed) == (2, 2)  # a datum per attributes file
    assert files(c, "inference@master") == {  # its README's "7. Examine the results"
        "/1": b"Iris-virginica\n",
        "/2": b"Iris-versicolor\nIris-virginica\nIris-virginica\nIris-virginica\n"
        b"Iris-setosa\nIris-setosa\n",
    }


# ---- hyperparameter tuning: split, model, test, select ---------------------------------------

HYPERPARAMETER = EXAMPLES / "ml" / "hyperparameter" / "data"
PIPELINES = ["split", "model", "test", "select"]


def split_lines(text: str, count: int) -> dict[str, bytes]:
    """The first ``count`` lines of ``text``, a file each, named as ``put file --split line
    --target-file-datums 1`` names them (haathi has no ``--split``: made here)."""
    lines = text.splitlines(keepends=True)[:count]
    return {f"{i:016d}": line.encode() for i, line in enumerate(lines)}


@pytest.fixture(scope="session")
@in_podman
def hyperparameter(
    stores: dict[str, Store], tmp_path_factory: pytest.TempPathFactory, hyperparameter_image: Image
) -> Store:
    """examples/ml/hyperparameter's README: noisy_iris.csv as raw_data's iris.csv, each C and
    gamma value a file of ``parameters`` (2 of its 11 C values and 1 of its 7 gammas: 2
    models, not 77), then the four pipelines."""
    work = tmp_path_factory.mktemp("hyperparameter")
    client = haathi.connect(str(work / "store"))
    client.create_repo("raw_data")
    client.create_repo("parameters")
    client.put_file("raw_data@master:/iris.csv", HYPERPARAMETER / "noisy_iris.csv")
    parameters = {}
    for name, count in (("c_parameters.txt", 2), ("gamma_parameters.txt", 1)):
        text = (HYPERPARAMETER / "parameters" / name).read_text()
        parameters |= {f"/{name}/{n}": v for n, v in split_lines(text, count).items()}
    put_all(client, "parameters", parameters)
    ran: dict[str, Image | None] = {}
    for pipeline in PIPELINES:
        name = f"ml/hyperparameter/{pipeline}.pipeline.json"
        image = hyperparameter_image if RUNS[name].image else None
        client.create_pipeline(spec(name, image))
        ran[name] = image
    stores["hyperparameter"] = Store(client, ran)
    return stores["hyperparameter"]


def test_hyperparameter_tuning_selects_the_best_models(hyperparameter: Store) -> None:
    c = hyperparameter.client
    all_succeeded(c, PIPELINES)
    raw = (HYPERPARAMETER / "noisy_iris.csv").read_text().splitlines()
    split = files(c, "split@master")
    train, test = (split[f"/{n}.csv"].decode().splitlines() for n in ("train", "test"))
    assert (len(train), len(test)) == (80, 20) and sorted(train + test) == sorted(raw)

    models = ["model_C0.031_G0.001", "model_C0.125_G0.001"]
    (job,) = c.list_job("model")
    assert (job.data_total, job.data_processed) == (2, 2)  # C values x gammas x raw data
    model = files(c, "model@master")
    assert sorted(model) == [f"/{m}.pkl" for m in models]
    metrics = {m: float(c.get_file(f"test@master:/{m}_metric.txt")) for m in models}
    assert sorted(files(c, "test@master")) == [f"/{m}_metric.txt" for m in models]
    assert all(0.5 <= score <= 1.0 for score in metrics.values()), metrics
    best = max(metrics.values())
    assert files(c, "select@master") == {  # its links to the best models, as their content
        f"/{m}.pkl": model[f"/{m}.pkl"] for m, score in metrics.items() if score == best
    }


# ---- transactions: two input commits started together, one job ---------------------------

TRANSACTIONS = EXAMPLES / "transactions"


def split_files(folder: Path, text: str, count: int) -> None:
    """The first ``count`` lines of ``text`` as ``split -l 1`` writes them into ``folder``:
    a file a line, named xaa, xab, ..."""
    folder.mkdir()
    for i, line in enumerate(text.splitlines(keepends=True)[:count]):
        (folder / f"xa{'abcdefghijklmnopqrstuvwxyz'[i]}").write_text(line)


def job_rows(cli: Cli, *args: str) -> list[tuple[str, str, str, int, int, int]]:
    """``list job ARGS -o json``, newest first: (pipeline, ID, state, datums processed,
    skipped, total): what pachctl's table shows."""
    return [
        (j["pipeline"], j["id"], j["state"], j["data_processed"], j["data_skipped"],
         j["data_total"])
        for j in cli("list", "job", *args, "-o", "json").json()
    ]  # fmt: skip


def started_transaction(cli: Cli) -> str:
    """``start transaction``; its ID (pachctl's message ends with it, quoted)."""
    return cli("start", "transaction").out.split()[-1].strip('"')


@pytest.fixture(scope="session")
@in_podman
def transactions(
    stores: dict[str, Store], tmp_path_factory: pytest.TempPathFactory, hyperparameter_image: Image
) -> Store:
    """examples/transactions/README.md through the CLI, ``pachctl`` replaced by ``haathi``:
    the repos, the parameter files split into a file per value (``split -l 1``) and put (1 of
    its 11 C values and 2 of its 7 gammas: 2 models, not 77), the pipeline, then one
    transaction starting a commit in both repos, iris.csv put into ``raw_data``, and the two
    commits finished. The README creates the pipeline first, before its input repos exist,
    which Pachyderm refuses too (its TestPipelineThatUseNonexistentInputs): here it comes
    after the puts, leaving the README's two jobs (the first over no raw data, then the
    transaction's)."""
    work = tmp_path_factory.mktemp("transactions")
    cli = Cli(work / "store", work)
    split_files(work / "c_parameters", (TRANSACTIONS / "c_parameters.txt").read_text(), 1)
    split_files(work / "gamma_parameters", (TRANSACTIONS / "gamma_parameters.txt").read_text(), 2)
    (work / "iris.csv").write_bytes((TRANSACTIONS / "iris.csv").read_bytes())
    name = "transactions/model.pipeline.json"
    model = spec_file(name, hyperparameter_image, work)
    said = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HAATHI_CONFIG_DIR", str(work / "config"))  # where the active one is kept
        for command in (
            "create repo raw_data",
            "create repo parameters",
            "put file -r parameters@master -f c_parameters",
            "put file -r parameters@master -f gamma_parameters",
            f"create pipeline -f {model}",
        ):
            cli(*command.split())
        txn = started_transaction(cli)
        said += [
            cli("start", "commit", f"{repo}@master").out for repo in ("raw_data", "parameters")
        ]
        said.append(cli("finish", "transaction").out)
        jobs = [job_rows(cli, "--pipeline", "model")]  # as its README lists them after each step
        for command in (
            "put file raw_data@master:iris.csv -f iris.csv",
            "finish commit raw_data@master",
            "finish commit parameters@master",
        ):
            cli(*command.split())
            jobs.append(job_rows(cli, "--pipeline", "model"))
    client = haathi.connect(str(work / "store"))
    stores["transactions"] = Store(
        client, {name: hyperparameter_image}, {"txn": txn, "said": said, "jobs": jobs}
    )
    return stores["transactions"]


def test_a_transaction_starts_both_inputs_commits_and_the_model_trains_once(
    transactions: Store,
) -> None:
    """Its README's step 4: the transaction's job waits (``starting`` there, CREATED here)
    until both of its commits are finished, then trains every model in one run; its output
    commit names both new commits, which share the transaction's ID."""
    c, txn = transactions.client, transactions.data["txn"]
    assert transactions.data["said"] == [
        f"Added to transaction: {txn}\n{txn}\n",  # start commit raw_data@master: its ID
        f"Added to transaction: {txn}\n{txn}\n",  # start commit parameters@master
        f"Completed transaction with 2 requests: {txn}\n",
    ]
    after_finish, after_put, after_raw_data, after_parameters = transactions.data["jobs"]
    (first,) = after_finish[1:]  # the pipeline's first job, over no raw data: no datum
    assert first[2:] == ("SUCCESS", 0, 0, 0)
    assert (
        after_finish == after_put == after_raw_data == [("model", txn, "CREATED", 0, 0, 0), first]
    )
    assert after_parameters == [("model", txn, "SUCCESS", 2, 0, 2), first]
    (job,) = c.list_job(job=txn)  # the one job of the pair
    assert sorted(job.inputs) == [f"parameters@{txn}", f"raw_data@{txn}"]
    assert c.get_file(f"raw_data@{txn}:/iris.csv") == (TRANSACTIONS / "iris.csv").read_bytes()

    models = files(c, "model@master")  # its README's "7. View the contents": the first two
    assert sorted(models) == ["/model_C0.031_G0.001.pkl", "/model_C0.031_G0.004.pkl"]
    for path, data in models.items():  # joblib's pickle of an SVC fitted with those parameters
        c_value, gamma = (float(v) for v in re.findall(r"_[CG]([\d.]+?)(?=_|\.pkl)", path))
        assert pickled_floats(data, "C", "gamma") == {"C": c_value, "gamma": gamma}, path
        assert b"sklearn.svm._classes" in data and b"SVC" in data


def pickled_floats(data: bytes, *keys: str) -> dict[str, float]:
    """The float each of ``keys`` has in a pickle's objects (a key's string, then its float, as
    an object's ``__dict__`` is pickled), read without unpickling it (no scikit-learn here):
    the opcodes up to the first STOP, before the arrays joblib writes after it."""
    found: dict[str, float] = {}
    last = None
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("MEMOIZE", "BINPUT", "LONG_BINPUT"):
            continue  # memo bookkeeping between a key and its value
        if last in keys and opcode.name == "BINFLOAT":
            found[last] = arg
        last = arg if isinstance(arg, str) else None
    return found


# ---- deferred processing plus transactions: output to ``dev``, master moved by hand ---------

# Local pictures stand for the example's (URLs in images.txt, images2.txt and its README's
# puts), named after them; its images3.txt is never put (setup.sh has that line commented out).
LIBERTY, KITTEN, ROBOT = (replace(s, name=n) for s, n in
                          ((SQUARE, "liberty"), (TALL, "kitten"), (WIDE, "robot")))  # fmt: skip
ADDED = Rectangle("1VqcWw9", 4, 4, 14, 14)  # its README's step 5
ADDED_LATER = Rectangle("2GI70mb", 15, 6, 27, 24)  # step 9
OTHER = Rectangle("9iIlokw", 6, 17, 25, 26)  # into images_dp_2, in the transaction's commit


@pytest.fixture(scope="session")
@in_podman
def deferred(
    stores: dict[str, Store],
    tmp_path_factory: pytest.TempPathFactory,
    opencv_image: Image,
    imagemagick_image: Image,
) -> Store:
    """examples/deferred-processing/deferred_processing_plus_transactions/README.md through the
    CLI, ``pachctl`` replaced by ``haathi``: setup.sh, then each step's command, the jobs
    listed after each (``list job -x``)."""
    work = tmp_path_factory.mktemp("deferred")
    cli = Cli(work / "store", work)
    images = {"opencv": opencv_image, "imagemagick": imagemagick_image}
    names = [f"{DEFERRED}/{p}.pipeline.json" for p in ("edges_dp", "montage_dp")]
    ran = {n: images[str(RUNS[n].image)] for n in names}
    edges, montage = (spec_file(n, image, work) for n, image in ran.items())
    for shape in (LIBERTY, KITTEN, ROBOT, ADDED, ADDED_LATER, OTHER):
        (work / f"{shape.name}.png").write_bytes(shape.png())
    (work / "images.txt").write_text("liberty.png\n")
    (work / "images2.txt").write_text("kitten.png\nrobot.png\n")
    jobs = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HAATHI_CONFIG_DIR", str(work / "config"))  # where the active one is kept
        for step, commands in (
            ("setup.sh", [
                "create repo images_dp_1",
                "create repo images_dp_2",
                f"create pipeline -f {edges}",
                f"create pipeline -f {montage}",
                "put file images_dp_1@master -i ./images.txt",
                "put file images_dp_1@master -i ./images2.txt",
            ]),
            ("5", ["put file images_dp_1@master:1VqcWw9.png -f 1VqcWw9.png"]),
            ("7", ["create branch edges_dp@master --head dev"]),
            ("9", ["put file images_dp_1@master:2GI70mb.png -f 2GI70mb.png"]),
            ("10", ["create branch edges_dp@master --head dev"]),
        ):  # fmt: skip
            for command in commands:
                cli(*command.split())
            jobs[step] = job_rows(cli)
        txn = started_transaction(cli)  # "3. Set Up Transactions"
        said = [cli(*command.split()).out for command in (
            "start commit images_dp_2@master",
            "create branch edges_dp@master --head dev",
            "finish transaction",
        )]  # fmt: skip
        cli("put", "file", "images_dp_2@master:9iIlokw.png", "-f", "9iIlokw.png")
        jobs["put in the transaction's commit"] = job_rows(cli)
        cli("finish", "commit", "images_dp_2@master")
        jobs["finish commit"] = job_rows(cli)
    client = haathi.connect(str(work / "store"))
    stores["deferred"] = Store(client, ran, {"jobs": jobs, "txn": txn, "said": said})
    return stores["deferred"]


def added(jobs: dict[str, list[Any]], step: str) -> list[Any]:
    """The jobs ``step`` started, newest first: the rows listed after it and not before."""
    steps = list(jobs)
    before = jobs[steps[steps.index(step) - 1]]
    assert jobs[step][len(jobs[step]) - len(before) :] == before
    return jobs[step][: len(jobs[step]) - len(before)]


def test_montage_runs_only_when_edges_master_is_moved_to_dev(deferred: Store) -> None:
    """Its README's part 2: edges_dp writes to its ``dev`` branch, so a put into
    ``images_dp_1`` runs edges_dp alone (one datum, the others skipped); montage_dp reads
    ``edges_dp@master`` and runs when that is moved to dev's head, with that job's ID (no datum
    yet: ``images_dp_2`` is empty, and the cross of it with the edges has none). The jobs are its
    README's listings', in their order. (Pachyderm also gives edges_dp's master an empty commit
    when montage_dp is created; a haathi branch has no head until one is set.)"""
    jobs = deferred.data["jobs"]
    assert [row[:1] + row[2:] for row in jobs["setup.sh"]] == [  # step 4's listing
        ("edges_dp", "SUCCESS", 2, 1, 3),
        ("edges_dp", "SUCCESS", 1, 0, 1),
        ("montage_dp", "SUCCESS", 0, 0, 0),
        ("edges_dp", "SUCCESS", 0, 0, 0),
    ]
    ((pipeline, put_5, *counts_5),) = added(jobs, "5")  # "only one job was triggered"
    assert (pipeline, counts_5) == ("edges_dp", ["SUCCESS", 1, 3, 4])
    assert added(jobs, "7") == [("montage_dp", put_5, "SUCCESS", 0, 0, 0)]
    ((pipeline, put_9, *counts_9),) = added(jobs, "9")
    assert (pipeline, counts_9) == ("edges_dp", ["SUCCESS", 1, 4, 5])
    assert added(jobs, "10") == [("montage_dp", put_9, "SUCCESS", 0, 0, 0)]

    c = deferred.client
    assert [b.name for b in c.list_branch("edges_dp")] == ["dev", "master"]
    assert c.inspect_branch("edges_dp@master").head == c.inspect_branch("edges_dp@dev").head
    edges = files(c, "edges_dp@dev")
    shapes = (LIBERTY, KITTEN, ROBOT, ADDED, ADDED_LATER)
    assert sorted(edges) == sorted(f"/{s.name}.png" for s in shapes)
    for shape in shapes:
        assert_edges_of(shape, edges[f"/{shape.name}.png"])


def test_a_transaction_moves_edges_master_with_a_new_commit_in_one_montage_job(
    deferred: Store,
) -> None:
    """Its README's part 3: a commit started in ``images_dp_2`` and edges_dp's master moved in
    one transaction make ONE montage_dp job ("without triggering two jobs (one for the new
    commit, and one for moving edges_dp@master)"), which waits (``starting`` there, CREATED
    here) until the commit is finished, then shows every edges picture and the new picture."""
    jobs, txn = deferred.data["jobs"], deferred.data["txn"]
    assert deferred.data["said"] == [
        f"Added to transaction: {txn}\n{txn}\n",
        f"Added to transaction: {txn}\n",
        f"Completed transaction with 2 requests: {txn}\n",
    ]
    assert added(jobs, "put in the transaction's commit") == [
        ("montage_dp", txn, "CREATED", 0, 0, 0)
    ]
    assert jobs["finish commit"] == [
        ("montage_dp", txn, "SUCCESS", 1, 0, 1),
        *jobs["put in the transaction's commit"][1:],
    ]
    c = deferred.client
    (job,) = c.list_job(job=txn)
    dev = c.inspect_branch("edges_dp@dev").head
    assert sorted(job.inputs) == [f"edges_dp@{dev}", f"images_dp_2@{txn}"]
    assert [f.path for f in c.list_file("montage_dp@master:/")] == ["/montage.png"]
    # ``find /pfs -type f | sort``: /pfs/edges_dp/* (in name order), then /pfs/images_dp_2/*
    edges = sorted(files(c, "edges_dp@master").items())
    tiles = [png.read(data) for _, data in edges] + [png.read(OTHER.png())]
    assert_montage_of(tiles, c.get_file("montage_dp@master:/montage.png"))


# ---- every RUNS example ran from its file ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(RUNS))
def test_each_example_ran_from_its_spec_file_but_for_the_image(
    request: pytest.FixtureRequest, name: str
) -> None:
    """Each RUNS file was created unchanged but for its image (in every project the example
    creates it in); its jobs all succeeded, in the local image named, or, for a spec without
    one, in the host sandbox."""
    store: Store = request.getfixturevalue(RUNS[name].store)
    c = store.client
    image = store.specs[name]
    (doc,) = load_documents((EXAMPLES / name).read_text(), name)
    pipeline = doc["pipeline"]["name"]
    keys = store.keys.get(name, (pipeline,))
    swapped = spec(name, image)
    for key in keys:
        project = key.split("/")[0] if "/" in key else DEFAULT_PROJECT
        (validated,) = c.validate_pipeline(in_project(swapped, project))  # as --project does
        assert c.inspect_pipeline(key).spec == validated["spec"]
        for job in c.list_job(key):
            assert job.state == JobState.SUCCESS
            assert job.context.get("image_digest") == (image.digest if image else None)
