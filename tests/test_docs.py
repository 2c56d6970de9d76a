"""Docs that cannot drift.

Two kinds of checks, in the manner of datasette's ``tests/test_docs.py``:

- **Coverage.** Every CLI command (walked from the typer app), every field of every ``-o json``
  shape (from the value types' ``to_dict`` and from what the CLI prints), every error class's
  code, exit code and HTTP status (``haathi/errors.py``), every ``haathi.toml`` key and every
  ``HAATHI_*`` variable haathi reads must be in README.md or docs/*.md; and what the docs name
  (commands, keys, variables, repository paths, the layer list) must exist.
- **The README runs as written.** Its ``bash`` blocks, and its ``$ ``-prompt transcripts, run in
  order through a real ``haathi`` subprocess in a temporary project directory, with
  ``HAATHI_ADDRESS`` set to a fresh store and ``HOME`` to a fresh directory (so ``~/lake`` and
  the saved tokens are the test's own). Every command must exit 0, no job it runs may fail, and
  where the README shows output (a comment such as ``# You are logged in as user:alice``, a
  transcript) the output must match it (``CHECKS``).

The README's conventions for that second part:

- A block the test must not run follows a ``<!-- not run by tests/test_docs.py: REASON -->``
  line. Keep them few: each one is a documented command nobody checks.
- An optional part, ``[--flag ARG]``, is run included.
- Placeholders (``<id>``, ``<datum>``, ...: ``Tour.placeholder``) are filled with real values.
- The files the README's commands read (``photos/``, ``a.png``, ``montage.yaml``, ...) are
  made by ``Tour.files``; ``edges.json`` is the README's own spec.
- ``haathi serve`` starts in the background, on a free port (the README's 8650 and its S3
  gateway's 8651 become that port and the next one), and is stopped when the next one starts
  or the test ends; so does ``haathi run worker`` ("in another terminal").
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

import haathi
from haathi import config, errors
from haathi.cli import demo
from haathi.cli import main as cli_main
from haathi.cli.main import app
from haathi.client import Client
from haathi.models import info
from haathi.models.auth import Access, ProjectAccess, RoleBindings
from haathi.models.info import JobState
from haathi.models.lineage import LineageGraph, LineageNode
from haathi.models.reproduce import DatumReproduction, EnvChange, FileCheck, ReproduceReport
from haathi.models.secret import SecretInfo
from haathi.pfs.gc import GcReport
from loopback.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
ALL_DOCS = [README, *DOCS]
SKIP = re.compile(r"<!-- not run by tests/test_docs\.py: (?P<why>.+?) -->")


# ---- reading the docs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, lines, where it is, and why it is not run (if so)."""

    lang: str
    line: int  # of the opening fence, 1-based
    lines: tuple[str, ...]
    chapter: str  # the nearest "## " heading
    section: str  # the nearest heading
    skip: str | None


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    chapter = section = before = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            skip = SKIP.fullmatch(before.strip())
            found.append(
                Block(
                    line[3:].strip(),
                    i + 1,
                    tuple(lines[i + 1 : end]),
                    chapter,
                    section,
                    skip["why"] if skip else None,
                )
            )
            before, i = "", end + 1
            continue
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            section = title
            if line.startswith("## "):
                chapter = title
        if line.strip():
            before = line
        i += 1
    return found


def prose(path: Path) -> str:
    """The text outside fenced blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)


def code_snippets(paths: list[Path] = ALL_DOCS) -> list[str]:
    """Every fenced block line and every inline code span of the docs."""
    out: list[str] = []
    for path in paths:
        for b in blocks(path):
            out.extend(b.lines)
        out.extend(re.findall(r"`([^`\n]+)`", prose(path)))
    return out


def table_rows(path: Path) -> list[list[str]]:
    """The cells of every table row of a markdown file (header rows included; ``\\|`` is a
    ``|`` inside a cell)."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


# ---- CLI commands --------------------------------------------------------------------------


def _walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    subs = getattr(cmd, "commands", None)  # a group (typer vendors click: no isinstance)
    if subs is None:
        yield path, cmd
        return
    for name, sub in subs.items():
        if not sub.hidden:  # hidden: the plural aliases (list repos)
            yield from _walk(sub, (*path, name))


cli_main.load_commands()  # the CLI itself imports the commands' modules when it needs them
ROOT_COMMAND = typer.main.get_command(app)
COMMANDS = {" ".join(path): cmd for path, cmd in _walk(ROOT_COMMAND, ())}
GLOBAL_VALUE_OPTIONS = {
    opt for p in ROOT_COMMAND.params if not getattr(p, "is_flag", False) for opt in p.opts
}


def _commands_in(snippet: str) -> set[str]:
    """The commands a code snippet shows: ``haathi [global options] <command> ...``, or a
    snippet that starts with a command of two or more words (``inspect commit``)."""
    found = set()
    for part in re.split(r";|&&|\||\$\(", snippet):
        words = part.split()
        starts = [i + 1 for i, w in enumerate(words) if w == "haathi"]
        starts += [0] if words and words[0] != "haathi" else []
        for i in starts:
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in GLOBAL_VALUE_OPTIONS else 1
            for n in (3, 2, 1):
                name = " ".join(words[i : i + n])
                if name in COMMANDS and (n > 1 or words[i - 1 : i] == ["haathi"]):
                    found.add(name)
                    break
    return found


@pytest.fixture(scope="module")
def documented_commands() -> set[str]:
    return set().union(*map(_commands_in, code_snippets()))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_documented(command: str, documented_commands: set[str]) -> None:
    assert command in documented_commands, f"`haathi {command}` is in no doc (docs/cli.md?)"


