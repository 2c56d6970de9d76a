"""Rendering results: human tables by default, ``-o json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from haathi.cli.output import Output as Output  # the commands import it from here
from haathi.models.ids import split_key
from haathi.models.info import (
    BranchInfo,
    CommitInfo,
    DiffEntry,
    FileInfo,
    Problem,
    ProjectInfo,
    RepoInfo,
)
from haathi.models.transaction import TransactionInfo
from haathi.models.trigger import Trigger


def _settings(stderr: bool) -> dict[str, Any]:
    if stderr:
        return {"stderr": True, "highlight": False, "soft_wrap": True}
    return {"highlight": False, "soft_wrap": True, "width": None if sys.stdout.isatty() else 240}


out = Console(**_settings(stderr=False))
err = Console(**_settings(stderr=True))


def reopen() -> None:
    """Decide colors, width and terminal again, for the standard streams and environment this
    process has now (a preloaded process, :mod:`haathi.cli.preload`, imported this module
    before it had its command's)."""
    Console.__init__(out, **_settings(stderr=False))
    Console.__init__(err, **_settings(stderr=True))


def emit_json(value: Any) -> None:
    if isinstance(value, (list, tuple)):
        data: Any = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
    else:
        data = value.to_dict() if hasattr(value, "to_dict") else value
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def size(n: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    x = float(n)
    for u in units:
        if x < 1024 or u == units[-1]:
            return f"{x:.0f} {u}" if u == "B" else f"{x:.1f} {u}"
        x /= 1024
    return f"{n} B"


def ago(t: datetime | None) -> str:
    if t is None:
        return "-"
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    s = (datetime.now(UTC) - t).total_seconds()
    if s < 60:
        return f"{int(s)} seconds ago"
    if s < 3600:
        return f"{int(s // 60)} minutes ago"
    if s < 86400:
        return f"{int(s // 3600)} hours ago"
    return f"{int(s // 86400)} days ago"


def _table(*cols: str) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for c in cols:
        t.add_column(c)
    return t


def projects(items: Sequence[ProjectInfo], active: str) -> None:
    """Pachyderm's ``list project``: ``*`` marks the active project, no description ``-``;
    with auth on, ACCESS_LEVEL: the caller's roles on each."""
    auth = any(p.roles is not None for p in items)
    t = _table("ACTIVE", "PROJECT", *(["ACCESS_LEVEL"] if auth else []), "CREATED", "DESCRIPTION")
    for p in items:
        access = [",".join(p.roles or ()) or "none"] if auth else []
        t.add_row("*" if p.name == active else "", p.name, *access, ago(p.created),
                  p.description or "-")  # fmt: skip
    out.print(t)


def project(p: ProjectInfo) -> None:
    out.print(f"Name: {p.name}", markup=False)
    out.print(f"Description: {p.description}\nCreated at: {ago(p.created)}", markup=False)
    if p.created_by:
        out.print(f"Created by: {p.created_by}", markup=False)
    if p.roles is not None:
        out.print(f"Roles: {', '.join(p.roles) or 'none'}", markup=False)
        out.print(f"Permissions: {', '.join(p.permissions or ()) or 'none'}", markup=False)


def bare(key: str) -> str:
    """A key's bare name (a table's PROJECT column shows its project)."""
    return split_key(key)[1]


def repos(items: Sequence[RepoInfo]) -> None:
    t = _table("PROJECT", "NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION")
    for r in items:
        t.add_row(r.project, bare(r.name), ago(r.created), size(r.size_bytes), r.description)
    out.print(t)


def _metadata(md: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(md.items())) or "-"


def repo(r: RepoInfo) -> None:
    out.print(f"Name: {r.name}\nDescription: {r.description}\nCreated: {ago(r.created)}")
    out.print(f"Size of HEAD on master: {size(r.size_bytes)}\nBranches: {', '.join(r.branches)}")
    if r.metadata:
        out.print(f"Metadata: {_metadata(r.metadata)}", markup=False)


def _trigger(b: BranchInfo) -> str:
    return "-" if b.trigger is None else Trigger.from_dict(b.trigger).describe()


def branches(items: Sequence[BranchInfo]) -> None:
    t = _table("BRANCH", "HEAD", "TRIGGER")
    for b in items:
        t.add_row(b.name, b.head or "-", _trigger(b))
    out.print(t)


def branch(b: BranchInfo) -> None:
    out.print(f"Name: {b.repo}@{b.name}\nHead Commit: {b.head or '-'}")
    if b.trigger is not None:
        out.print(f"Trigger: {_trigger(b)}", markup=False)
    if b.metadata:
        out.print(f"Metadata: {_metadata(b.metadata)}", markup=False)


def commits(items: Sequence[CommitInfo]) -> None:
    t = _table(
        "PROJECT", "REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "AUTHOR",
        "DESCRIPTION",
    )  # fmt: skip
    for c in items:
        t.add_row(
            c.project,
            bare(c.repo),
            c.branch or "-",
            c.id,
            ago(c.finished) if c.finished else "open",
            size(c.size_bytes),
            c.origin.value,
            c.author or "-",
            c.description,
        )
    out.print(t)


def commit(c: CommitInfo) -> None:
    lines = [
        f"Commit: {c.repo}@{c.id}",
        f"Original Branch: {c.branch or '-'}",
        f"Parent: {c.parent or '-'}",
        f"Children: {', '.join(c.children) or '-'}",
        f"Origin: {c.origin.value}",
        f"Author: {c.author or '-'}",
        f"State: {c.state.value}",
        f"Description: {c.description}",
        f"Started: {ago(c.started)}",
        f"Finished: {ago(c.finished) if c.finished else '-'}",
        f"Size: {size(c.size_bytes)} in {c.file_count} files",
    ]
    if c.provenance:
        lines.append(f"Provenance: {', '.join(c.provenance)}")
    if c.full_provenance:
        lines.append(f"Full Provenance: {', '.join(c.full_provenance)}")
    if c.subvenance:
        lines.append(f"Subvenance: {', '.join(c.subvenance)}")
    if c.metadata:
        lines.append(f"Metadata: {_metadata(c.metadata)}")
    if c.pipeline_version:
        lines.append(f"Pipeline spec: {c.pipeline_version}")
    if c.error:
        lines.append(f"Error: {c.error}")
    out.print("\n".join(lines), markup=False)


def files(items: Sequence[FileInfo]) -> None:
    t = _table("NAME", "TYPE", "SIZE")
    for f in items:
        t.add_row(
            f.path + ("/" if f.type.value == "dir" and f.path != "/" else ""),
            f.type.value,
            size(f.size_bytes),
        )
    out.print(t)


def file(f: FileInfo) -> None:
    out.print(
        f"Path: {f.path}\nType: {f.type.value}\nSize: {size(f.size_bytes)}\n"
        f"Commit: {f.repo}@{f.commit}" + (f"\nHash: {f.hash}\nChunks: {f.chunks}" if f.hash else "")
    )


def diff(items: Sequence[DiffEntry], name_only: bool) -> None:
    if name_only:
        for d in items:
            out.print(d.path)
        return
    marks = {"added": "+", "removed": "-", "modified": "~"}
    for d in items:
        new = size(d.new.size_bytes) if d.new else ""
        old = size(d.old.size_bytes) if d.old else ""
        sizes = f"{old} -> {new}" if d.old and d.new else new or old
        out.print(f"{marks[d.change.value]} {d.path}  ({d.change.value}, {sizes})")


def problems(items: Sequence[Problem]) -> None:
    if not items:
        out.print("no problems found")
        return
    for p in items:
        if p.extra.get("fixed"):
            err.print(f"fixed: {p.message}", markup=False)
            continue
        err.print(f"{p.severity}: {p.message}", markup=False)
        if p.repair:
            err.print(f"  repair: {p.repair}")


def store(info: dict[str, Any]) -> None:
    for key, value in info.items():
        out.print(f"{key:<16}{value}", markup=False)


def cluster(info: dict[str, Any]) -> None:
    """``inspect cluster``: the server and its S3 gateway, then the store's settings."""
    store({"server": info["server"] or "none (a store directory)",
           "s3_endpoint": info["s3_endpoint"] or "none", **info["store"]})  # fmt: skip


def gc_report(report: dict[str, int]) -> None:
    out.print(
        f"deleted {report['packs_deleted']} packs ({size(report['bytes_deleted'])}) and "
        f"{report['orphans_deleted']} orphan objects; condemned {report['packs_condemned']} "
        f"packs (deleted by a later gc after the grace period); kept {report['packs_kept']} packs"
    )


def transactions(items: Sequence[TransactionInfo]) -> None:
    """Pachyderm's ``list transaction``."""
    t = _table("TRANSACTION", "STARTED", "OPS")
    for info in items:
        t.add_row(info.id, ago(info.started), str(len(info.requests)))
    out.print(t)


def transaction(info: TransactionInfo) -> None:
    """Pachyderm's ``inspect transaction``: its ID, start and one line per request."""
    lines = [f"ID: {info.id}", f"Started: {ago(info.started)}", "Requests:", *info.describe()]
    out.print("\n".join(lines), markup=False)
