"""Pages as HTML: Jinja2 templates from the package, every value escaped.

Autoescaping is on for every template, and every value a template prints first goes through
:func:`visible`: control characters (but tab and newline) and the bidirectional overrides
that could disguise a name are shown as escapes (``\\x1b``, ``\\u202e``), so a repo
description, file name or commit message holding ``<script>``, quotes or control characters
shows as the text it is and does nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from haathi.console import assets, urls

_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> Any:
    """``value`` as a template prints it: strings with hidden characters shown as escapes
    (:class:`~markupsafe.Markup`, already safe HTML, passes as it is)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _HIDDEN.sub(_escape, value)
    return value


def size(n: int | None) -> str:
    """Bytes as people read them: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(t: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``t`` was: ``just now``, ``5 minutes ago``, ``3 days ago``."""
    if t is None:
        return "-"
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - t).total_seconds()
    for limit, unit, per in ((3600, "minute", 60), (86400, "hour", 3600), (None, "day", 86400)):
        if seconds < 60:
            return "just now"
        if limit is None or seconds < limit:
            n = int(seconds // per)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    raise AssertionError("unreachable")


def iso(t: datetime | None) -> str:
    if t is None:
        return ""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat(timespec="seconds")


def short(commit_id: str | None) -> str:
    """A commit or job ID as the console shows it (the full ID is in its link's title)."""
    return (commit_id or "-")[:8]


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("haathi.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        finalize=visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=size, age=age, iso=iso, short=short)
    env.globals.update(urls=urls, asset=assets.url)
    env.tests["moment"] = lambda value: isinstance(value, datetime)
    return env


def html(template: str, **context: Any) -> str:
    """``template`` rendered with ``context``."""
    return environment().get_template(template).render(**context)
