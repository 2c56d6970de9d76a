"""The benchmark harness: typed workloads, the runner that repeats them, one output.

A :class:`Workload` is a named function of a :class:`Ctx`. It sets up its data, times its
contenders (haathi and its baselines or peer tools) with :func:`alternate` — every contender
once per run, the order rotated per run, so that a slow moment of this shared machine does not
fall on one of them only — and reports each figure with :meth:`Ctx.figure`, judged against a
:class:`Target`. Set-up that several workloads share (servers, container images, a
calibration) is a :class:`Fixture`, made at first use and closed after the last workload.

:func:`run_workloads` runs the selected workloads one after another (a failure is reported,
and the others still run); :meth:`Ctx.save` (JSON) and :func:`table` (text or Markdown) give
the one output format.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
if str(PROJECT) not in sys.path:  # loopback/ (the servers); the haathi under test comes first
    sys.path.append(str(PROJECT))

SEED = 20260521
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

T = TypeVar("T")
Row = dict[str, Any]  # the figures of one contender in one run: {"s": 1.23, "rss": ...}

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class Skipped(Exception):
    """A workload cannot run on this machine (a tool is missing): noted, not a failure."""


@dataclass(frozen=True)
class Target:
    """What a figure must be, e.g. ``Target("<", 20, "ms")``."""

    op: Literal["<", "<=", ">", ">="]
    limit: float
    unit: str = ""

    def met(self, value: float) -> bool:
        return bool(_COMPARE[self.op](value, self.limit))

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}" + (f" {self.unit}" if self.unit else "")


@dataclass
class Figure:
    """One reported figure: a row of the output table."""

    area: str
    workload: str
    name: str
    value: float | None
    unit: str
    target: str  # "" when the figure is only recorded
    passed: bool | None  # None: recorded, or not judged at this size
    detail: str = ""

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]


@dataclass(frozen=True)
class Workload:
    """A benchmark: ``run`` sets up, measures and reports its figures (``--only name``)."""

    name: str
    area: str  # the table its figures go to: ingest, reading, backends, server, ...
    what: str  # one line, for --help
    run: Callable[[Ctx], None]


@dataclass(frozen=True)
class Fixture(Generic[T]):
    """Set-up shared by workloads: ``make(ctx)`` is entered at the first :meth:`Ctx.use` and
    exited after the last workload."""

    name: str
    make: Callable[[Ctx], AbstractContextManager[T]]


@dataclass
class Options:
    """The command line, typed."""

    quick: bool = False  # each workload's small size (a smoke test; some targets not judged)
    runs: int = 3  # runs per timed figure (median)
    settle: float = 30.0  # seconds to wait after mass deletions
    work: Path = BENCH / "work"
    out: Path = BENCH / "work" / "results.json"
    parallelism: int = 4  # haathi put -p
    profile_all: bool = False  # profiles for every workload, not only missed targets
    use_dvc: bool = True


@dataclass
class Ctx:
    """What a workload runs with: the options, and where its results go."""

    opts: Options
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # per workload: every run's figures
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    workload: Workload | None = None
    _fixtures: dict[str, Any] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def quick(self) -> bool:
        return self.opts.quick

    @property
    def runs(self) -> int:
        return self.opts.runs

    @property
    def work(self) -> Path:
        return self.opts.work

    @property
    def name(self) -> str:
        return self.workload.name if self.workload else "-"

    @property
    def data(self) -> dict[str, Any]:
        """The current workload's raw results (written to the JSON as they come)."""
        return cast(dict[str, Any], self.raw.setdefault(self.name, {}))

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def note(self, msg: str) -> None:
        self.log("NOTE: " + msg)
        self.notes.append(msg)

    def figure(
        self,
        name: str,
        value: float | None,
        unit: str,
        target: Target | None = None,
        detail: str = "",
        *,
        judged: bool = True,
        area: str | None = None,
    ) -> bool | None:
        """Report a figure (judged against ``target`` unless ``judged`` is false); returns
        whether it passed (None when not judged)."""
        passed = target.met(value) if target and judged and value is not None else None
        shown = str(target) if target else ""
        if target and not judged:
            shown += " (not judged at this size)"
        fig = Figure(
            area or (self.workload.area if self.workload else "-"),
            self.name,
            name,
            value,
            unit,
            shown,
            passed,
            detail,
        )
        self.figures.append(fig)
        self.log(f"{fig.result}: {name}: {fmt(value)} {unit} (target {shown or '-'}) {detail}")
        self.save()
        return passed

    def wants_profile(self, passed: bool | None) -> bool:
        """Whether to profile: the target was missed, or ``--profile-all``."""
        return passed is False or self.opts.profile_all

    def use(self, fixture: Fixture[T]) -> T:
        """The fixture's value, made at its first use."""
        if fixture.name not in self._fixtures:
            self.log(f"setting up {fixture.name}")
            self._fixtures[fixture.name] = self._stack.enter_context(fixture.make(self))
        return cast(T, self._fixtures[fixture.name])

    def settle(self, why: str) -> None:
        """``sync``, then wait ``--settle`` seconds: this disk crawls after mass deletions."""
        os.sync()
        self.log(f"{why}; settling {self.opts.settle:.0f} s")
        time.sleep(self.opts.settle)

    def save(self) -> None:
        out = {
            "meta": self.meta,
            "figures": [asdict(f) for f in self.figures],
            "notes": self.notes,
            "profiles": self.profiles,
            "workloads": self.raw,
        }
        tmp = self.opts.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2, default=str) + "\n")
        tmp.replace(self.opts.out)


