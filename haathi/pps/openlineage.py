"""OpenLineage run events for jobs: START when a job starts, COMPLETE / FAIL / ABORT when it
ends, appended to a file as JSON lines and/or POSTed to an HTTP endpoint (``<url>/api/v1/lineage``,
e.g. Marquez).

A job is an OpenLineage *run* of the *job* named after its pipeline, in the configured
namespace; its run ID is a UUID derived from ``pipeline@commit-set-id``, so every event of one
job carries the same ID. Its inputs are the input commits it read and its output is its output
commit, each a dataset named ``repo@commit``. Facets: ``jobType``, ``documentation`` (the
pipeline's description), ``haathi_pipeline`` (spec version, hash and effective spec),
``processing_engine``, ``haathi_job`` (execution context and datum counts), ``errorMessage``
(the reason a job failed or was killed), dataset ``version`` (the commit ID) and
``outputStatistics`` (size and file count of a successful job's output commit).

Events never hold a job up and never fail it: a hook reads what the event needs from the
database and queues it; one background thread imports the openlineage-python client (only once
an event exists: a store without a target imports nothing), builds the events and sends them in
order, logging (``logging`` warnings) and dropping what it cannot send. An HTTP request gives up
after ``HTTP_TIMEOUT_S``; closing the store waits at most ``FLUSH_S`` for queued events.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haathi.models.info import JobState
from haathi.pfs import provenance
from haathi.pfs.commits import find_commit
from haathi.pfs.context import now
from haathi.pfs.repos import repo_id_of
from haathi.pps import records
from haathi.pps.context import PpsContext
from haathi.pps.spec import parse_spec

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import RunEvent

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 2.0  # one POST to the endpoint, connecting and reading
FLUSH_S = 5.0  # closing the store waits at most this long for unsent events
QUEUE_MAX = 10_000  # events waiting to be sent; past that, new ones are dropped (and logged)
_HTTP_RETRY = {  # urllib3 Retry: one more try for a refused connection or a 5xx, never a read
    "total": 1, "connect": 1, "read": 0, "backoff_factor": 0.2,
    "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"],
}  # fmt: skip

RUN_ID_NAMESPACE = uuid.UUID("5f1e7a3c-8d2b-5c4e-9a61-0b7d3e2f4a58")  # uuid5 namespace of run IDs
FACETS_SCHEMA_ID = "urn:haathi:openlineage:facets:1-0-0"
_OL_SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
_DATUM_COUNTS = ("total", "processed", "skipped", "failed", "recovered")

# JSON Schema of haathi's custom facets (their ``_schemaURL`` points into it).
FACETS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": FACETS_SCHEMA_ID,
    "$defs": {
        "HaathiPipelineJobFacet": {
            "allOf": [
                {"$ref": f"{_OL_SPEC}#/$defs/JobFacet"},
                {
                    "type": "object",
                    "properties": {
                        "specVersion": {"type": "integer", "minimum": 1},
                        "specHash": {"type": "string"},
                        "spec": {
                            "description": "the effective pipeline spec (Pachyderm JSON)",
                            "type": "object",
                        },
                    },
                    "required": ["specVersion", "specHash", "spec"],
                },
            ],
            "type": "object",
        },
        "HaathiJobRunFacet": {
            "allOf": [
                {"$ref": f"{_OL_SPEC}#/$defs/RunFacet"},
                {
                    "type": "object",
                    "properties": {
                        "job": {"description": "pipeline@commit-set-id", "type": "string"},
                        "state": {
                            "type": "string",
                            "enum": [s.value for s in JobState],
                        },
                        "reason": {"type": "string"},
                        "specVersion": {"type": "integer", "minimum": 1},
                        "executor": {"type": "string"},
                        "sandbox": {"type": "string"},
                        "runtime": {"type": "string"},
                        "image": {"type": "string"},
                        "imageDigest": {"type": "string"},
                        "runner": {"type": "string"},
                        "haathi": {"description": "haathi's version", "type": "string"},
                        "python": {"type": "string"},
                        "platform": {"type": "string"},
                        "datums": {
                            "type": "object",
                            "properties": {
                                k: {"type": "integer", "minimum": 0} for k in _DATUM_COUNTS
                            },
                            "required": list(_DATUM_COUNTS),
                            "additionalProperties": False,
                        },
                    },
                    "required": ["job", "state", "specVersion", "datums"],
                },
            ],
            "type": "object",
        },
    },
}


# ---- the hooks jobs call -----------------------------------------------------------------


def job_started(ctx: PpsContext, job: records.JobRow) -> None:
    """A claimed job starts running its datums."""
    if ctx.lineage is not None:
        _queue(ctx, ctx.lineage, job, None, None)


def job_ended(ctx: PpsContext, job: records.JobRow, state: JobState, reason: str | None) -> None:
    """A job reached its final state (its output commit is finished)."""
    if ctx.lineage is not None:
        _queue(ctx, ctx.lineage, job, state, reason)


def run_id(pipeline: str, commit_id: str) -> str:
    """The OpenLineage run ID of the job ``pipeline@commit_id`` (the same for all its events)."""
    return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{pipeline}@{commit_id}"))


def _queue(
    ctx: PpsContext,
    sink: LineageSink,
    job: records.JobRow,
    state: JobState | None,
    reason: str | None,
) -> None:
    try:
        snap = _snapshot(ctx, job, state, reason)
    except Exception as exc:  # an event is never worth failing a job for
        log.warning(
            "OpenLineage: no event for job %s@%s: %s",
            job.pipeline,
            job.commit_id,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return
    sink.put(snap)


# ---- what an event says, read while the job's rows are at hand ---------------------------


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """Everything one job event (or a START + end pair) needs, as plain data."""

    pipeline: str
    commit_id: str
    state: JobState | None  # None: the job starts; else it ended in this state
    reason: str | None
    started: datetime
    ended: datetime | None
    never_started: bool  # it ended without having started (UNRUNNABLE, killed while queued)
    spec_version: int
    spec_hash: str
    spec: dict[str, Any]
    context: dict[str, Any]
    counts: tuple[int, int, int, int, int]
    inputs: tuple[tuple[str, str], ...]  # (repo, commit)
    output_stats: tuple[int, int] | None  # (bytes, files) of a successful job's output commit


def _snapshot(
    ctx: PpsContext, job: records.JobRow, state: JobState | None, reason: str | None
) -> JobSnapshot:
    with ctx.pfs.db.read() as conn:
        row = records.job_by_pk(conn, job.id)  # the caller's copy predates context and counts
        version = records.version_row(conn, row.pipeline_id, row.version)
        repo_id = repo_id_of(conn, row.pipeline)
        inputs = provenance.direct_provenance(conn, repo_id, row.commit_id)
        stats = None
        if state == JobState.SUCCESS:
            out = find_commit(conn, repo_id, row.pipeline, row.commit_id)
            if out is not None:
                stats = (out.size_bytes, out.file_count)
    ended = None if state is None else (row.finished_at or now())
    return JobSnapshot(
        pipeline=row.pipeline,
        commit_id=row.commit_id,
        state=state,
        reason=reason,
        started=row.started_at or ended or now(),
        ended=ended,
        never_started=state is not None and row.started_at is None,
        spec_version=version.version,
        spec_hash=version.spec_hash,
        spec=parse_spec(version.spec, stored=True).to_dict(),
        context=row.context,
        counts=row.counts,
        inputs=tuple(inputs),
        output_stats=stats,
    )


# ---- the sink: a queue and the thread that sends it ----------------------------------------


_STOP = object()


class LineageSink:
    """Where a store's run events go: ``path`` (JSON lines, appended) and/or ``url``.

    ``put`` only queues; a daemon thread, started by the first event, builds and sends them
    in order. ``close`` lets it finish what is queued, waiting at most ``flush_s``.
    """

    def __init__(
        self,
        namespace: str,
        *,
        url: str | None = None,
        path: Path | None = None,
        timeout: float = HTTP_TIMEOUT_S,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.namespace = namespace
        self.url = None if url is None else url.rstrip("/") + "/"  # <url>/api/v1/lineage
        self.path = path
        self.timeout = timeout
        self.flush_s = flush_s
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._clients: list[tuple[str, OpenLineageClient]] | None = None
        self._failing: set[str] = set()  # targets whose last send failed (warned once)
        self._dropped = 0

    def put(self, snap: JobSnapshot) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="haathi-openlineage", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(snap)
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "OpenLineage: %d events are waiting to be sent; dropping new ones", QUEUE_MAX
                )

    def close(self) -> None:
        """Send what is queued (waiting at most ``flush_s``), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        deadline = time.monotonic() + self.flush_s
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=self.flush_s)
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning(
                "OpenLineage: gave up waiting for %s after %.0f s; about %d event(s) not sent",
                " and ".join(self._targets()),
                self.flush_s,
                max(0, self._queue.qsize() - 1),
            )

    def _targets(self) -> list[str]:
        return [t for t in (str(self.path) if self.path else None, self.url) if t]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, JobSnapshot)
            try:
                events = build_events(item, self.namespace)
                clients = self._make_clients()
            except Exception as exc:
                log.warning(
                    "OpenLineage: no events for job %s@%s: %s", item.pipeline, item.commit_id, exc
                )
                continue
            for target, client in clients:
                for event in events:
                    self._send(target, client, event)

    def _send(self, target: str, client: OpenLineageClient, event: RunEvent) -> None:
        try:
            client.emit(event)
        except Exception as exc:
            if target not in self._failing:
                self._failing.add(target)
                log.warning(
                    "OpenLineage: cannot send events to %s (%s); dropping them until it answers",
                    target,
                    exc,
                )
            else:
                log.debug("OpenLineage: %s still failing: %s", target, exc)
            return
        if target in self._failing:
            self._failing.discard(target)
            log.info("OpenLineage: %s answers again", target)

    def _make_clients(self) -> list[tuple[str, OpenLineageClient]]:
        if self._clients is None:
            from openlineage.client import OpenLineageClient
            from openlineage.client.transport.file import FileConfig, FileTransport
            from openlineage.client.transport.http import HttpConfig, HttpTransport
            from openlineage.client.transport.transport import Transport

            # the job's facets say where it came from: not the git repo of the cwd
            config: dict[str, Any] = {"facets": {"source_code_location": {"disabled": True}}}
            transports: list[tuple[str, Transport]] = []
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                transports.append(
                    (
                        str(self.path),
                        FileTransport(FileConfig(log_file_path=str(self.path), append=True)),
                    )
                )
            if self.url is not None:
                transports.append(
                    (
                        self.url,
                        HttpTransport(
                            HttpConfig(url=self.url, timeout=self.timeout, retry=dict(_HTTP_RETRY))
                        ),
                    )
                )
            self._clients = [
                (target, OpenLineageClient(transport=t, config=config)) for target, t in transports
            ]
        return self._clients


