"""A pipeline's page (``/projects/{project}/pipelines/{pipeline}``): its state, its spec as
YAML and as JSON (``?version=N``: an earlier version's), its version history, and its newest
jobs with their progress; and its write actions, stop and start, offered to a caller who may
write to its output repo (``POST .../stop``, ``POST .../start``).

A spout's or service's page also shows how its program is doing and the
:data:`OUTPUT_SHOWN` newest lines it printed, live (:mod:`haathi.console.live`: each new line
as it is recorded, about twice a second).

The page costs a fixed number of Api calls: the pipeline, its :data:`VERSIONS_SHOWN` newest
versions, its :data:`JOBS_SHOWN` newest jobs (``haathi list job -p NAME`` lists all), and a
spout's or service's newest lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml
from starlette.responses import RedirectResponse, Response

from haathi.api import Api
from haathi.console import roles, urls
from haathi.console.pages import Page, back_to
from haathi.console.progress import Progress, ran_for
from haathi.errors import InvalidArgument
from haathi.models.ids import repo_key
from haathi.models.info import JobInfo, PipelineInfo

OVERVIEW = ("the overview", urls.OVERVIEW)
JOBS_SHOWN = 25
VERSIONS_SHOWN = 20
OUTPUT_SHOWN = 200


@dataclass(frozen=True)
class JobRow:
    """A job as a list of jobs shows it."""

    info: JobInfo
    progress: Progress
    ran: str


def job_row(job: JobInfo) -> JobRow:
    return JobRow(job, Progress.of(job), ran_for(job))


def pipeline_key(page: Page) -> str:
    """The key of the pipeline the URL names (not checked to exist)."""
    params = page.request.path_params
    with back_to(*OVERVIEW):
        key = repo_key(params["project"], params["pipeline"])
    return key


def found_pipeline(page: Page) -> tuple[str, PipelineInfo]:
    """The pipeline the URL names; the 404 page back to the overview if there is none."""
    key = pipeline_key(page)
    with back_to(*OVERVIEW):
        info = page.api.inspect_pipeline(key)
    return key, info


def _version_asked(page: Page, current: int) -> int | None:
    """The version ``?version=N`` asks to see (None: the current one)."""
    raw = page.request.query_params.get("version")
    if raw is None or raw == str(current):
        return None
    if not raw.isdecimal() or not 1 <= int(raw) < current:
        raise InvalidArgument(f"version {raw[:20]!r}: the versions are 1 to {current}")
    return int(raw)


def spec_texts(spec: dict[str, object]) -> tuple[str, str]:
    """The spec as YAML (keys in the spec's order) and as JSON."""
    as_yaml = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return as_yaml, json.dumps(spec, indent=2, ensure_ascii=False)


def _input_links(api: Api, inputs: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """Each input (``repo@branch``) and its branch's page, if the caller may read the repo."""
    repos = [i.partition("@")[0] for i in inputs]
    readable = roles.readable(api, repos)
    return [
        (i, urls.commit(r, i.partition("@")[2]) if r in readable else None)
        for i, r in zip(inputs, repos, strict=True)
    ]


def pipeline_page(page: Page) -> Response:
    key, info = found_pipeline(page)
    api = page.api
    with back_to(f"pipeline {key}", urls.pipeline(key)):
        asked = _version_asked(page, info.version)
        shown = info if asked is None else api.inspect_pipeline(key, version=asked)
    versions = api.list_pipeline(name=key, history=VERSIONS_SHOWN - 1)
    jobs = [job_row(j) for j in api.list_job(key, limit=JOBS_SHOWN)]
    as_yaml, as_json = spec_texts(shown.spec)
    output = api.daemon_logs(key, limit=OUTPUT_SHOWN) if info.daemon is not None else []
    return page.render(
        "pipeline.html",
        key=key,
        name=key.rpartition("/")[2],
        info=info,
        shown=shown,
        versions=versions,
        jobs=jobs,
        jobs_capped=len(jobs) == JOBS_SHOWN,
        spec_yaml=as_yaml,
        spec_json=as_json,
        inputs=_input_links(api, info.inputs),
        may_write=roles.may_write(api, key),
        output=output,
        output_events=urls.pipeline_events(key, output[-1].seq if output else 0),
    )


def stop(page: Page) -> Response:
    """``POST .../stop``: pause the pipeline (no new jobs until started), as ``haathi stop
    pipeline``; back to its page."""
    key, _ = found_pipeline(page)
    page.api.stop_pipeline(key)
    return RedirectResponse(urls.pipeline(key), status_code=303)


def start(page: Page) -> Response:
    """``POST .../start``: run the pipeline again, as ``haathi start pipeline``; back to its
    page."""
    key, _ = found_pipeline(page)
    page.api.start_pipeline(key)
    return RedirectResponse(urls.pipeline(key), status_code=303)
