"""How far a job has come, as the console shows it: a bar of its datums by outcome, a line of
counts, and how long it ran; the same numbers for the page and for its live updates.

The bar is an SVG of rectangles sized by attributes (no ``style``: the CSP allows none), one
per outcome (succeeded, recovered, skipped, failed) over the job's datum count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from haathi.models.info import JobInfo, JobState

KINDS = ("success", "recovered", "skipped", "failed")


@dataclass(frozen=True)
class Segment:
    """One outcome's part of the bar, in percent of its width."""

    kind: str
    x: str
    width: str


@dataclass(frozen=True)
class Progress:
    """A job's datum counts and state."""

    state: JobState
    total: int
    success: int
    recovered: int
    skipped: int
    failed: int
    reason: str | None = None

    @classmethod
    def of(cls, job: JobInfo) -> Progress:
        return cls(
            job.state,
            job.data_total,
            job.data_processed,
            job.data_recovered,
            job.data_skipped,
            job.data_failed,
            job.reason,
        )

    @property
    def done(self) -> int:
        return self.success + self.recovered + self.skipped + self.failed

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.state.terminal else 0
        return min(100, self.done * 100 // self.total)

    def segments(self) -> list[Segment]:
        """The bar's rectangles, left to right (every outcome, empty ones 0 wide, so live
        updates change attributes only)."""
        out, x = [], 0.0
        for kind in KINDS:
            share = getattr(self, kind) * 100 / self.total if self.total else 0.0
            out.append(Segment(kind, f"{x:.2f}", f"{share:.2f}"))
            x += share
        return out

    def summary(self) -> str:
        """``12 of 40 datums: 10 succeeded, 1 skipped, 1 failed``."""
        if not self.total:
            if self.state.terminal:
                return "no datums"
            return "waiting to run" if self.state is JobState.CREATED else "working out its datums"
        parts = [
            f"{n} {word}"
            for n, word in (
                (self.success, "succeeded"),
                (self.recovered, "recovered"),
                (self.skipped, "skipped"),
                (self.failed, "failed"),
            )
            if n
        ]
        counted = f"{self.done} of {self.total} datum{'' if self.total == 1 else 's'}"
        return counted + (": " + ", ".join(parts) if parts else "")

    def to_event(self) -> dict[str, Any]:
        """What a live update carries (``console.js`` puts it in the page)."""
        return {
            "state": self.state.value,
            "reason": self.reason or "",
            "ended": self.state.terminal,
            "summary": self.summary(),
            "percent": self.percent,
            "segments": [[s.kind, s.x, s.width] for s in self.segments()],
        }


def duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 4 s``, ``2 h 5 min``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def ran_for(job: JobInfo, now: datetime | None = None) -> str:
    """How long the job ran (or has been running); ``-`` before it started."""
    if job.started is None:
        return "-"
    end = job.finished or now or datetime.now(UTC)
    start = job.started if job.started.tzinfo else job.started.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return duration(max(0.0, (end - start).total_seconds()))
