"""Pachyderm 2.x pipeline specs: load JSON/YAML, validate, apply defaults, and write back.

Keys are accepted in snake_case and lowerCamelCase at every level (protojson does the same).
A field haathi does not support is rejected by name, never ignored. Every bad spec raises
:class:`~haathi.errors.InvalidArgument` with one line naming the field.

This module holds the whole spec and its top-level fields; the parts are
:mod:`haathi.pps.input_spec` (``input``), :mod:`haathi.pps.transform_spec` (``transform`` and
the resource limits) and :mod:`haathi.pps.spec_fields` (reading a spec object's fields).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.bounds import check_description
from haathi.models.ids import (
    DEFAULT_PROJECT,
    repo_key,
    split_key,
    validate_branch_name,
    validate_project_name,
)
from haathi.models.schedule import format_duration
from haathi.models.text import check_texts
from haathi.pps.daemon_spec import (
    Service,
    Spout,
    check_daemon,
    check_input,
    check_service_input,
    daemon_notes,
    parse_service,
    parse_spout,
)
from haathi.pps.egress_spec import Egress, egress_notes, parse_egress
from haathi.pps.input_spec import (
    CronInput,
    Input,
    PfsInput,
    UnionInput,
    input_to_dict,
    parse_input_at,
    validate_input,
    walk_inputs,
)
from haathi.pps.spec_fields import SpecObject
from haathi.pps.transform_spec import (
    Resources,
    Transform,
    parse_resources,
    parse_transform,
    resource_notes,
)

MAX_PIPELINE_NAME = 51
# Bounds on the numbers of a spec, far above honest use: a value past one is a typo or an
# attack (a billion threads, retries for ever, a timeout past what a timer can hold).
MAX_PARALLELISM = 1024  # datums a job runs at once
MAX_DATUM_TRIES = 100
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
_PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # whole names: fullmatch
REPROCESS_SPECS = ("until_success", "every_job")
NO_INPUT = UnionInput(())
"""A spout's input: none (it reads nothing through haathi)."""
TRANSFORM, SPOUT, SERVICE = "transform", "spout", "service"  # (Pachyderm's pipeline types)

_TOP_FIELDS = frozenset(
    {
        "pipeline",
        "description",
        "transform",
        "input",
        "parallelism_spec",
        "datum_tries",
        "datum_timeout",
        "job_timeout",
        "output_branch",
        "reprocess_spec",
        "salt",
        "resource_limits",
        "resource_requests",
        "autoscaling",
        "s3_out",
        "egress",
        "spout",
        "service",
    }
)
_PIPELINE_FIELDS = frozenset({"name", "project"})
_PROJECT_FIELDS = frozenset({"name"})
_PARALLELISM_FIELDS = frozenset({"constant"})


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline spec with Pachyderm's defaults applied. ``name`` is the pipeline's
    key (``project/name``; the bare name in the default project), as its output repo's."""

    name: str
    description: str
    transform: Transform
    input: Input
    parallelism: int = 1
    datum_tries: int = 3
    datum_timeout: float | None = None
    job_timeout: float | None = None
    output_branch: str = "master"
    reprocess_spec: str = "until_success"
    salt: str | None = None
    resources: Resources = field(default=Resources())
    autoscaling: bool = False
    """Pachyderm's scale-to-zero: haathi runs a pipeline's code only while a job does anyway."""
    s3_out: bool = False
    """The output is the bucket ``out`` of the job's S3 gateway; no datum is ever skipped."""
    egress: Egress | None = None  # where each successful job's output commit is also written
    spout: Spout | None = None  # a long-lived program writing commits (no input)
    service: Service | None = None  # a long-lived server over the input's single datum
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The effective spec as canonical snake_case Pachyderm JSON (re-parseable)."""
        project, name = split_key(self.name)
        out: dict[str, Any] = {"pipeline": {"name": name}}
        if project != DEFAULT_PROJECT:  # (so a default-project spec's hash stays as it was)
            out["pipeline"]["project"] = {"name": project}
        if self.description:
            out["description"] = self.description
        out["transform"] = self.transform.to_dict()
        if self.spout is not None:
            out["spout"] = self.spout.to_dict()
        else:
            out["input"] = input_to_dict(self.input, project)
        if self.service is not None:
            out["service"] = self.service.to_dict()
        out["parallelism_spec"] = {"constant": self.parallelism}
        out["datum_tries"] = self.datum_tries
        if self.datum_timeout is not None:
            out["datum_timeout"] = format_duration(self.datum_timeout)
        if self.job_timeout is not None:
            out["job_timeout"] = format_duration(self.job_timeout)
        out["output_branch"] = self.output_branch
        out["reprocess_spec"] = self.reprocess_spec
        if self.salt is not None:
            out["salt"] = self.salt
        if self.resources != Resources():
            out["resource_limits"] = self.resources.to_dict()
        if self.autoscaling:
            out["autoscaling"] = True
        if self.s3_out:
            out["s3_out"] = True
        if self.egress is not None:
            out["egress"] = self.egress.to_dict()
        return out

    @property
    def kind(self) -> str:
        """``transform`` (a job per output commit), ``spout`` or ``service`` (a long-lived
        program that workers run: :mod:`haathi.pps.daemons`)."""
        return (
            SPOUT if self.spout is not None else SERVICE if self.service is not None else TRANSFORM
        )

    @property
    def published(self) -> Service | None:
        """The port a spout or service publishes (None: none)."""
        return self.service or (self.spout.service if self.spout is not None else None)

    @property
    def reprocesses_all(self) -> bool:
        """Every job runs every datum: ``reprocess_spec`` every_job, or ``s3_out`` (as in
        Pachyderm, whose worker cannot tell an S3 output apart datum by datum)."""
        return self.reprocess_spec == "every_job" or self.s3_out

    @property
    def uses_s3_gateway(self) -> bool:
        """The job's user code reads an input or writes its output through an S3 gateway."""
        return self.s3_out or bool(s3_input_names(self))

    def pfs_inputs(self) -> list[PfsInput | CronInput]:
        """The leaf inputs, in spec order."""
        return list(walk_inputs(self.input))


