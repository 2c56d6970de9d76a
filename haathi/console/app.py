"""The console's ASGI app: its routes (:mod:`haathi.console.urls`), the CSRF guard and the
security headers around every answer, and HTML pages for what matches no route."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from haathi.api import Api
from haathi.console import (
    assets,
    browse,
    commit,
    dag,
    download,
    history,
    jobs,
    lineage,
    live,
    logs,
    overview,
    pages,
    pipelines,
    sign_in,
    upload,
    urls,
)
from haathi.console.csrf import CsrfGuard
from haathi.console.headers import SecurityHeaders

REPO = "/projects/{project}/repos/{repo}"
COMMIT = REPO + "/commits/{ref}"
PIPELINE = "/projects/{project}/pipelines/{pipeline}"
JOB = PIPELINE + "/jobs/{job}"
DAG = "/projects/{project}/dag"
LINEAGE = COMMIT + "/lineage/{path:path}"


def create_console(api: Api, *, max_upload_bytes: int | None = None) -> Starlette:
    """The console of ``api`` (the server's; each page acts as its signed-in caller);
    ``max_upload_bytes``: the server's ``--max-upload`` (uploads through the console: at most
    that, or :data:`~haathi.console.upload.DEFAULT_MAX_UPLOAD`)."""
    routes = [
        Route(urls.OVERVIEW, pages.page(overview.overview)),
        Route(urls.SIGN_IN, sign_in.show, methods=["GET"]),
        Route(urls.SIGN_IN, sign_in.submit, methods=["POST"]),
        Route(urls.SIGN_OUT, sign_in.sign_out, methods=["POST"]),
        Route(urls.STATIC + "/{name:path}", assets.serve),
        Route(REPO, pages.page(history.repo_page)),
        Route(COMMIT, pages.page(commit.commit_page)),
        Route(COMMIT + "/diff", pages.page(commit.diff_page)),
        Route(COMMIT + "/files/{path:path}", pages.page(browse.files_page)),
        Route(COMMIT + "/download/{path:path}", pages.page(download.download)),
        Route(COMMIT + "/modify", upload.modify, methods=["POST"]),
        Route(PIPELINE, pages.page(pipelines.pipeline_page)),
        Route(PIPELINE + "/stop", pages.page(pipelines.stop), methods=["POST"]),
        Route(PIPELINE + "/start", pages.page(pipelines.start), methods=["POST"]),
        Route(PIPELINE + "/events", live.daemon_events),
        Route(JOB, pages.page(jobs.job_page)),
        Route(JOB + "/events", live.endpoint(logs=False)),
        Route(JOB + "/datums/{datum}", pages.page(jobs.datum_page)),
        Route(JOB + "/logs", pages.page(logs.logs_page)),
        Route(JOB + "/logs/events", live.endpoint(logs=True)),
        Route(DAG, pages.page(dag.dag_page)),
        Route(DAG + "/state", pages.page(dag.dag_state)),
        Route(LINEAGE + "/reproduce", pages.page(lineage.reproduce), methods=["POST"]),
        Route(LINEAGE, pages.page(lineage.lineage_page)),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),  # outermost: on every answer, refusals included
            Middleware(CsrfGuard, refusal=pages.refusal),
        ],
        exception_handlers={HTTPException: pages.not_found},
    )
    app.state.api = api
    app.state.streams = live.Streams()  # the server ends them when it stops
    app.state.max_upload_bytes = max_upload_bytes
    return app
