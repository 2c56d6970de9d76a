"""The logs of a job (``{job}/logs``) or of one of its datums (``?datum=D``): the user code's
output (stdout and stderr) of each datum that ran, in the order they started, as ``haathi
logs`` prints it; live while the job runs (:mod:`haathi.console.live` sends each datum's
output once the job records it, about once a second).

A page shows the output of at most :data:`MAX_SHOWN_DATUMS` datums and
:data:`MAX_SHOWN_CHARS` of it (a datum keeps its last MiB): beyond that it says so and names
the command that prints all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from haathi.console import urls
from haathi.console.jobs import found_job
from haathi.console.pages import Page, back_to
from haathi.console.progress import Progress

MAX_SHOWN_CHARS = 2 * 1024 * 1024
MAX_SHOWN_DATUMS = 500  # their sections: 1,000 made a page of 420 KiB painted in 170 ms


@dataclass(frozen=True)
class Entry:
    """A datum's output as the page shows it."""

    datum: str
    output: str
    link: str


@dataclass
class Shown:
    """The entries a page (or a live stream) has shown, within :data:`MAX_SHOWN_DATUMS` and
    :data:`MAX_SHOWN_CHARS`."""

    key: str
    job: str
    seen: set[str]
    chars: int = 0
    capped: bool = False

    def take(self, logs: list[tuple[str, str]]) -> list[Entry]:
        """The entries of ``logs`` not shown yet, as long as they fit."""
        out = []
        for datum, text in logs:
            if datum in self.seen or self.capped:
                continue
            if len(self.seen) >= MAX_SHOWN_DATUMS or self.chars + len(text) > MAX_SHOWN_CHARS:
                self.capped = True
                continue
            self.seen.add(datum)
            self.chars += len(text)
            out.append(Entry(datum, text, urls.datum(self.key, self.job, datum)))
        return out


def cli_command(key: str, job: str, datum: str | None) -> str:
    project, _, name = key.rpartition("/")
    words = ["haathi", "logs", "-p", name, "-j", job]
    if datum:
        words += ["--datum", datum]
    if project:
        words += ["--project", project]
    return " ".join(words)


def logs_page(page: Page) -> Response:
    key, job = found_job(page)
    datum = page.request.query_params.get("datum") or None
    with back_to(f"job {key}@{job.id}", urls.job(key, job.id)):
        _, logs = page.api.logs(key, job.id, datum)
    shown = Shown(key, job.id, set())
    here = urls.logs(key, job.id, datum_id=datum)
    return page.render(
        "logs.html",
        key=key,
        job=job,
        datum=datum,
        progress=Progress.of(job),
        entries=shown.take(logs),
        capped=shown.capped,
        command=cli_command(key, job.id, datum),
        live=None if job.state.terminal else urls.events(here),
    )
