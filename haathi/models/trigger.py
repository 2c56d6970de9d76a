"""A branch trigger (Pachyderm's ``Trigger``): a branch whose head follows another branch of
its repo, moving to that branch's head when a condition holds.

Conditions: ``size`` (the data added since the branch's head), ``commits`` (commits since its
head), ``rate_limit_spec`` (a schedule's next tick after its head finished has passed),
or'ed, or and'ed with ``all``. ``cron_spec`` stands alone: the branch moves at each tick of
the schedule. The fields and their JSON names are Pachyderm's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.ids import validate_branch_name
from haathi.models.schedule import CronSchedule, parse_cron
from haathi.models.units import parse_size

_FIELDS = ("branch", "all", "rate_limit_spec", "size", "commits", "cron_spec")
_CAMEL = {"rateLimitSpec": "rate_limit_spec", "cronSpec": "cron_spec"}


@dataclass(frozen=True)
class Trigger:
    """``branch`` is the branch it follows (of the same repo; required, as Pachyderm's
    server requires it: see :meth:`check`)."""

    branch: str = ""
    all: bool = False
    rate_limit_spec: str = ""
    size: str = ""
    commits: int = 0
    cron_spec: str = ""

    def check(self, *, bounded: bool = True) -> Trigger:
        """This trigger if it is valid, else InvalidArgument with Pachyderm's reason
        (``bounded``: an ``@every`` interval must be 1s to a year, as for cron inputs)."""
        if not self.branch:
            raise InvalidArgument("triggers must specify a branch to trigger on")
        validate_branch_name(self.branch)
        if self.rate_limit_spec:
            _schedule(self.rate_limit_spec, "rate limit", bounded)
        if self.size:
            self.size_bytes  # noqa: B018 - parses it
        if self.commits < 0:
            raise InvalidArgument("can't trigger on a negative number of commits")
        if self.cron_spec:
            _schedule(self.cron_spec, "cron", bounded)
        return self

    @property
    def size_bytes(self) -> int:
        """``size`` in bytes (0 if unset)."""
        if not self.size:
            return 0
        try:
            return parse_size(self.size, "trigger size")
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid trigger size {self.size!r}") from exc

    @property
    def cron(self) -> CronSchedule | None:
        """The ``cron_spec`` schedule (None if unset)."""
        return parse_cron(self.cron_spec, bounded=False) if self.cron_spec else None

    @property
    def rate_limit(self) -> CronSchedule | None:
        """The ``rate_limit_spec`` schedule (None if unset)."""
        return parse_cron(self.rate_limit_spec, bounded=False) if self.rate_limit_spec else None

    def describe(self) -> str:
        """As ``pachctl list branch`` shows it: ``staging on Size(1MB) or Commits(10)``."""
        if self.cron_spec:
            return f"{self.branch} on Cron({self.cron_spec})"
        conds = []
        if self.rate_limit_spec:
            conds.append(f"Rate Limit({self.rate_limit_spec})")
        if self.size:
            conds.append(f"Size({self.size})")
        if self.commits:
            conds.append(f"Commits({self.commits})")
        return f"{self.branch} on {(' and ' if self.all else ' or ').join(conds)}"

    def to_dict(self) -> dict[str, Any]:
        """Pachyderm's JSON shape: ``branch`` and the fields that are set."""
        out: dict[str, Any] = {"branch": self.branch}
        for key in _FIELDS[1:]:
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "trigger") -> Trigger:
        """A trigger from its JSON shape (snake_case or camelCase keys; ``commits`` may be a
        decimal string, as protojson writes int64); not yet checked (see :meth:`check`)."""
        if not isinstance(doc, Mapping):
            raise InvalidArgument(f"{where} must be an object")
        values: dict[str, Any] = {}
        for key, value in doc.items():
            name = _CAMEL.get(key, key)
            if name not in _FIELDS:
                raise InvalidArgument(f"unsupported field {where}.{key}")
            if name in values:
                raise InvalidArgument(f"field {where}.{name} given twice")
            values[name] = None if value is None else _typed(name, value, f"{where}.{key}")
        return cls(**{k: v for k, v in values.items() if v is not None})


def _typed(name: str, value: Any, where: str) -> Any:
    if name == "all":
        if not isinstance(value, bool):
            raise InvalidArgument(f"{where} must be true or false")
        return value
    if name == "commits":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{where} must be an integer")
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string")
    return value


def _schedule(spec: str, what: str, bounded: bool) -> None:
    try:
        parse_cron(spec, bounded=bounded)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid trigger {what} spec: {exc}") from exc