def s3_input_names(spec: PipelineSpec) -> frozenset[str]:
    """The names of the spec's s3 inputs (each a bucket of the job's S3 gateway)."""
    return frozenset(
        leaf.name for leaf in walk_inputs(spec.input) if isinstance(leaf, PfsInput) and leaf.s3
    )


# --------------------------------------------------------------------------- loading


def load_documents(text: str, source: str = "spec") -> list[dict[str, Any]]:
    """The spec objects in ``text``: JSON (one or several objects, or a list) or YAML.

    YAML may hold several documents separated by ``---``, and so may JSON (pachctl reads
    every spec as YAML, and Pachyderm's examples separate JSON documents so): JSON that does
    not parse and has a ``---`` line is read as YAML. Bad syntax raises one line naming
    ``source`` and the line number.
    """
    stripped = text.lstrip()
    if not stripped:
        raise InvalidArgument(f"{source}: no pipeline spec found (empty)")
    if stripped[0] not in "{[":
        docs = _load_yaml(text, source)
    else:
        try:
            docs = _load_json(text, source)
        except InvalidArgument:
            if not _DOCUMENT_SEPARATOR.search(text):
                raise
            docs = _load_yaml(text, source)
    out: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise InvalidArgument(f"{source}: document {i + 1} is not an object")
            out.append(item)
    if not out:
        raise InvalidArgument(f"{source}: no pipeline spec found")
    return out


def _load_json(text: str, source: str) -> list[Any]:
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return docs
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}"
            ) from exc
        docs.append(doc)


def _load_yaml(text: str, source: str) -> list[Any]:
    """YAML documents, read by libyaml as Go's yaml (pachctl's) reads them: it allows a tab
    after a value in a flow collection, which PyYAML's own parser refuses."""
    import yaml  # on use: 10 ms of every CLI command's start otherwise

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidArgument(f"{source}: invalid YAML{where}: {problem}") from exc


# --------------------------------------------------------------------------- parsing


def parse_spec(
    doc: dict[str, Any], *, stored: bool = False, check_only: bool = False
) -> PipelineSpec:
    """Validate a pipeline spec object and apply Pachyderm's defaults.

    ``stored``: a spec haathi recorded earlier (a pipeline's version); the bounds on the
    numbers and sizes of new specs are not applied to it, so that a pipeline made before them
    keeps working.

    ``check_only``: for ``validate pipeline``, which checks a spec as pachctl's does (on the
    client, its syntax and fields): what ``create pipeline`` refuses for a reason of its own
    (an input without a glob, as Pachyderm's server does) is a note instead.
    """
    bounded = not stored
    check_texts(doc, "the pipeline spec")
    top = SpecObject(doc, "", _TOP_FIELDS)
    name = _pipeline_name(top)
    transform = parse_transform(top, bounded)
    spout, service = parse_spout(top), parse_service(top)
    check_daemon(top, spout, service)
    check_input(top, spout, service)
    create_refuses: list[str] = []
    if spout is not None:
        inp: Input = NO_INPUT
    elif not top.has("input"):
        raise InvalidArgument("input is required")
    else:
        inp = parse_input_at(top.values["input"], top.where("input"), name)
        validate_input(inp, bounded=bounded, refusals=create_refuses if check_only else None)
    if service is not None:
        check_service_input(inp)
    if any(leaf.repo == name for leaf in walk_inputs(inp)):
        raise InvalidArgument(
            f"input: repo {name!r} is this pipeline's output repo (a pipeline cannot take "
            "itself as input)"
        )
    egress = parse_egress(top)
    return PipelineSpec(
        name=name,
        description=_description(top, bounded),
        transform=transform,
        input=inp,
        parallelism=_parallelism(top, bounded),
        datum_tries=_datum_tries(top, bounded),
        datum_timeout=top.duration("datum_timeout", bounded),
        job_timeout=top.duration("job_timeout", bounded),
        output_branch=_output_branch(top),
        reprocess_spec=_reprocess_spec(top),
        salt=top.get_str("salt"),
        resources=parse_resources(top, transform),
        autoscaling=top.get_bool("autoscaling"),
        s3_out=top.get_bool("s3_out"),
        egress=egress,
        spout=spout,
        service=service,
        notes=(
            *(f"create pipeline refuses: {why}" for why in create_refuses),
            *resource_notes(top, transform),
            *_s3_out_notes(top),
            *egress_notes(egress),
            *daemon_notes(spout, service),
        ),
    )


