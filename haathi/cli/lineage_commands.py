"""``haathi lineage``, ``haathi draw lineage`` and ``haathi reproduce``: where files came
from, what came of them, and whether the recorded work reproduces."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree
from typer.core import TyperGroup

from haathi.cli import render
from haathi.cli.main import OutputOpt, ProjectOpt, app, client
from haathi.cli.pps_commands import draw_app
from haathi.cli.render import Output
from haathi.models.lineage import LineageGraph, LineageNode
from haathi.models.reproduce import ReproduceReport

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
    project: ProjectOpt = None,
) -> None:
    """Where a file came from: datum, job, spec version and input files, down to user
    commits (or, with --downstream, every file derived from it)."""
    roots = client(project).lineage(target, downstream=downstream, at=at)
    if output == Output.json:
        render.emit_json(roots)
        return
    for root in roots:
        tree = Tree(_label(root))
        _grow(tree, root, downstream, set())
        render.out.print(tree, soft_wrap=False)


@draw_app.command("lineage")
def draw_lineage(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit:/path (a dir or glob ok)")],
    downstream: Downstream = False,
    at: At = None,
    fmt: Annotated[GraphFormat, typer.Option("--format", help="dot, mermaid or json")] = (
        GraphFormat.dot
    ),
    project: ProjectOpt = None,
) -> None:
    """Draw the lineage graph (data flows from inputs to outputs)."""
    graph = client(project).lineage_graph(target, downstream=downstream, at=at)
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
        if n.image:
            text += f"  image {n.image}"
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


# reproduce ---------------------------------------------------------------------------------


class _ReproduceGroup(TyperGroup):
    """``reproduce file TARGET`` and ``reproduce commit REPO@ID``; ``reproduce TARGET`` is
    short for ``reproduce file TARGET``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["file", *args]
        return super().parse_args(ctx, args)


reproduce_app = typer.Typer(
    cls=_ReproduceGroup,
    no_args_is_help=True,
    help="Re-run recorded datums from their recorded input commits and spec version, in a "
    "scratch area, and check that their output files match the stored ones (by hash). "
    "`haathi reproduce TARGET` is short for `haathi reproduce file TARGET`. Exits 1 when "
    "anything differs.",
)
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("file")
def reproduce_file(
    target: Annotated[
        str, typer.Argument(help="repo@branch-or-commit:/path of a pipeline output (dir, glob ok)")
    ],
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Re-run the datums that wrote these files and compare every file they wrote."""
    _show(client(project).reproduce(target), output)


@reproduce_app.command("commit")
def reproduce_commit(
    commit: Annotated[str, typer.Argument(help="repo@id (or repo@branch) of a pipeline output")],
    sample: Annotated[
        int | None,
        typer.Option("--sample", "-n", min=1, help="re-run only this many datums, at random"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="with --sample: pick the same datums each time")
    ] = None,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Re-run every datum that wrote files in an output commit (or --sample N of them)."""
    _show(client(project).reproduce_commit(commit, sample=sample, seed=seed), output)


def _show(report: ReproduceReport, output: Output) -> None:
    if output == Output.json:
        render.emit_json(report)
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


_MARK = {
    "match": "[green]✓[/]",
    "differs": "[red]✗[/]",
    "missing": "[red]✗[/]",
    "extra": "[red]✗[/]",
}


def _print_report(report: ReproduceReport) -> None:
    out = render.out
    files = report.files
    if not report.datums:
        out.print(f"nothing to reproduce: no datum wrote files in {report.commit}", markup=False)
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("", "PATH", "STORED", "REPRODUCED", "DATUM", "JOB", "SPEC"):
        t.add_column(col)
    for d in report.datums:
        for f in d.files:
            note = {"missing": "not written", "extra": "not stored"}.get(f.status)
            t.add_row(
                _MARK[f.status],
                escape(f.path),
                _hash(f.stored_hash, note),
                _hash(f.reproduced_hash, note),
                d.datum[:12],
                escape(d.job),
                f"v{d.spec_version}",
            )
        if not d.files:
            t.add_row(
                "[green]✓[/]" if d.ok else "[red]✗[/]",
                "[dim](no files)[/]",
                "",
                "",
                d.datum[:12],
                escape(d.job),
                f"v{d.spec_version}",
            )
    out.print(t)
    for d in report.failed_datums:
        out.print(
            f"\n[red]datum {d.datum[:12]} ({escape(d.job)}): {d.state}[/]"
            f" — {escape(d.reason or 'no reason recorded')}"
        )
        if d.log_tail:
            out.print(escape(d.log_tail), style="dim")
    for d in report.datums:
        if d.env_changes:
            out.print(
                f"[yellow]datum {d.datum[:12]}: the environment differs from the recorded "
                f"run: {escape('; '.join(map(str, d.env_changes)))}[/]"
            )
    if report.sampled:
        seed = "" if report.seed is None else f" (seed {report.seed})"
        out.print(
            f"\n[dim]a random sample of {len(report.datums)} of {report.datums_total} "
            f"datums{seed}[/]"
        )
    bad = report.mismatches
    gap = "" if report.sampled else "\n"
    if report.ok:
        out.print(
            f"{gap}[green]✓ all {_n(len(files), 'file')} of "
            f"{_n(len(report.datums), 'datum')} reproduce[/]"
        )
    else:
        listed = ", ".join(sorted({f.path for _, f in bad}))
        out.print(
            f"{gap}[red]✗ {len(bad)} of {_n(len(files), 'file')} do not reproduce:[/] "
            f"{escape(listed)}"
        )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _hash(h: str | None, note: str | None) -> str:
    return h[:12] if h is not None else f"[dim]{note or '-'}[/]"
