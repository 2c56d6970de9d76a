"""Pachyderm 2.x pipeline specs: load JSON/YAML, validate, apply defaults, and write back.

Keys are accepted in snake_case and lowerCamelCase at every level (protojson does the same).
A field haathi does not support is rejected by name, never ignored. Every bad spec raises
:class:`~haathi.errors.InvalidArgument` with one line naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from haathi.errors import InvalidArgument
from haathi.models.bounds import check_description
from haathi.models.glob import compile_input_glob
from haathi.models.ids import validate_branch_name, validate_repo_name
from haathi.models.text import check_texts
from haathi.pps.cron import MAX_DURATION_S, format_duration, parse_cron, parse_duration

MAX_PIPELINE_NAME = 51
# Bounds on the numbers of a spec, far above honest use: a value past one is a typo or an
# attack (a billion threads, retries for ever, a timeout past what a timer can hold).
MAX_PARALLELISM = 1024  # datums a job runs at once
MAX_DATUM_TRIES = 100
MAX_EXIT_CODE = 255  # exit statuses are 0-255
_PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # whole names: fullmatch
_INPUT_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
REPROCESS_SPECS = ("until_success", "every_job")
_COMPOSITES = ("cross", "union", "join", "group")

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
_TRANSFORM_FIELDS = frozenset(
    {
        "cmd",
        "stdin",
        "env",
        "image",
        "err_cmd",
        "err_stdin",
        "accept_return_code",
        "working_dir",
        "user",
    }
)
_RESOURCE_FIELDS = frozenset({"cpu", "memory", "gpu", "disk"})
_QUANTITY_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[kMGTPE])?")
_QUANTITY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
                   "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                   "Pi": 2**50, "Ei": 2**60}  # fmt: skip
_INPUT_FIELDS = frozenset({"pfs", "cron", *_COMPOSITES})
_PFS_FIELDS = frozenset(
    {"name", "repo", "branch", "glob", "join_on", "outer_join", "group_by", "lazy", "empty_files"}
)
_CRON_FIELDS = frozenset({"name", "repo", "spec", "overwrite", "start"})


# --------------------------------------------------------------------------- the types


@dataclass(frozen=True)
class PfsInput:
    """A PFS input: one datum per match of ``glob`` in the head of ``repo@branch``.

    ``lazy`` is accepted but behaves eagerly: haathi materializes the datum's files before the
    user code starts. ``empty_files`` exposes the files as empty placeholders.
    """

    name: str
    repo: str
    branch: str = "master"
    glob: str = "/"
    join_on: str | None = None
    outer_join: bool = False
    group_by: str | None = None
    lazy: bool = False
    empty_files: bool = False


@dataclass(frozen=True)
class CronInput:
    """A cron input: ticks are files in ``repo`` (default ``<pipeline>_<name>``), glob ``/*``."""

    name: str
    repo: str
    spec: str
    overwrite: bool = False
    start: str | None = None


@dataclass(frozen=True)
class CrossInput:
    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class UnionInput:
    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class JoinInput:
    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class GroupInput:
    inputs: tuple[Input, ...]


Input = PfsInput | CronInput | CrossInput | UnionInput | JoinInput | GroupInput
Composite = CrossInput | UnionInput | JoinInput | GroupInput
_KIND_OF: dict[type[Any], str] = {
    CrossInput: "cross",
    UnionInput: "union",
    JoinInput: "join",
    GroupInput: "group",
}
_CLASS_OF: dict[str, type[Composite]] = {v: k for k, v in _KIND_OF.items()}


@dataclass(frozen=True)
class Transform:
    """What to run per datum: ``cmd`` in a container of ``image`` (as ``user``, if given), or
    in the host sandbox when there is no ``image``."""

    cmd: tuple[str, ...]
    stdin: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    err_cmd: tuple[str, ...] = ()
    err_stdin: tuple[str, ...] = ()
    accept_return_code: tuple[int, ...] = ()
    working_dir: str | None = None
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The transform in Pachyderm's snake_case JSON shape (empty fields left out)."""
        out: dict[str, Any] = {"cmd": list(self.cmd)}
        for key in ("stdin", "err_cmd", "err_stdin", "accept_return_code"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.env:
            out["env"] = dict(self.env)
        if self.image is not None:
            out["image"] = self.image
        for key in ("working_dir", "user"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Resources:
    """``resource_limits`` (else ``resource_requests``): the limits of a container."""

    cpu: float | None = None
    memory: int | None = None  # bytes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.memory is not None:
            out["memory"] = str(self.memory)
        return out


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


def walk_inputs(inp: Input) -> Iterator[PfsInput | CronInput]:
    """The leaves of an input tree, depth first, in spec order."""
    if isinstance(inp, PfsInput | CronInput):
        yield inp
        return
    for child in inp.inputs:
        yield from walk_inputs(child)


def input_to_dict(inp: Input) -> dict[str, Any]:
    """An input in Pachyderm's snake_case JSON shape (defaults for flags left out)."""
    if isinstance(inp, PfsInput):
        pfs: dict[str, Any] = {
            "name": inp.name,
            "repo": inp.repo,
            "branch": inp.branch,
            "glob": inp.glob,
        }
        for key in ("join_on", "group_by"):
            if getattr(inp, key) is not None:
                pfs[key] = getattr(inp, key)
        for key in ("outer_join", "lazy", "empty_files"):
            if getattr(inp, key):
                pfs[key] = True
        return {"pfs": pfs}
    if isinstance(inp, CronInput):
        cron: dict[str, Any] = {"name": inp.name, "repo": inp.repo, "spec": inp.spec}
        if inp.overwrite:
            cron["overwrite"] = True
        if inp.start is not None:
            cron["start"] = inp.start
        return {"cron": cron}
    return {_KIND_OF[type(inp)]: [input_to_dict(child) for child in inp.inputs]}


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
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidArgument(f"{source}: invalid YAML{where}: {problem}") from exc


# --------------------------------------------------------------------------- field access


def _snake(key: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)


def _type_name(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


class _Obj:
    """A spec object with keys normalized to snake_case; ``path`` names it in errors."""

    def __init__(self, doc: Any, path: str, allowed: frozenset[str]) -> None:
        if not isinstance(doc, dict):
            raise InvalidArgument(
                f"{path or 'pipeline spec'} must be an object, got {_type_name(doc)}"
            )
        self.path = path
        self.values: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        for key, value in doc.items():
            self._add(key, value, allowed)

    def _add(self, key: Any, value: Any, allowed: frozenset[str]) -> None:
        if not isinstance(key, str):
            raise InvalidArgument(f"field names must be strings, got {key!r} in {self.where('')}")
        canon = _snake(key)
        if canon not in allowed:
            raise InvalidArgument(f"unsupported field {self.join(key)!r} in pipeline spec")
        if canon in self.names:
            raise InvalidArgument(
                f"field {self.join(canon)!r} given twice (as {self.names[canon]!r} and {key!r})"
            )
        self.names[canon] = key
        if value is not None:
            self.values[canon] = value

    def join(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def where(self, key: str) -> str:
        """The user's spelling of a field's full path."""
        return self.join(self.names.get(key, key)) if key else (self.path or "pipeline spec")

    def has(self, key: str) -> bool:
        return key in self.values

    def get_str(self, key: str, default: str | None = None) -> str | None:
        if key not in self.values:
            return default
        return _as_str(self.values[key], self.where(key))

    def need_str(self, key: str, hint: str = "") -> str:
        value = self.get_str(key)
        if not value:
            raise InvalidArgument(f"{self.where(key)} is required{hint}")
        return value

    def get_bool(self, key: str) -> bool:
        value = self.values.get(key, False)
        if not isinstance(value, bool):
            raise InvalidArgument(
                f"{self.where(key)} must be true or false, got {_type_name(value)}"
            )
        return value

    def get_int(self, key: str, default: int) -> int:
        return _as_int(self.values[key], self.where(key)) if key in self.values else default

    def strs(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key, [])
        where = self.where(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{where} must be a list of strings")
        return tuple(value)

    def duration(self, key: str, bounded: bool = True) -> float | None:
        if key not in self.values:
            return None
        try:
            seconds = parse_duration(self.values[key])
        except InvalidArgument as exc:
            raise InvalidArgument(f"{self.where(key)}: {exc}") from exc
        if seconds <= 0:
            raise InvalidArgument(f"{self.where(key)} must be a positive duration")
        if bounded and seconds > MAX_DURATION_S:
            raise InvalidArgument(
                f"{self.where(key)} must be at most {format_duration(MAX_DURATION_S)} (a "
                f"year), got {format_duration(seconds)}"
            )
        return seconds


def _as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string, got {_type_name(value)}")
    return value


def _as_int(value: Any, where: str) -> int:
    """An integer; protojson also spells int64 as a decimal string."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where} must be an integer, got {_type_name(value)}")
    return value


# --------------------------------------------------------------------------- parsing


def parse_spec(doc: dict[str, Any], *, stored: bool = False) -> PipelineSpec:
    """Validate a pipeline spec object and apply Pachyderm's defaults.

    ``stored``: a spec haathi recorded earlier (a pipeline's version); the bounds on the
    numbers and sizes of new specs are not applied to it, so that a pipeline made before them
    keeps working.
    """
    bounded = not stored
    check_texts(doc, "the pipeline spec")
    top = _Obj(doc, "", _TOP_FIELDS)
    name = _pipeline_name(top)
    transform = _parse_transform(top, bounded)
    if not top.has("input"):
        raise InvalidArgument("input is required (spouts and services are not supported)")
    inp = _parse_input(top.values["input"], top.where("input"), name)
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
        resources=_resources(top, transform),
        notes=_notes(top, transform),
    )


def parse_input(doc: dict[str, Any], pipeline: str | None = None) -> Input:
    """Parse and validate a bare input object (as under a spec's ``input``).

    A cron input's repo defaults to ``<pipeline>_<name>``, so it must be given when
    ``pipeline`` is None.
    """
    check_texts(doc, "input")
    inp = _parse_input(doc, "input", pipeline)
    validate_input(inp)
    return inp


def _pipeline_name(top: _Obj) -> str:
    if not top.has("pipeline"):
        raise InvalidArgument("pipeline.name is required")
    pipe = _Obj(top.values["pipeline"], top.where("pipeline"), _PIPELINE_FIELDS)
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
        project = _Obj(pipe.values["project"], pipe.where("project"), _PROJECT_FIELDS)
        pname = project.get_str("name", "default")
        if pname not in ("", "default"):
            raise InvalidArgument(
                f"{project.where('name')} {pname!r} is not supported: haathi has only the "
                "'default' project"
            )
    return name


def _description(top: _Obj, bounded: bool) -> str:
    text = top.get_str("description", "") or ""
    return check_description(text, top.where("description")) if bounded else text


def _parse_transform(top: _Obj, bounded: bool) -> Transform:
    if not top.has("transform"):
        raise InvalidArgument("transform is required")
    tf = _Obj(top.values["transform"], top.where("transform"), _TRANSFORM_FIELDS)
    cmd = tf.strs("cmd")
    if not cmd:
        raise InvalidArgument(f"{tf.where('cmd')} is required: a non-empty list of strings")
    return Transform(
        cmd=cmd,
        stdin=tf.strs("stdin"),
        env=_env(tf),
        image=tf.get_str("image"),
        err_cmd=tf.strs("err_cmd"),
        err_stdin=tf.strs("err_stdin"),
        accept_return_code=_return_codes(tf, bounded),
        working_dir=tf.get_str("working_dir"),
        user=tf.get_str("user"),
    )


def _env(tf: _Obj) -> tuple[tuple[str, str], ...]:
    env = tf.values.get("env", {})
    where = tf.where("env")
    if not isinstance(env, dict):
        raise InvalidArgument(f"{where} must be an object of strings, got {_type_name(env)}")
    pairs = [(_as_str(k, f"{where} key"), _as_str(v, f"{where}.{k}")) for k, v in env.items()]
    return tuple(sorted(pairs))


def _return_codes(tf: _Obj, bounded: bool) -> tuple[int, ...]:
    codes = tf.values.get("accept_return_code", [])
    where = tf.where("accept_return_code")
    if not isinstance(codes, list):
        raise InvalidArgument(f"{where} must be a list of integers, got {_type_name(codes)}")
    out = tuple(_as_int(c, f"{where}[{i}]") for i, c in enumerate(codes))
    for i, code in enumerate(out):
        if bounded and not 0 <= code <= MAX_EXIT_CODE:
            raise InvalidArgument(
                f"{where}[{i}] must be an exit code between 0 and {MAX_EXIT_CODE}, got {code}"
            )
    return out


def _parallelism(top: _Obj, bounded: bool) -> int:
    if not top.has("parallelism_spec"):
        return 1
    spec = _Obj(top.values["parallelism_spec"], top.where("parallelism_spec"), _PARALLELISM_FIELDS)
    constant = spec.get_int("constant", 0)
    if constant < 0:
        raise InvalidArgument(f"{spec.where('constant')} must be >= 0, got {constant}")
    if bounded and constant > MAX_PARALLELISM:
        raise InvalidArgument(
            f"{spec.where('constant')} must be at most {MAX_PARALLELISM} (datums a job runs at "
            f"once), got {constant}"
        )
    return constant or 1


def _datum_tries(top: _Obj, bounded: bool) -> int:
    tries = top.get_int("datum_tries", 3)
    if tries < 1:
        raise InvalidArgument(f"{top.where('datum_tries')} must be >= 1, got {tries}")
    if bounded and tries > MAX_DATUM_TRIES:
        raise InvalidArgument(
            f"{top.where('datum_tries')} must be at most {MAX_DATUM_TRIES}, got {tries}"
        )
    return tries


def _output_branch(top: _Obj) -> str:
    branch = top.get_str("output_branch", "master") or "master"
    try:
        return validate_branch_name(branch)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{top.where('output_branch')}: {exc}") from exc


def _reprocess_spec(top: _Obj) -> str:
    value = top.get_str("reprocess_spec", "until_success") or "until_success"
    if value not in REPROCESS_SPECS:
        raise InvalidArgument(
            f"{top.where('reprocess_spec')} must be 'until_success' or 'every_job', got {value!r}"
        )
    return value


def _notes(top: _Obj, transform: Transform) -> tuple[str, ...]:
    notes = []
    for key in ("resource_limits", "resource_requests"):
        if isinstance(top.values.get(key), dict) and "disk" in top.values[key]:
            notes.append(
                f"{top.where(key)}.disk is not enforced (containers write only "
                "/pfs/out and /tmp, in the scratch directory)"
            )
    if transform.image is None and (top.has("resource_limits") or top.has("resource_requests")):
        notes.append("resource limits apply only to a pipeline with transform.image (a container)")
    return tuple(notes)


def _resources(top: _Obj, transform: Transform) -> Resources:
    """``resource_limits``, else ``resource_requests`` (a container's limits: haathi reserves
    nothing, so a request is the closest thing to a limit it can enforce)."""
    if transform.user is not None and not transform.user.strip():
        raise InvalidArgument(f"{top.where('transform')}.user must not be empty")
    key = "resource_limits" if top.has("resource_limits") else "resource_requests"
    if not top.has(key):
        return Resources()
    obj = _Obj(top.values[key], top.where(key), _RESOURCE_FIELDS)
    if obj.has("gpu"):
        raise InvalidArgument(f"{obj.where('gpu')} is not supported: haathi runs no GPU containers")
    cpu = memory = None
    if obj.has("cpu"):
        value = obj.values["cpu"]
        try:
            cpu = (
                float(value[:-1]) / 1000
                if isinstance(value, str) and value.endswith("m")
                else float(value)
            )
        except (TypeError, ValueError):
            cpu = -1.0
        if isinstance(value, bool) or not 0 < cpu <= 1024:
            raise InvalidArgument(
                f"{obj.where('cpu')} must be a number of CPUs above 0 "
                f'(e.g. 0.5, 2 or "500m"), got {value!r}'
            )
    if obj.has("memory"):
        memory = _quantity(obj.values["memory"], obj.where("memory"))
    return Resources(cpu, memory)


def _quantity(value: Any, where: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1G``, ``1000``) in bytes."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    found = _QUANTITY_RE.fullmatch(text) if isinstance(text, str) else None
    if found is None or float(found.group(1)) * _QUANTITY_UNITS[found.group(2)] < 4 << 20:
        raise InvalidArgument(
            f"{where} must be a memory size of at least 4Mi, like 512Mi or 1G, got {value!r}"
        )
    return int(float(found.group(1)) * _QUANTITY_UNITS[found.group(2)])


def _parse_input(doc: Any, path: str, pipeline: str | None) -> Input:
    node = _Obj(doc, path, _INPUT_FIELDS)
    kinds = [k for k in ("pfs", "cron", *_COMPOSITES) if node.has(k)]
    if not kinds:
        raise InvalidArgument(f"{path}: no input set (one of pfs, cron, cross, union, join, group)")
    if len(kinds) > 1:
        raise InvalidArgument(f"{path}: multiple input types set ({', '.join(kinds)})")
    kind = kinds[0]
    where = node.where(kind)
    if kind == "pfs":
        return _parse_pfs(_Obj(node.values[kind], where, _PFS_FIELDS))
    if kind == "cron":
        return _parse_cron(_Obj(node.values[kind], where, _CRON_FIELDS), pipeline)
    children = node.values[kind]
    if not isinstance(children, list):
        raise InvalidArgument(f"{where} must be a list of inputs, got {_type_name(children)}")
    parsed = tuple(_parse_input(c, f"{where}[{i}]", pipeline) for i, c in enumerate(children))
    return _CLASS_OF[kind](parsed)


def _parse_pfs(obj: _Obj) -> PfsInput:
    repo = obj.need_str("repo")
    name = obj.get_str("name")
    if not name and repo == "out":
        raise InvalidArgument(
            f"{obj.where('name')} is required for a repo named 'out' (/pfs/out is the output)"
        )
    return PfsInput(
        name=name or repo,
        repo=repo,
        branch=obj.get_str("branch", "master") or "master",
        glob=obj.need_str("glob", " (e.g. '/*')"),
        join_on=obj.get_str("join_on"),
        outer_join=obj.get_bool("outer_join"),
        group_by=obj.get_str("group_by"),
        lazy=obj.get_bool("lazy"),
        empty_files=obj.get_bool("empty_files"),
    )


def _parse_cron(obj: _Obj, pipeline: str | None) -> CronInput:
    name = obj.need_str("name")
    repo = obj.get_str("repo")
    if not repo:
        if pipeline is None:
            raise InvalidArgument(f"{obj.where('repo')} is required outside a pipeline spec")
        repo = f"{pipeline}_{name}"
    return CronInput(
        name=name,
        repo=repo,
        spec=obj.need_str("spec", " (e.g. '@every 60s')"),
        overwrite=obj.get_bool("overwrite"),
        start=obj.get_str("start"),
    )


# --------------------------------------------------------------------------- validation


def validate_input(inp: Input, *, bounded: bool = True) -> None:
    """Check an input tree as Pachyderm's ``validateInput`` does (plus haathi's own rules;
    ``bounded``: and the bounds of new specs, such as a cron interval of at least 1s)."""
    _validate_node(inp, "input", None, bounded)
    _validate_names(inp, set(), "input")


def _validate_node(inp: Input, path: str, keyed_by: str | None, bounded: bool) -> None:
    """``keyed_by`` is "join" or "group" when an ancestor needs a key from every leaf."""
    if isinstance(inp, PfsInput):
        _validate_pfs(inp, f"{path}.pfs", keyed_by)
    elif isinstance(inp, CronInput):
        _validate_cron(inp, f"{path}.cron", keyed_by, bounded)
    else:
        kind = _KIND_OF[type(inp)]
        if not inp.inputs:
            raise InvalidArgument(f"{path}.{kind} needs at least one input")
        if kind in ("join", "group"):
            keyed_by = kind
        for i, child in enumerate(inp.inputs):
            _validate_node(child, f"{path}.{kind}[{i}]", keyed_by, bounded)


def _validate_pfs(inp: PfsInput, path: str, keyed_by: str | None) -> None:
    _check(validate_repo_name, inp.repo, f"{path}.repo")
    _check(validate_branch_name, inp.branch, f"{path}.branch")
    _validate_input_name(inp.name, f"{path}.name")
    if not inp.glob:
        raise InvalidArgument(f"{path}.glob is required (e.g. '/*')")
    _check(compile_input_glob, inp.glob, f"{path}.glob")
    key = {"join": "join_on", "group": "group_by"}.get(keyed_by or "")
    if key is not None and not getattr(inp, key):
        raise InvalidArgument(f"{path}.{key} is required: every input of a {keyed_by} needs it")


def _validate_cron(inp: CronInput, path: str, keyed_by: str | None, bounded: bool) -> None:
    _validate_input_name(inp.name, f"{path}.name")
    _check(validate_repo_name, inp.repo, f"{path}.repo")
    _check(lambda spec: parse_cron(spec, bounded=bounded), inp.spec, f"{path}.spec")
    if inp.start is not None:
        try:
            datetime.fromisoformat(inp.start)
        except ValueError as exc:
            raise InvalidArgument(f"{path}.start: invalid RFC 3339 time {inp.start!r}") from exc
    if keyed_by is not None:
        raise InvalidArgument(f"{path}: a cron input cannot be part of a {keyed_by}")


def _check(fn: Any, value: Any, where: str) -> None:
    try:
        fn(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from exc


def _validate_input_name(name: str, where: str) -> None:
    if not name:
        raise InvalidArgument(f"{where} is required")
    if name in ("out", ".env"):
        raise InvalidArgument(f"{where}: an input cannot be named {name!r}")
    if not _INPUT_NAME_RE.fullmatch(name):
        raise InvalidArgument(f"{where} {name!r} is invalid: use letters, digits, '_' and '-'")


def _validate_names(inp: Input, names: set[str], path: str) -> None:
    """Names are unique among crossed, joined and grouped inputs; a union may repeat them."""
    if isinstance(inp, PfsInput | CronInput):
        if inp.name in names:
            kind = "pfs" if isinstance(inp, PfsInput) else "cron"
            raise InvalidArgument(
                f"{path}.{kind}.name {inp.name!r} is used more than once (set a distinct 'name')"
            )
        names.add(inp.name)
        return
    kind = _KIND_OF[type(inp)]
    if kind != "union":
        for i, child in enumerate(inp.inputs):
            _validate_names(child, names, f"{path}.{kind}[{i}]")
        return
    seen: set[str] = set()
    for i, child in enumerate(inp.inputs):
        branch_names = set(names)
        _validate_names(child, branch_names, f"{path}.union[{i}]")
        seen |= branch_names
    names |= seen