def _pipeline_name(top: SpecObject) -> str:
    if not top.has("pipeline"):
        raise InvalidArgument("pipeline.name is required")
    pipe = SpecObject(top.values["pipeline"], top.where("pipeline"), _PIPELINE_FIELDS)
    name = pipe.need_str("name")
    if len(name) > MAX_PIPELINE_NAME:
        raise InvalidArgument(
            f"{pipe.where('name')} {name!r} is too long: {len(name)} characters, "
            f"at most {MAX_PIPELINE_NAME}"
        )
    if not _PIPELINE_NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"{pipe.where('name')} {name!r} is invalid: use letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return repo_key(_pipeline_project(pipe), name)


def pipeline_project(doc: dict[str, Any]) -> str:
    """The project of a spec document's pipeline (``default`` when it names none)."""
    pipeline = doc.get("pipeline")
    if not isinstance(pipeline, dict):
        return DEFAULT_PROJECT
    return _pipeline_project(SpecObject(pipeline, "pipeline", _PIPELINE_FIELDS))


def _pipeline_project(pipe: SpecObject) -> str:
    """``pipeline.project``: ``{"name": P}`` as Pachyderm writes it (or the bare string)."""
    if not pipe.has("project"):
        return DEFAULT_PROJECT
    value = pipe.values["project"]
    if isinstance(value, str):
        where, pname = pipe.where("project"), value
    else:
        project = SpecObject(value, pipe.where("project"), _PROJECT_FIELDS)
        where, pname = project.where("name"), project.get_str("name") or ""
    try:
        return validate_project_name(pname or DEFAULT_PROJECT)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from exc


def _s3_out_notes(top: SpecObject) -> tuple[str, ...]:
    if not top.get_bool("s3_out") or top.get_str("reprocess_spec") == "every_job":
        return ()
    return (
        f"{top.where('s3_out')}: no datum is ever skipped: each job runs them all, as with "
        "reprocess_spec every_job (Pachyderm's rule)",
    )


def _description(top: SpecObject, bounded: bool) -> str:
    text = top.get_str("description", "") or ""
    return check_description(text, top.where("description")) if bounded else text


def _parallelism(top: SpecObject, bounded: bool) -> int:
    if not top.has("parallelism_spec"):
        return 1
    spec = SpecObject(
        top.values["parallelism_spec"], top.where("parallelism_spec"), _PARALLELISM_FIELDS
    )
    constant = spec.get_int("constant", 0)
    if constant < 0:
        raise InvalidArgument(f"{spec.where('constant')} must be >= 0, got {constant}")
    if bounded and constant > MAX_PARALLELISM:
        raise InvalidArgument(
            f"{spec.where('constant')} must be at most {MAX_PARALLELISM} (datums a job runs at "
            f"once), got {constant}"
        )
    return constant or 1


def _datum_tries(top: SpecObject, bounded: bool) -> int:
    tries = top.get_int("datum_tries", 3)
    if tries < 1:
        raise InvalidArgument(f"{top.where('datum_tries')} must be >= 1, got {tries}")
    if bounded and tries > MAX_DATUM_TRIES:
        raise InvalidArgument(
            f"{top.where('datum_tries')} must be at most {MAX_DATUM_TRIES}, got {tries}"
        )
    return tries


def _output_branch(top: SpecObject) -> str:
    branch = top.get_str("output_branch", "master") or "master"
    try:
        return validate_branch_name(branch)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{top.where('output_branch')}: {exc}") from exc


def _reprocess_spec(top: SpecObject) -> str:
    value = top.get_str("reprocess_spec", "until_success") or "until_success"
    if value not in REPROCESS_SPECS:
        raise InvalidArgument(
            f"{top.where('reprocess_spec')} must be 'until_success' or 'every_job', got {value!r}"
        )
    return value
