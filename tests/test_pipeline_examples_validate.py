"""Pachyderm's own example specs (``tests/data/pachyderm_examples``: the 55 spec files of its
``examples/``, unchanged) through ``haathi validate pipeline``, as a Pachyderm user runs it.

Each file is either accepted (every pipeline it holds is valid) or refused with the one-line
error recorded below (since issue 18 built the last fields it lacked, only an envsubst template
that Pachyderm's server refuses too). Validation is pachctl's: on the client, so it opens and
creates no store (and needs no server), and what only ``create pipeline`` refuses (an input
without a glob) is a note. A spec that asks for a GPU is accepted with a note; its job fails,
saying it needs one, rather than running without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from haathi.client import Client
from haathi.models.info import JobState
from haathi.pps.spec import load_documents
from tests.conftest import Cli, Result

EXAMPLES = Path(__file__).parent / "data" / "pachyderm_examples"

# file -> the pipelines it holds: accepted, each one valid
ACCEPTED: dict[str, tuple[str, ...]] = {
    "churn/churn.pipeline.json": ("churn",),  # egress (to Snowflake: a note), memory "256MB"
    "db/query.pipeline.json": ("query",),  # transform.secrets (mountPath)
    "deferred-processing/automated_deferred_processing/branch-mover.pipeline.json": (
        "branch-mover",  # transform.secrets (envVar)
    ),
    "redshift/pipeline.pipeline.json": ("upload_to_redshift",),  # transform.secrets, no glob
    "deferred-processing/automated_deferred_processing/branch-mover-no-auth.pipeline.json": (
        "branch-mover",
    ),
    "deferred-processing/deferred_processing_plus_transactions/edges_dp.pipeline.json": (
        "edges_dp",
    ),
    "deferred-processing/deferred_processing_plus_transactions/montage_dp.pipeline.json": (
        "montage_dp",
    ),
    "gatk/joint-call.pipeline.json": ("joint_call",),
    "gatk/likelihoods.pipeline.json": ("likelihoods",),
    "globalID/pipelines/edges.pipeline.json": ("edges",),
    "globalID/pipelines/montage.pipeline.json": ("montage",),
    "group/pipelines/lab/lab_group_by_hospital.pipeline.json": ("group_by_hospital",),
    "group/pipelines/lab/lab_group_by_patient.pipeline.json": ("group_by_patient",),
    "group/pipelines/lab/reduce_group_by_hospital.pipeline.json": ("reduce_group_by_hospital",),
    "group/pipelines/lab/reduce_group_by_patient.pipeline.json": ("reduce_group_by_patient",),
    "group/pipelines/retail/retail_group.pipeline.json": ("group_store_revenue",),
    "joins/pipelines/inner/inner_join.pipeline.json": ("inner_join",),
    "joins/pipelines/inner/reduce_inner.pipeline.json": ("reduce_inner",),
    "joins/pipelines/outer/outer_join.pipeline.json": ("outer_join",),
    "joins/pipelines/outer/reduce_outer.pipeline.json": ("reduce_outer",),
    # s3 input and s3_out: its user code reads and writes through the job's S3 gateway
    "kubeflow/mnist/pipeline.yaml": ("mnist",),
    "kubeflow/mnist/standalone_pipeline.yaml": ("trigger-mnist",),
    "ml/gpt-2/generate.pipeline.json": ("generate",),  # autoscaling, a GPU, memory "10G"
    "ml/gpt-2/train.pipeline.json": ("train",),
    "ml/gpt-2/tweets.pipeline.json": ("tweets",),
    "ml/housing-prices/regression.pipeline.json": ("regression",),
    "ml/hyperparameter/model.pipeline.json": ("model",),
    "ml/hyperparameter/select.pipeline.json": ("select",),
    "ml/hyperparameter/split.pipeline.json": ("split",),
    "ml/hyperparameter/test.pipeline.json": ("test",),
    "ml/iris/julia_infer.pipeline.json": ("inference",),
    "ml/iris/julia_train.pipeline.json": ("model",),
    "ml/iris/python_infer.pipeline.json": ("inference",),
    "ml/iris/python_train.pipeline.json": ("model",),
    "ml/iris/rstats_infer.pipeline.json": ("inference",),
    "ml/iris/rstats_train.pipeline.json": ("model",),
    "ml/neon/infer.pipeline.json": ("inference",),
    "ml/neon/train.pipeline.json": ("model",),
    # two JSON documents separated by `---` (and a tab after a value, which Go's yaml allows)
    "ml/tensorflow/pre-processing_and_generation.pipeline.json": (
        "preprocess_images",
        "generate_images",
    ),
    "ml/tensorflow/training_and_export.pipeline.json": ("checkpoint", "model"),
    "ml/tensorflow/training_and_export_gpu.pipeline.json": ("checkpoint", "model"),
    "opencv/edges-union.pipeline.json": ("edges",),  # input.union[1].pfs.project (staging)
    "opencv/edges.pipeline.json": ("edges",),
    "opencv/montage.pipeline.json": ("montage",),
    "scraper/scraper.pipeline.json": ("scraper",),
    "shuffle/shuffle.pipeline.json": ("shuffle",),
    "spark/pi/estimate_pi.pipeline.json": ("estimate_pi",),
    "spouts/go-rabbitmq-spout/pipelines/spout.pipeline.json": ("rabbitmq-spout",),  # secrets
    "spouts/spout101/pipelines/processor.pipeline.json": ("processor",),
    "spouts/spout101/pipelines/spout.pipeline.json": ("spout",),
    "transactions/model.pipeline.json": ("model",),
    "word_count/pipelines/map.pipeline.json": ("map",),
    "word_count/pipelines/reduce.pipeline.json": ("reduce",),
    "word_count/pipelines/scraper.pipeline.json": ("scraper",),
}

GPU_NOTE = (
    "resourceLimits.gpu: haathi gives jobs no GPU, so this pipeline's jobs will fail (needs a GPU)"
)
S3_OUT_NOTE = (
    "s3_out: no datum is ever skipped: each job runs them all, as with reprocess_spec every_job "
    "(Pachyderm's rule)"
)
SNOWFLAKE_NOTE = (
    "egress: snowflake is not supported here (only PostgreSQL): this pipeline's jobs will fail at "
    "egress"
)
# file -> the notes on its spec (beyond why its image cannot be found on this machine)
NOTES: dict[str, list[str]] = {
    "churn/churn.pipeline.json": [SNOWFLAKE_NOTE],
    "kubeflow/mnist/pipeline.yaml": [S3_OUT_NOTE],
    "kubeflow/mnist/standalone_pipeline.yaml": [S3_OUT_NOTE],
    "ml/gpt-2/generate.pipeline.json": [GPU_NOTE],
    "ml/gpt-2/train.pipeline.json": [GPU_NOTE],
    "ml/tensorflow/training_and_export_gpu.pipeline.json": [GPU_NOTE],  # the first document's
    "redshift/pipeline.pipeline.json": [
        "create pipeline refuses: input.pfs.glob is required (e.g. '/*')"
    ],
}

# file -> the error it gets now (and, in the comment, the session of issue 18 that lifts it)
REFUSED: dict[str, str] = {
    # an envsubst template, not a spec: Pachyderm's server refuses it too
    "run/config/pipeline.pipeline.json": (
        "pipeline.name '$PIPELINE_NAME' is invalid: use letters, digits, '_' and '-', starting "
        "with a letter or digit"
    ),
}

# what the sessions to come will support: stripped, a refused file shows what is left (none
# left: issue 18 built them all)
PLANNED: dict[str, tuple[str, ...]] = {}
# file -> the notes on it once the planned fields are stripped (then it is accepted)
AFTER_PLANNED: dict[str, list[str]] = {
    "churn/churn.pipeline.json": [SNOWFLAKE_NOTE],
    "db/query.pipeline.json": [],
    "deferred-processing/automated_deferred_processing/branch-mover.pipeline.json": [],
    "opencv/edges-union.pipeline.json": [],
    "redshift/pipeline.pipeline.json": [
        "create pipeline refuses: input.pfs.glob is required (e.g. '/*')"
    ],
    # a spout has no input
    "spouts/go-rabbitmq-spout/pipelines/spout.pipeline.json": [],
    "spouts/spout101/pipelines/spout.pipeline.json": [],
}
IMAGE_NOTE = "note: its jobs will fail until this is fixed: "  # depends on this machine


def example_files() -> list[str]:
    specs = [p for p in EXAMPLES.rglob("*.*") if p.suffix in (".json", ".yaml")]
    return sorted(str(p.relative_to(EXAMPLES)) for p in specs)


@pytest.fixture
def nowhere(tmp_path: Path) -> Cli:
    """The CLI on an address where no store exists (the variable a Pachyderm user has set)."""
    return Cli(tmp_path / "no-store", tmp_path)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No registry is asked about the examples' images (a note says each is not here)."""
    monkeypatch.setenv("HAATHI_IMAGE_PULL_POLICY", "Never")


