"""``haathi`` commands for repos, branches, commits, metadata and files (pachctl's PFS
grammar): each parses, makes one client call, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from haathi.cli import render
from haathi.cli.main import (
    AllProjectsOpt,
    NoWait,
    OutputOpt,
    ProjectOpt,
    added_to_transaction,
    after_write,
    client,
    command,
    one_or_all,
)
from haathi.cli.render import Output
from haathi.errors import InvalidArgument
from haathi.models.trigger import Trigger

if TYPE_CHECKING:
    from haathi.client.urls import Fetcher

# repos -------------------------------------------------------------------------------------


@command("create", "repo")
def create_repo(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    project: ProjectOpt = None,
) -> None:
    """Create a new repo."""
    client(project).create_repo(name, description)
    added_to_transaction()


@command("list", "repo", "repos")
def list_repo(
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
    all_projects: AllProjectsOpt = False,
) -> None:
    """List the repos of the project (-A: of every project)."""
    items = client(project).list_repo(all_projects=all_projects)
    render.emit_json(items) if output == Output.json else render.repos(items)


@command("inspect", "repo")
def inspect_repo(
    name: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a repo."""
    r = client(project).inspect_repo(name)
    render.emit_json(r) if output == Output.json else render.repo(r)


@command("update", "repo")
def update_repo(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d")],
    project: ProjectOpt = None,
) -> None:
    """Change a repo's description."""
    client(project).update_repo(name, description)


@command("delete", "repo")
def delete_repo(
    name: Annotated[str | None, typer.Argument()] = None,
    force: Annotated[bool, typer.Option("--force", "-f")] = False,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="every repo of the project but pipeline outputs (-A: of every project)"
        ),
    ] = False,
    project: ProjectOpt = None,
    all_projects: AllProjectsOpt = False,
) -> None:
    """Delete a repo with its branches and commits."""
    one_or_all("repo", name, every, all_projects)
    c = client(project)
    if every:
        c.delete_all_repos(force=force, all_projects=all_projects)
    else:
        c.delete_repo(str(name), force=force)
        added_to_transaction()


# branches ----------------------------------------------------------------------------------


