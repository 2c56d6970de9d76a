"""OpenLineage run events for jobs: START when a job starts, COMPLETE / FAIL / ABORT when it
ends. (Filled in with the emitter; these hooks are where jobs call it.)"""

from __future__ import annotations

from haathi.models.info import JobState
from haathi.pps import records
from haathi.pps.context import PpsContext


def job_started(ctx: PpsContext, job: records.JobRow) -> None:
    """A claimed job starts running its datums."""


def job_ended(ctx: PpsContext, job: records.JobRow, state: JobState, reason: str | None) -> None:
    """A job reached its final state (its output commit is finished)."""
