"""How a spout or service pipeline is doing, as ``inspect pipeline`` and ``list pipeline``
show it (``PipelineInfo.state``, ``reason`` and ``daemon``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from haathi.pps import daemon_records, records
from haathi.pps.daemon_records import PAUSED, STARTING
from haathi.pps.spec import PipelineSpec

WAITING = "waiting for a worker: run `haathi run worker` or `haathi serve`"
"""Why a spout or service nobody runs is STARTING."""
STOPPING = "stopping: its worker stops it within a second"
"""Why a stopped spout or service still has a runner."""


def daemon_info(conn: Connection, p: records.PipelineRow, spec: PipelineSpec) -> dict[str, Any]:
    """``kind``, ``state`` (STARTING, RUNNING, CRASHING or PAUSED), ``reason``, ``runner``
    (the worker running it), ``restarts``, ``address`` (where a service is published) and
    ``job`` (the job whose datum a service serves)."""
    row = daemon_records.find(conn, p.id)
    held = row is not None and row.held()
    if p.state == PAUSED:  # (a pipeline's state, as pipelines.PAUSED)
        state, reason = PAUSED, STOPPING if held else None
    elif row is None or not held:
        state, reason = STARTING, WAITING
    else:
        state, reason = row.state, row.reason
    port = row.port if row is not None and held and state != PAUSED else None
    return {
        "kind": spec.kind,
        "state": state,
        "reason": reason,
        "runner": row.runner if row is not None and held else None,
        "restarts": row.restarts if row is not None else 0,
        "address": f"127.0.0.1:{port}" if port and spec.published is not None else None,
        "job": row.job_commit if row is not None else None,
    }
