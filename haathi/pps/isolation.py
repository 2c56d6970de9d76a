"""How a job's user code is isolated: the sandbox, and what of the host it shows.

Chosen per job (and per ``reproduce``) from the store's settings and whether auth is on. With
auth on, pipelines come from users who are not the store's owner, so their code runs only in a
real sandbox (never ``none``: a job that cannot get one fails with the reason) and sees only
the system, its programs and the operator's ``sandbox_paths``. With auth off it also sees the
working directory of the process running the job. It never sees the store or haathi's
config, tokens and credentials (:mod:`haathi.pps.hostview`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from haathi.auth import activation
from haathi.pps.context import PpsContext
from haathi.pps.hostview import HostView
from haathi.pps.sandbox import resolve_sandbox, sandbox_note


@dataclass(frozen=True, slots=True)
class Isolation:
    """The sandbox a job's datums run in (``bwrap`` or ``none``), what of the host it shows,
    and a note when ``auto`` had to fall back to no isolation."""

    sandbox: str
    view: HostView
    note: str = ""

    def describe(self) -> str:
        """For output: ``bwrap``, or ``none (no isolation: ...)``."""
        return f"{self.sandbox} ({self.note})" if self.note else self.sandbox


def isolation_for(ctx: PpsContext) -> Isolation:
    """The isolation a job of this store gets now; FailedPrecondition when auth is on and no
    isolating sandbox can run here."""
    with ctx.pfs.db.read() as conn:
        auth_on = activation.is_active(conn)
    sandbox = resolve_sandbox(ctx.sandbox, isolate=auth_on)
    show = list(ctx.sandbox_paths)
    if not auth_on:
        with contextlib.suppress(OSError):  # a working directory that is gone shows nothing
            show.append(os.getcwd())
    view = HostView(show=tuple(show), hide=ctx.protected_paths)
    return Isolation(sandbox, view, sandbox_note(ctx.sandbox, sandbox))
