"""The console's URL scheme: the address of every page, written down once.

Every page of the console, those of this part and those later parts add, lives at one of
these paths (templates and routes build them with the functions below, never by hand):

======================================  =====================================================
page                                    path
======================================  =====================================================
overview: projects, repos, pipelines    ``/``
one project's overview                  ``/projects/{project}``
the DAG of a project                    ``/projects/{project}/dag``
its live state (JSON, polled by it)     ``/projects/{project}/dag/state``
repo: branches, commit history          ``/projects/{project}/repos/{repo}``
                                        (``?branch=B``, ``?from=ID``: older commits)
commit: metadata, provenance,           ``/projects/{project}/repos/{repo}/commits/{ref}``
subvenance
its diff (against its parent)           ``{commit}/diff`` (``?against=REF``: another commit;
                                        ``?from=PATH``: later changes)
files at a commit: a directory          ``{commit}/files/{path}`` (``?from=NAME`` in a
listing, or a file's preview            directory: its entries from that name on)
download: a file, a directory as an     ``{commit}/download/{path}`` (``?inline=1``: an
archive                                 image, shown in a page)
upload files and delete paths, as one   ``{commit}/modify`` (POST; ``{ref}`` a branch)
commit
lineage of a file                       ``{commit}/lineage/{path}`` (``?at=ID``: downstream
                                        in commit set ``ID``; ``?limit=N``: nodes shown)
re-run the datums that wrote it         ``{commit}/lineage/{path}/reproduce`` (POST; answers
                                        with its report: it changes nothing)
pipeline: spec, versions, state, jobs   ``/projects/{project}/pipelines/{pipeline}``
                                        (``?version=N``: that version's spec); a spout's
                                        or service's output too (live: ``/events?since=N``)
job: progress, datums                   ``{pipeline}/jobs/{job}`` (``?state=S``: its datums;
                                        ``&after=D``: the page after datum D)
datum: inputs, attempts, timings, logs  ``{pipeline}/jobs/{job}/datums/{datum}``
logs of a job (live while it runs)      ``{pipeline}/jobs/{job}/logs`` (``?datum=D``)
sign in (a form; POST takes the token)  ``/sign-in`` (``?next=PATH``)
sign out                                ``/sign-out`` (POST)
assets (CSS, JS, vendored libraries)    ``/static/{name}?v={hash}``
======================================  =====================================================

(``{commit}`` and ``{pipeline}`` stand for the commit's and the pipeline's paths above.)

Rules:

- A repo or pipeline is named by its project and its bare name, the default project too
  (``/projects/default/repos/images``): one URL per page. ``{ref}`` is what the CLI takes
  after ``@``: a commit ID, a branch, either with ancestry (``master^``, ``master~2``). ``{job}``
  is a job's ID (its commit set's), ``{datum}`` a datum's ID. Each segment is
  percent-encoded; ``{path}`` keeps its ``/`` (no leading one: the root is an empty path).
- Identity is in the path; the query only chooses a view (page, branch, filter). Nothing
  secret is ever in a URL: the token lives in a cookie (:mod:`haathi.console.session`).
- Commit history, directories and diffs page by where the next page starts (``?from=``: a
  seek, as cheap on the thousandth page as on the first), not by a page number (which would
  cost every entry before it).
- A URL naming no object (an unknown repo, commit, file, pipeline, job) answers the 404 page
  with a way back to the nearest page that exists.
- Reading is ``GET``. A write action is a ``POST`` to its object's URL plus a verb segment
  (``.../pipelines/{pipeline}/stop``, ``.../commits/{ref}/modify``), carrying the
  session's CSRF token (:mod:`haathi.console.csrf`), and answers with a redirect (303) to the
  page it changed. Live updates (job states, logs) are server-sent events at a page's URL plus
  ``/events``.
- ``/v1`` (the REST API), ``/docs``, ``/redoc`` and ``/openapi.json`` are the server's, not the
  console's.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from haathi.models.ids import split_key

OVERVIEW = "/"
SIGN_IN = "/sign-in"
SIGN_OUT = "/sign-out"
STATIC = "/static"


def _seg(text: str) -> str:
    return quote(text, safe="")


def _path(path: str) -> str:
    return quote(path.lstrip("/"), safe="/")


def _query(**params: str | int | None) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(given) if given else ""


def project(name: str) -> str:
    return f"/projects/{_seg(name)}"


def dag(name: str) -> str:
    return f"{project(name)}/dag"


def dag_state(name: str) -> str:
    return f"{dag(name)}/state"


def repo(key: str, *, branch: str | None = None, start: str | None = None) -> str:
    """The page of repo ``key`` (``name`` or ``project/name``): ``branch``'s history, from
    commit ``start`` on (older pages)."""
    proj, name = split_key(key)
    return f"{project(proj)}/repos/{_seg(name)}" + _query(branch=branch, **{"from": start})


def commit(key: str, ref: str) -> str:
    return f"{repo(key)}/commits/{_seg(ref)}"


def diff(key: str, ref: str, against: str | None = None, *, start: str | None = None) -> str:
    """The changes of ``ref`` (from its parent, or from ``against``), from path ``start`` on."""
    return f"{commit(key, ref)}/diff" + _query(against=against, **{"from": start})


def files(key: str, ref: str, path: str = "/", *, start: str | None = None) -> str:
    """A file's page, or a directory's entries from the name ``start`` on."""
    return f"{commit(key, ref)}/files/{_path(path)}" + _query(**{"from": start})


def download(key: str, ref: str, path: str, *, inline: bool = False) -> str:
    """A file's bytes (``inline``: an image to show), or a directory as a tar archive."""
    return f"{commit(key, ref)}/download/{_path(path)}" + _query(inline=1 if inline else None)


