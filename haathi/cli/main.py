"""``haathi <verb> <noun>``: each command parses, makes one client call, renders."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from haathi import allocator
from haathi.cli import render, units
from haathi.cli.render import Output
from haathi.client import Client
from haathi.errors import FailedPrecondition, HaathiError, InvalidArgument

app = typer.Typer(
    help="haathi: version control for data, with Pachyderm's commands (pachctl -> haathi).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
VERBS = {
    "create": "Create a repo, branch or pipeline.",
    "list": "List repos, branches, commits, files, pipelines, jobs or datums.",
    "inspect": "Show one repo, branch, commit, file, pipeline, job or datum.",
    "update": "Update a repo or pipeline.",
    "delete": "Delete a repo, branch, commit, file or pipeline.",
    "start": "Start a commit or a stopped pipeline.",
    "stop": "Stop a pipeline or a job.",
    "finish": "Finish a commit.",
    "wait": "Wait for a commit or job to finish.",
    "squash": "Squash a commit into its neighbours.",
    "put": "Put files into a repo.",
    "get": "Get files out of a repo.",
    "glob": "Find files by glob pattern.",
    "diff": "Show what changed between commits.",
    "copy": "Copy files without copying bytes.",
    "find": "Find the commits that changed a path.",
    "edit": "Edit the key/value metadata of a repo, branch or commit.",
}
verbs: dict[str, typer.Typer] = {}
for _verb, _help in VERBS.items():
    verbs[_verb] = typer.Typer(help=_help, no_args_is_help=True)
    app.add_typer(verbs[_verb], name=_verb)


class State:
    address: str | None = None
    overrides: dict[str, Any]
    client: Client | None = None


state = State()
state.overrides = {}


def client() -> Client:
    if state.client is None:
        from haathi.client import connect

        state.client = connect(state.address, run_jobs=False, **state.overrides)
    return state.client


@app.callback()
def main(
    address: Annotated[
        str | None,
        typer.Option("--address", help="Store directory (default $HAATHI_ADDRESS or ~/.haathi)."),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Metadata database URL (overrides the store's).")
    ] = None,
    objects: Annotated[
        str | None, typer.Option("--objects", help="Object store URL (overrides the store's).")
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="S3 endpoint URL (overrides the store's).")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option("--executor", help="Where datums run: local (default) or dask://host:port."),
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option("--sandbox", help="How user code runs: auto (bwrap if usable), bwrap, none."),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="How a pipeline with an image runs: auto, bwrap (daemonless), podman, docker.",
        ),
    ] = None,
) -> None:
    state.address = address
    state.overrides = {
        "db_url": db, "objects_url": objects, "s3_endpoint": s3_endpoint,
        "executor": executor, "sandbox": sandbox, "runtime": runtime,
    }  # fmt: skip


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json")]
NoWait = Annotated[
    bool,
    typer.Option(
        "--no-wait", help="queue the jobs this starts and return; `haathi run worker` runs them"
    ),
]


def after_write(no_wait: bool) -> None:
    """Run the jobs a command started (with progress), or say they are queued."""
    from haathi.cli.progress import job_progress

    c = client()
    if no_wait:
        queued = [j for j in c.list_job() if not j.state.terminal]
        if queued:
            render.err.print(
                f"{len(queued)} job(s) queued: `haathi run worker` (or any command without "
                "--no-wait) runs them; `haathi list job` shows them"
            )
        return
    c.progress = None
    with job_progress() as progress:
        c.progress = progress
        summary = c.run_jobs()
    for key, why in summary.waiting.items():
        render.err.print(f"job {key} is queued: {why}", markup=False)


def command(verb: str, noun: str, *aliases: str) -> Any:
    """Register a function as ``haathi <verb> <noun>`` (plus hidden plural aliases)."""

    def deco(fn: Any) -> Any:
        verbs[verb].command(noun)(fn)
        for alias in aliases:
            verbs[verb].command(alias, hidden=True)(fn)
        return fn

    return deco


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
    no_wait: NoWait = False,
) -> None:
    """Put files; all -f sources land in one atomic commit (then runs the jobs it starts)."""
    from haathi.cli.progress import put_progress
    from haathi.client import sources
    from haathi.models.refspec import parse_file

    spec = parse_file(target)  # each destination is validated as it is made
    dest = spec.path if spec.has_path else None
    dest_is_dir = target.endswith("/") or len(file) > 1
    ops = []
    for src in file:
        ops.extend(
            sources.local_ops(
                src,
                dest,
                recursive=recursive,
                append=append,
                untar=untar,
                dest_is_dir=dest_is_dir,
            )
        )
    if not ops:
        raise InvalidArgument("nothing to put: the sources hold no files")
    sizes = [op.size_hint for op in ops]
    known = None if None in sizes else sum(s or 0 for s in sizes)
    with put_progress(len(ops), known) as progress:
        client().modify_file(
            str(spec.commit),
            ops,
            parallelism=parallelism,
            progress=progress,
            description=message,
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
        from haathi.models.refspec import parse_file

        spec = parse_file(target)
        base = spec.path.rstrip("/")
        for f in c.walk_file(target):
            rel = f.path[len(base) :].lstrip("/") if f.path != spec.path else Path(f.path).name
            dest = Path(output_path) / rel
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy_out(c, f"{f.repo}@{f.commit}:{f.path}", dest)
            except OSError as exc:  # e.g. a path too long here, or a tree of an older haathi
                raise FailedPrecondition(  # holding a file and a directory at one path
                    f"cannot write {dest} ({f.path} of {f.repo}@{f.commit}): {exc.strerror or exc}"
                ) from exc
        return
    if output_path:
        _copy_out(c, target, Path(output_path))
        return
    with c.open_file(target) as fh:  # fails before any byte if data is missing or truncated
        sys.stdout.buffer.write(fh.read(STDOUT_HOLD))  # read (and verified) before written
        while block := fh.read(1 << 20):
            sys.stdout.buffer.write(block)
    sys.stdout.buffer.flush()


# `get file` to stdout holds back this much: a file up to this size is written only once all
# of it has been read and verified; a larger one streams on, and damage found later ends it.
STDOUT_HOLD = 16 << 20


def _copy_out(c: Client, target: str, dest: Path) -> None:
    # a short name: the file's own may already be as long as a name can be
    tmp = dest.with_name(f".haathi-{secrets.token_hex(8)}.tmp")
    try:
        with c.open_file(target) as src, open(tmp, "xb") as fh:
            while block := src.read(1 << 20):
                fh.write(block)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


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


# store -------------------------------------------------------------------------------------


@app.command("init")
def init(
    db: Annotated[
        str | None,
        typer.Option("--db", help="PostgreSQL URL (default: SQLite in the store directory)."),
    ] = None,
    objects: Annotated[
        str | None,
        typer.Option("--objects", help="s3://bucket/prefix (default: the store directory)."),
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="S3 endpoint URL (default: AWS).")
    ] = None,
    s3_region: Annotated[str | None, typer.Option("--s3-region")] = None,
    cache_size: Annotated[
        str | None, typer.Option("--cache-size", help="Bound of the local read cache, e.g. 1GiB.")
    ] = None,
    save_credentials: Annotated[
        bool,
        typer.Option(
            "--save-credentials",
            help="Keep the AWS_* credentials now set in the store's config (mode 0600).",
        ),
    ] = False,
) -> None:
    """Create a store at --address: metadata in SQLite or PostgreSQL, data local or in S3."""
    from haathi.client import init as init_store

    c = init_store(
        state.address, db=db or state.overrides.get("db_url"),
        objects=objects or state.overrides.get("objects_url"),
        s3_endpoint=s3_endpoint or state.overrides.get("s3_endpoint"), s3_region=s3_region,
        cache_bytes=units.parse_size(cache_size) if cache_size else None,
        save_credentials=save_credentials,
    )  # fmt: skip
    state.client = c
    render.store(c.store_info())


@command("inspect", "store")
def inspect_store(output: OutputOpt = Output.table) -> None:
    """Show the store's configuration (secrets are never shown)."""
    info = client().store_info()
    render.emit_json(info) if output == Output.json else render.store(info)


