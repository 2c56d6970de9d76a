"""Cron schedules and Go durations, as Pachyderm's cron inputs, branch triggers and timeouts
spell them.

A schedule is ``@every <duration>``, a descriptor (``@hourly``, ``@daily``/``@midnight``,
``@weekly``, ``@monthly``, ``@yearly``/``@annually``), a standard 5-field cron expression, or
``never`` / ``@never``. Times are UTC (Pachyderm uses the server's local zone).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from haathi.errors import InvalidArgument

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go accepts
    "\u03bcs": 1e-6,  # Greek mu, as Go accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
MAX_DURATION_S = 365 * 24 * 3600.0  # the longest timeout or cron interval: a year
_PART_RE = re.compile(r"(\d+\.?\d*|\.\d+)([a-z\u00b5\u03bc]+)")
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go duration (``"60s"``, ``"1m30s"``, ``"1.5h"``, ``"100ms"``) or a number.

    The result is rounded to nanoseconds, Go's resolution. Negative durations are rejected.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise InvalidArgument(f"invalid duration {text!r}: expected a string like '60s'")
    try:
        seconds = float(text) if isinstance(text, int | float) else _parse_go_duration(text)
    except OverflowError as exc:  # an integer too large for a float
        raise InvalidArgument("invalid duration: too long") from exc
    if not math.isfinite(seconds):
        raise InvalidArgument(f"invalid duration {text!r}")
    if seconds < 0:
        raise InvalidArgument(f"invalid duration {text!r}: must not be negative")
    return round(seconds, 9)


def _parse_go_duration(text: str) -> float:
    body = text.strip()
    sign = 1.0
    if body[:1] in ("+", "-"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise InvalidArgument(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    for m in _PART_RE.finditer(body):
        if m.start() != pos:
            break
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise InvalidArgument(f"invalid duration {text!r}: unknown unit {m.group(2)!r}")
        total += float(m.group(1)) * unit
        pos = m.end()
    if pos != len(body):
        hint = ": missing unit (e.g. '60s')" if body.replace(".", "", 1).isdigit() else ""
        raise InvalidArgument(f"invalid duration {text!r}{hint}")
    return sign * total


def format_duration(seconds: float) -> str:
    """A duration string that :func:`parse_duration` reads back to the same value."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.9f}".rstrip("0") + "s"


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: ``kind`` is ``every``, ``cron`` or ``never``."""

    spec: str
    kind: str
    every: float = 0.0
    expr: str = ""

    def next_after(self, t: datetime) -> datetime | None:
        """The first tick strictly after ``t`` (UTC; a naive ``t`` is taken as UTC).

        ``@every D`` ticks at ``t`` truncated to the second plus ``D`` (as Go's robfig/cron);
        ``never`` returns None.
        """
        t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        if self.kind == "never":
            return None
        if self.kind == "every":
            return t.replace(microsecond=0) + timedelta(seconds=self.every)
        from croniter import croniter  # on use: 8 ms of every CLI command's start otherwise

        nxt: datetime = croniter(self.expr, t).get_next(datetime)
        return nxt.astimezone(UTC)


def parse_cron(spec: str, *, bounded: bool = True) -> CronSchedule:
    """Parse a cron input's ``spec``; a bad one raises InvalidArgument. ``bounded``: an
    ``@every`` interval must be 1s to a year (else, for a schedule stored before that bound,
    a shorter one ticks every second and a longer one once a year)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgument(f"invalid cron spec {spec!r}: empty")
    text = " ".join(spec.split())
    if text in ("never", "@never"):
        return CronSchedule(spec, "never")
    if text.startswith("@every"):
        every = _every_delay(spec, text[len("@every") :], bounded)
        return CronSchedule(spec, "every", every=every)
    expr = _DESCRIPTORS.get(text.lower(), text)
    if expr.startswith("@"):
        raise InvalidArgument(f"invalid cron spec {spec!r}: unknown descriptor")
    if len(expr.split()) != 5:
        raise InvalidArgument(
            f"invalid cron spec {spec!r}: expected 5 fields (minute hour day month weekday)"
        )
    from croniter import croniter

    if not croniter.is_valid(expr):
        raise InvalidArgument(f"invalid cron spec {spec!r}")
    return CronSchedule(spec, "cron", expr=expr)


def _every_delay(spec: str, rest: str, bounded: bool) -> float:
    if not rest.startswith(" "):
        raise InvalidArgument(f"invalid cron spec {spec!r}: expected '@every <duration>'")
    try:
        seconds = parse_duration(rest.strip())
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid cron spec {spec!r}: {exc}") from exc
    if not bounded:
        return float(min(max(1, int(seconds)), MAX_DURATION_S))
    # robfig/cron's Every() rounds up to one second; here a shorter interval is refused
    # rather than silently run at another rate (and whole seconds, as robfig/cron ticks)
    if seconds < 1:
        raise InvalidArgument(
            f"invalid cron spec {spec!r}: the interval must be at least 1s, got "
            f"{format_duration(seconds)}"
        )
    if seconds > MAX_DURATION_S:
        raise InvalidArgument(
            f"invalid cron spec {spec!r}: the interval must be at most "
            f"{format_duration(MAX_DURATION_S)} (a year; @yearly ticks once a year)"
        )
    return float(int(seconds))
