"""``list datum -f spec``: the datums an input has now, computed without creating anything."""

from __future__ import annotations

import dataclasses
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.info import DatumInfo, DatumState
from haathi.pfs.branches import branch_head
from haathi.pfs.commits import find_commit
from haathi.pfs.repos import repo_id_of
from haathi.pps.context import PpsContext
from haathi.pps.datums import form_datums
from haathi.pps.input_spec import CronInput, parse_input, validate_input, walk_inputs
from haathi.pps.inputs import GlobIndex, InputCommit, glob_fn
from haathi.pps.spec import pipeline_project


def preview_datums(ctx: PpsContext, doc: dict[str, Any]) -> list[DatumInfo]:
    """Datums of ``doc``'s input (a pipeline spec, or ``{"input": ...}``, or a bare input; its
    repos are in ``pipeline.project``, else the default project)."""
    if not isinstance(doc, dict):
        raise InvalidArgument("list datum -f needs a pipeline spec or an input object")
    raw = doc.get("input", doc) if "input" in doc or "pipeline" in doc else doc
    if not isinstance(raw, dict):
        raise InvalidArgument("the spec's input must be an object")
    inp = parse_input(raw, project=pipeline_project(doc))
    validate_input(inp)
    index = GlobIndex({})
    with ctx.pfs.db.read() as conn:
        for leaf in walk_inputs(inp):
            branch = "master" if isinstance(leaf, CronInput) else leaf.branch
            rid = repo_id_of(conn, leaf.repo)
            head = branch_head(conn, rid, branch)[1]
            c = find_commit(conn, rid, leaf.repo, head) if head else None
            if c is not None:
                index.commits[(leaf.repo, branch)] = InputCommit(leaf.repo, branch, c.id, c.root)
    return [
        DatumInfo(
            job="",
            id=d.id,
            state=DatumState.STARTING,
            hash="",
            attempts=0,
            inputs=tuple(dataclasses.asdict(i) for i in d.inputs),
        )
        for d in form_datums(inp, glob_fn(ctx.pfs, index))
    ]
