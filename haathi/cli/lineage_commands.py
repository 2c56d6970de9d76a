"""``haathi lineage`` and ``haathi draw lineage``: where files came from, and what came of
them."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.tree import Tree

from haathi.cli import render
from haathi.cli.main import OutputOpt, app, client
from haathi.cli.pps_commands import draw_app
from haathi.cli.render import Output
from haathi.models.lineage import LineageGraph, LineageNode

Downstream = Annotated[
    bool,
    typer.Option("--downstream", "-d", help="the files derived from it, instead of its sources"),
]
At = Annotated[
    str | None,
    typer.Option("--at", help="downstream: look in this commit set instead of at the heads"),
]


class GraphFormat(str, Enum):
    dot = "dot"
    mermaid = "mermaid"
    json = "json"


@app.command("lineage")
def lineage(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit:/path (a dir or glob ok)")],
    downstream: Downstream = False,
    at: At = None,
    output: OutputOpt = Output.table,
) -> None:
    """Where a file came from: datum, job, spec version and input files, down to user
    commits (or, with --downstream, every file derived from it)."""
    roots = client().lineage(target, downstream=downstream, at=at)
    if output == Output.json:
        render.emit_json(roots)
        return
    for root in roots:
        tree = Tree(_label(root))
        _grow(tree, root, downstream, set())
        render.out.print(tree)


@draw_app.command("lineage")
def draw_lineage(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit:/path (a dir or glob ok)")],
    downstream: Downstream = False,
    at: At = None,
    fmt: Annotated[GraphFormat, typer.Option("--format", help="dot, mermaid or json")] = (
        GraphFormat.dot
    ),
) -> None:
    """Draw the lineage graph (data flows from inputs to outputs)."""
    graph = client().lineage_graph(target, downstream=downstream, at=at)
    if fmt == GraphFormat.json:
        render.emit_json(graph)
    else:
        render.out.print(_dot(graph) if fmt == GraphFormat.dot else _mermaid(graph), markup=False)


def _short(n: LineageNode) -> str:
    return f"{n.repo}@{n.commit[:8]}:{n.path}"


def _label(n: LineageNode) -> str:
    text = f"[bold]{n.repo}[/]@{n.commit[:8]}:{n.path}  "
    text += f"[dim]{n.hash[:12]} {render.size(n.size_bytes)}"
    if n.datum is not None:
        text += f"  datum {n.datum[:12]}  job {n.job or '?'}  spec v{n.spec_version or '?'}"
    else:
        text += "  user commit"
    return text + "[/]"


def _grow(tree: Tree, n: LineageNode, downstream: bool, seen: set[str]) -> None:
    for child in n.derived if downstream else n.inputs:
        if child.ref in seen:  # a diamond: shown once in full
            tree.add(_label(child) + " [dim](see above)[/]")
            continue
        seen.add(child.ref)
        _grow(tree.add(_label(child)), child, downstream, seen)


def _dot(g: LineageGraph) -> str:
    ids = {n.ref: f"n{i}" for i, n in enumerate(g.nodes)}
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for n in g.nodes:
        shape = ', style="rounded,filled", fillcolor="#e8f0fe"' if n.datum is None else ""
        label = _short(n).replace('"', '\\"')
        lines.append(f'  {ids[n.ref]} [label="{label}"{shape}];')
    lines += [f"  {ids[a]} -> {ids[b]};" for a, b in g.edges]
    return "\n".join([*lines, "}"])


def _mermaid(g: LineageGraph) -> str:
    ids = {n.ref: f"n{i}" for i, n in enumerate(g.nodes)}
    lines = ["graph LR"]
    for n in g.nodes:
        label = _short(n).replace('"', "#quot;")
        lines.append(f'  {ids[n.ref]}["{label}"]')
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in g.edges]
    return "\n".join(lines)