@command("inspect", "cluster")
def inspect_cluster(output: OutputOpt = Output.table) -> None:
    """Show the store's configuration and the server's S3 endpoint (none for a directory)."""
    info = client().inspect_cluster()
    render.emit_json(info) if output == Output.json else render.cluster(info)


@app.command("fsck")
def fsck(
    fast: Annotated[bool, typer.Option("--fast", help="check sizes, not hashes")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="repair what is safely repairable")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Check the store: every blob, tree node and branch head a commit needs."""
    problems = client().fsck(fast=fast, fix=fix)
    render.emit_json(problems) if output == Output.json else render.problems(problems)
    if any(p.severity == "error" and not p.extra.get("fixed") for p in problems):
        raise typer.Exit(1)


@app.command("gc")
def gc(
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="Delete unreachable data once it has been condemned this long (e.g. 10m, 0).",
        ),
    ] = "10m",
    output: OutputOpt = Output.table,
) -> None:
    """Delete stored data that no commit, open commit or running write can reach."""
    report = client().gc(grace_s=units.parse_duration(grace))
    render.emit_json(report) if output == Output.json else render.gc_report(report)


@app.command("version")
def version() -> None:
    """Print haathi's version."""
    from haathi import __version__

    render.out.print(__version__)


@app.command("demo")
def demo(
    address: Annotated[
        str | None, typer.Option("--store", help="store directory (default: a new temp dir)")
    ] = None,
) -> None:
    """Run the tour: data in, commits, history, diffs and old versions read back."""
    from haathi.cli.demo import run_demo

    run_demo(address)


# registers the pipeline commands, `haathi serve` and `haathi auth`
from haathi.cli import auth_commands, pps_commands, serve_command  # noqa: E402

_ = auth_commands, pps_commands, serve_command


class Terminated(KeyboardInterrupt):
    """SIGTERM: the command unwinds as on Ctrl-C, so it gives back what it holds (a job it
    was running goes back to the queue at once) before it exits."""


_terminated: list[bool] = []  # set by the SIGTERM handler (typer turns the exception into 130)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _terminated.append(True)
    raise Terminated


def run() -> None:
    """Entry point: one-line errors and meaningful exit codes, never a traceback."""
    allocator.tune()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = app(standalone_mode=False)
        code = result if isinstance(result, int) else 0  # typer.Exit(n) comes back as n
    except HaathiError as exc:
        render.err.print(f"error: {exc}", markup=False)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        render.err.print("aborted")
        code = 130
    except KeyboardInterrupt:
        render.err.print("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        # typer >= 0.20 vendors click: its usage errors derive from TyperException instead.
        usage = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
        if isinstance(exc, usage):
            message = exc.format_message()
            if message:  # empty when the help was shown instead
                render.err.print(f"error: {message}", markup=False)
            code = exc.exit_code
        else:
            if os.environ.get("HAATHI_DEBUG"):
                raise
            render.err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
            code = 1
    finally:
        if state.client is not None:
            state.client.close()
    if _terminated:
        render.err.print("terminated")
        code = 128 + signal.SIGTERM
    sys.exit(code)
