"""The ``input`` of a pipeline spec: its tree of PFS, cron, cross, union, join and group
inputs, read from a spec object, validated as Pachyderm's ``validateInput`` does (plus haathi's
own rules), and written back in Pachyderm's JSON shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.glob import compile_input_glob
from haathi.models.ids import validate_branch_name, validate_repo_name
from haathi.models.text import check_texts
from haathi.pps.cron import parse_cron
from haathi.pps.spec_fields import SpecObject, type_name

_INPUT_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_COMPOSITES = ("cross", "union", "join", "group")
_INPUT_FIELDS = frozenset({"pfs", "cron", *_COMPOSITES})
_PFS_FIELDS = frozenset(
    {"name", "repo", "branch", "glob", "join_on", "outer_join", "group_by", "lazy", "empty_files"}
)
_CRON_FIELDS = frozenset({"name", "repo", "spec", "overwrite", "start"})


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


def parse_input(doc: dict[str, Any], pipeline: str | None = None) -> Input:
    """Parse and validate a bare input object (as under a spec's ``input``).

    A cron input's repo defaults to ``<pipeline>_<name>``, so it must be given when
    ``pipeline`` is None.
    """
    check_texts(doc, "input")
    inp = parse_input_at(doc, "input", pipeline)
    validate_input(inp)
    return inp


def parse_input_at(doc: Any, path: str, pipeline: str | None) -> Input:
    """The input object ``doc``, found at ``path`` (errors name it); not yet validated."""
    node = SpecObject(doc, path, _INPUT_FIELDS)
    kinds = [k for k in ("pfs", "cron", *_COMPOSITES) if node.has(k)]
    if not kinds:
        raise InvalidArgument(f"{path}: no input set (one of pfs, cron, cross, union, join, group)")
    if len(kinds) > 1:
        raise InvalidArgument(f"{path}: multiple input types set ({', '.join(kinds)})")
    kind = kinds[0]
    where = node.where(kind)
    if kind == "pfs":
        return _parse_pfs(SpecObject(node.values[kind], where, _PFS_FIELDS))
    if kind == "cron":
        return _parse_cron(SpecObject(node.values[kind], where, _CRON_FIELDS), pipeline)
    children = node.values[kind]
    if not isinstance(children, list):
        raise InvalidArgument(f"{where} must be a list of inputs, got {type_name(children)}")
    parsed = tuple(parse_input_at(c, f"{where}[{i}]", pipeline) for i, c in enumerate(children))
    return _CLASS_OF[kind](parsed)


def _parse_pfs(obj: SpecObject) -> PfsInput:
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


def _parse_cron(obj: SpecObject, pipeline: str | None) -> CronInput:
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