def test_the_command_reference_lists_every_command_and_only_those() -> None:
    """docs/cli.md: a row for every command, with options the command has, and ``json`` in
    the rows of the commands that print JSON."""
    listed, with_json = set(), set()
    for cells in table_rows(ROOT / "docs" / "cli.md"):
        if not cells[0].startswith("`haathi "):
            continue
        words = cells[0].strip("`").split()[1:]
        names = [" ".join(words[:n]) for n in (3, 2, 1) if " ".join(words[:n]) in COMMANDS]
        assert names, f"docs/cli.md: no such command: {cells[0]}"
        listed.add(names[0])
        opts = {o for p in COMMANDS[names[0]].params for o in p.opts + p.secondary_opts}
        for opt in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", cells[0]):
            assert opt in opts, f"docs/cli.md: haathi {names[0]} has no option {opt}"
        if re.search(r"\bjson\b", cells[0]):  # (not --jsonnet)
            with_json.add(names[0])
    assert listed == set(COMMANDS), "docs/cli.md: a row for every command"
    assert with_json == JSON_COMMANDS, "docs/cli.md: [-o json] where a command prints JSON"


def test_demo_help_describes_the_demo() -> None:
    """``haathi demo --help`` names what haathi/cli/demo.py does: its two pipelines, their
    lineage, and the BusyBox image they run in when this host can build one."""
    help_text = COMMANDS["demo"].help
    for part in (demo.TOTALS["pipeline"]["name"], demo.REPORT["pipeline"]["name"], "BusyBox"):
        assert part in help_text
    assert "lineage" in help_text and "only its datum" in help_text


# ---- -o json fields ------------------------------------------------------------------------

JSON_MD = ROOT / "docs" / "json.md"
# user data, whose keys are not field names
FREE_FORM = {"metadata", "spec", "env", "bindings", "extra", "transform", "details"}
# (row, field) whose value has the shape of other rows
NESTED = {
    ("diff entry", "new"): ("file",),
    ("diff entry", "old"): ("file",),
    ("cluster", "store"): ("store",),
    ("lineage graph", "nodes"): ("lineage node", "lineage graph"),
}


def json_rows() -> dict[str, str]:
    """docs/json.md's table: object name (before any parenthesis) -> its row."""
    return {
        cells[0].split(" (")[0]: " | ".join(cells)
        for cells in table_rows(JSON_MD)
        if len(cells) == 2
    }