# ---- events --------------------------------------------------------------------------------


_EVENT_TYPE = {
    JobState.SUCCESS: "COMPLETE",
    JobState.FAILURE: "FAIL",
    JobState.UNRUNNABLE: "FAIL",
    JobState.KILLED: "ABORT",
}


def build_events(snap: JobSnapshot, namespace: str) -> list[RunEvent]:
    """The OpenLineage events of a job start or end (an end without a start gets both)."""
    if snap.state is None:
        return [_event(snap, namespace, None)]
    if snap.never_started:
        return [_event(snap, namespace, None), _event(snap, namespace, snap.state)]
    return [_event(snap, namespace, snap.state)]


def _event(snap: JobSnapshot, namespace: str, state: JobState | None) -> RunEvent:
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        DatasetFacet,
        JobFacet,
        OutputDatasetFacet,
        RunFacet,
        dataset_version_dataset,
        documentation_job,
        error_message_run,
        job_type_job,
        output_statistics_output_dataset,
        processing_engine_run,
    )

    pipeline_facet, job_facet = _custom_facets()
    producer = _producer()
    shown = snap.state or JobState.RUNNING  # a START made for an ended job shows its end
    total, processed, skipped, failed, recovered = snap.counts
    ctx = snap.context

    run_facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=_version("haathi"),
            name="haathi",
            openlineageAdapterVersion=_version("openlineage-python"),
            producer=producer,
        ),
        "haathi_job": job_facet(
            job=f"{snap.pipeline}@{snap.commit_id}",
            state=shown.value,
            reason=snap.reason,
            specVersion=snap.spec_version,
            executor=ctx.get("executor"),
            sandbox=ctx.get("sandbox"),
            runtime=ctx.get("runtime"),
            image=ctx.get("image"),
            imageDigest=ctx.get("image_digest"),
            runner=ctx.get("runner") or None,
            haathi=ctx.get("haathi") or _version("haathi"),
            python=ctx.get("python") or platform.python_version(),
            platform=ctx.get("platform"),
            datums={
                "total": total,
                "processed": processed,
                "skipped": skipped,
                "failed": failed,
                "recovered": recovered,
            },
            producer=producer,
        ),
    }
    if state is not None and state != JobState.SUCCESS:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=snap.reason or state.value.lower(),
            programmingLanguage="python",
            producer=producer,
        )
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="HAATHI",
            jobType="PIPELINE",
            producer=producer,
        ),
        "haathi_pipeline": pipeline_facet(
            specVersion=snap.spec_version,
            specHash=snap.spec_hash,
            spec=snap.spec,
            producer=producer,
        ),
    }
    if snap.spec.get("description"):
        job_facets["documentation"] = documentation_job.DocumentationJobFacet(
            description=snap.spec["description"],
            producer=producer,
        )

    def version(commit: str) -> dict[str, DatasetFacet]:
        return {
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=commit,
                producer=producer,
            )
        }

    output_facets: dict[str, OutputDatasetFacet] = {}
    if state == JobState.SUCCESS and snap.output_stats is not None:
        size, files = snap.output_stats
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                size=size,
                fileCount=files,
                producer=producer,
            )
        )
    when = snap.started if state is None else (snap.ended or snap.started)
    return RunEvent(
        eventType=RunState.START if state is None else RunState(_EVENT_TYPE[state]),
        eventTime=when.isoformat(),
        run=Run(runId=run_id(snap.pipeline, snap.commit_id), facets=run_facets),
        job=Job(namespace=namespace, name=snap.pipeline, facets=job_facets),
        inputs=[
            InputDataset(namespace=namespace, name=f"{repo}@{commit}", facets=version(commit))
            for repo, commit in snap.inputs
        ],
        outputs=[
            OutputDataset(
                namespace=namespace,
                name=f"{snap.pipeline}@{snap.commit_id}",
                facets=version(snap.commit_id),
                outputFacets=output_facets,
            )
        ],
        producer=producer,
    )


