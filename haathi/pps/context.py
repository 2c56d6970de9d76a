"""What every PPS operation works with: the PFS context plus how and where datums run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from haathi.pfs.context import PfsContext

if TYPE_CHECKING:
    from haathi.pps.openlineage import LineageSink
    from haathi.pps.sidecars import JobGateways

StoreOpener = Callable[[], PfsContext]


@dataclass
class PpsContext:
    """``pfs`` for this process; ``remote_store`` opens the same store on a remote worker
    (picklable: a dask worker calls it); ``scratch_dir`` holds datum working directories."""

    pfs: PfsContext
    scratch_dir: Path
    remote_store: StoreOpener | None = None
    executor: str | None = None  # None: local threads; "dask://host:port"
    sandbox: str = "auto"  # "auto" | "bwrap" | "none"
    sandbox_paths: tuple[str, ...] = ()  # host paths user code may also read (bwrap)
    runtime: str = "auto"  # how a pipeline with an image runs: auto | bwrap | podman | docker
    image_pull_policy: str = "IfNotPresent"
    allow_network: bool = False  # containers get the host's network
    protected_paths: tuple[str, ...] = ()  # host paths user code never sees (the store, ...)
    job_lease_s: float = 60.0  # a silent runner's job is taken over after this long
    store_key: str = "local"  # names the store for workers (its address)
    runner_id: str = field(default="")
    lineage: LineageSink | None = None  # where jobs send OpenLineage run events (None: nowhere)
    secrets_key_path: Path | None = None  # the file of the key that encrypts secrets
    gateways: JobGateways | None = None  # serves jobs' S3 gateways (None: such jobs fail)
    # where egress may not write: the store's own objects (bucket, prefix, endpoint) when
    # they are in S3, and its metadata database
    own_objects: tuple[str, str, str | None] | None = None
    own_db_url: str | None = None
