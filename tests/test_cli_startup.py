"""A CLI command imports what it needs and no more (issue 17: ``haathi version`` in 100 ms,
``list repo`` against a server in 200 ms), and the command line it builds lazily is typer's.

Each budget test runs a real ``python -m haathi`` (``HAATHI_PRELOAD=0``: not through a
preloaded process) under ``-X importtime``, which names every module the process imports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

import haathi
from haathi.cli import main
from haathi.server.serve import Server


def imported(*args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """Run ``python -m haathi ARGS``: its stdout, and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "haathi", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HAATHI_PRELOAD": "0", **(env or {})},
        timeout=120,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    assert proc.returncode == 0, "\n".join(ln for ln in proc.stderr.splitlines()[-20:])
    modules = {ln.split("|")[2].strip() for ln in lines[1:]}  # the first line is the header
    assert "haathi.cli.main" in modules  # the output is what we think it is
    return proc.stdout, modules


def loaded(modules: set[str], *packages: str) -> list[str]:
    """Which of ``packages`` (or their submodules) are among ``modules``."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


def test_version_imports_neither_the_store_nor_http_nor_the_renderer(tmp_path: Path) -> None:
    out, modules = imported("version", env={"HAATHI_ADDRESS": str(tmp_path / "store")})
    assert out == f"{haathi.__version__}\n"
    unwanted = ("sqlalchemy", "httpx", "haathi.api", "haathi.client", "rich", "pydantic")
    assert loaded(modules, *unwanted) == []
    assert not (tmp_path / "store").exists()  # and opens no store


def test_a_remote_command_imports_no_embedded_store(server: Server, store: Path) -> None:
    haathi.connect(server.url).create_repo("data")
    out, modules = imported("--address", server.url, "list", "repo")
    assert out.splitlines()[1].split()[:2] == ["default", "data"]  # under the table's header
    embedded = ("sqlalchemy", "haathi.api", "haathi.runtime", "haathi.meta", "haathi.storage")
    assert loaded(modules, *embedded, "haathi.pfs", "haathi.pps", "haathi.auth") == []
    # nor what httpx's own command line needs (haathi's CLI runs on typer's copy of click)
    assert loaded(modules, "click", "pygments") == []


def _shape(cmd: Any) -> Any:
    """What a click command is made of, through its subcommands, in their order."""
    params = [(p.name, p.opts, p.secondary_opts, p.required, p.default) for p in cmd.params]
    subs = getattr(cmd, "commands", None)
    children = None if subs is None else [(n, _shape(c)) for n, c in subs.items()]
    return (cmd.name, cmd.help, cmd.hidden, type(cmd).__name__, params, children)


def test_the_commands_made_on_demand_are_typers() -> None:
    """Every command, group, option and help text, in the order ``--help`` lists them."""
    from haathi.cli.command_tree import click_app

    main.load_commands()
    lazy = click_app(main.app, main.load_commands)
    assert _shape(lazy) == _shape(typer.main.get_command(main.app))


def test_help_lists_every_command_in_order_in_a_new_process() -> None:
    main.load_commands()
    expected = [n for n, c in typer.main.get_command(main.app).commands.items() if not c.hidden]
    proc = subprocess.run(
        [sys.executable, "-m", "haathi", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "HAATHI_PRELOAD": "0", "COLUMNS": "200", "TERM": "dumb"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^│ ([a-z]\S*) ", proc.stdout, re.MULTILINE)
    assert listed == expected
    assert listed[:5] == ["init", "fsck", "gc", "version", "demo"]