# --------------------------------------------------------------------------------------------
# repeats, medians, ratios


def rotated(items: Sequence[str], k: int) -> list[str]:
    """``items`` rotated by ``k``: the order of run ``k``."""
    k %= len(items)
    return [*items[k:], *items[:k]]


@dataclass
class Trials:
    """The rows of alternated runs: per contender, one :data:`Row` per run."""

    rows: dict[str, list[Row]]

    def values(self, who: str, key: str = "s") -> list[float]:
        return [float(r[key]) for r in self.rows[who]]

    def median(self, who: str, key: str = "s") -> float:
        return statistics.median(self.values(who, key))

    def ratios(self, a: str, b: str, key: str = "s") -> list[float]:
        """Per run, ``a / b`` (both measured next to each other)."""
        return [x / y for x, y in zip(self.values(a, key), self.values(b, key), strict=True)]

    def ratio(self, a: str, b: str, key: str = "s") -> float:
        """The median of the per-run ratios ``a / b``."""
        return statistics.median(self.ratios(a, b, key))

    def differences(self, a: str, b: str, key: str = "s") -> list[float]:
        """Per run, ``a - b``."""
        return [x - y for x, y in zip(self.values(a, key), self.values(b, key), strict=True)]

    def difference(self, a: str, b: str, key: str = "s") -> float:
        """The median of the per-run differences ``a - b``."""
        return statistics.median(self.differences(a, b, key))

    def ratio_of_medians(self, a: str, b: str, key: str = "s") -> float:
        return self.median(a, key) / self.median(b, key)

    def per_run(self, who: str, key: str = "s", scale: float = 1.0, spec: str = ".2f") -> str:
        """The runs' values, ``1.20/1.31/1.15``, for a figure's detail."""
        return "/".join(format(v * scale, spec) for v in self.values(who, key))


def alternate(
    ctx: Ctx,
    contenders: Mapping[str, Callable[[int], Row]],
    *,
    runs: int | None = None,
    before: Callable[[], None] | None = None,
    key: str = "runs",
) -> Trials:
    """Run each contender once per run (``contender(k)`` returns its row), in an order rotated
    per run; ``before`` runs before each (e.g. ``sync`` and re-reading the inputs). The rows
    are kept in the workload's results under ``key`` as they come."""
    trials = Trials({who: [] for who in contenders})
    ctx.data[key] = trials.rows
    for k in range(runs or ctx.runs):
        for who in rotated(list(contenders), k):
            if before is not None:
                before()
            row = contenders[who](k)
            row.setdefault("load", loadavg())
            trials.rows[who].append(row)
            shown = ", ".join(f"{n} {fmt(v)}" for n, v in row.items() if isinstance(v, float))
            ctx.log(f"{ctx.name} run {k} {who}: {shown}")
        ctx.save()
    return trials


def medians(rows: Sequence[Row]) -> dict[str, float]:
    """Per numeric key of ``rows``, its median over them."""
    keys = [k for k, v in rows[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(float(r[k]) for r in rows) for k in keys}


def pct(xs: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` (nearest rank)."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, round(q * (len(s) - 1))))]


def loadavg() -> float:
    """The 1-minute load average: how much to trust a figure on this shared machine."""
    return round(os.getloadavg()[0], 2)


# --------------------------------------------------------------------------------------------
# running and output


def run_workloads(ctx: Ctx, workloads: Sequence[Workload]) -> bool:
    """Run ``workloads`` in turn; False if one failed (its error is in the notes)."""
    ok = True
    walls = ctx.meta.setdefault("workloads", {})
    with ctx._stack:
        for w in workloads:
            ctx.workload = w
            t0, load = time.perf_counter(), loadavg()
            try:
                w.run(ctx)
            except Skipped as exc:
                ctx.note(f"{w.name} skipped: {exc}")
            except Exception as exc:  # reported; the other workloads still run
                traceback.print_exc()
                ctx.note(f"{w.name} failed: {type(exc).__name__}: {str(exc)[:500]}")
                ok = False
            walls[w.name] = {
                "wall_s": round(time.perf_counter() - t0, 1),
                "load_start": load,
                "load_end": loadavg(),
            }
            ctx.save()
        ctx.workload = None
    return ok


def fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def table(figures: Sequence[Figure], *, markdown: bool = False) -> str:
    """The figures as a table per area: aligned text, or Markdown."""
    out: list[str] = []
    for area in dict.fromkeys(f.area for f in figures):
        rows = [
            (f.name, f"{fmt(f.value)} {f.unit}".strip(), f.target or "-", f.result, f.detail)
            for f in figures
            if f.area == area
        ]
        head = ("figure", "value", "target", "result", "detail")
        out.append(f"\n### {area}\n" if markdown else f"\n{area}")
        if markdown:
            out.append("| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
            out += ["| " + " | ".join(x.replace("|", "\\|") for x in r) + " |" for r in rows]
            continue
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(4)]
        for r in (head, *rows):
            out.append("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    return "\n".join(out)