@functools.cache
def _version(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _producer() -> str:
    """The ``producer`` URI of haathi's events and facets."""
    return f"urn:haathi:{_version('haathi')}"


@functools.cache
def _custom_facets() -> tuple[Any, Any]:
    """haathi's facet classes (made on first use: they subclass the client's, imported late)."""
    import attr
    from openlineage.client.facet_v2 import JobFacet, RunFacet

    @attr.define
    class HaathiPipelineJobFacet(JobFacet):
        """The pipeline spec version a job ran."""

        specVersion: int
        specHash: str
        spec: dict[str, Any]

        @staticmethod
        def _get_schema() -> str:
            return f"{FACETS_SCHEMA_ID}#/$defs/HaathiPipelineJobFacet"

    @attr.define
    class HaathiJobRunFacet(RunFacet):
        """How and where a job ran, how it ended, and its datum counts."""

        job: str
        state: str
        specVersion: int
        datums: dict[str, int]
        reason: str | None = None
        executor: str | None = None
        sandbox: str | None = None
        runtime: str | None = None
        image: str | None = None
        imageDigest: str | None = None
        runner: str | None = None
        haathi: str | None = None
        python: str | None = None
        platform: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return f"{FACETS_SCHEMA_ID}#/$defs/HaathiJobRunFacet"

    return HaathiPipelineJobFacet, HaathiJobRunFacet