def spec_notes(res: Result) -> list[str]:
    """The notes on stderr, less those on this machine's images and runtimes."""
    lines = res.err.splitlines()
    assert all(line.startswith("note: ") for line in lines), res.err
    return [line.removeprefix("note: ") for line in lines if not line.startswith(IMAGE_NOTE)]


def test_the_tables_name_every_example_once() -> None:
    """A session that builds a planned field moves the files it unblocks from REFUSED to
    ACCEPTED; AFTER_PLANNED keeps them (stripping a supported field changes nothing)."""
    assert len(example_files()) == 55
    assert sorted([*ACCEPTED, *REFUSED]) == example_files()
    assert set(NOTES) <= set(ACCEPTED)
    assert set(REFUSED) - {"run/config/pipeline.pipeline.json"} <= set(AFTER_PLANNED)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_an_accepted_example_is_valid(nowhere: Cli, name: str) -> None:
    res = nowhere("validate", "pipeline", "-f", str(EXAMPLES / name))
    assert res.out.splitlines() == [f"pipeline {p}: valid" for p in ACCEPTED[name]]
    assert spec_notes(res) == NOTES.get(name, [])
    assert not nowhere.store.exists()  # validate opened no store, so created none


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refused_example_gets_its_one_line_error(nowhere: Cli, name: str) -> None:
    res = nowhere.fails("validate", "pipeline", "-f", str(EXAMPLES / name))
    assert (res.code, res.err, res.out) == (2, f"error: {REFUSED[name]}\n", "")
    assert not nowhere.store.exists()


