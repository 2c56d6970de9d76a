"""``haathi`` commands for repos, branches, commits, metadata and files (pachctl's PFS
grammar): each parses, makes one client call, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from haathi.cli import render
from haathi.cli.main import NoWait, OutputOpt, after_write, client, command
from haathi.cli.render import Output
from haathi.errors import InvalidArgument

# repos -------------------------------------------------------------------------------------


@command("create", "repo")
def create_repo(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
) -> None:
    """Create a new repo."""
    client().create_repo(name, description)


@command("list", "repo", "repos")
def list_repo(output: OutputOpt = Output.table) -> None:
    """List repos."""
    items = client().list_repo()
    render.emit_json(items) if output == Output.json else render.repos(items)


@command("inspect", "repo")
def inspect_repo(name: str, output: OutputOpt = Output.table) -> None:
    """Show a repo."""
    r = client().inspect_repo(name)
    render.emit_json(r) if output == Output.json else render.repo(r)


@command("update", "repo")
def update_repo(
    name: str, description: Annotated[str, typer.Option("--description", "-d")]
) -> None:
    """Change a repo's description."""
    client().update_repo(name, description)


@command("delete", "repo")
def delete_repo(name: str, force: Annotated[bool, typer.Option("--force", "-f")] = False) -> None:
    """Delete a repo with its branches and commits."""
    client().delete_repo(name, force=force)


# branches ----------------------------------------------------------------------------------


@command("create", "branch")
def create_branch(
    branch: Annotated[str, typer.Argument(help="repo@branch")],
    head: Annotated[str | None, typer.Option("--head", help="commit or branch")] = None,
    no_wait: NoWait = False,
) -> None:
    """Create a branch (or move it) pointing at a commit: metadata only."""
    client().create_branch(branch, head)
    after_write(no_wait)


@command("list", "branch", "branches")
def list_branch(repo: str, output: OutputOpt = Output.table) -> None:
    """List the branches of a repo."""
    items = client().list_branch(repo)
    render.emit_json(items) if output == Output.json else render.branches(items)


@command("inspect", "branch")
def inspect_branch(branch: str, output: OutputOpt = Output.table) -> None:
    """Show a branch."""
    b = client().inspect_branch(branch)
    render.emit_json(b) if output == Output.json else render.branch(b)


@command("delete", "branch")
def delete_branch(branch: str) -> None:
    """Delete a branch (its commits stay)."""
    client().delete_branch(branch)


# commits -----------------------------------------------------------------------------------


@command("start", "commit")
def start_commit(
    branch: Annotated[str, typer.Argument(help="repo@branch")],
    parent: Annotated[str | None, typer.Option("--parent", "-p")] = None,
    message: Annotated[str, typer.Option("--message", "-m", "--description")] = "",
) -> None:
    """Start a commit on a branch; prints its ID."""
    handle = client().start_commit(branch, parent=parent, description=message)
    render.out.print(handle.id)


@command("finish", "commit")
def finish_commit(
    commit: str,
    message: Annotated[str | None, typer.Option("--message", "-m", "--description")] = None,
    no_wait: NoWait = False,
) -> None:
    """Finish an open commit."""
    client().finish_commit(commit, message)
    after_write(no_wait)


@command("inspect", "commit")
def inspect_commit(commit: str, output: OutputOpt = Output.table) -> None:
    """Show a commit."""
    c = client().inspect_commit(commit)
    render.emit_json(c) if output == Output.json else render.commit(c)


@command("list", "commit", "commits")
def list_commit(
    target: Annotated[str, typer.Argument(help="repo, repo@branch, or a commit ID")],
    number: Annotated[int | None, typer.Option("--number", "-n")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """List commits, newest first."""
    items = client().list_commit(target, number)
    render.emit_json(items) if output == Output.json else render.commits(items)


@command("wait", "commit")
def wait_commit(
    commit: str,
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Block until a commit (or every commit of a commit set) is finished."""
    items = client().wait_commit(commit, timeout)
    render.emit_json(items) if output == Output.json else render.commits(items)


@command("delete", "commit")
def delete_commit(commit: str) -> None:
    """Delete the newest commit of a branch."""
    client().delete_commit(commit)


@command("squash", "commit")
def squash_commit(commit: str) -> None:
    """Remove a commit from history, keeping its successors' content."""
    client().squash_commit(commit)


@command("find", "commit", "commits")
def find_commit(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit:/path")],
    limit: Annotated[int | None, typer.Option("--limit", help="stop after N commits")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """List the commits in a ref's history (newest first) that changed a file or directory."""
    items = client().find_commit(target, limit)
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
) -> None:
    """Add, edit, delete or replace key/value metadata (replace with nothing clears it)."""
    client().edit_metadata(kind, target, action, data or [])


# files -------------------------------------------------------------------------------------


@command("put", "file")
def put_file(
    target: Annotated[str, typer.Argument(help="repo@branch-or-commit[:/path]")],
    file: Annotated[list[str], typer.Option("--file", "-f", help="file, dir or '-'")],
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
) -> None:
    """Put files; all -f sources land in one atomic commit (then runs the jobs it starts).
    A directory's files unchanged since they were last put are not read again."""
    from haathi.cli.progress import put_progress
    from haathi.client import sources
    from haathi.models.ops import PutOp
    from haathi.models.refspec import parse_file

    spec = parse_file(target)  # each destination is validated as it is made
    dest = spec.path if spec.has_path else None
    dest_is_dir = target.endswith("/") or len(file) > 1
    items: list[PutOp | sources.DirScan] = []
    for src in file:
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
        result = client().put_files(
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


@command("get", "file")
def get_file(
    target: str,
    output_path: Annotated[str | None, typer.Option("--output", "-o")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
) -> None:
    """Write a file to stdout or -o; with -r, a directory into -o."""
    c = client()
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
def inspect_file(target: str, output: OutputOpt = Output.table) -> None:
    """Show a file or directory."""
    f = client().inspect_file(target)
    render.emit_json(f) if output == Output.json else render.file(f)


@command("list", "file", "files")
def list_file(target: str, output: OutputOpt = Output.table) -> None:
    """List a directory's entries."""
    items = client().list_file(target)
    render.emit_json(items) if output == Output.json else render.files(items)


@command("glob", "file", "files")
def glob_file(
    target: Annotated[str, typer.Argument(help="repo@ref:pattern")],
    output: OutputOpt = Output.table,
) -> None:
    """List files and directories matching a glob (*, **, ?, [...], {a,b})."""
    items = client().glob_file(target)
    render.emit_json(items) if output == Output.json else render.files(items)


@command("diff", "file", "files")
def diff_file(
    new: str,
    old: Annotated[str | None, typer.Argument()] = None,
    name_only: Annotated[bool, typer.Option("--name-only")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Files added, removed or modified (old defaults to the new commit's parent)."""
    items = client().diff_file(new, old)
    render.emit_json(items) if output == Output.json else render.diff(items, name_only)


@command("delete", "file")
def delete_file(
    target: str,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    no_wait: NoWait = False,
) -> None:
    """Delete a file (or, with -r, a directory)."""
    client().delete_file(target, recursive=recursive)
    after_write(no_wait)


@command("copy", "file")
def copy_file(
    source: str,
    dest: str,
    append: Annotated[bool, typer.Option("--append", "-a")] = False,
    no_wait: NoWait = False,
) -> None:
    """Copy a file or directory: metadata only, no bytes are copied."""
    client().copy_file(source, dest, append=append)
    after_write(no_wait)
