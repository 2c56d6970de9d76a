"""Routes of pipelines, jobs, datums, logs, lineage and reproduction (``/v1/...``).

A pipeline is its bare name in the path and its project in the query (``?project=P``: see
:mod:`haathi.server.keys`)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from haathi.models.info import RunSummary
from haathi.models.wire import API_PREFIX
from haathi.server.deps import ApiDep
from haathi.server.keys import NameKey, PipelineKey, ProjectFilter
from haathi.server.offload import OffloadingRouter

router = OffloadingRouter(prefix=API_PREFIX)
Json = dict[str, Any]
OTHER_RUNNER = "running in another runner"


class PipelineBody(BaseModel):
    spec: dict[str, Any]
    update: bool = False
    reprocess: bool = False


class SpecBody(BaseModel):
    spec: dict[str, Any]


class RerunBody(BaseModel):
    reprocess: bool = False


class RollbackBody(BaseModel):
    version: int | None = None
    back: int = 0
    reprocess: bool = False


HistoryQuery = Annotated[
    int,
    Query(description="versions before the current one to include as well (-1: all of them)"),
]


@router.get("/pipelines", tags=["pipelines"])
def list_pipeline(
    api: ApiDep, name: str | None = None, history: HistoryQuery = 0, project: ProjectFilter = None
) -> list[Json]:
    """Every pipeline (of ``project``, or the one ``name``), each with its ``history`` earlier
    versions."""
    return [p.to_dict() for p in api.list_pipeline(name=name, history=history, project=project)]


@router.post("/pipelines", tags=["pipelines"], status_code=201)
def create_pipeline(api: ApiDep, body: PipelineBody) -> Json:
    """Create (``update``: replace) a pipeline; the ID of the job it starts."""
    return {"job": api.create_pipeline(body.spec, update=body.update, reprocess=body.reprocess)}


@router.post("/pipelines/validate", tags=["pipelines"])
def validate_pipeline(api: ApiDep, body: SpecBody) -> Json:
    return api.validate_pipeline(body.spec)


@router.post("/pipelines/preview", tags=["pipelines"])
def preview_datums(api: ApiDep, body: SpecBody) -> list[Json]:
    return [d.to_dict() for d in api.preview_datums(body.spec)]


@router.get("/pipelines/{name}", tags=["pipelines"])
def inspect_pipeline(
    api: ApiDep,
    name: NameKey,
    version: Annotated[int | None, Query(description="this version (from 1)")] = None,
    back: Annotated[int, Query(description="this many versions before the current one")] = 0,
) -> Json:
    return api.inspect_pipeline(name, version=version, back=back).to_dict()


@router.delete("/pipelines/{name}", tags=["pipelines"])
def delete_pipeline(api: ApiDep, name: NameKey, keep_repo: bool = False) -> Json:
    api.delete_pipeline(name, keep_repo=keep_repo)
    return {}


@router.post("/pipelines/{name}/stop", tags=["pipelines"])
def stop_pipeline(api: ApiDep, name: NameKey) -> Json:
    api.stop_pipeline(name)
    return {}


@router.post("/pipelines/{name}/start", tags=["pipelines"])
def start_pipeline(api: ApiDep, name: NameKey) -> Json:
    return {"job": api.start_pipeline(name)}


@router.post("/pipelines/{name}/cron", tags=["pipelines"])
def run_cron(api: ApiDep, name: NameKey) -> list[str]:
    return api.run_cron(name)


@router.post("/pipelines/{name}/rerun", tags=["pipelines"])
def rerun_pipeline(api: ApiDep, name: NameKey, body: RerunBody | None = None) -> Json:
    """The current spec as a new version (salt kept unless ``reprocess``); its job's ID."""
    body = body or RerunBody()
    return {"job": api.rerun_pipeline(name, reprocess=body.reprocess)}


@router.post("/pipelines/{name}/rollback", tags=["pipelines"])
def rollback_pipeline(api: ApiDep, name: NameKey, body: RollbackBody | None = None) -> Json:
    """An earlier version's spec and salt (default: the previous version's) as a new version;
    its job's ID."""
    body = body or RollbackBody()
    job = api.rollback_pipeline(
        name, version=body.version, back=body.back, reprocess=body.reprocess
    )
    return {"job": job}


# jobs ----------------------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"])
def list_job(
    api: ApiDep,
    pipeline: str | None = None,
    job: str | None = None,
    limit: int | None = None,
    history: HistoryQuery = -1,
    state: Annotated[
        list[str] | None, Query(description="only jobs in these states (repeat it)")
    ] = None,
    project: ProjectFilter = None,
) -> list[Json]:
    jobs = api.list_job(
        pipeline, job, limit, history=history, states=tuple(state or ()), project=project
    )
    return [j.to_dict() for j in jobs]


@router.post("/jobs/queue", tags=["jobs"])
def queue_jobs(api: ApiDep) -> Json:
    """Record a job for every output commit that writes started."""
    return {"queued": api.queue_jobs()}