def json_fields(value: Any, rows: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(rows it may be documented in, field) of every key of a JSON value, recursively."""
    if isinstance(value, list):
        for item in value:
            yield from json_fields(item, rows)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield rows, key
            if key not in FREE_FORM:
                yield from json_fields(item, NESTED.get((rows[0], key), rows))


def undocumented(value: Any, row: str) -> list[str]:
    text = json_rows()
    missing = []
    for rows, key in json_fields(value, (row,)):
        if not any(f"`{key}`" in text.get(r, "") for r in rows):
            missing.append(f"{'/'.join(rows)}: `{key}`")
    return sorted(set(missing))


T0 = datetime(2026, 1, 1, tzinfo=UTC)
_LEAF = LineageNode("raw", "c1", "/a.csv", "h", 1, "USER")
_NODE = LineageNode(
    "clean", "c2", "/a.csv", "h", 1, "AUTO", "d", "clean@c2", 1, "x@sha256:0", (_LEAF,), (_LEAF,)
)
_DATUM = DatumReproduction(
    "d", "clean@c2", 1, ("raw@c1:/a.csv",), "SUCCESS",
    (FileCheck("/a.csv", "h", "h2", 1, 1),), 1, None, "", 0.1, "bwrap",
    (EnvChange("X", "1", "2"),),
)  # fmt: skip
# The value types with a hand-written to_dict, filled in so that every field is present.
STATIC_SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("lineage node", _NODE.to_dict()),
    ("lineage graph", LineageGraph.of([_NODE]).to_dict()),
    ("reproduce report", ReproduceReport("t", "c", (_DATUM,), 2, 1, 7).to_dict()),
    ("role bindings", RoleBindings("cluster", {"user:a": ["clusterAdmin"]}).to_dict()),
    ("access", Access("user:a", "r", ["repoOwner"], ["read"]).to_dict()),
    ("project access", ProjectAccess("user:a", "p", ["projectOwner"], ["read"]).to_dict()),
    ("gc report", GcReport(0, 0, 0, 0, 0, 0).to_dict()),
    ("secret", SecretInfo("s", "Opaque", ("k",), T0).to_dict()),
    (
        "store",
        config.StoreConfig(
            Path("/s"),
            objects_url="s3://b/p",
            s3_secret_access_key="k",
            sandbox_paths=("/x",),
            openlineage_url="http://h",
            openlineage_file="f",
        ).describe(),
    ),
]
# The frozen value types of models/info.py: to_dict is every dataclass field.
INFO_ROWS = {
    info.ProjectInfo: "project",
    info.RepoInfo: "repo",
    info.BranchInfo: "branch",
    info.CommitInfo: "commit",
    info.FileInfo: "file",
    info.DiffEntry: "diff entry",
    info.Problem: "fsck problem",
    info.PipelineInfo: "pipeline",
    info.JobInfo: "job",
    info.DatumInfo: "datum",
    info.LogLine: "log line",
}


def test_every_value_type_has_a_row_in_json_md() -> None:
    shapes = {cls.__name__ for cls in info._Info.__subclasses__()}  # (slots: each one twice)
    assert shapes == {cls.__name__ for cls in INFO_ROWS}, "map each to its json.md row"


@pytest.mark.parametrize("cls", list(INFO_ROWS), ids=lambda c: c.__name__)
def test_every_value_type_field_is_documented(cls: type) -> None:
    shape = {f.name: None for f in dataclasses.fields(cls)}
    assert undocumented(shape, INFO_ROWS[cls]) == []


@pytest.mark.parametrize(("row", "shape"), STATIC_SHAPES, ids=[r for r, _ in STATIC_SHAPES])
def test_every_to_dict_field_is_documented(row: str, shape: dict[str, Any]) -> None:
    assert undocumented(shape, row) == []


JSON_COMMANDS = {
    name
    for name, cmd in COMMANDS.items()
    for p in cmd.params
    if isinstance(p.default, Enum) and "json" in [e.value for e in type(p.default)]
}
COPY = {
    "pipeline": {"name": "copy"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", 'cp -r "$data" /pfs/out/']},
}


@pytest.fixture
def cli_json(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``haathi --address STORE ARGS``, in this process (the CLI's own code, quicker than a
    process per command); its JSON output."""
    runner = CliRunner()
    store = str(tmp_path / "store")

    def run(*args: str) -> Any:
        res = runner.invoke(app, ["--address", store, *args])
        assert res.exit_code == 0, f"haathi {' '.join(args)}: {res.output} {res.exception!r}"
        return json.loads(res.stdout) if res.stdout.strip() else None

    yield run
    if cli_main.state.client is not None:
        cli_main.state.client.close()
    cli_main.state.client, cli_main.state.address = None, None


def test_every_json_field_the_cli_prints_is_documented(
    cli_json: Callable[..., Any], tmp_path: Path
) -> None:
    """Every command with ``-o json`` runs once, on a store with a pipeline; every key it
    prints (nested ones too, but not user data) must be in its row of docs/json.md."""
    spec = tmp_path / "copy.json"
    spec.write_text(json.dumps(COPY))
    cli_json("create", "repo", "data", "-d", "input")
    cli_json("put", "file", "data@master:/a.txt", "-f", str(spec))
    cli_json("create", "pipeline", "-f", str(spec))
    cli_json("put", "file", "data@master:/b/c.txt", "-f", str(spec))
    cli_json("edit", "metadata", "repo", "data", "add", "owner=ana")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"metadata": {"name": "creds"}, "stringData": {"k": "v"}}))
    cli_json("create", "secret", "-f", str(secret))
    job = cli_json("list", "job", "-p", "copy", "-o", "json")[0]["id"]
    datum = cli_json("list", "datum", f"copy@{job}", "-o", "json")[0]["id"]
    with haathi.connect(str(tmp_path / "store")) as c:  # a transaction with requests
        txn = c.start_transaction().id
        c.transaction_id = txn
        c.create_repo("more", "later")
        c.create_branch("data@dev", "master")
        c.start_commit("data@master", description="both")
    runs = [
        ("project", "list project"), ("project", "inspect project default"),
        ("repo", "list repo"), ("repo", "inspect repo data"),
        ("branch", "list branch data"), ("branch", "inspect branch data@master"),
        ("commit", "list commit data@master"), ("commit", "inspect commit copy@master"),
        ("commit", "wait commit data@master"), ("commit", "find commit data@master:/a.txt"),
        ("file", "list file data@master:/"), ("file", "inspect file data@master:/a.txt"),
        ("file", "glob file data@master:/*"), ("diff entry", "diff file data@master"),
        ("fsck problem", "fsck"), ("gc report", "gc"),
        ("store", "inspect store"), ("cluster", "inspect cluster"),
        ("validate", f"validate pipeline -f {spec}"),
        ("pipeline", "list pipeline"), ("pipeline", "inspect pipeline copy"),
        ("job", "list job"), ("job", f"inspect job copy@{job}"), ("job", f"wait job copy@{job}"),
        ("datum", f"list datum copy@{job}"), ("datum", f"list datum -f {spec}"),
        ("datum", f"inspect datum copy@{job} {datum}"),
        ("lineage node", "lineage copy@master:/b/c.txt"),
        ("lineage node", "lineage data@master:/b/c.txt --downstream"),
        ("reproduce report", "reproduce file copy@master:/a.txt"),
        ("reproduce report", "reproduce commit copy@master"),
        ("token", "auth activate"), ("whoami", "auth whoami"),
        ("token", "auth get-auth-token alice"), ("token", "auth get-robot-token ci"),
        ("role bindings", "auth set repo data repoReader user:bob"),
        ("role bindings", "auth get repo data"),
        ("role bindings", "auth set cluster clusterAdmin user:alice"),
        ("role bindings", "auth get cluster"), ("access", "auth check repo data"),
        ("role bindings", "auth set project default projectViewer user:bob"),
        ("role bindings", "auth get project default"),
        ("project access", "auth check project default"), ("project", "list project"),
        ("secret", "list secret"), ("secret", "inspect secret creds"),
        ("transaction", "list transaction"), ("transaction", f"inspect transaction {txn}"),
    ]  # fmt: skip
    missing, ran = [], set()
    for row, command in runs:
        missing += undocumented(cli_json(*command.split(), "-o", "json"), row)
        ran.update(_commands_in(f"haathi {command}"))
    graph = cli_json("draw", "lineage", "copy@master:/b/c.txt", "--format", "json")
    missing += undocumented(graph, "lineage graph")
    ran.add("draw lineage")
    assert ran == JSON_COMMANDS, "run every command that prints JSON"
    assert missing == []


# ---- error codes and exit codes ------------------------------------------------------------


def test_every_error_class_is_in_the_error_table() -> None:
    """docs/json.md's error table: one row per class, with its code, exit code and status."""
    table = {}
    for cells in table_rows(JSON_MD):
        if len(cells) == 5 and re.fullmatch(r"`[a-z_]+`", cells[0]) and cells[1].isdigit():
            table[cells[0].strip("`")] = (int(cells[1]), int(cells[2]), cells[3].strip("`"))
    classes = {
        cls.code: (cls.exit_code, cls.http_status, cls.__name__)
        for cls in errors.ERROR_CLASSES.values()
    }
    assert table == classes


