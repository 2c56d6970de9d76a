"""``haathi list preloader`` and ``haathi stop preloader``: this user's preloaders, the
background processes that start commands fast (:mod:`haathi.cli.launcher`,
:mod:`haathi.cli.preload`). These two always run in their own process, never in a preloader's,
and start none."""

from __future__ import annotations

import os
import time
from typing import Any

from rich.table import Table

from haathi.cli import launcher, render
from haathi.cli.main import command
from haathi.errors import FailedPrecondition


def _ask_all(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Each live preloader's answer; the sockets of dead ones are removed on the way."""
    try:
        directory = launcher.socket_dir()
    except launcher.UnsafeDirectory as exc:
        raise FailedPrecondition(f"cannot reach the preloaders: {exc}") from exc
    except OSError as exc:
        raise FailedPrecondition(f"cannot reach the preloaders: {exc}") from exc
    answers = []
    for path in launcher.preloader_sockets(directory):
        answer = launcher.ask(path, message)
        if isinstance(answer, dict):
            answers.append(answer)
        else:
            launcher.remove_dead(path)
    return answers


@command("list", "preloader", "preloaders")
def list_preloader() -> None:
    """List this user's preloaders (HAATHI_PRELOAD=0 turns preloading off)."""
    items = _ask_all({"op": "status"})
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("PID", "STARTED", "COMMANDS", "RUNNING", "IDLE", "PYTHON", "HAATHI"):
        t.add_column(col)
    for p in items:
        idle = f"{p['idle_for']:.0f} of {p['idle_s']:.0f} s" if not p["running"] else "-"
        t.add_row(
            str(p["pid"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["started"])),
            str(p["served"]),
            str(p["running"]),
            "stopping" if p["stopping"] else idle,
            str(p["python"]),
            os.path.dirname(str(p["haathi"])),
        )
    render.out.print(t)


@command("stop", "preloader", "preloaders")
def stop_preloader() -> None:
    """Stop this user's preloaders (the commands they run finish first); the next command
    starts one again unless HAATHI_PRELOAD=0."""
    stopped = _ask_all({"op": "stop"})
    render.out.print(f"stopped {len(stopped)} preloader(s)")
