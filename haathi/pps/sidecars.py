"""Job sidecars: the S3 gateway a job's user code reads its inputs from and writes its output
to (``input.pfs.s3``, ``s3_out``), as Pachyderm's worker sidecar gives it.

The process that runs a datum set serves it a gateway of its own for as long as the set runs
(:class:`Sidecar`). What the gateway serves is the job's namespace and nothing else:

- one read-only bucket per s3 input, named by the input's ``name``, holding the current
  datum's files of that input (its glob is ``/``: the whole input commit);
- with ``s3_out``, the bucket ``out``: the datum's output directory (``S/pfs/out``, which the
  worker collects after each run exactly as it collects ``/pfs/out``, so datum records,
  collisions and provenance are a ``/pfs`` job's).

User code finds it through ``S3_ENDPOINT`` and signs with ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``: both are a random 256-bit token minted for the datum set, which
the gateway alone checks (it is no haathi token: the server knows nothing of it). It stops
working when the set ends, with the gateway.

User code has no network in a sandbox. The gateway listens on a Unix socket in ``S/.sock``,
which the sandbox shows, and the sandbox's launcher relays ``127.0.0.1:PORT`` on the
sandbox's own loopback to it (:meth:`haathi.pps.sandbox.Sandbox.relay`). Without a sandbox
(``none``) the gateway listens on the host's loopback, where any local process can reach it
(the token still guards it).

The gateway itself is the server layer's (:class:`haathi.server.sidecar.JobGatewayFactory`,
given to :class:`~haathi.pps.context.PpsContext` as ``gateways``); a process without one
fails such jobs, saying so (:data:`NO_GATEWAY`), and never runs them another way.

A spout's program reaches haathi's own API the same way (:class:`SpoutApis`: the REST routes
of repos, commits and files, confined to the spout's output repo, with a token of its own;
:mod:`haathi.pps.daemons`). The launcher's relay message (:mod:`haathi.pps.launcher`) also
takes the other direction, a Unix socket it listens on relayed to a TCP port inside the
sandbox: how a service's port is published on the host
(:meth:`~haathi.pps.sandbox.Sandbox.publish`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from haathi.pfs.context import PfsContext
from haathi.pps.sandbox import Sandbox
from haathi.pps.session import SOCKET_DIR, listen_unix

NO_GATEWAY = (
    "this process serves no job S3 gateway, which s3 inputs and s3_out need: run the jobs "
    "with `haathi run worker`, `haathi serve`, the haathi CLI or haathi.connect()"
)
REGION = "us-east-1"
"""The region user code is told (botocore needs one; the gateway ignores it)."""
GATEWAY_SOCKET = "gw.sock"  # in S/.sock


@dataclass(frozen=True, slots=True)
class S3Bucket:
    """An input bucket of a job's gateway: one s3 input's files in the current datum."""

    name: str
    commit: str
    files: tuple[tuple[str, bytes], ...]  # (path in the repo, packed chunk list), path order


@dataclass(frozen=True, slots=True)
class GatewayScope:
    """What a job's gateway serves: ``out_dir`` is the bucket ``out`` (None: no ``s3_out``),
    ``spool_dir`` where writes are received before they land there (same file system), and
    ``owner`` who user code runs as, when haathi runs as root (files it makes are theirs)."""

    pipeline: str
    job_id: str
    token: str
    out_dir: Path | None
    spool_dir: Path
    owner: tuple[int, int] | None = None


class Gateway(Protocol):
    """A running gateway (see the module docstring)."""

    def serve(self, inputs: Sequence[S3Bucket]) -> None:
        """Serve these input buckets (the next datum's) from now on."""

    def settle(self) -> None:
        """Return once no request is in flight (the run has ended: what its processes sent
        has landed or been dropped), so the outputs can be collected."""

    def close(self) -> None:
        """Stop serving: the token works nowhere after this."""


class JobGateways(Protocol):
    """Opens gateways (picklable: a Dask worker opens its datum sets' gateways itself)."""

    def open(self, ctx: PfsContext, listener: socket.socket, scope: GatewayScope) -> Gateway:
        """A gateway serving ``scope`` on ``listener`` (bound and listening), reading input
        files from ``ctx``."""


class Sidecar:
    """A datum set's gateway, reachable by its user code in ``sandbox``; ``env`` is what user
    code is given to find it (Pachyderm's variables)."""

    def __init__(
        self,
        gateways: JobGateways,
        ctx: PfsContext,
        sandbox: Sandbox,
        *,
        pipeline: str,
        job_id: str,
        s3_out: bool,
    ) -> None:
        token = secrets.token_hex(32)
        scratch = sandbox.scratch
        spool = scratch / ".s3-spool"
        spool.mkdir(exist_ok=True)
        owner = sandbox.launch.owner if sandbox.launch and os.geteuid() == 0 else None
        out = scratch / "pfs" / "out" if s3_out else None
        scope = GatewayScope(pipeline, job_id, token, out, spool, owner)
        with contextlib.ExitStack() as on_error:
            if sandbox.launch is not None:
                path = scratch / SOCKET_DIR / GATEWAY_SOCKET
                listener = listen_unix(path, backlog=64)
                on_error.callback(listener.close)
                port = sandbox.relay(path)
            else:
                listener = socket.create_server(("127.0.0.1", 0), backlog=64)
                on_error.callback(listener.close)
                port = int(listener.getsockname()[1])
            self._gateway = gateways.open(ctx, listener, scope)
            on_error.pop_all()
        self.env = {
            "S3_ENDPOINT": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": token,
            "AWS_SECRET_ACCESS_KEY": token,
            "AWS_DEFAULT_REGION": REGION,
        }

    def serve(self, inputs: Sequence[S3Bucket]) -> None:
        self._gateway.serve(inputs)

    def settle(self) -> None:
        self._gateway.settle()

    def close(self) -> None:
        self._gateway.close()

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class SpoutScope:
    """What a spout's API serves: pipeline ``pipeline``'s output repo (a key), to the holder
    of ``token``."""

    pipeline: str
    token: str


class Served(Protocol):
    """Something serving on a socket until closed."""

    def close(self) -> None:
        """Stop serving (the socket is closed)."""


class SpoutApis(Protocol):
    """Serves spouts their API (the server layer's: :mod:`haathi.server.spout_api`)."""

    def open(self, listener: socket.socket, scope: SpoutScope) -> Served:
        """Serve ``scope`` on ``listener`` (bound and listening) until closed."""
