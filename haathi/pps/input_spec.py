"""The ``input`` of a pipeline spec: its tree of PFS, cron, cross, union, join and group
inputs, read from a spec object, validated as Pachyderm's ``validateInput`` does (plus haathi's
own rules), and written back in Pachyderm's JSON shape.

An input's ``repo`` is the repo's key (``project/name``): ``pfs.project`` and ``cron.project``
default to the pipeline's project. The input's name still defaults to the bare repo name
(``/pfs/images`` for ``staging/images``), as in Pachyderm.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.glob import compile_input_glob
from haathi.models.ids import (
    DEFAULT_PROJECT,
    repo_key,
    split_key,
    validate_branch_name,
    validate_project_name,
    validate_repo_key,
)
from haathi.models.schedule import parse_cron
from haathi.models.text import check_texts
from haathi.models.trigger import Trigger
from haathi.pps.spec_fields import SpecObject, type_name

_INPUT_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_COMPOSITES = ("cross", "union", "join", "group")
_INPUT_FIELDS = frozenset({"pfs", "cron", *_COMPOSITES})
_PFS_FIELDS = frozenset(
    {"name", "repo", "branch", "glob", "join_on", "outer_join", "group_by", "lazy", "empty_files",
     "s3", "trigger", "project"}
)  # fmt: skip
_CRON_FIELDS = frozenset({"name", "repo", "spec", "overwrite", "start", "project"})


@dataclass(frozen=True)
class PfsInput:
    """A PFS input: one datum per match of ``glob`` in the head of ``repo@branch``.

    ``lazy`` is accepted but behaves eagerly: haathi materializes the datum's files before the
    user code starts. ``empty_files`` exposes the files as empty placeholders. ``s3``: the
    input is not under ``/pfs`` but a bucket of the job's S3 gateway (named ``name``), read
    through ``$S3_ENDPOINT``; its glob is ``/``. ``trigger``: ``branch`` follows another branch
    of the repo (Pachyderm's branch trigger, set on it when the pipeline is created or
    updated), so a job runs only when the trigger fires.
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
    s3: bool = False
    trigger: Trigger | None = None


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


def walk_inputs(inp: Input) -> Iterator[PfsInput | CronInput]:
    """The leaves of an input tree, depth first, in spec order."""
    if isinstance(inp, PfsInput | CronInput):
        yield inp
        return
    for child in inp.inputs:
        yield from walk_inputs(child)


def _repo_fields(key: str, project: str) -> dict[str, Any]:
    """``repo`` (and ``project``, unless it and the pipeline's are both the default) of a
    leaf in a pipeline of ``project``."""
    own, name = split_key(key)
    if own == DEFAULT_PROJECT and project == DEFAULT_PROJECT:
        return {"repo": name}
    return {"repo": name, "project": own}


def input_to_dict(inp: Input, project: str = DEFAULT_PROJECT) -> dict[str, Any]:
    """An input in Pachyderm's snake_case JSON shape (defaults for flags left out), in a
    pipeline of ``project``."""
    if isinstance(inp, PfsInput):
        pfs: dict[str, Any] = {
            "name": inp.name,
            **_repo_fields(inp.repo, project),
            "branch": inp.branch,
            "glob": inp.glob,
        }
        for key in ("join_on", "group_by"):
            if getattr(inp, key) is not None:
                pfs[key] = getattr(inp, key)
        for key in ("outer_join", "lazy", "empty_files", "s3"):
            if getattr(inp, key):
                pfs[key] = True
        if inp.trigger is not None:
            pfs["trigger"] = inp.trigger.to_dict()
        return {"pfs": pfs}
    if isinstance(inp, CronInput):
        cron: dict[str, Any] = {
            "name": inp.name,
            **_repo_fields(inp.repo, project),
            "spec": inp.spec,
        }
        if inp.overwrite:
            cron["overwrite"] = True
        if inp.start is not None:
            cron["start"] = inp.start
        return {"cron": cron}
    return {_KIND_OF[type(inp)]: [input_to_dict(child, project) for child in inp.inputs]}


def parse_input(
    doc: dict[str, Any], pipeline: str | None = None, project: str = DEFAULT_PROJECT
) -> Input:
    """Parse and validate a bare input object (as under a spec's ``input``).

    A cron input's repo defaults to ``<pipeline>_<name>``, so it must be given when
    ``pipeline`` (a key) is None; a leaf's project defaults to the pipeline's, else
    ``project``.
    """
    check_texts(doc, "input")
    inp = parse_input_at(doc, "input", pipeline, project)
    validate_input(inp)
    return inp


