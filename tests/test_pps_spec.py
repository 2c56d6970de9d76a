"""Pipeline specs: Pachyderm's own example specs parse, defaults apply, every bad spec is one
clear error naming the field, and the effective spec round-trips."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from haathi.errors import InvalidArgument
from haathi.models.schedule import format_duration, parse_cron, parse_duration
from haathi.pps.input_spec import (
    CronInput,
    CrossInput,
    GroupInput,
    JoinInput,
    PfsInput,
    UnionInput,
    input_to_dict,
    parse_input,
    validate_input,
    walk_inputs,
)
from haathi.pps.spec import PipelineSpec, load_documents, parse_spec
from haathi.pps.transform_spec import Transform

# Exactly as in the Pachyderm repository (examples/opencv, word_count, joins, group).
EDGES = """{
  "pipeline": {
    "name": "edges"
  },
  "description": "A pipeline that performs image edge detection by using the OpenCV library.",
  "input": {
    "pfs": {
      "glob": "/*",
      "repo": "images"
    }
  },
  "transform": {
    "cmd": ["python3", "/edges.py"],
    "image": "pachyderm/opencv:1.0"
  }
}
"""

MONTAGE = """{
  "pipeline": {
    "name": "montage"
  },
  "description": "A pipeline that combines images from the `images` and `edges` repositories into a montage.",
  "input": {
    "cross": [{
      "pfs": {
        "glob": "/",
        "repo": "images"
      }
    }, {
      "pfs": {
        "glob": "/",
        "repo": "edges"
      }
    }]
  },
  "transform": {
    "cmd": ["sh"],
    "image": "dpokidov/imagemagick:7.1.0-23",
    "stdin": [
      "montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"
    ]
  }
}
"""  # noqa: E501

REDUCE = """{
  "pipeline": {
    "name": "reduce"
  },
  "description": "A pipeline that aggregates the total counts for each word.",
  "transform": {
    "cmd": ["sh"],
    "stdin": [
      "mkdir /tmp/out",
      "set -x",
      "FILES=/pfs/map/*/*",
      "for f in $FILES",
      "do",
      "out=`basename $f`",
      "cat $f >> /tmp/out/${out}",
      "done",
      "find /tmp/out/ -name '*' | while read count; do cat $count | awk '{ sum+=$1} END {print sum}' >/tmp/count; mv /tmp/count /pfs/out/`basename $count`; echo `basename $count`; done"
    ]
  },
  "input": {
    "pfs": {
      "repo": "map",
      "glob": "/"
    }
  }
}
"""  # noqa: E501

INNER_JOIN = (
    '{"pipeline":{"name":"inner_join"},"input":{"join":[{"pfs":{"repo":"stores","branch":"master",'
    '"glob":"/STOREID(*).txt","joinOn":"$1"}},{"pfs":{"repo":"purchases","branch":"master",'
    '"glob":"/*_STOREID(*).txt","joinOn":"$1"}}]},"transform":{"cmd":["python","inner/main.py"],'
    '"image":"pachyderm/example-joins-inner-outer:2.1.0"}}'
)

GROUP_LAB = (
    '{"pipeline":{"name":"group_by_hospital"},"input":{"group":[{"pfs":{"repo":"labresults",'
    '"branch":"master","glob":"/*-CLIA(*).txt","groupBy":"$1"}}]},"transform":{"cmd":["bash"],'
    '"stdin":["mkdir -p /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/","cp /pfs/labresults/* '
    '/pfs/out/${PACH_DATUM_labresults_GROUP_BY}/"]}}'
)

EDGES_YAML = """\
pipeline:
  name: edges
description: A pipeline that performs image edge detection by using the OpenCV library.
input:
  pfs:
    glob: "/*"
    repo: images
transform:
  cmd: [python3, /edges.py]
  image: pachyderm/opencv:1.0
"""

GROUP_LAB_YAML = """\
pipeline:
  name: group_by_hospital
input:
  group:
    - pfs:
        repo: labresults
        branch: master
        glob: "/*-CLIA(*).txt"
        groupBy: "$1"