@command("create", "branch")
def create_branch(
    branch: Annotated[str, typer.Argument(help="repo@branch")],
    head: Annotated[str | None, typer.Option("--head", help="commit or branch")] = None,
    trigger: Annotated[
        str | None,
        typer.Option("--trigger", "-t", help="the branch (of this repo) that triggers this one"),
    ] = None,
    trigger_cron: Annotated[
        str | None, typer.Option("--trigger-cron", help="move at each tick ('@every 1h')")
    ] = None,
    trigger_size: Annotated[
        str | None, typer.Option("--trigger-size", help="once this much data is added (1MB)")
    ] = None,
    trigger_commits: Annotated[
        int, typer.Option("--trigger-commits", help="once this many commits are made")
    ] = 0,
    trigger_all: Annotated[
        bool, typer.Option("--trigger-all", help="only when every condition holds")
    ] = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Create a branch (or move it) pointing at a commit: metadata only. With --trigger, the
    branch moves to the head of that branch when a condition holds (Pachyderm's triggers)."""
    conditions = trigger_cron or trigger_size or trigger_commits or trigger_all
    if conditions and not trigger:
        raise InvalidArgument(
            "trigger condition specified without a branch to trigger on, specify a branch "
            "with --trigger"
        )
    cond = None
    if trigger:
        cond = Trigger(
            trigger,
            all=trigger_all,
            size=trigger_size or "",
            commits=trigger_commits,
            cron_spec=trigger_cron or "",
        )
    client(project).create_branch(branch, head, trigger=cond)
    if not added_to_transaction():
        after_write(no_wait)


@command("list", "branch", "branches")
def list_branch(
    repo: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """List the branches of a repo."""
    items = client(project).list_branch(repo)
    render.emit_json(items) if output == Output.json else render.branches(items)


@command("inspect", "branch")
def inspect_branch(
    branch: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a branch."""
    b = client(project).inspect_branch(branch)
    render.emit_json(b) if output == Output.json else render.branch(b)


@command("delete", "branch")
def delete_branch(
    branch: str,
    project: ProjectOpt = None,
) -> None:
    """Delete a branch (its commits stay)."""
    client(project).delete_branch(branch)
    added_to_transaction()


# commits -----------------------------------------------------------------------------------


@command("start", "commit")
def start_commit(
    branch: Annotated[str, typer.Argument(help="repo@branch")],
    parent: Annotated[str | None, typer.Option("--parent", "-p")] = None,
    message: Annotated[str, typer.Option("--message", "-m", "--description")] = "",
    project: ProjectOpt = None,
) -> None:
    """Start a commit on a branch; prints its ID."""
    handle = client(project).start_commit(branch, parent=parent, description=message)
    added_to_transaction()
    render.out.print(handle.id)


@command("finish", "commit")
def finish_commit(
    commit: str,
    message: Annotated[str | None, typer.Option("--message", "-m", "--description")] = None,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Finish an open commit."""
    client(project).finish_commit(commit, message)
    if not added_to_transaction():
        after_write(no_wait)


@command("inspect", "commit")
def inspect_commit(
    commit: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a commit."""
    c = client(project).inspect_commit(commit)
    render.emit_json(c) if output == Output.json else render.commit(c)


@command("list", "commit", "commits")
def list_commit(
    target: Annotated[str, typer.Argument(help="repo, repo@branch, or a commit ID")],
    number: Annotated[int | None, typer.Option("--number", "-n")] = None,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """List commits, newest first."""
    items = client(project).list_commit(target, number)
    render.emit_json(items) if output == Output.json else render.commits(items)


@command("wait", "commit")
def wait_commit(
    commit: str,
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Block until a commit (or every commit of a commit set) is finished."""
    items = client(project).wait_commit(commit, timeout)
    render.emit_json(items) if output == Output.json else render.commits(items)


@command("delete", "commit")
def delete_commit(
    commit: str,
    project: ProjectOpt = None,
) -> None:
    """Delete the newest commit of a branch."""
    client(project).delete_commit(commit)


@command("squash", "commit")
def squash_commit(
    commit: str,
    project: ProjectOpt = None,
) -> None:
    """Remove a commit from history, keeping its successors' content."""
    client(project).squash_commit(commit)


@command("find", "commit", "commits")
def find_commit(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit:/path")],
    limit: Annotated[int | None, typer.Option("--limit", help="stop after N commits")] = None,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """List the commits in a ref's history (newest first) that changed a file or directory."""
    items = client(project).find_commit(target, limit)
    render.emit_json(items) if output == Output.json else render.commits(items)


# metadata ----------------------------------------------------------------------------------


@command("edit", "metadata")
def edit_metadata(
    kind: Annotated[str, typer.Argument(help="repo, branch or commit")],
    target: Annotated[str, typer.Argument(help="repo, repo@branch or repo@branch-or-commit")],
    action: Annotated[str, typer.Argument(help="add, edit, delete or replace")],
    data: Annotated[
        list[str] | None,
        typer.Argument(help="key=value (add, edit), key (delete), k1=v1,k2=v2 or JSON (replace)"),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Add, edit, delete or replace key/value metadata (replace with nothing clears it)."""
    client(project).edit_metadata(kind, target, action, data or [])


# files -------------------------------------------------------------------------------------


@command("put", "file")
def put_file(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit[:/path]")],
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file", "-f", help="file, dir, URL (http(s)://, s3://) or '-' (the default: stdin)"
        ),
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input-file", "-i", help="a file (path, URL or '-') listing sources, one a line"
        ),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    append: Annotated[bool, typer.Option("--append", "-a")] = False,
    untar: Annotated[bool, typer.Option("--untar")] = False,
    parallelism: Annotated[int, typer.Option("--parallelism", "-p", min=1, max=64)] = 4,
    message: Annotated[str, typer.Option("--message", "-m")] = "",
    rehash: Annotated[
        bool,
        typer.Option(
            "--rehash", help="read every file of a directory again (do not trust the stat cache)"
        ),
    ] = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Put files; all sources land in one atomic commit (then runs the jobs it starts).
    A directory's files unchanged since they were last put are not read again; URLs are
    downloaded by this client as they are stored."""
    from haathi.cli.progress import put_progress
    from haathi.client import sources, urls
    from haathi.models.ops import PutOp
    from haathi.models.refspec import parse_file

    spec = parse_file(target)  # each destination is validated as it is made
    dest = spec.path if spec.has_path else None
    with urls.Fetcher() as fetcher:
        listed = _put_sources(file, input_file, fetcher)
        many = len(listed) > 1
        dest_is_dir = target.endswith("/") or many
        items: list[PutOp | sources.DirScan] = []
        for src in listed:
            if urls.is_url(src):
                if untar:
                    raise InvalidArgument(f"--untar takes local files, not a URL ({src})")
                found = urls.url_ops(fetcher, src, dest, recursive=recursive, append=append,
                                     dest_is_dir=dest_is_dir, many=many)  # fmt: skip
                items.extend(found)
                continue
            items.extend(
                sources.local_ops(
                    src,
                    dest,
                    recursive=recursive,
                    append=append,
                    untar=untar,
                    dest_is_dir=dest_is_dir,
                )
            )
        scans = [i for i in items if isinstance(i, sources.DirScan)]
        ops = [i for i in items if not isinstance(i, sources.DirScan)]
        count = len(ops) + sum(len(s.files) for s in scans)
        if not count:
            raise InvalidArgument("nothing to put: the sources hold no files")
        sizes = [op.size_hint for op in ops] + [s.size for s in scans]
        known = None if None in sizes else sum(s or 0 for s in sizes)
        with put_progress(count, known) as progress:
            result = client(project).put_files(
                str(spec.commit),
                items,
                rehash=rehash,
                parallelism=parallelism,
                progress=progress,
                description=message,
            )
    if result.unchanged and render.err.is_terminal:
        render.err.print(
            f"{result.unchanged:,} unchanged files not read again (--rehash reads them)"
        )
    after_write(no_wait)


def _put_sources(file: list[str] | None, input_file: str | None, fetcher: Fetcher) -> list[str]:
    """What ``put file`` puts: the ``-f`` sources, else the lines of ``-i`` (a path, URL or
    ``-``: blank lines skipped), else stdin (``-``), as pachctl."""
    from haathi.client import urls

    if input_file is None:
        return file or ["-"]
    if file:
        raise InvalidArgument("put file takes -f or -i, not both")
    listed = [line.strip() for line in urls.read_text(input_file, fetcher).splitlines()]
    listed = [line for line in listed if line]
    if not listed:
        raise InvalidArgument(f"{input_file} lists no sources")
    return listed


@command("get", "file")
def get_file(
    target: str,
    output_path: Annotated[str | None, typer.Option("--output", "-o")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    project: ProjectOpt = None,
) -> None:
    """Write a file to stdout or -o; with -r, a directory into -o."""
    c = client(project)
    if recursive:
        if not output_path:
            raise InvalidArgument("get file -r needs -o DIR")
        from haathi.cli.restore import restore
        from haathi.models.refspec import parse_file

        restore(c.read_files(target), parse_file(target).path.rstrip("/") or "/", Path(output_path))
        return
    # The chunks are written as they are read, not through a reader's 1 MiB blocks: writing
    # those cost the kernel 4x the system time here (3.5-3.9 s a GiB against 0.8 s).
    _, chunks = c.read_file(target)  # fails before any byte if data is missing or truncated
    if output_path:
        from haathi.cli.restore import write_streamed

        write_streamed(chunks, Path(output_path))
        return
    held: list[bytes] = []  # read (and verified) before any is written
    size = 0
    for chunk in chunks:
        if size >= STDOUT_HOLD:
            sys.stdout.buffer.write(chunk)
            continue
        held.append(chunk)
        size += len(chunk)
        if size >= STDOUT_HOLD:
            sys.stdout.buffer.write(b"".join(held))
            held.clear()
    if size < STDOUT_HOLD:
        sys.stdout.buffer.write(b"".join(held))
    sys.stdout.buffer.flush()


# `get file` to stdout holds back this much: a file up to this size is written only once all
# of it has been read and verified; a larger one streams on, and damage found later ends it.
STDOUT_HOLD = 16 << 20


@command("inspect", "file")
def inspect_file(
    target: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Show a file or directory."""
    f = client(project).inspect_file(target)
    render.emit_json(f) if output == Output.json else render.file(f)


@command("list", "file", "files")
def list_file(
    target: str,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """List a directory's entries."""
    items = client(project).list_file(target)
    render.emit_json(items) if output == Output.json else render.files(items)


@command("glob", "file", "files")
def glob_file(
    target: Annotated[str, typer.Argument(help="repo@ref:pattern")],
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """List files and directories matching a glob (*, **, ?, [...], {a,b})."""
    items = client(project).glob_file(target)
    render.emit_json(items) if output == Output.json else render.files(items)


@command("diff", "file", "files")
def diff_file(
    new: str,
    old: Annotated[str | None, typer.Argument()] = None,
    name_only: Annotated[bool, typer.Option("--name-only")] = False,
    output: OutputOpt = Output.table,
    project: ProjectOpt = None,
) -> None:
    """Files added, removed or modified (old defaults to the new commit's parent)."""
    items = client(project).diff_file(new, old)
    render.emit_json(items) if output == Output.json else render.diff(items, name_only)


@command("delete", "file")
def delete_file(
    target: str,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
) -> None:
    """Delete a file (or, with -r, a directory)."""
    client(project).delete_file(target, recursive=recursive)
    after_write(no_wait)


@command("copy", "file")
def copy_file(
    source: str,
    dest: str,
    append: Annotated[bool, typer.Option("--append", "-a")] = False,
    no_wait: NoWait = False,
    project: ProjectOpt = None,
    src_project: Annotated[
        str | None, typer.Option("--src-project", help="the project of the source repo")
    ] = None,
    dest_project: Annotated[
        str | None, typer.Option("--dest-project", help="the project of the destination repo")
    ] = None,
) -> None:
    """Copy a file or directory: metadata only, no bytes are copied."""
    from haathi.models.refspec import qualify_text

    c = client(project)
    source = source if src_project is None else qualify_text(source, src_project)
    dest = dest if dest_project is None else qualify_text(dest, dest_project)
    c.copy_file(source, dest, append=append)
    after_write(no_wait)
