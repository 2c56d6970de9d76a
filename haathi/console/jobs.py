"""A job's page (``{pipeline}/jobs/{job}``): its state and progress (live while it runs), its
input and output commits, and its datums a page at a time, filtered by state (``?state=S``;
``&after=D``: the page after datum D, as ``list datum``'s marker); and a datum's page
(``{job}/datums/{datum}``): its inputs (repo, commit, path, content hash, each linked to its
file), outputs, attempts, exit code, timings and logs.

A page of datums is one seek on the job's datums (``list_datum`` with a marker), however
many the job has; the counts per state come with the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from haathi.api import Api
from haathi.console import roles, urls
from haathi.console.pages import Page, back_to
from haathi.console.pipelines import found_pipeline
from haathi.console.progress import Progress, duration, ran_for
from haathi.models.info import DatumInfo, DatumState, JobInfo

DATUMS_PER_PAGE = 50


@dataclass(frozen=True)
class StateFilter:
    """A link of the datum filter: a state (None: all), its count, whether it is chosen."""

    label: str
    state: str | None
    count: int
    chosen: bool


def found_job(page: Page) -> tuple[str, JobInfo]:
    """The pipeline's key and the job the URL names (404 pages back to the nearest page)."""
    key, _ = found_pipeline(page)
    with back_to(f"pipeline {key}", urls.pipeline(key)):
        job = page.api.inspect_job(key, page.request.path_params["job"])
    return key, job


def _filters(job: JobInfo, chosen: str | None) -> list[StateFilter]:
    counts = [
        ("all", None, job.data_total),
        ("succeeded", DatumState.SUCCESS.value, job.data_processed),
        ("recovered", DatumState.RECOVERED.value, job.data_recovered),
        ("skipped", DatumState.SKIPPED.value, job.data_skipped),
        ("failed", DatumState.FAILED.value, job.data_failed),
    ]
    return [StateFilter(label, s, n, s == chosen) for label, s, n in counts]


def _commit_links(api: Api, refs: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """Each ``repo@commit`` and its commit's page, if the caller may read the repo."""
    readable = roles.readable(api, (r.partition("@")[0] for r in refs))
    out = []
    for ref in refs:
        repo, _, commit = ref.partition("@")
        out.append((ref, urls.commit(repo, commit) if repo in readable else None))
    return out


def job_page(page: Page) -> Response:
    key, job = found_job(page)
    query = page.request.query_params
    with back_to(f"job {key}@{job.id}", urls.job(key, job.id)):
        state = DatumState.parse(query["state"]).value if query.get("state") else None
        after = query.get("after") or None
        states = (state,) if state else ()
        listed = page.api.list_datum(key, job.id, DATUMS_PER_PAGE + 1, after, states=states)
    datums, more = listed[:DATUMS_PER_PAGE], len(listed) > DATUMS_PER_PAGE
    return page.render(
        "job.html",
        key=key,
        job=job,
        progress=Progress.of(job),
        ran=ran_for(job),
        inputs=_commit_links(page.api, job.inputs),
        filters=_filters(job, state),
        state=state,
        after=after,
        datums=[(d, duration(d.duration_s)) for d in datums],
        next_after=datums[-1].id if more else None,
        live=None if job.state.terminal else urls.events(urls.job(key, job.id)),
    )


@dataclass(frozen=True)
class InputRow:
    """One input of a datum, with the links the caller may follow."""

    fields: dict[str, Any]
    repo_link: str | None
    commit_link: str | None
    file_link: str | None


def _inputs(api: Api, datum: DatumInfo) -> list[InputRow]:
    readable = roles.readable(api, (str(i.get("repo", "")) for i in datum.inputs))
    rows = []
    for i in datum.inputs:
        repo, commit, path = str(i.get("repo", "")), str(i.get("commit", "")), str(i.get("path"))
        ok = repo in readable and bool(commit)
        rows.append(
            InputRow(
                i,
                urls.repo(repo) if ok else None,
                urls.commit(repo, commit) if ok else None,
                urls.files(repo, commit, path) if ok else None,
            )
        )
    return rows


def datum_page(page: Page) -> Response:
    key, job = found_job(page)
    back = (f"job {key}@{job.id}", urls.job(key, job.id))
    with back_to(*back):
        datum = page.api.inspect_datum(key, job.id, page.request.path_params["datum"])
        _, logs = page.api.logs(key, job.id, datum.id)
    return page.render(
        "datum.html",
        key=key,
        job=job,
        datum=datum,
        took=duration(datum.duration_s),
        inputs=_inputs(page.api, datum),
        log="".join(text for _, text in logs),
    )