def test_the_readme_names_every_exit_code() -> None:
    sentence = re.search(r"Errors are one line on stderr.*?\)\)", README.read_text(), re.S)
    assert sentence is not None
    named = {int(n) for n in re.findall(r"\b(\d+) [a-z]", sentence[0])}
    codes = {cls.exit_code for cls in errors.ERROR_CLASSES.values()} - {1}  # 1: a bug
    assert named == codes


# ---- configuration -------------------------------------------------------------------------

CONFIG_MD = ROOT / "docs" / "config.md"


def _haathi_variables(*packages: str) -> set[str]:
    """Every ``"HAATHI_*"`` string literal in the source: the variables haathi reads."""
    literal = re.compile(r"""["'](HAATHI_[A-Z0-9_]+)["']""")
    return {
        name
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        for name in literal.findall(path.read_text())
    }


def _config_rows() -> list[tuple[str | None, set[str]]]:
    """docs/config.md's tables: (``[section] key`` or None, the variables in its row)."""
    rows = []
    for cells in table_rows(CONFIG_MD):
        if len(cells) == 5 and cells[0] != "`haathi.toml`":
            key = re.fullmatch(r"`(\[\w+\] \w+)`", cells[0])
            rows.append((key[1] if key else None, set(re.findall(r"HAATHI_[A-Z0-9_]+", cells[1]))))
    return rows


def test_every_config_key_is_documented_with_its_variable() -> None:
    rows = {key: variables for key, variables in _config_rows() if key}
    by_field = {name: env for env, name in config.ENV_OVERRIDES.items()}
    for (section, key), name in config._FILE_KEYS.items():
        shown = f"[{section}] {key}"
        assert shown in rows, f"docs/config.md: no row for {shown}"
        wanted = {by_field[name]} if name in by_field else set()
        assert rows[shown] == wanted, f"docs/config.md: {shown} is set by {wanted or 'no var'}"
    assert set(rows) == {f"[{s}] {k}" for s, k in config._FILE_KEYS}, "stale keys"


def test_every_haathi_variable_is_documented() -> None:
    documented = set().union(*(variables for _, variables in _config_rows()))
    assert documented == _haathi_variables("haathi")


def test_the_docs_name_only_real_keys_and_variables() -> None:
    keys = {f"[{s}] {k}" for s, k in config._FILE_KEYS}
    variables = _haathi_variables("haathi", "tests")
    for snippet in code_snippets():
        for key in re.findall(r"^\[\w+\] \w+$", snippet):
            assert key in keys, f"the docs name a config key that does not exist: {key}"
        for name in re.findall(r"HAATHI_[A-Z0-9_]+", snippet):
            assert name in variables, f"the docs name a variable haathi never reads: {name}"


# ---- what the docs point at ----------------------------------------------------------------


def test_the_layer_list_is_the_import_contract() -> None:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contract["contracts"] if c["type"] == "layers")["layers"]
    wanted = [layer.replace("haathi.", "") for layer in layers]
    bullet = re.search(r"^- Layers.*?(?=^- |\Z)", README.read_text(), re.M | re.S)
    assert bullet is not None
    shown = re.findall(r"`([a-z |]+)`", bullet[0])
    assert shown == wanted


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a markdown file's headings."""
    titles = re.findall(r"^#+ (.+)$", prose(path), re.M)
    return {re.sub(r"[^\w\- ]", "", t.lower()).replace(" ", "-") for t in titles}


def test_every_link_and_path_the_docs_name_exists() -> None:
    for path in ALL_DOCS:
        text = path.read_text()
        for link, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            target = path.parent / link if link else path
            assert target.exists(), f"{path.name}: broken link {link}"
            if anchor:
                assert anchor in anchors(target), f"{path.name}: no heading for #{anchor}"
        for name in re.findall(r"`((?:haathi|tests|bench|scripts|docs)/[\w./-]+\.\w+)`", text):
            assert (ROOT / name).exists(), f"{path.name} names {name}, which does not exist"


def test_every_skip_marker_is_before_a_block() -> None:
    markers = sum(bool(SKIP.fullmatch(line)) for line in README.read_text().splitlines())
    skipped = [b for b in blocks(README) if b.skip]
    assert markers == len(skipped), "a skip marker must be the line just before its block"


# ---- running the README --------------------------------------------------------------------


@dataclass
class Ran:
    """One command the README shows, as run: where it is, what ran, and what came out."""

    line: int
    shown: str  # as written (comment stripped)
    comment: str
    ran: str  # with placeholders filled
    code: int
    out: str
    err: str

    def where(self) -> str:
        return f"README.md:{self.line}: {self.shown}\n  ran: {self.ran}\n  stderr: {self.err}"


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its trailing ``# comment``."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def shell_steps(block: Block) -> Iterator[tuple[int, str, str]]:
    """(line, command, comment) of each command of a bash block (``\\`` joins lines)."""
    pending, start = "", 0
    for offset, raw in enumerate(block.lines):
        code, comment = split_comment(raw)
        if not pending:
            start = block.line + 1 + offset
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        code = (pending + code).strip()
        pending = ""
        if code:
            yield start, code, comment


TREE_LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<repo>[\w-]+)@[0-9a-f]+:(?P<path>\S+)(?P<rest>.*)")


