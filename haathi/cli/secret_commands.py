"""``haathi create/list/inspect/delete secret`` (pachctl's): secrets pipelines read through
``transform.secrets``. No command prints a value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from haathi.cli import render
from haathi.cli.main import OutputOpt, client, command
from haathi.cli.render import Output
from haathi.models.secret import SecretInfo


@command("create", "secret")
def create_secret(
    file: Annotated[
        str,
        typer.Option("--file", "-f", help="a Kubernetes Secret, JSON or YAML (- for stdin)"),
    ],
) -> None:
    """Store a secret, encrypted (``data`` base64, ``stringData`` plain text)."""
    client().create_secret(file)


@command("list", "secret", "secrets")
def list_secret(output: OutputOpt = Output.table) -> None:
    """List secrets (names, types, creation times)."""
    items = client().list_secret()
    render.emit_json(items) if output == Output.json else _table(items)


@command("inspect", "secret")
def inspect_secret(name: str, output: OutputOpt = Output.table) -> None:
    """Show a secret: its type, creation time and key names (never a value)."""
    s = client().inspect_secret(name)
    render.emit_json(s) if output == Output.json else _table([s], keys=True)


@command("delete", "secret")
def delete_secret(name: str) -> None:
    """Delete a secret (jobs of pipelines that use it then fail, saying why)."""
    client().delete_secret(name)


def _table(items: Sequence[SecretInfo], *, keys: bool = False) -> None:
    t = render._table("NAME", "TYPE", "CREATED", *(["KEYS"] if keys else []))
    for s in items:
        t.add_row(s.name, s.type, render.ago(s.created), *([", ".join(s.keys)] if keys else []))
    render.out.print(t)