def modify(key: str, ref: str) -> str:
    """Where a form uploads files to branch ``ref`` and deletes paths, as one commit."""
    return f"{commit(key, ref)}/modify"


def lineage(
    key: str, ref: str, path: str, *, at: str | None = None, limit: int | None = None
) -> str:
    return f"{commit(key, ref)}/lineage/{_path(path)}" + _query(at=at, limit=limit)


def reproduce(key: str, ref: str, path: str) -> str:
    return f"{lineage(key, ref, path)}/reproduce"


def pipeline(key: str, *, version: int | None = None) -> str:
    proj, name = split_key(key)
    return f"{project(proj)}/pipelines/{_seg(name)}" + _query(version=version)


def pipeline_events(key: str, since: int) -> str:
    """A spout's or service's new lines after line ``since`` (server-sent events)."""
    return pipeline(key) + "/events" + _query(since=since)


def job(
    pipeline_key: str, job_id: str, *, state: str | None = None, after: str | None = None
) -> str:
    return f"{pipeline(pipeline_key)}/jobs/{_seg(job_id)}" + _query(state=state, after=after)


def datum(pipeline_key: str, job_id: str, datum_id: str) -> str:
    return f"{job(pipeline_key, job_id)}/datums/{_seg(datum_id)}"


def logs(pipeline_key: str, job_id: str, *, datum_id: str | None = None) -> str:
    return f"{job(pipeline_key, job_id)}/logs" + _query(datum=datum_id)


def events(page_url: str) -> str:
    """The live updates (server-sent events) of the page at ``page_url``: its path plus
    ``/events``, with the page's query."""
    path, sep, query = page_url.partition("?")
    return f"{path}/events{sep}{query}"


def pipeline_action(key: str, verb: str) -> str:
    """Where a pipeline's write action ``verb`` (``stop``, ``start``) is posted."""
    return f"{pipeline(key)}/{verb}"


def sign_in(next_path: str | None = None, *, ended: bool = False) -> str:
    """The sign-in page, returning to ``next_path`` (a local path) once signed in; ``ended``:
    say that the previous token stopped working."""
    nxt = next_path if next_path not in (None, OVERVIEW) else None
    return SIGN_IN + _query(next=nxt, ended=1 if ended else None)


def local_path(candidate: str | None) -> str:
    """``candidate`` if it is a path on this site (``/...``, not ``//host`` nor ``/\\host``),
    else the overview: where a sign-in may send the browser back to."""
    if (
        not candidate
        or not candidate.startswith("/")
        or candidate.startswith(("//", "/\\"))
        or any(ord(ch) < 0x20 or ch == "\x7f" for ch in candidate)
    ):
        return OVERVIEW
    return candidate
