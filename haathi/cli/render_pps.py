"""Rendering pipelines, jobs, datums, logs and the pipeline DAG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from haathi.cli.render import _table, ago, bare, err, out
from haathi.models.info import DatumInfo, JobInfo, JobProgress, LogLine, PipelineInfo


def _short(job_id: str) -> str:
    return job_id[:12]


def _duration(j: JobInfo) -> str:
    if j.started is None or j.finished is None:
        return "-"
    return f"{(j.finished - j.started).total_seconds():.1f}s"


def _progress(j: JobInfo) -> str:
    return (
        f"{j.data_processed} + {j.data_skipped} skipped / {j.data_total}"
        + (f", {j.data_failed} failed" if j.data_failed else "")
        + (f", {j.data_recovered} recovered" if j.data_recovered else "")
    )


def pipelines(items: Sequence[PipelineInfo]) -> None:
    t = _table("PROJECT", "NAME", "VERSION", "INPUT", "CREATED", "STATE / LAST JOB")
    for p in items:
        t.add_row(
            p.project,
            bare(p.name),
            str(p.version),
            ", ".join(p.inputs) or (p.daemon or {}).get("kind", ""),
            ago(p.created),
            f"{_state(p)} / {(p.last_job or '-').lower()}",
        )
    out.print(t)


def _state(p: PipelineInfo) -> str:
    """``running``; a spout's or service's with where it is published or why it is in its
    state: ``running (127.0.0.1:31800)``, ``crashing (port 31800 is in use ...)``."""
    extra = (p.daemon or {}).get("address") or p.reason
    return escape(f"{p.state.lower()} ({extra})" if extra else p.state.lower())


def pipeline(p: PipelineInfo) -> None:
    import json

    out.print(f"Name: {p.name}\nVersion: {p.version}\nState: {p.state}")
    if p.reason:
        out.print(f"Reason: {p.reason}", markup=False)
    if p.daemon is not None:
        d = p.daemon
        out.print(f"Runs in: {d.get('runner') or '-'} (restarts: {d.get('restarts', 0)})")
        if d.get("address"):
            out.print(f"Service: {d['address']}")
    out.print(f"Created: {ago(p.created)}\nUpdated: {ago(p.updated)}")
    out.print(f"Inputs: {', '.join(p.inputs)}\nOutput: {p.name}@{p.output_branch}")
    out.print(f"Last job: {p.last_job or '-'}")
    for n in p.notes:
        out.print(f"Note: {n}", markup=False)
    out.print("Spec:\n" + json.dumps(p.spec, indent=2), markup=False)


def daemon_started(spec: dict[str, Any]) -> None:
    """Say where a spout or service runs (on stderr), for the spec just created."""
    kind = "spout" if "spout" in spec else "service" if "service" in spec else None
    if kind is not None:
        err.print(
            f"pipeline {spec['pipeline']['name']}: its {kind} runs in a worker (`haathi run "
            "worker` or `haathi serve`); `haathi list pipeline` shows its state",
            markup=False,
        )


def notes(items: Sequence[str]) -> None:
    for n in items:
        err.print(f"note: {n}", markup=False)


def jobs(items: Sequence[JobInfo]) -> None:
    t = _table("PROJECT", "PIPELINE", "ID", "STARTED", "DURATION", "PROGRESS", "STATE")
    for j in items:
        t.add_row(
            j.project,
            bare(j.pipeline),
            j.id,
            ago(j.started),
            _duration(j),
            _progress(j),
            j.state.value,
        )
    out.print(t)


def job(j: JobInfo) -> None:
    out.print(f"Job: {j.pipeline}@{j.id}\nState: {j.state.value}")
    if j.reason:
        out.print(f"Reason: {j.reason}", markup=False)
    out.print(f"Pipeline version: {j.version}\nInputs: {', '.join(j.inputs) or '-'}")
    out.print(f"Output commit: {j.output_commit}")
    out.print(
        f"Datums: {j.data_total} total, {j.data_processed} processed, {j.data_skipped} "
        f"skipped, {j.data_failed} failed, {j.data_recovered} recovered"
    )
    out.print(f"Created: {ago(j.created)}\nStarted: {ago(j.started)}\nDuration: {_duration(j)}")
    if j.egress:
        out.print(f"Egress: {_egress(j.egress)}", markup=False)
    if j.context:
        c = j.context
        note = f": {c['sandbox_note']}" if c.get("sandbox_note") else ""
        if c.get("runtime"):
            out.print(f"Executor: {c.get('executor')} (runtime {c['runtime']}{note})")
            out.print(
                f"Image: {c.get('image')} {c.get('image_digest')} (image ID {c.get('image_id')})"
            )
        else:
            out.print(f"Executor: {c.get('executor')} (sandbox {c.get('sandbox')}{note})")


def _egress(e: dict[str, Any]) -> str:
    """``target: STATE, what it wrote (N attempts)``."""
    if "rows" in e:
        wrote = ", ".join(f"{t}: {n} rows" for t, n in e["rows"].items()) or "no tables"
    else:
        wrote = f"{e.get('files', 0)} files, {e.get('bytes', 0)} bytes"
    tries = e.get("attempts", 0)
    return f"{e['target']}: {e['state']}, {wrote} ({tries} attempt{'s' * (tries != 1)})"


def datums(items: Sequence[DatumInfo]) -> None:
    t = _table("ID", "FILES", "STATUS", "TIME")
    for d in items:
        files = ", ".join(f"{i['repo']}@{i['commit'][:8]}:{i['path']}" for i in d.inputs)
        took = f"{d.duration_s:.2f}s" if d.duration_s is not None else "-"
        t.add_row(d.id[:16], files, d.state.value, took)
    out.print(t)


def datum(d: DatumInfo) -> None:
    out.print(f"Datum: {d.id}\nJob: {d.job}\nState: {d.state.value}\nAttempts: {d.attempts}")
    if d.reason:
        out.print(f"Reason: {d.reason}", markup=False)
    if d.exit_code is not None:
        out.print(f"Exit code: {d.exit_code}")
    if d.duration_s is not None:
        out.print(f"Time: {d.duration_s:.3f}s")
    out.print(f"Hash: {d.hash}\nInputs:")
    for i in d.inputs:
        out.print(
            f"  {i['name']}: {i['repo']}@{i['commit']}:{i['path']} (hash {i['hash'][:16]})",
            markup=False,
        )
    if d.outputs:
        out.print("Outputs:")
        for o in d.outputs:
            out.print(f"  {o['path']} (hash {o['hash'][:16]}, {o['size_bytes']} B)", markup=False)
    if d.env:
        out.print("Env:")
        for k, v in sorted(d.env.items()):
            out.print(f"  {k}={v}", markup=False)


def logs(entries: Sequence[tuple[str, str]], *, with_ids: bool) -> None:
    import sys

    for datum_id, text in entries:
        if with_ids:
            for line in text.splitlines():
                sys.stdout.write(f"[{datum_id[:12]}] {line}\n")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def log_lines(lines: Sequence[LogLine]) -> None:
    """A spout's or service's output, as its program printed it."""
    import sys

    sys.stdout.writelines(line.text + "\n" for line in lines)
    sys.stdout.flush()


def job_line(p: JobProgress, console: Console = err) -> None:
    """One line when a job ends."""
    colour = {"SUCCESS": "green", "FAILURE": "red", "UNRUNNABLE": "red", "KILLED": "yellow"}
    text = (
        f"job {p.pipeline}@{_short(p.job)}: [{colour.get(p.state.value, 'white')}]"
        f"{p.state.value}[/] — {p.done - p.failed} processed, {p.skipped} skipped, "
        f"{p.failed} failed of {p.total}"
        + (f", sandbox {p.sandbox}" if p.sandbox and p.done else "")
    )
    console.print(text + (f" ({escape(p.reason)})" if p.reason else ""))


def dag(items: Sequence[PipelineInfo]) -> None:
    """The pipeline DAG as text: each input repo, then its consumers, depth first."""
    consumers: dict[str, list[str]] = {}
    names = {p.name for p in items}
    for p in items:
        for inp in p.inputs:
            consumers.setdefault(inp.split("@")[0], []).append(p.name)
    sources = {p.name for p in items if not p.inputs}  # spouts: their own inputs
    roots = sorted({r for r in consumers if r not in names} | sources)
    lines: list[str] = []

    def walk(node: str, prefix: str, last: bool, depth: int, seen: tuple[str, ...]) -> None:
        label = node if node not in names else f"{node} (pipeline)"
        lines.append(prefix + ("└─▶ " if last else "├─▶ ") + label if depth else label)
        kids = sorted(set(consumers.get(node, [])))
        for i, k in enumerate(kids):
            if k in seen:
                continue
            walk(
                k,
                prefix + ("    " if last or not depth else "│   ") if depth else "",
                i == len(kids) - 1,
                depth + 1,
                (*seen, k),
            )

    for r in roots:
        walk(r, "", True, 0, (r,))
    out.print("\n".join(lines) if lines else "no pipelines", markup=False)
