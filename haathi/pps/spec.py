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
from haathi.models.ids import validate_branch_name
from haathi.models.text import check_texts
from haathi.pps.cron import format_duration
from haathi.pps.input_spec import (
    CronInput,
    Input,
    PfsInput,
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
_PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # whole names: fullmatch
REPROCESS_SPECS = ("until_success", "every_job")

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
    }
)
_PIPELINE_FIELDS = frozenset({"name", "project"})
_PROJECT_FIELDS = frozenset({"name"})
_PARALLELISM_FIELDS = frozenset({"constant"})


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline spec with Pachyderm's defaults applied."""

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
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The effective spec as canonical snake_case Pachyderm JSON (re-parseable)."""
        out: dict[str, Any] = {"pipeline": {"name": self.name}}
        if self.description:
            out["description"] = self.description
        out["transform"] = self.transform.to_dict()
        out["input"] = input_to_dict(self.input)
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
        return out

    def pfs_inputs(self) -> list[PfsInput | CronInput]:
        """The leaf inputs, in spec order."""
        return list(walk_inputs(self.input))


# --------------------------------------------------------------------------- loading


def load_documents(text: str, source: str = "spec") -> list[dict[str, Any]]:
    """The spec objects in ``text``: JSON (one or several objects, or a list) or YAML.

    YAML may hold several documents separated by ``---``. Bad syntax raises one line naming
    ``source`` and the line number.
    """
    stripped = text.lstrip()
    if not stripped:
        raise InvalidArgument(f"{source}: no pipeline spec found (empty)")
    docs = _load_json(text, source) if stripped[0] in "{[" else _load_yaml(text, source)
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
    import yaml  # on use: 10 ms of every CLI command's start otherwise

    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidArgument(f"{source}: invalid YAML{where}: {problem}") from exc


# --------------------------------------------------------------------------- parsing


def parse_spec(doc: dict[str, Any], *, stored: bool = False) -> PipelineSpec:
    """Validate a pipeline spec object and apply Pachyderm's defaults.

    ``stored``: a spec haathi recorded earlier (a pipeline's version); the bounds on the
    numbers and sizes of new specs are not applied to it, so that a pipeline made before them
    keeps working.
    """
    bounded = not stored
    check_texts(doc, "the pipeline spec")
    top = SpecObject(doc, "", _TOP_FIELDS)
    name = _pipeline_name(top)
    transform = parse_transform(top, bounded)
    if not top.has("input"):
        raise InvalidArgument("input is required (spouts and services are not supported)")
    inp = parse_input_at(top.values["input"], top.where("input"), name)
    validate_input(inp, bounded=bounded)
    if any(leaf.repo == name for leaf in walk_inputs(inp)):
        raise InvalidArgument(
            f"input: repo {name!r} is this pipeline's output repo (a pipeline cannot take "
            "itself as input)"
        )
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
        notes=resource_notes(top, transform),
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
    if pipe.has("project"):
        project = SpecObject(pipe.values["project"], pipe.where("project"), _PROJECT_FIELDS)
        pname = project.get_str("name", "default")
        if pname not in ("", "default"):
            raise InvalidArgument(
                f"{project.where('name')} {pname!r} is not supported: haathi has only the "
                "'default' project"
            )
    return name


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