transform:
  cmd: [bash]
  stdin:
    - mkdir -p /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/
    - cp /pfs/labresults/* /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/
"""

EXAMPLES = [EDGES, MONTAGE, REDUCE, INNER_JOIN, GROUP_LAB]


def one(text: str) -> PipelineSpec:
    (doc,) = load_documents(text)
    return parse_spec(doc)


# --------------------------------------------------------------------------- examples


def test_edges() -> None:
    spec = one(EDGES)
    assert spec.name == "edges"
    assert spec.description.startswith("A pipeline that performs image edge detection")
    assert spec.input == PfsInput(name="images", repo="images", branch="master", glob="/*")
    assert spec.transform == Transform(cmd=("python3", "/edges.py"), image="pachyderm/opencv:1.0")
    assert spec.pfs_inputs() == [spec.input]


def test_montage_crosses_two_repos() -> None:
    spec = one(MONTAGE)
    assert spec.input == CrossInput(
        (
            PfsInput(name="images", repo="images", glob="/"),
            PfsInput(name="edges", repo="edges", glob="/"),
        )
    )
    assert spec.transform.cmd == ("sh",)
    assert spec.transform.stdin[0].startswith("montage -shadow")
    assert [i.name for i in spec.pfs_inputs()] == ["images", "edges"]


def test_word_count_reduce_has_no_image_and_no_notes() -> None:
    spec = one(REDUCE)
    assert spec.input == PfsInput(name="map", repo="map", glob="/")
    assert len(spec.transform.stdin) == 9 and spec.transform.image is None
    assert spec.notes == ()


def test_inner_join_camel_case_join_on() -> None:
    spec = one(INNER_JOIN)
    assert spec.input == JoinInput(
        (
            PfsInput(name="stores", repo="stores", glob="/STOREID(*).txt", join_on="$1"),
            PfsInput(name="purchases", repo="purchases", glob="/*_STOREID(*).txt", join_on="$1"),
        )
    )


def test_group_lab_camel_case_group_by() -> None:
    spec = one(GROUP_LAB)
    assert spec.input == GroupInput(
        (PfsInput(name="labresults", repo="labresults", glob="/*-CLIA(*).txt", group_by="$1"),)
    )
    assert spec.transform.cmd == ("bash",) and len(spec.transform.stdin) == 2


def test_yaml_equals_json() -> None:
    assert one(EDGES_YAML) == one(EDGES)
    assert one(GROUP_LAB_YAML) == one(GROUP_LAB)


def test_defaults() -> None:
    spec = one(REDUCE)
    assert (spec.parallelism, spec.datum_tries, spec.output_branch, spec.reprocess_spec) == (
        1,
        3,
        "master",
        "until_success",
    )
    assert spec.datum_timeout is None and spec.job_timeout is None and spec.salt is None
    assert spec.description == "A pipeline that aggregates the total counts for each word."


def test_image_user_and_resource_limits_are_parsed() -> None:
    spec = one(EDGES)
    assert spec.transform.image == "pachyderm/opencv:1.0" and spec.notes == ()
    doc = {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "r", "glob": "/*"}},
        "transform": {"image": "x:1", "cmd": ["sh"], "user": "worker"},
        "resource_limits": {"cpu": "500m", "memory": "64Mi"},
        "resource_requests": {"cpu": 2},
    }
    spec = parse_spec(doc)
    assert spec.transform.user == "worker"
    assert (spec.resources.cpu, spec.resources.memory) == (0.5, 64 << 20)  # limits win
    assert parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"gpu": {"number": -1}}, r"resource_limits\.gpu\.number must be >= 0, got -1"),
        ({"gpu": {"kind": "tpu"}}, "unsupported field 'resource_limits.gpu.kind'"),
        ({"memory": "lots"}, "must be a memory size"),
        ({"memory": "256XB"}, "must be a memory size"),
        ({"memory": "1e3"}, "must be a memory size"),
        ({"memory": "1k"}, "at least 4Mi"),
        ({"cpu": 0}, "number of CPUs above 0"),
        ({"cpu": "x"}, "number of CPUs above 0"),
        ({"cpus": 1}, "unsupported field 'resource_limits.cpus'"),
    ],
)
def test_bad_resource_limits_are_refused(limits: dict[str, object], message: str) -> None:
    doc = {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "r", "glob": "/*"}},
        "transform": {"image": "x:1", "cmd": ["sh"]},
        "resource_limits": limits,
    }
    with pytest.raises(InvalidArgument, match=message):
        parse_spec(doc)


def limited(**fields: Any) -> dict[str, Any]:
    """A spec in a container, with ``fields`` (``resource_limits`` and the like) added."""
    return {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "r", "glob": "/*"}},
        "transform": {"image": "x:1", "cmd": ["sh"]},
        **fields,
    }


@pytest.mark.parametrize(
    ("memory", "size"),
    [
        # Kubernetes' quantities
        ("64Mi", 64 << 20), ("1Gi", 1 << 30), ("1G", 10**9), ("4.0G", 4 * 10**9),
        ("5000k", 5_000_000), (5_000_000, 5_000_000), ("5000000", 5_000_000),
        # go-units' human sizes, as Pachyderm's examples write them (churn: "256MB")
        ("256MB", 256 * 10**6), ("256mb", 256 * 10**6), ("256 MB", 256 * 10**6),
        ("10g", 10**10), ("1.5GB", 15 * 10**8), ("512MiB", 512 << 20), ("1TB", 10**12),
    ],
)  # fmt: skip
def test_memory_sizes(memory: str | int, size: int) -> None:
    spec = parse_spec(limited(resource_limits={"memory": memory}))
    assert spec.resources.memory == size
    assert parse_spec(spec.to_dict()) == spec


def test_a_gpu_is_accepted_with_a_note_and_autoscaling_as_pachyderm_has_it() -> None:
    spec = parse_spec(
        limited(
            resourceLimits={"gpu": {"type": "nvidia.com/gpu", "number": 1}, "memory": "10G"},
            resourceRequests={"memory": "10G", "cpu": 1},
            autoscaling=True,
        )
    )
    assert (spec.resources.gpu, spec.resources.gpu_type, spec.autoscaling) == (
        1, "nvidia.com/gpu", True,
    )  # fmt: skip
    assert spec.notes == (
        "resourceLimits.gpu: haathi gives jobs no GPU, so this pipeline's jobs will fail "
        "(needs a GPU)",
    )
    assert spec.to_dict()["resource_limits"]["gpu"] == {"number": 1, "type": "nvidia.com/gpu"}
    assert parse_spec(spec.to_dict()).to_dict() == spec.to_dict()
    # a GPU asked for only as a request is needed too; none at all is no GPU
    requested = parse_spec(limited(resource_requests={"gpu": {"number": "2"}}))
    assert (requested.resources.gpu, requested.resources.gpu_type) == (2, None)
    assert parse_spec(limited(resource_limits={"gpu": {"number": 0}})).notes == ()
    assert parse_spec(limited(autoscaling=False)).to_dict().get("autoscaling") is None


def test_resource_requests_are_checked_beside_limits() -> None:
    doc = limited(resource_limits={"cpu": 1}, resource_requests={"memory": "lots"})
    with pytest.raises(InvalidArgument, match=r"^resource_requests\.memory must be a memory"):
        parse_spec(doc)


def test_an_input_without_a_glob_is_only_a_note_when_the_spec_is_checked() -> None:
    """pachctl's validate checks on the client; Pachyderm's server refuses no glob at create."""
    doc = limited(input={"cross": [{"pfs": {"repo": "a"}}, {"pfs": {"repo": "b", "glob": ""}}]})
    checked = parse_spec(doc, check_only=True)
    assert checked.notes == (
        "create pipeline refuses: input.cross[0].pfs.glob is required (e.g. '/*')",
        "create pipeline refuses: input.cross[1].pfs.glob is required (e.g. '/*')",
    )
    with pytest.raises(InvalidArgument, match=r"^input\.cross\[0\]\.pfs\.glob is required"):
        parse_spec(doc)
    bad = limited(input={"pfs": {"repo": "a", "glob": "/[*"}})
    with pytest.raises(InvalidArgument, match=r"^input\.pfs\.glob: "):
        parse_spec(bad, check_only=True)  # a glob given is checked as ever


@pytest.mark.parametrize("text", EXAMPLES, ids=["edges", "montage", "reduce", "join", "group"])
def test_round_trip(text: str) -> None:
    spec = one(text)
    again = parse_spec(spec.to_dict())
    assert again == spec
    assert json.loads(json.dumps(spec.to_dict())) == spec.to_dict()


# --------------------------------------------------------------------------- multi-document


def test_json_concatenated_objects_and_lists() -> None:
    names = [parse_spec(d).name for d in load_documents(EDGES + "\n" + MONTAGE, "x.json")]
    assert names == ["edges", "montage"]
    listed = "[" + EDGES + "," + REDUCE + "]"
    assert [parse_spec(d).name for d in load_documents(listed)] == ["edges", "reduce"]


def test_yaml_multi_document() -> None:
    text = "---\n" + EDGES_YAML + "---\n" + GROUP_LAB_YAML + "---\n"
    assert [parse_spec(d).name for d in load_documents(text)] == ["edges", "group_by_hospital"]


def test_json_documents_separated_as_yaml_documents() -> None:
    """pachctl reads specs as YAML, so JSON documents may be separated by ``---`` lines, and a
    tab may follow a value (Pachyderm's examples/ml/tensorflow do both)."""
    text = EDGES + "---\n" + MONTAGE.replace('"glob": "/",', '"glob": "/",\t')
    assert [parse_spec(d).name for d in load_documents(text)] == ["edges", "montage"]
    assert load_documents(text) == [json.loads(EDGES), json.loads(MONTAGE)]
    with pytest.raises(InvalidArgument, match=r"^x: invalid YAML at line \d+: "):
        load_documents(EDGES + "---\n" + '{"pipeline": ', "x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"pipeline": {"name": "a"},\n  "transform": {\n  "cmd": ["x"] "y"}}',
            r"^p\.json: invalid JSON at line 3: Expecting ',' delimiter",
        ),
        ("pipeline:\n  name: a\n bad: [", r"^p\.json: invalid YAML at line 3: "),
        ("   \n", r"^p\.json: no pipeline spec found"),
        ("---\n---\n", r"^p\.json: no pipeline spec found"),
        ("- 1\n- 2\n", r"^p\.json: document 1 is not an object"),
        ('"just a string"', r"^p\.json: invalid YAML|document 1 is not an object"),
    ],
)
def test_load_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        load_documents(text, "p.json")
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- snake and camel

FULL_SNAKE: dict[str, Any] = {
    "pipeline": {"name": "full", "project": {"name": "default"}},
    "description": "every supported field",
    "transform": {
        "cmd": ["sh"],
        "stdin": ["echo hi"],
        "env": {"B": "2", "A": "1"},
        "image": "ubuntu:20.04",
        "err_cmd": ["true"],
        "err_stdin": ["echo recovered"],
        "accept_return_code": [4, "5"],
        "working_dir": "/tmp",
    },
    "input": {
        "union": [
            {
                "cross": [
                    {"pfs": {"repo": "a", "glob": "/*", "lazy": True}},
                    {
                        "cron": {
                            "name": "tick",
                            "spec": "@every 10s",
                            "overwrite": True,
                            "start": "2024-01-01T00:00:00Z",
                        }
                    },
                ]
            },
            {
                "group": [
                    {
                        "join": [
                            {
                                "pfs": {
                                    "repo": "b",
                                    "branch": "dev",
                                    "glob": "/(*)",
                                    "join_on": "$1",
                                    "outer_join": True,
                                    "group_by": "$1",
                                    "empty_files": True,
                                }
                            },
                            {
                                "pfs": {
                                    "name": "c2",
                                    "repo": "c",
                                    "glob": "/(*)/",
                                    "join_on": "$1",
                                    "group_by": "x",
                                }
                            },
                        ]
                    }
                ]
            },
        ]
    },
    "parallelism_spec": {"constant": 4},
    "datum_tries": 5,
    "datum_timeout": "1m30s",
    "job_timeout": 3600,
    "output_branch": "dev",
    "reprocess_spec": "every_job",
    "salt": "abc",
}

FULL_CAMEL: dict[str, Any] = {
    "pipeline": {"name": "full", "project": {"name": "default"}},
    "description": "every supported field",
    "transform": {
        "cmd": ["sh"],
        "stdin": ["echo hi"],
        "env": {"A": "1", "B": "2"},
        "image": "ubuntu:20.04",
        "errCmd": ["true"],
        "errStdin": ["echo recovered"],
        "acceptReturnCode": ["4", 5],
        "workingDir": "/tmp",
    },
    "input": {
        "union": [
            {
                "cross": [
                    {"pfs": {"repo": "a", "glob": "/*", "lazy": True}},
                    {
                        "cron": {
                            "name": "tick",
                            "spec": "@every 10s",
                            "overwrite": True,
                            "start": "2024-01-01T00:00:00Z",
                        }
                    },
                ]
            },
            {
                "group": [
                    {
                        "join": [
                            {
                                "pfs": {
                                    "repo": "b",
                                    "branch": "dev",
                                    "glob": "/(*)",
                                    "joinOn": "$1",
                                    "outerJoin": True,
                                    "groupBy": "$1",
                                    "emptyFiles": True,
                                }
                            },
                            {
                                "pfs": {
                                    "name": "c2",
                                    "repo": "c",
                                    "glob": "/(*)/",
                                    "joinOn": "$1",
                                    "groupBy": "x",
                                }
                            },
                        ]
                    }
                ]
            },
        ]
    },
    "parallelismSpec": {"constant": "4"},
    "datumTries": "5",
    "datumTimeout": "90s",
    "jobTimeout": "1h",
    "outputBranch": "dev",
    "reprocessSpec": "every_job",
    "salt": "abc",
}


def test_snake_and_camel_give_the_same_spec() -> None:
    snake, camel = parse_spec(FULL_SNAKE), parse_spec(FULL_CAMEL)
    assert snake == camel
    assert snake.transform.env == (("A", "1"), ("B", "2"))
    assert snake.transform.accept_return_code == (4, 5)
    assert (snake.parallelism, snake.datum_tries, snake.datum_timeout, snake.job_timeout) == (
        4,
        5,
        90.0,
        3600.0,
    )
    assert (snake.output_branch, snake.reprocess_spec, snake.salt) == ("dev", "every_job", "abc")


def test_full_spec_leaves_and_cron_repo_default() -> None:
    spec = parse_spec(FULL_SNAKE)
    leaves = spec.pfs_inputs()
    assert leaves == list(walk_inputs(spec.input))
    assert [leaf.name for leaf in leaves] == ["a", "tick", "b", "c2"]
    assert leaves[1] == CronInput(
        name="tick",
        repo="full_tick",
        spec="@every 10s",
        overwrite=True,
        start="2024-01-01T00:00:00Z",
    )
    assert leaves[0] == PfsInput(name="a", repo="a", glob="/*", lazy=True)
    assert leaves[2] == PfsInput(
        name="b",
        repo="b",
        branch="dev",
        glob="/(*)",
        join_on="$1",
        outer_join=True,
        group_by="$1",
        empty_files=True,
    )


def test_full_spec_round_trip() -> None:
    spec = parse_spec(FULL_CAMEL)
    out = spec.to_dict()
    assert parse_spec(out) == spec
    assert out["datum_timeout"] == "90s" and out["job_timeout"] == "3600s"
    assert out["parallelism_spec"] == {"constant": 4}
    assert out["transform"]["accept_return_code"] == [4, 5]
    assert out["input"]["union"][0]["cross"][1] == {
        "cron": {
            "name": "tick",
            "repo": "full_tick",
            "spec": "@every 10s",
            "overwrite": True,
            "start": "2024-01-01T00:00:00Z",
        }
    }


def test_parallelism_zero_means_one_and_nulls_are_unset() -> None:
    doc = json.loads(REDUCE)
    doc.update(parallelism_spec={"constant": 0}, salt=None, description=None)
    spec = parse_spec(doc)
    assert spec.parallelism == 1 and spec.salt is None and spec.description == ""


def test_input_names_may_repeat_inside_a_union() -> None:
    doc = json.loads(REDUCE)
    doc["input"] = {
        "union": [
            {"pfs": {"repo": "a", "glob": "/*"}},
            {"pfs": {"repo": "b", "name": "a", "glob": "/*"}},
        ]
    }
    spec = parse_spec(doc)
    assert [i.name for i in spec.pfs_inputs()] == ["a", "a"]


def test_out_repo_with_a_name_is_fine() -> None:
    inp = parse_input({"pfs": {"repo": "out", "name": "previous", "glob": "/"}})
    assert inp == PfsInput(name="previous", repo="out", glob="/")


def test_parse_input_and_validate_input_without_a_pipeline() -> None:
    assert parse_input({"pfs": {"repo": "r", "glob": "/*"}}) == PfsInput("r", "r", glob="/*")
    assert input_to_dict(PfsInput("r", "r", glob="/*")) == {
        "pfs": {"name": "r", "repo": "r", "branch": "master", "glob": "/*"}
    }
    with pytest.raises(InvalidArgument, match=r"input\.cron\.repo is required outside"):
        parse_input({"cron": {"name": "t", "spec": "@daily"}})
    cron = parse_input({"cron": {"name": "t", "spec": "@daily"}}, pipeline="p")
    assert cron == CronInput(name="t", repo="p_t", spec="@daily")
    validate_input(UnionInput((PfsInput("a", "a"), PfsInput("a", "b"))))
    with pytest.raises(InvalidArgument, match=r"input\.cross\[1\]\.pfs\.name 'a'"):
        validate_input(CrossInput((PfsInput("a", "a"), PfsInput("a", "b"))))
    with pytest.raises(InvalidArgument, match=r"input\.group\[0\]\.pfs\.group_by is required"):
        validate_input(GroupInput((PfsInput("a", "a"),)))


# --------------------------------------------------------------------------- bad specs


def _set(path: str, value: Any) -> Any:
    """A change to the base spec: set ``value`` at dotted ``path`` (``...`` deletes)."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return change


BASE: dict[str, Any] = {
    "pipeline": {"name": "p"},
    "transform": {"cmd": ["sh"]},
    "input": {"pfs": {"repo": "r", "glob": "/*"}},
}
PFS = {"repo": "r", "glob": "/*"}


def _pfs(**kw: Any) -> dict[str, Any]:
    return {"pfs": {**PFS, **kw}}


BAD: list[tuple[str, Any, str]] = [
    # unsupported fields, by name, at every level
    ("top", _set("podPatch", "[]"), r"^unsupported field 'podPatch' in pipeline spec$"),
    ("pfs commit", _set("input.pfs.commit", "c"), r"unsupported field 'input\.pfs\.commit'"),
    ("trigger field", _set("input.pfs.trigger", {"sise": "1"}), r"input\.pfs\.trigger\.sise"),
    (
        "trigger size",
        _set("input.pfs.trigger", {"size": "1XB"}),
        r"^input\.pfs\.trigger: invalid trigger size '1XB'$",
    ),
    # spouts and services (more in tests/test_spouts_services.py)
    ("spout", _set("spout", {}), r"^spout pipelines \(without a service\) must not have an input$"),
    ("service", _set("service", {}), r"^service\.internal_port is required"),
    ("egress", _set("egress", {}), r"^egress needs a target: URL, object_storage or sql_database$"),
    ("s3_out", _set("s3Out", 1), r"^s3Out must be true or false, got int$"),
    ("pfs.s3", _set("input.pfs.s3", True), r"^input\.pfs: inputs that set 's3' to 'true' must "),
    (
        "pull secrets",
        _set("transform.imagePullSecrets", ["s"]),
        r"unsupported field 'transform\.imagePullSecrets'",
    ),
    (
        "coefficient",
        _set("parallelism_spec", {"coefficient": 1}),
        r"unsupported field 'parallelism_spec\.coefficient'",
    ),
    ("metadata", _set("pipeline.metadata", {}), r"unsupported field 'pipeline\.metadata'"),
    (
        "cross child",
        _set("input", {"cross": [_pfs(reference=True), _pfs(name="b")]}),
        r"unsupported field 'input\.cross\[0\]\.pfs\.reference'",
    ),
    (
        "twice",
        lambda d: d.update(datum_tries=2, datumTries=2),
        r"^field 'datum_tries' given twice \(as 'datum_tries' and 'datumTries'\)$",
    ),
    # the pipeline
    ("no pipeline", _set("pipeline", ...), r"^pipeline\.name is required$"),
    ("no name", _set("pipeline", {}), r"^pipeline\.name is required$"),
    ("name type", _set("pipeline.name", 5), r"^pipeline\.name must be a string"),
    ("long name", _set("pipeline.name", "p" * 52), r"pipeline\.name 'p+' is too long: 52"),
    ("dot name", _set("pipeline.name", "my.pipe"), r"pipeline\.name 'my\.pipe' is invalid"),
    ("dash first", _set("pipeline.name", "-p"), r"pipeline\.name '-p' is invalid"),
    (
        "project",
        _set("pipeline.project", {"name": "lenny.123"}),
        r"^pipeline\.project\.name: invalid project name 'lenny\.123'",
    ),
    ("description", _set("description", 3), r"^description must be a string, got int$"),
    # the transform
    ("no transform", _set("transform", ...), r"^transform is required$"),
    ("no cmd", _set("transform", {"stdin": ["x"]}), r"^transform\.cmd is required"),
    ("empty cmd", _set("transform.cmd", []), r"^transform\.cmd is required"),
    (
        "cmd string",
        _set("transform.cmd", "python x.py"),
        r"^transform\.cmd must be a list of strings$",
    ),
    ("cmd ints", _set("transform.cmd", ["sleep", 1]), r"^transform\.cmd must be a list"),
    ("stdin", _set("transform.stdin", "echo"), r"^transform\.stdin must be a list of strings"),
    ("err_cmd", _set("transform.errCmd", [1]), r"^transform\.errCmd must be a list of strings"),
    ("env list", _set("transform.env", ["A=1"]), r"^transform\.env must be an object"),
    ("env int", _set("transform.env", {"A": 1}), r"^transform\.env\.A must be a string"),
    (
        "return codes",
        _set("transform.accept_return_code", ["x"]),
        r"^transform\.accept_return_code\[0\] must be an integer",
    ),
    (
        "return code list",
        _set("transform.acceptReturnCode", 4),
        r"^transform\.acceptReturnCode must be a list of integers",
    ),
    ("image", _set("transform.image", 1), r"^transform\.image must be a string"),
    ("working_dir", _set("transform.working_dir", ["/"]), r"^transform\.working_dir must be"),
    # scalar fields
    ("tries 0", _set("datum_tries", 0), r"^datum_tries must be >= 1, got 0$"),
    ("tries text", _set("datumTries", "many"), r"^datumTries must be an integer, got a string"),
    ("tries bool", _set("datum_tries", True), r"^datum_tries must be an integer"),
    (
        "parallelism",
        _set("parallelism_spec", {"constant": -1}),
        r"^parallelism_spec\.constant must be >= 0",
    ),
    ("parallelism type", _set("parallelism_spec", 3), r"^parallelism_spec must be an object"),
    (
        "reprocess",
        _set("reprocess_spec", "sometimes"),
        r"^reprocess_spec must be 'until_success' or 'every_job', got 'sometimes'$",
    ),
    ("output branch", _set("output_branch", "a/b"), r"^output_branch: invalid branch name"),
    (
        "output branch id",
        _set("outputBranch", "0123456789abcdef0123456789abcdef"),
        r"^outputBranch: invalid branch name .* looks like a commit ID",
    ),
    ("timeout word", _set("datum_timeout", "soon"), r"^datum_timeout: invalid duration 'soon'"),
    ("timeout unit", _set("datumTimeout", "60"), r"^datumTimeout: .*missing unit"),
    ("timeout zero", _set("job_timeout", 0), r"^job_timeout must be a positive duration"),
    ("timeout negative", _set("job_timeout", "-5s"), r"^job_timeout: .*must not be negative"),
    ("timeout list", _set("job_timeout", [1]), r"^job_timeout: invalid duration"),
    ("salt", _set("salt", 1), r"^salt must be a string"),
    # inputs
    ("no input", _set("input", ...), r"^input is required"),
    ("empty input", _set("input", {}), r"^input: no input set"),
    ("input type", _set("input", []), r"^input must be an object, got a list"),
    (
        "two types",
        _set("input", {**_pfs(), "cross": [_pfs()]}),
        r"^input: multiple input types set \(pfs, cross\)$",
    ),
    ("pfs type", _set("input.pfs", "r"), r"^input\.pfs must be an object, got a string"),
    ("no repo", _set("input.pfs.repo", ...), r"^input\.pfs\.repo is required$"),
    ("no glob", _set("input.pfs.glob", ...), r"^input\.pfs\.glob is required"),
    ("empty glob", _set("input.pfs.glob", ""), r"^input\.pfs\.glob is required"),
    ("bad glob", _set("input.pfs.glob", "/[ab"), r"^input\.pfs\.glob: invalid glob '/\[ab'"),
    ("bad extglob", _set("input.pfs.glob", "/!(a"), r"^input\.pfs\.glob: invalid glob"),
    ("bad repo", _set("input.pfs.repo", "a.b"), r"^input\.pfs\.repo: invalid repo name 'a\.b'"),
    ("bad branch", _set("input.pfs.branch", "x y"), r"^input\.pfs\.branch: invalid branch name"),
    (
        "out repo",
        _set("input.pfs.repo", "out"),
        r"^input\.pfs\.name is required for a repo named 'out'",
    ),
    ("out name", _set("input.pfs.name", "out"), r"^input\.pfs\.name: an input cannot be named"),
    ("slash name", _set("input.pfs.name", "a/b"), r"^input\.pfs\.name 'a/b' is invalid"),
    (
        "outer bool",
        _set("input.pfs.outerJoin", "yes"),
        r"^input\.pfs\.outerJoin must be true or false, got a string$",
    ),
    ("lazy bool", _set("input.pfs.lazy", 1), r"^input\.pfs\.lazy must be true or false"),
    ("join_on type", _set("input.pfs.join_on", 1), r"^input\.pfs\.join_on must be a string"),
    (
        "cross names",
        _set("input", {"cross": [_pfs(), _pfs(glob="/")]}),
        r"^input\.cross\[1\]\.pfs\.name 'r' is used more than once",
    ),
    (
        "join names",
        _set("input", {"join": [_pfs(join_on="$1"), _pfs(join_on="$1")]}),
        r"^input\.join\[1\]\.pfs\.name 'r' is used more than once",
    ),
    (
        "union then cross",
        _set("input", {"cross": [{"union": [_pfs(), _pfs()]}, _pfs()]}),
        r"^input\.cross\[1\]\.pfs\.name 'r' is used more than once",
    ),
    (
        "join_on missing",
        _set("input", {"join": [_pfs(join_on="$1"), _pfs(name="b")]}),
        r"^input\.join\[1\]\.pfs\.join_on is required",
    ),
    (
        "nested join_on",
        _set(
            "input",
            {
                "join": [
                    {"cross": [_pfs(join_on="$1"), _pfs(name="b")]},
                    _pfs(name="c", join_on="$1"),
                ]
            },
        ),
        r"^input\.join\[0\]\.cross\[1\]\.pfs\.join_on is required",
    ),
    (
        "group_by missing",
        _set("input", {"group": [_pfs()]}),
        r"^input\.group\[0\]\.pfs\.group_by is required",
    ),
    (
        "cron in join",
        _set("input", {"join": [_pfs(join_on="$1"), {"cron": {"name": "t", "spec": "@daily"}}]}),
        r"^input\.join\[1\]\.cron: a cron input cannot be part of a join",
    ),
    ("empty cross", _set("input", {"cross": []}), r"^input\.cross needs at least one input$"),
    (
        "cross type",
        _set("input", {"union": {"pfs": PFS}}),
        r"^input\.union must be a list of inputs, got an object",
    ),
    ("cron name", _set("input", {"cron": {"spec": "@daily"}}), r"^input\.cron\.name is required"),
    ("cron spec", _set("input", {"cron": {"name": "t"}}), r"^input\.cron\.spec is required"),
    (
        "bad cron",
        _set("input", {"cron": {"name": "t", "spec": "every day"}}),
        r"^input\.cron\.spec: invalid cron spec 'every day'",
    ),
    (
        "bad every",
        _set("input", {"cron": {"name": "t", "spec": "@every soon"}}),
        r"^input\.cron\.spec: invalid cron spec '@every soon'",
    ),
    (
        "cron start",
        _set("input", {"cron": {"name": "t", "spec": "@daily", "start": "monday"}}),
        r"^input\.cron\.start: invalid RFC 3339 time 'monday'",
    ),
    ("self input", _set("input.pfs.repo", "p"), r"^input: repo 'p' is this pipeline's output repo"),
    (
        "cron project",
        _set("input", {"cron": {"name": "t", "spec": "@daily", "project": "_x"}}),
        r"^input\.cron\.project: invalid project name '_x'",
    ),
    (
        "pfs project",
        _set("input.pfs.project", "a" * 52),
        r"^input\.pfs\.project: invalid project name 'a+'",
    ),
    # numbers past their bounds: each error names the field and the bound
    (
        "parallelism 1e9",
        _set("parallelism_spec", {"constant": 1_000_000_000}),
        r"^parallelism_spec\.constant must be at most 1024 \(datums a job runs at once\), "
        r"got 1000000000$",
    ),
    (
        "parallelism text",
        _set("parallelismSpec", {"constant": "1025"}),
        r"^parallelismSpec\.constant must be at most 1024",
    ),
    (
        "parallelism float",
        _set("parallelism_spec", {"constant": 1e9}),
        r"^parallelism_spec\.constant must be an integer, got float$",
    ),
    ("tries", _set("datum_tries", 10**12), r"^datum_tries must be at most 100, got 10+$"),
    (
        "timeout year",
        _set("datum_timeout", "8761h"),
        r"^datum_timeout must be at most 31536000s \(a year\), got 31539600s$",
    ),
    ("timeout huge", _set("job_timeout", 10**30), r"^job_timeout must be at most 31536000s"),
    ("timeout overflow", _set("job_timeout", 10**400), r"^job_timeout: invalid duration"),
    (
        "every 1ns",
        _set("input", {"cron": {"name": "t", "spec": "@every 1ns"}}),
        r"^input\.cron\.spec: invalid cron spec '@every 1ns': the interval must be at least 1s",
    ),
    (
        "every 999ms",
        _set("input", {"cron": {"name": "t", "spec": "@every 999ms"}}),
        r"^input\.cron\.spec: .*at least 1s, got 0\.999s$",
    ),
    (
        "every century",
        _set("input", {"cron": {"name": "t", "spec": "@every 876000h"}}),
        r"^input\.cron\.spec: .*the interval must be at most 31536000s",
    ),
    (
        "return code",
        _set("transform.accept_return_code", [1, 256]),
        r"^transform\.accept_return_code\[1\] must be an exit code between 0 and 255, got 256$",
    ),
    (
        "return code negative",
        _set("transform.accept_return_code", [-1]),
        r"^transform\.accept_return_code\[0\] must be an exit code",
    ),
    (
        "long description",
        _set("description", "d" * (64 * 1024 + 1)),
        r"^description is too long: 65537 bytes, at most 65536$",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in BAD], ids=[i for i, _, _ in BAD]
)
def test_bad_specs_name_the_field(change: Any, message: str) -> None:
    doc = copy.deepcopy(BASE)
    change(doc)
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_spec(doc)
    assert "\n" not in str(info.value)


def test_numbers_at_their_bounds_are_accepted() -> None:
    doc = copy.deepcopy(BASE)
    doc.update(parallelism_spec={"constant": 1024}, datum_tries=100, datum_timeout="8760h",
               job_timeout="1s", description="d" * 64 * 1024)  # fmt: skip
    doc["transform"]["accept_return_code"] = [0, 255]
    doc["input"] = {"cron": {"name": "t", "spec": "@every 1s"}}
    spec = parse_spec(doc)
    assert (spec.parallelism, spec.datum_tries, spec.datum_timeout) == (1024, 100, 8760 * 3600)


def test_spec_must_be_an_object() -> None:
    with pytest.raises(InvalidArgument, match=r"^pipeline spec must be an object, got a list"):
        parse_spec([])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- durations and cron


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("100ms", 0.1),
        ("2h45m", 9900.0),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("10ns", 1e-8),
        (".5s", 0.5),
        ("0", 0.0),
        (45, 45.0),
        (2.5, 2.5),
        ("+3s", 3.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "60", "1x", "s", "1h 30m", "-1s", "1.2.3s", True, None])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration(text)


T0 = datetime(2024, 3, 5, 10, 17, 42, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("@every 10s", datetime(2024, 3, 5, 10, 17, 52, tzinfo=UTC)),
        ("@every 1m30s", datetime(2024, 3, 5, 10, 19, 12, tzinfo=UTC)),
        ("@every 1500ms", datetime(2024, 3, 5, 10, 17, 43, tzinfo=UTC)),  # whole seconds
        ("@every 8760h", datetime(2025, 3, 5, 10, 17, 42, tzinfo=UTC)),
        ("@hourly", datetime(2024, 3, 5, 11, 0, tzinfo=UTC)),
        ("@daily", datetime(2024, 3, 6, 0, 0, tzinfo=UTC)),
        ("@midnight", datetime(2024, 3, 6, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2024, 3, 10, 0, 0, tzinfo=UTC)),
        ("@monthly", datetime(2024, 4, 1, 0, 0, tzinfo=UTC)),
        ("@yearly", datetime(2025, 1, 1, 0, 0, tzinfo=UTC)),
        ("@annually", datetime(2025, 1, 1, 0, 0, tzinfo=UTC)),
        ("*/5 * * * *", datetime(2024, 3, 5, 10, 20, tzinfo=UTC)),
        ("0 9 * * MON", datetime(2024, 3, 11, 9, 0, tzinfo=UTC)),
        ("never", None),
        ("@never", None),
    ],
)
def test_cron_next_after(spec: str, expected: datetime | None) -> None:
    assert parse_cron(spec).next_after(T0) == expected


def test_cron_is_strictly_after_and_naive_means_utc() -> None:
    on_tick = datetime(2024, 3, 5, 11, 0, tzinfo=UTC)
    assert parse_cron("@hourly").next_after(on_tick) == datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    naive = datetime(2024, 3, 5, 10, 17)
    assert parse_cron("@hourly").next_after(naive) == datetime(2024, 3, 5, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "every day",
        "@every",
        "@everyday",
        "@every -1s",
        "@fortnightly",
        "* * * *",
        "0 0 * * * *",
        "61 * * * *",
        "0 0 32 * *",
        "@every 1ns",
        "@every 100ms",
        "@every 0s",
        "@every 8761h",
        "@every 99999999999999h",
    ],
)
def test_bad_cron_specs(spec: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid cron spec"):
        parse_cron(spec)
