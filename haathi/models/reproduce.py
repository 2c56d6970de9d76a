"""Reproduction reports: recorded datums re-run, their outputs compared file by file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNRUNNABLE = "UNRUNNABLE"
"""The state of a datum that could not be re-run (its input commit is gone, say)."""


@dataclass(frozen=True)
class FileCheck:
    """One output file of a datum: the hash stored for it and the hash the re-run gave.

    ``stored_hash`` is None for a file the re-run wrote that the datum did not (extra);
    ``reproduced_hash`` is None for a file the re-run did not write (missing). Either counts
    as a mismatch.
    """

    path: str
    stored_hash: str | None
    reproduced_hash: str | None
    stored_size: int | None = None
    reproduced_size: int | None = None

    @property
    def match(self) -> bool:
        return self.stored_hash is not None and self.stored_hash == self.reproduced_hash

    @property
    def status(self) -> str:
        """``match``, ``differs``, ``missing`` (not reproduced) or ``extra`` (not stored)."""
        if self.match:
            return "match"
        if self.stored_hash is None:
            return "extra"
        return "missing" if self.reproduced_hash is None else "differs"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "stored_hash": self.stored_hash,
            "reproduced_hash": self.reproduced_hash,
            "stored_size": self.stored_size,
            "reproduced_size": self.reproduced_size,
            "match": self.match,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileCheck:
        return cls(
            d["path"],
            d.get("stored_hash"),
            d.get("reproduced_hash"),
            d.get("stored_size"),
            d.get("reproduced_size"),
        )


@dataclass(frozen=True)
class EnvChange:
    """What differs between the recorded run and the re-run of a datum, other than its files:
    a variable user code saw (``recorded`` / ``reproduced`` None: unset in that run), the
    sandbox it ran in (``name`` ``sandbox``, ``variable`` False), or the image its tag names
    (``name`` ``image <tag>``: the re-run used the recorded digest, the tag now names
    another)."""

    name: str
    recorded: str | None
    reproduced: str | None
    variable: bool = True

    def __str__(self) -> str:
        what = f"${self.name}" if self.variable else self.name
        return f"{what} was {_shown(self.recorded)}, now {_shown(self.reproduced)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recorded": self.recorded,
            "reproduced": self.reproduced,
            "variable": self.variable,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvChange:
        return cls(d["name"], d.get("recorded"), d.get("reproduced"), d.get("variable", True))


def _shown(value: str | None) -> str:
    return "unset" if value is None else repr(value)


@dataclass(frozen=True)
class DatumReproduction:
    """One datum re-run: the job that originally ran it (``pipeline@id``, whose ID the re-run
    sees as ``PACH_JOB_ID``), the spec version and input files it ran with, how the re-run
    ended, and its output files against the stored ones."""

    datum: str
    job: str
    spec_version: int
    inputs: tuple[str, ...]  # repo@commit:/path, as recorded
    state: str  # SUCCESS, FAILED or RECOVERED (as a datum's), or UNRUNNABLE
    files: tuple[FileCheck, ...]
    attempts: int = 0
    reason: str | None = None
    log_tail: str = ""  # the end of the user code's output, when the re-run did not succeed
    duration_s: float = 0.0
    sandbox: str = ""
    env_changes: tuple[EnvChange, ...] = ()  # how the re-run's environment differs

    @property
    def env_differs(self) -> tuple[str, ...]:
        """The names of the variables (and ``sandbox``) that differ from the recorded run."""
        return tuple(c.name for c in self.env_changes)

    @property
    def ok(self) -> bool:
        return self.state == "SUCCESS" and all(f.match for f in self.files)

    @property
    def mismatches(self) -> tuple[FileCheck, ...]:
        return tuple(f for f in self.files if not f.match)

    def to_dict(self) -> dict[str, Any]:
        return {
            "datum": self.datum,
            "job": self.job,
            "spec_version": self.spec_version,
            "inputs": list(self.inputs),
            "state": self.state,
            "attempts": self.attempts,
            "reason": self.reason,
            "log_tail": self.log_tail,
            "duration_s": self.duration_s,
            "sandbox": self.sandbox,
            "env_differs": list(self.env_differs),
            "env_changes": [c.to_dict() for c in self.env_changes],
            "ok": self.ok,
            "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatumReproduction:
        return cls(
            datum=d["datum"],
            job=d["job"],
            spec_version=d["spec_version"],
            inputs=tuple(d.get("inputs", ())),
            state=d["state"],
            files=tuple(FileCheck.from_dict(f) for f in d.get("files", ())),
            attempts=d.get("attempts", 0),
            reason=d.get("reason"),
            log_tail=d.get("log_tail", ""),
            duration_s=d.get("duration_s", 0.0),
            sandbox=d.get("sandbox", ""),
            env_changes=tuple(EnvChange.from_dict(c) for c in d.get("env_changes", ())),
        )


@dataclass(frozen=True)
class ReproduceReport:
    """The re-runs of the datums behind ``target`` (files of output commit ``commit``,
    ``repo@id``). ``datums_total`` is how many datums the target covers; with ``sample`` only
    that many of them (chosen at random, with ``seed`` if given) were re-run."""

    target: str
    commit: str
    datums: tuple[DatumReproduction, ...]
    datums_total: int
    sample: int | None = None
    seed: int | None = None

    @property
    def files(self) -> tuple[FileCheck, ...]:
        return tuple(f for d in self.datums for f in d.files)

    @property
    def mismatches(self) -> tuple[tuple[DatumReproduction, FileCheck], ...]:
        """(datum, file) of every file that did not reproduce."""
        return tuple((d, f) for d in self.datums for f in d.files if not f.match)

    @property
    def failed_datums(self) -> tuple[DatumReproduction, ...]:
        """Datums whose re-run did not succeed."""
        return tuple(d for d in self.datums if d.state != "SUCCESS")

    @property
    def sampled(self) -> bool:
        return len(self.datums) < self.datums_total

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.datums)

    def to_dict(self) -> dict[str, Any]:
        files = self.files
        matched = sum(f.match for f in files)
        return {
            "target": self.target,
            "commit": self.commit,
            "ok": self.ok,
            "datums_total": self.datums_total,
            "datums_reproduced": len(self.datums),
            "sample": self.sample,
            "seed": self.seed,
            "sampled": self.sampled,
            "files_total": len(files),
            "files_matched": matched,
            "files_mismatched": len(files) - matched,
            "mismatches": [
                {"datum": d.datum, "path": f.path, "status": f.status} for d, f in self.mismatches
            ],
            "datums": [d.to_dict() for d in self.datums],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReproduceReport:
        return cls(
            target=d["target"],
            commit=d["commit"],
            datums=tuple(DatumReproduction.from_dict(x) for x in d.get("datums", ())),
            datums_total=d["datums_total"],
            sample=d.get("sample"),
            seed=d.get("seed"),
        )