def lineage_tree(lines: list[str]) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """A ``haathi lineage`` tree: its edges (parent, child) as ``repo:/path``, and what each
    node is (``user commit`` or ``datum``)."""
    edges, kinds, stack = set(), {}, []
    for line in lines:
        m = TREE_LINE.match(line)
        if m is None:
            continue
        node, depth = f"{m['repo']}:{m['path']}", len(m["indent"]) // 4
        del stack[depth:]
        if stack:
            edges.add((stack[-1], node))
        stack.append(node)
        kinds[node] = "user commit" if "user commit" in m["rest"] else "datum"
    return edges, kinds


class Tour:
    """Runs the README's commands, in order, in a project directory of its own."""

    def __init__(self, tmp: Path) -> None:
        self.project, self.home, bindir = tmp / "project", tmp / "home", tmp / "bin"
        # the preloader's socket, in a directory only we may enter: a short path (a socket's
        # may have 107 bytes, and under pytest-xdist the test's own directory may be too deep)
        self.run_dir = Path(tempfile.mkdtemp(prefix="haathi-tour-"))
        for d in (self.project, self.home, bindir):
            d.mkdir()
        # the checkout's haathi, whatever is installed: its console script, which hands each
        # command to a preloader as a user's does (a cold process per command took 3/4 of the
        # tour's time)
        shim = bindir / "haathi"
        script = "import sys; from haathi.cli.launcher import main; sys.argv[0] = 'haathi'; main()"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{script}" "$@"\n')
        shim.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HAATHI_", "AWS_"))}
        env.pop("XDG_CONFIG_HOME", None)
        path = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env["PATH"]])
        self.env = env | {
            "HOME": str(self.home),
            "PATH": path,
            "PYTHONPATH": str(ROOT),
            "HAATHI_ADDRESS": str(tmp / "store"),
            "COLUMNS": "200",
            "AWS_EC2_METADATA_DISABLED": "true",
            "XDG_RUNTIME_DIR": str(self.run_dir),  # the tour's own preloader, stopped at its end
            "HAATHI_PRELOAD_IDLE": "120",  # (and gone soon if the test is killed)
        }
        # the README's 8650 and 8651, bound by each server the tour starts, long after this
        # (from outside the ephemeral range: no connection of the meantime takes one of them)
        self.port = free_port(plus=1)
        self.fixed = {"/tmp/my-store": str(tmp / "my-store")}
        self.ran: list[Ran] = []
        self.server: subprocess.Popen[bytes] | None = None

    # -- the files the README's commands read -------------------------------------------------

    def files(self) -> None:
        p = self.project
        (p / "photos").mkdir()
        (p / "photos" / "cat.png").write_bytes(b"\x89PNG cat")
        (p / "photos" / "a.jpg").write_bytes(b"\xff\xd8 a")
        for name, data in {"a.png": b"a", "b.png": b"b", "new.png": b"new",
                           "notes.txt": b"my notes\n", "more.txt": b"more\n"}.items():  # fmt: skip
            (p / name).write_bytes(data)
        with tarfile.open(p / "archive.tgz", "w:gz") as tar:
            item = tarfile.TarInfo("scans/s1.txt")
            item.size = 5
            tar.addfile(item, io.BytesIO(b"scan\n"))
        # the README's spec, run with this script; montage crosses images:/ and edges:/
        (p / "edges.py").write_text(EDGES_PY)
        spec = next(b for b in blocks(README) if b.section == "Pipelines" and b.lang == "json")
        text = "\n".join(spec.lines).replace("/home/me/", f"{p}/")
        (p / "edges.json").write_text(text)
        (p / "spec.json").write_text(text)
        s3 = next(b for b in blocks(README) if b.lang == "json" and '"s3_out"' in str(b.lines))
        (p / "s3copy.json").write_text("\n".join(s3.lines))
        (p / "montage.yaml").write_text(MONTAGE_YAML)
        report = next(b for b in blocks(README) if b.section == "Secrets" and b.lang == "json")
        (p / "report.json").write_text("\n".join(report.lines))
        both = next(b for b in blocks(README) if b.section == "Projects" and b.lang == "json")
        (p / "both.json").write_text("\n".join(both.lines))
        model = next(b for b in blocks(README) if b.section == "Transactions" and b.lang == "json")
        (p / "train.json").write_text("\n".join(model.lines))
        for daemon in (b for b in blocks(README) if b.section == "Spouts and services"):
            if daemon.lang == "json":  # clock.json, web.json
                name = json.loads("\n".join(daemon.lines))["pipeline"]["name"]
                (p / f"{name}.json").write_text("\n".join(daemon.lines))

    # -- running -----------------------------------------------------------------------------

    def client(self) -> Client:
        """A Client of the store the README's commands use now (for placeholders and set-up:
        in this process, which is quicker than a command)."""
        return haathi.connect(self.env["HAATHI_ADDRESS"])

    def fill(self, code: str) -> str:
        """The command to run: fixed paths and ports, optional parts in, placeholders filled."""
        for old, new in self.fixed.items():
            code = code.replace(old, new)
        code = re.sub(r"\b8650\b", str(self.port), code)
        code = re.sub(r"\b8651\b", str(self.port + 1), code)
        code = re.sub(r"\[(-[^\[\]]*)\]", r"\1", code)
        code = re.sub(r"<([a-z]+)>", lambda m: self.placeholder(m[1]), code)
        return re.sub(r"\b[0-9a-f]{4}\.\.\.[0-9a-f]*\.([\w-]+)\.([\w-]+)", self.bucket, code)

    def bucket(self, m: re.Match[str]) -> str:
        """``2f0c...9a.BRANCH.REPO``: the S3 bucket of the branch's head commit."""
        with self.client() as c:
            return f"{c.inspect_branch(f'{m[2]}@{m[1]}').head}.{m[1]}.{m[2]}"

    def placeholder(self, name: str) -> str:
        """``<id>``: the newest job of edges (its commit set); ``<datum>``, ``<d>``: a datum
        of it that ran; ``<pipeline>``: a pipeline with a cron input (made on first use)."""
        with self.client() as c:
            if name == "id":
                return c.list_job("edges")[0].id
            if name in ("datum", "d"):
                job = c.list_job("edges")[0].id
                return next(d.id for d in c.list_datum(f"edges@{job}") if d.state != "SKIPPED")
            if name == "pipeline":
                if "tick" not in {p.name for p in c.list_pipeline()}:
                    c.create_pipeline(TICK)
                return "tick"
        raise AssertionError(f"the README uses a placeholder the test does not know: <{name}>")

    def step(self, line: int, code: str, comment: str) -> Ran:
        shown = code
        code = self.fill(code)
        if code.startswith("export "):
            for assignment in shlex.split(code)[1:]:
                key, _, value = assignment.partition("=")
                self.env[key] = value
            ran = Ran(line, shown, comment, code, 0, "", "")
        elif code.startswith("haathi serve"):
            ran = self.serve(line, shown, comment, code)
        elif code == "haathi run worker":  # "in another terminal": in the background
            ran = self.background_worker(line, shown, comment, code)
        else:
            proc = subprocess.run(  # (stdin: a terminal's is open; pytest-xdist's is closed,
                # and a command without one runs in a process of its own, not preloaded)
                ["bash", "-c", f"set -euo pipefail\n{code}"], cwd=self.project, env=self.env,
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            ran = Ran(line, shown, comment, code, proc.returncode, proc.stdout, proc.stderr)
        self.ran.append(ran)
        assert ran.code == 0, f"a documented command failed ({ran.code}): {ran.where()}"
        failed = re.findall(r"job \S+: (?:FAILURE|UNRUNNABLE|KILLED).*", ran.err)
        assert not failed, f"a job of a documented command failed: {failed}\n{ran.where()}"
        check = CHECKS.get(shown)
        if check is not None:
            check(ran, self)
        return ran

    def serve(self, line: int, shown: str, comment: str, code: str) -> Ran:
        """Start ``haathi serve`` in the background (stopping the one before) and wait until
        it answers."""
        if "--bind" not in code:  # its default port, 8650, may be taken on a shared machine
            code += f" --bind 127.0.0.1:{self.port}"

        def answers() -> bool:  # (it listens before it can answer: ask it over HTTP)
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/openapi.json", timeout=5)
                return True
            except httpx.HTTPError:
                return False

        return self.in_background(line, shown, comment, code, "serve", lambda _log: answers())

    def close(self) -> None:
        """Stop the server and the preloader the tour started."""
        self.stop_server()
        subprocess.run(
            ["haathi", "stop", "preloader"], env=self.env, capture_output=True, check=True
        )
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def background_worker(self, line: int, shown: str, comment: str, code: str) -> Ran:
        """Start ``haathi run worker`` in the background (as a server: stopped when a server
        starts, or the test ends), and wait until it runs."""
        return self.in_background(
            line, shown, comment, code, "worker", lambda log: "running jobs of" in log.read_text()
        )

    def in_background(
        self, line: int, shown: str, comment: str, code: str, name: str,
        ready: Callable[[Path], bool],
    ) -> Ran:  # fmt: skip
        """Start ``code`` in the background in place of the server before (its output in
        ``<name>-<line>.log``) and wait up to 2 minutes until ``ready(log)`` or it exits."""
        self.stop_server()
        log = self.project / f"{name}-{line}.log"
        with open(log, "wb") as fh:
            self.server = subprocess.Popen(
                ["bash", "-c", f"exec {code}"], cwd=self.project, env=self.env,
                stdout=fh, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.server.poll() is None and not ready(log):
            time.sleep(0.1)
        return Ran(line, shown, comment, code, self.server.poll() or 0, "", log.read_text())

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None

    def transcript(self, block: Block) -> None:
        """A ``$ command`` block: run it; its output must hold the tree the README shows."""
        line, command = block.line + 1, block.lines[0].removeprefix("$ ")
        ran = self.step(line, command, "")
        shown_edges, shown_kinds = lineage_tree(list(block.lines[1:]))
        edges, kinds = lineage_tree(ran.out.splitlines())
        assert shown_edges and shown_edges <= edges, f"README.md:{line}: {ran.out}"
        assert {n: kinds.get(n) for n in shown_kinds} == shown_kinds, ran.out

    def run(self, chapters: Callable[[str], bool]) -> None:
        """Every block of the chosen chapters, in order; SETUP first where a section has it."""
        set_up = set()
        for block in blocks(README):
            if block.skip or not chapters(block.chapter):
                continue
            if block.section in SETUP and block.section not in set_up:
                SETUP[block.section](self)
                set_up.add(block.section)
            if block.lang == "bash":
                for line, code, comment in shell_steps(block):
                    self.step(line, code, comment)
            elif not block.lang and block.lines and block.lines[0].startswith("$ "):
                self.transcript(block)


EDGES_PY = """\
import os, pathlib
src, base = pathlib.Path(os.environ["images"]), pathlib.Path("/pfs/images")
for f in [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()):
    out = pathlib.Path("/pfs/out") / f.relative_to(base)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(f.read_bytes()[::-1])
    print("edges:", f, "threshold", os.environ["THRESHOLD"])
"""
MONTAGE_YAML = """\
pipeline: {name: montage}
input:
  cross:
  - pfs: {repo: images, glob: /}
  - pfs: {repo: edges, glob: /}
transform:
  cmd: [sh, -c, 'ls -R /pfs/images /pfs/edges > /pfs/out/montage.txt']
"""
TICK = {
    "pipeline": {"name": "tick"},
    "input": {"cron": {"name": "tick", "spec": "@every 3600s"}},
    "transform": {"cmd": ["sh", "-c", "ls /pfs/tick > /pfs/out/ticks"]},
}


def lineage_dag(tour: Tour) -> None:
    """The DAG the Lineage section's transcript shows: raw -> clean -> features (crossed with
    labels) -> model (features grouped by prefix, crossed with params)."""
    specs = {
        "clean": {"input": {"pfs": {"repo": "raw", "glob": "/*"}},
                  "transform": {"cmd": ["sh", "-c", 'tr -d " " < "$raw" > /pfs/out/"${raw##*/}"']}},
        "features": {"input": {"cross": [{"pfs": {"repo": "clean", "glob": "/*"}},
                                         {"pfs": {"repo": "labels", "glob": "/*"}}]},
                     "transform": {"cmd": ["sh", "-c", 'n=${clean##*/}; '
                                           'cat "$clean" "$labels" > "/pfs/out/${n%.csv}.feat"']}},
        "model": {"input": {"cross": [{"group": [{"pfs": {"repo": "features",
                                                          "glob": "/(*)-*.feat",
                                                          "group_by": "$1"}}]},
                                      {"pfs": {"repo": "params", "glob": "/*"}}]},
                  "transform": {"cmd": ["sh", "-c", 'cat /pfs/features/* "$params" > '
                                        '"/pfs/out/model-$PACH_DATUM_features_GROUP_BY"']}},
    }  # fmt: skip
    with tour.client() as c:
        for repo in ("raw", "labels", "params"):
            c.create_repo(repo)
        c.put_file("params@master:/p.txt", b"rate=0.1\n")
        c.put_file("labels@master:/a.txt", b"label a\n")
        for name, spec in specs.items():
            c.create_pipeline({"pipeline": {"name": name}} | spec)
        with c.start_commit("raw@master") as commit:  # one commit set down the DAG
            commit.put_file("/a-1.csv", b"1, 2\n")
            commit.put_file("/a-2.csv", b"3, 4\n")
        failed = [f"{j.pipeline}: {j.reason}" for j in c.list_job() if j.state != JobState.SUCCESS]
        assert not failed, failed


SETUP: dict[str, Callable[[Tour], None]] = {"Lineage: where did this file come from?": lineage_dag}


# What the README says a command prints (its comment, or what it implies), checked.
Check = Callable[[Ran, Tour], None]


def prints(*parts: str, stream: str = "out") -> Check:
    def check(ran: Ran, tour: Tour) -> None:
        text = ran.out if stream == "out" else ran.err
        for part in parts:
            assert re.search(part, text), f"{part!r} not in {stream}: {ran.where()}\n{text}"

    return check


def same_file(written: str, original: str) -> Check:
    def check(ran: Ran, tour: Tour) -> None:
        got = (tour.project / written).read_bytes()
        assert got == (tour.project / original).read_bytes(), ran.where()

    return check


def job_table(ran: Ran, tour: Tour) -> None:
    """``list job``'s columns, as the Pipelines chapter's comment names them."""
    header = ran.out.splitlines()[0].split()
    assert header == ["PROJECT", "PIPELINE", "ID", "STARTED", "DURATION", "PROGRESS", "STATE"]
    assert not ran.comment.isupper() or ran.comment.split() == header


def output_is_comment(ran: Ran, tour: Tour) -> None:
    assert ran.out.strip() == ran.comment, ran.out


def inspected_cat(ran: Ran, tour: Tour) -> None:
    got = json.loads(ran.out)
    assert (got["path"], got["size_bytes"]) == ("/photos/cat.png", 8), got


def rows(ran: Ran, n: int) -> None:
    assert len(ran.out.splitlines()) == 1 + n, f"a header and {n} rows: {ran.out}"


def commit_id(ran: Ran, tour: Tour) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}\n", ran.out), ran.out


def names_only(ran: Ran, tour: Tour) -> None:
    assert ran.out.split() == ["/log.txt", "/notes.txt", "/scans/s1.txt"], ran.out


JOB_OK = r"job {}@\w+: SUCCESS — "
COMMIT_SET = prints(r"\bimages\b", r"\bedges\b", r"\bmontage\b")
CHECKS: dict[str, Check] = {
    # CLI tour
    "haathi list repo": prints(r"images\s+.*raw images"),
    "haathi list commit images@master -n 5": lambda ran, tour: rows(ran, 5),
    "haathi list file images@master:/photos": prints("/photos/a.jpg", "/photos/cat.png"),
    'haathi glob file "images@master:/photos/**.png"': prints("/photos/cat.png"),
    "haathi get file images@master^:/notes.txt": prints("^my notes\n$"),
    "haathi get file images@master.1:/photos/cat.png -o cat.png": same_file(
        "cat.png", "photos/cat.png"
    ),
    "haathi get file images@master:/photos -r -o ./out": same_file("out/cat.png", "photos/cat.png"),
    "haathi diff file images@master": prints(r"\+ /scans/s1.txt  \(added"),
    "haathi diff file images@master images@master~3 --name-only": names_only,
    "haathi inspect file images@master:/photos/cat.png -o json": inspected_cat,
    'haathi start commit images@master -m "a batch"': commit_id,
    "haathi fsck": prints("^no problems found$"),
    # Pipelines
    "haathi create pipeline -f edges.json": prints(JOB_OK.format("edges"), stream="err"),
    "haathi create pipeline -f montage.yaml": prints(JOB_OK.format("montage"), stream="err"),
    "haathi put file images@master:/new.png -f new.png": prints(
        JOB_OK.format("edges") + "1 processed", JOB_OK.format("montage"), stream="err"
    ),
    "haathi list job": job_table,
    "haathi inspect job edges@<id>": prints("State: SUCCESS", r"Datums: \d+ total, 1 processed"),
    "haathi list datum edges@<id>": prints("SUCCESS", "SKIPPED"),
    "haathi inspect datum edges@<id> <datum>": prints("THRESHOLD=0.4", "PACH_DATUM_ID=", "new.png"),
    "haathi logs -p edges [-j <id>] [--datum <d>] [-f]": prints(
        "edges: /pfs/images/new.png threshold 0.4"
    ),
    "haathi wait commit <id>": COMMIT_SET,
    "haathi list commit <id>": COMMIT_SET,
    "haathi list datum -f spec.json": prints("STARTING"),
    "haathi update pipeline -f edges.json [--reprocess]": prints(
        JOB_OK.format("edges") + r"\d+ processed, 0 skipped", stream="err"
    ),
    "haathi list pipeline edges --history all": prints(
        r"edges\s+2\s+images@master.*running / success\s*\ndefault\s+edges\s+1\s+.*superseded"
    ),
    "haathi inspect pipeline edges@v1": prints("Version: 1\nState: SUPERSEDED\n"),
    "haathi rollback pipeline edges@v1": prints(JOB_OK.format("edges"), stream="err"),
    "haathi list branch sensors": prints(  # master moved to staging's head
        r"master\s+(\w{32})\s+staging on Size\(1MB\)\s*\nstaging\s+\1\s"
    ),
    "haathi validate pipeline -f spec.json; haathi draw pipeline; haathi run cron <pipeline>": (
        prints("pipeline edges: valid", r"images\n└─▶ edges \(pipeline\)", r"tick \(pipeline\)")
    ),
    # Projects
    "haathi list project": prints(
        r"ACTIVE\s+PROJECT\s+CREATED\s+DESCRIPTION\s*\n\*\s+default .* -\s"
    ),
    "haathi create pipeline -f both.json": prints(JOB_OK.format("staging/both"), stream="err"),
    "haathi list pipeline -A": prints(r"default\s+edges\s", r"staging\s+both\s"),
    "haathi get file staging/both@master:/review/cat.png": prints("^a$"),
    # Transactions
    "haathi start commit raw_data@master": prints(r"^Added to transaction: (\w{32})\n\1\n$"),
    "haathi finish transaction": prints(r"^Completed transaction with 2 requests: \w{32}\n"),
    "haathi finish commit parameters@master": prints(JOB_OK.format("train"), stream="err"),
    # Lineage
    "haathi lineage raw@master:/a-2.csv --downstream": prints(
        r"└── clean@\w+:/a-2.csv", r"features@\w+:/a-2.feat", r"model@\w+:/model-a"
    ),
    "haathi draw lineage model@master:/model-a --format mermaid": prints("^graph LR", "raw@"),
    "haathi reproduce model@master:/model-a": prints("✓ all 1 file of 1 datum reproduce"),
    # Stores: maintenance
    "haathi fsck --fast": prints("^no problems found$"),
    "haathi fsck --fix": prints("^no problems found$"),
    "haathi gc --grace 0": prints("^deleted "),
    # Server
    "haathi serve --store ~/lake": prints(
        "haathi serving .*/lake at http://127.0.0.1", stream="err"
    ),
    "haathi serve --store ~/lake --bind 0.0.0.0:8650 --max-upload 50GiB": prints(
        "0.0.0.0 is not a loopback address", stream="err"
    ),
    "aws --endpoint-url http://127.0.0.1:8651 s3 ls s3://dev.images/photos/": prints(
        r"\ba.jpg\b", r"\bcat.png\b"
    ),
    "aws --endpoint-url http://127.0.0.1:8651 s3 cp s3://2f0c...9a.dev.images/photos/a.jpg .": (
        same_file("a.jpg", "photos/a.jpg")
    ),
    "haathi auth activate": prints("root token"),
    "haathi auth get cluster": prints(r"user:ops\s+clusterAdmin"),
    "haathi auth whoami": output_is_comment,
    "haathi auth get repo data": prints(r"user:alice\s+repoOwner", r"user:bob\s+repoReader"),
    "haathi auth check repo data": prints("user:alice on data: roles repoOwner"),
    "haathi auth get project team": prints(r"user:alice\s+projectOwner", r"user:bob\s+repoReader"),
    "haathi auth check project team": prints(
        "user:alice on project team: roles projectOwner; may read, write, own, list_repo"
    ),
    "haathi auth revoke --user user:alice": prints("Revoked 1 token"),
    "haathi auth logout": prints("Logged out"),
}


def readme_commands() -> set[str]:
    shown = set()
    for block in blocks(README):
        if block.lang == "bash" and not block.skip:
            shown.update(code for _, code, _ in shell_steps(block))
    return shown


def test_every_check_is_of_a_command_the_readme_runs() -> None:
    assert set(CHECKS) <= readme_commands(), set(CHECKS) - readme_commands()


@pytest.mark.slow  # a process per command
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    """The CLI tour, pipelines, lineage and maintenance, in order on one fresh store."""
    tour = Tour(tmp_path)
    tour.files()
    try:
        tour.run(lambda chapter: chapter != "Server")
    finally:
        tour.close()  # (and the worker that runs the spout and the service)
    assert len(tour.ran) > 40


@pytest.mark.slow  # a process per command
def test_the_readme_server_chapter_runs_as_written(tmp_path: Path) -> None:
    """The server, its S3 gateway and auth, in order on a fresh store served on a free port."""
    tour = Tour(tmp_path)
    tour.files()
    try:
        tour.run(lambda chapter: chapter == "Server")
    finally:
        tour.close()
    assert len(tour.ran) > 15