def strip_planned(doc: Any, path: tuple[str, ...] = ()) -> Any:
    """``doc`` without the fields of :data:`PLANNED` (each where it is planned)."""
    if isinstance(doc, list):
        return [strip_planned(item, (*path, "*")) for item in doc]
    if not isinstance(doc, dict):
        return doc
    return {
        key: strip_planned(value, (*path, key))
        for key, value in doc.items()
        if PLANNED.get(_snake(key)) != path
    }


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


@pytest.mark.parametrize("name", sorted(AFTER_PLANNED))
def test_a_refused_example_lacks_only_the_planned_fields(
    nowhere: Cli, tmp_path: Path, name: str
) -> None:
    docs = [strip_planned(d) for d in load_documents((EXAMPLES / name).read_text(), name)]
    stripped = tmp_path / "stripped.json"
    stripped.write_text("\n".join(json.dumps(d) for d in docs))
    res = nowhere("validate", "pipeline", "-f", str(stripped))
    assert res.out == "".join(f"pipeline {d['pipeline']['name']}: valid\n" for d in docs)
    assert spec_notes(res) == AFTER_PLANNED[name]


# ---- pachctl's validate: on the client ------------------------------------------------------


NO_GLOB = {
    "pipeline": {"name": "upload"},
    "transform": {"cmd": ["sh", "-c", "cat /pfs/data/* > /pfs/out/all"]},
    "input": {"pfs": {"repo": "data"}},
}


def test_validate_needs_no_store_nor_server(nowhere: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(NO_GLOB))
    res = nowhere("validate", "pipeline", "-f", str(spec), "-o", "json")
    assert res.json()[0]["notes"] == [
        "create pipeline refuses: input.pfs.glob is required (e.g. '/*')"
    ]
    assert not nowhere.store.exists()
    unreachable = Cli("http://127.0.0.1:9", tmp_path)  # type: ignore[arg-type]  # no server
    assert unreachable("validate", "pipeline", "-f", str(spec)).out == "pipeline upload: valid\n"
    template = "run/config/pipeline.pipeline.json"
    bad = unreachable.fails("validate", "pipeline", "-f", str(EXAMPLES / template))
    assert bad.err == f"error: {REFUSED[template]}\n"


def test_create_refuses_an_input_without_a_glob(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(NO_GLOB))
    cli("create", "repo", "data")
    res = cli.fails("create", "pipeline", "-f", str(spec))
    assert (res.code, res.err) == (2, "error: input.pfs.glob is required (e.g. '/*')\n")
    assert cli("list", "pipeline", "-o", "json").json() == []
    assert [r["name"] for r in cli("list", "repo", "-o", "json").json()] == ["data"]


# ---- a GPU is asked for: accepted, and the job fails saying so -------------------------------


@pytest.mark.every_shape
def test_a_job_that_needs_a_gpu_fails_saying_so(client: Client) -> None:
    """gpt-2's generate as it is (autoscaling, a GPU, 10G), its image swapped for the host
    sandbox: the job fails before any datum runs; it never runs without the GPU."""
    (doc,) = load_documents((EXAMPLES / "ml/gpt-2/generate.pipeline.json").read_text())
    doc["transform"] = {"cmd": ["sh", "-c", "echo ran > /pfs/out/ran"]}
    client.create_repo("train")
    client.put_file("train@master:/model", b"weights")
    (checked,) = client.validate_pipeline(doc)
    assert GPU_NOTE in checked["notes"]
    assert checked["spec"]["resource_limits"] == {
        "cpu": 1.0, "memory": "10000000000", "gpu": {"number": 1, "type": "nvidia.com/gpu"},
    }  # fmt: skip
    assert checked["spec"]["autoscaling"] is True
    client.create_pipeline(doc)
    (job,) = client.list_job("generate")
    assert job.state == JobState.FAILURE
    assert job.reason is not None and job.reason.startswith("job failed: needs a GPU: ")
    if not any(Path("/dev").glob("nvidia[0-9]*")) and not Path("/dev/kfd").exists():
        assert job.reason == (
            "job failed: needs a GPU: this machine has none (the spec asks for 1 nvidia.com/gpu)"
        )
    assert (job.data_processed, job.data_failed) == (0, 0)
    assert list(client.walk_file("generate@master:/")) == []
    assert client.inspect_pipeline("generate").spec["autoscaling"] is True