def parse_input_at(
    doc: Any, path: str, pipeline: str | None, project: str = DEFAULT_PROJECT
) -> Input:
    """The input object ``doc``, found at ``path`` (errors name it); not yet validated.
    ``pipeline`` is the pipeline's key (its project is the leaves' default), else the leaves
    default to ``project``."""
    if pipeline is not None:
        project = split_key(pipeline)[0]
    return _parse_at(doc, path, pipeline, project, _trigger_branches(doc, pipeline))


def _trigger_branches(doc: Any, pipeline: str | None) -> dict[int, str]:
    """The branch of each PFS input (by the ``id`` of its object in ``doc``) with a trigger
    and no branch: Pachyderm's ``<pipeline>-trigger-<n>`` (the pipeline's bare name), n
    counting from 1 per repo, in the order Pachyderm visits inputs (``setInputDefaults``: each
    composite's inputs sorted by the name of their first PFS input, as given)."""
    if pipeline is None:
        return {}
    project, bare = split_key(pipeline)
    names: dict[int, str] = {}
    counts: dict[tuple[str, str], int] = {}

    def first_name(node: Any) -> str:
        if not isinstance(node, dict):
            return ""
        if isinstance(node.get("pfs"), dict):
            name = node["pfs"].get("name")
            return name if isinstance(name, str) else ""
        for kind in _COMPOSITES:
            children = node.get(kind)
            if isinstance(children, list) and children:
                return first_name(children[0])
        return ""

    def visit(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for kind in _COMPOSITES:
            children = node.get(kind)
            if isinstance(children, list):
                for child in sorted(children, key=first_name):
                    visit(child)
        pfs = node.get("pfs")
        if isinstance(pfs, dict) and pfs.get("trigger") is not None and not pfs.get("branch"):
            repo = pfs.get("repo")
            if isinstance(repo, str):
                key = (str(pfs.get("project") or project), repo)
                counts[key] = counts.get(key, 0) + 1
                names[id(pfs)] = f"{bare}-trigger-{counts[key]}"

    visit(doc)
    return names


def _parse_at(
    doc: Any, path: str, pipeline: str | None, project: str, trigger_branches: dict[int, str]
) -> Input:
    node = SpecObject(doc, path, _INPUT_FIELDS)
    kinds = [k for k in ("pfs", "cron", *_COMPOSITES) if node.has(k)]
    if not kinds:
        raise InvalidArgument(f"{path}: no input set (one of pfs, cron, cross, union, join, group)")
    if len(kinds) > 1:
        raise InvalidArgument(f"{path}: multiple input types set ({', '.join(kinds)})")
    kind = kinds[0]
    where = node.where(kind)
    if kind == "pfs":
        obj = SpecObject(node.values[kind], where, _PFS_FIELDS)
        return _parse_pfs(obj, project, trigger_branches.get(id(node.values[kind])))
    if kind == "cron":
        return _parse_cron(SpecObject(node.values[kind], where, _CRON_FIELDS), pipeline, project)
    children = node.values[kind]
    if not isinstance(children, list):
        raise InvalidArgument(f"{where} must be a list of inputs, got {type_name(children)}")
    parsed = tuple(
        _parse_at(c, f"{where}[{i}]", pipeline, project, trigger_branches)
        for i, c in enumerate(children)
    )
    return _CLASS_OF[kind](parsed)


def _key(obj: SpecObject, repo: str, project: str) -> str:
    """The key of the leaf's ``repo`` in its ``project`` (default: ``project``)."""
    own = obj.get_str("project") or project
    try:
        validate_project_name(own)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{obj.where('project')}: {exc}") from exc
    try:
        return repo_key(own, repo)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{obj.where('repo')}: {exc}") from exc


def _parse_pfs(obj: SpecObject, project: str, trigger_branch: str | None) -> PfsInput:
    """``trigger_branch``: its branch if it has a trigger and no branch (None outside a
    pipeline spec: then it must name one)."""
    repo = obj.need_str("repo")
    name = obj.get_str("name")
    if not name and repo == "out":
        raise InvalidArgument(
            f"{obj.where('name')} is required for a repo named 'out' (/pfs/out is the output)"
        )
    branch = obj.get_str("branch")
    trigger = None
    if obj.has("trigger"):
        trigger = Trigger.from_dict(obj.values["trigger"], obj.where("trigger"))
        if not branch:
            if trigger_branch is None:
                raise InvalidArgument(
                    f"{obj.where('branch')} is required with a trigger outside a pipeline spec"
                )
            branch = trigger_branch
            if not trigger.branch:  # as Pachyderm's setInputDefaults
                trigger = dataclasses.replace(trigger, branch="master")
    return PfsInput(
        name=name or repo,
        repo=_key(obj, repo, project),
        branch=branch or "master",
        glob=obj.get_str("glob", "") or "",  # required: validate_input says so
        join_on=obj.get_str("join_on"),
        outer_join=obj.get_bool("outer_join"),
        group_by=obj.get_str("group_by"),
        lazy=obj.get_bool("lazy"),
        empty_files=obj.get_bool("empty_files"),
        s3=obj.get_bool("s3"),
        trigger=trigger,
    )


def _parse_cron(obj: SpecObject, pipeline: str | None, project: str) -> CronInput:
    name = obj.need_str("name")
    repo = obj.get_str("repo")
    if not repo:
        if pipeline is None:
            raise InvalidArgument(f"{obj.where('repo')} is required outside a pipeline spec")
        repo = f"{split_key(pipeline)[1]}_{name}"
    return CronInput(
        name=name,
        repo=_key(obj, repo, project),
        spec=obj.need_str("spec", " (e.g. '@every 60s')"),
        overwrite=obj.get_bool("overwrite"),
        start=obj.get_str("start"),
    )


def validate_input(inp: Input, *, bounded: bool = True, refusals: list[str] | None = None) -> None:
    """Check an input tree as Pachyderm's ``validateInput`` does (plus haathi's own rules;
    ``bounded``: and the bounds of new specs, such as a cron interval of at least 1s).

    ``refusals``: a spec only checked (``validate pipeline``): what Pachyderm's server refuses
    and pachctl's client-side check lets pass (an input without a glob) is added to it instead
    of raised.
    """
    _validate_node(inp, "input", None, bounded, refusals)
    _validate_names(inp, set(), "input")


def _validate_node(
    inp: Input, path: str, keyed_by: str | None, bounded: bool, refusals: list[str] | None
) -> None:
    """``keyed_by`` is "join" or "group" when an ancestor needs a key from every leaf."""
    if isinstance(inp, PfsInput):
        _validate_pfs(inp, f"{path}.pfs", keyed_by, refusals, bounded)
    elif isinstance(inp, CronInput):
        _validate_cron(inp, f"{path}.cron", keyed_by, bounded)
    else:
        kind = _KIND_OF[type(inp)]
        if not inp.inputs:
            raise InvalidArgument(f"{path}.{kind} needs at least one input")
        if kind != "cross" and any(isinstance(i, PfsInput) and i.s3 for i in walk_inputs(inp)):
            raise InvalidArgument(
                f"{path}.{kind}: S3 inputs in {kind} expressions are not supported"
            )
        if kind in ("join", "group"):
            keyed_by = kind
        for i, child in enumerate(inp.inputs):
            _validate_node(child, f"{path}.{kind}[{i}]", keyed_by, bounded, refusals)


def _validate_pfs(
    inp: PfsInput, path: str, keyed_by: str | None, refusals: list[str] | None, bounded: bool
) -> None:
    _check(validate_repo_key, inp.repo, f"{path}.repo")
    _check(validate_branch_name, inp.branch, f"{path}.branch")
    if inp.trigger is not None:
        _check(lambda t: t.check(bounded=bounded), inp.trigger, f"{path}.trigger")
        if inp.trigger.branch == inp.branch:
            raise InvalidArgument(f"{path}.trigger: triggers cannot form a loop")
    _validate_input_name(inp.name, f"{path}.name")
    if inp.s3:
        _validate_s3(inp, path)
    if not inp.glob:
        missing = f"{path}.glob is required (e.g. '/*')"
        if refusals is None:
            raise InvalidArgument(missing)
        refusals.append(missing)
    else:
        _check(compile_input_glob, inp.glob, f"{path}.glob")
    key = {"join": "join_on", "group": "group_by"}.get(keyed_by or "")
    if key is not None and not getattr(inp, key):
        raise InvalidArgument(f"{path}.{key} is required: every input of a {keyed_by} needs it")


def _validate_s3(inp: PfsInput, path: str) -> None:
    """Pachyderm's rules for an input read through the job's S3 gateway."""
    if inp.glob != "/":
        raise InvalidArgument(
            f"{path}: inputs that set 's3' to 'true' must also set 'glob' to '/', as the S3 "
            "gateway is only able to expose data at the commit level"
        )
    for flag in ("lazy", "empty_files"):
        if getattr(inp, flag):
            raise InvalidArgument(
                f"{path}: input cannot specify both 's3' and '{flag}', as 's3' requires input "
                "data to be accessed via the S3 gateway rather than the file system"
            )


def _validate_cron(inp: CronInput, path: str, keyed_by: str | None, bounded: bool) -> None:
    _validate_input_name(inp.name, f"{path}.name")
    _check(validate_repo_key, inp.repo, f"{path}.repo")
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