@router.post("/jobs/run", tags=["jobs"])
def run_jobs(api: ApiDep, timeout: float | None = None) -> Json:
    """Run the runnable queued jobs now, and wait for those the background runner has
    claimed: when this returns, every job the caller's writes started has ended or waits for
    a reason it names (what the embedded client guarantees after a write). With auth on, a
    caller who is not a cluster admin runs, waits for and hears of only the jobs of pipelines
    whose output it may read."""
    deadline = None if timeout is None else time.monotonic() + timeout
    total = RunSummary()
    delay = 0.02
    while True:
        summary = api.run_jobs()
        total.ran.update(summary.ran)
        total.waiting = summary.waiting
        # claimed by the background runner, or ready and claimed by it between its scan and
        # ours ("" : nothing to wait for): wait for those to end too
        busy = [k for k, why in summary.waiting.items() if why in (OTHER_RUNNER, "")]
        if not busy or (deadline is not None and time.monotonic() >= deadline):
            return total.to_dict()
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@router.post("/jobs/{job}/wait", tags=["jobs"])
def wait_job_set(api: ApiDep, job: str, timeout: float | None = None) -> list[Json]:
    return [j.to_dict() for j in api.wait_job(None, job, timeout)]


@router.get("/pipelines/{pipeline}/jobs/{job}", tags=["jobs"])
def inspect_job(api: ApiDep, pipeline: PipelineKey, job: str) -> Json:
    return api.inspect_job(pipeline, job).to_dict()


@router.post("/pipelines/{pipeline}/jobs/{job}/wait", tags=["jobs"])
def wait_job(
    api: ApiDep, pipeline: PipelineKey, job: str, timeout: float | None = None
) -> list[Json]:
    return [j.to_dict() for j in api.wait_job(pipeline, job, timeout)]


@router.post("/pipelines/{pipeline}/jobs/{job}/stop", tags=["jobs"])
def stop_job(api: ApiDep, pipeline: PipelineKey, job: str) -> Json:
    return api.stop_job(pipeline, job).to_dict()


@router.get("/pipelines/{pipeline}/jobs/{job}/datums", tags=["datums"])
def list_datum(
    api: ApiDep,
    pipeline: PipelineKey,
    job: str,
    number: Annotated[int | None, Query(description="at most this many (0: all)")] = None,
    marker: Annotated[
        str | None, Query(description="start after this datum ID (the previous page's last)")
    ] = None,
    state: Annotated[
        list[str] | None, Query(description="only datums in these states (repeat it)")
    ] = None,
) -> list[Json]:
    """The job's datums in datum ID order, a page at a time with ``number`` and ``marker``;
    only those in ``state`` if given."""
    datums = api.list_datum(pipeline, job, number, marker, states=tuple(state or ()))
    return [d.to_dict() for d in datums]


@router.get("/pipelines/{pipeline}/jobs/{job}/datums/{datum}", tags=["datums"])
def inspect_datum(api: ApiDep, pipeline: PipelineKey, job: str, datum: str) -> Json:
    return api.inspect_datum(pipeline, job, datum).to_dict()


@router.get("/pipelines/{pipeline}/logs", tags=["datums"])
def logs(
    api: ApiDep, pipeline: PipelineKey, job: str | None = None, datum: str | None = None
) -> Json:
    """The job (default: the pipeline's newest) and its user code's output per datum."""
    info, out = api.logs(pipeline, job, datum)
    return {"job": info.to_dict(), "logs": [{"datum": d, "output": text} for d, text in out]}


@router.get("/pipelines/{pipeline}/daemon-logs", tags=["pipelines"])
def daemon_logs(
    api: ApiDep, pipeline: PipelineKey, since: int | None = None, limit: int | None = 1000
) -> list[Json]:
    """What a spout's or service's program printed, line by line (``since`` a line's seq)."""
    return [line.to_dict() for line in api.daemon_logs(pipeline, since, limit)]


# lineage -------------------------------------------------------------------------------------


class ReproduceCommitBody(BaseModel):
    commit: str
    sample: int | None = None
    seed: int | None = None


class TargetBody(BaseModel):
    target: str


@router.get("/lineage", tags=["lineage"])
def lineage(
    api: ApiDep, target: str, downstream: bool = False, at: str | None = None
) -> list[Json]:
    return [n.to_dict() for n in api.lineage(target, downstream=downstream, at=at)]


@router.post("/reproduce", tags=["lineage"])
def reproduce(api: ApiDep, body: TargetBody) -> Json:
    return api.reproduce(body.target).to_dict()


@router.post("/reproduce/commit", tags=["lineage"])
def reproduce_commit(api: ApiDep, body: ReproduceCommitBody) -> Json:
    return api.reproduce_commit(body.commit, sample=body.sample, seed=body.seed).to_dict()
