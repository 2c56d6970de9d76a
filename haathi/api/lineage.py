"""Lineage operations of the Api: where a file came from, what was derived from it, and
whether the recorded work reproduces."""

from __future__ import annotations

from haathi.models.lineage import LineageNode
from haathi.models.refspec import parse_commit, parse_file
from haathi.models.reproduce import ReproduceReport
from haathi.pps import lineage, reproduce
from haathi.pps.context import PpsContext
from haathi.pps.runner import JobRunner


class LineageApi:
    """Mixed into :class:`haathi.api.service.Api`."""

    pps: PpsContext

    @property
    def runner(self) -> JobRunner:  # the Api's (its executor runs the re-runs)
        raise NotImplementedError

    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        """Upstream lineage of each file at ``target`` (a file, directory or glob), or with
        ``downstream`` the files derived from each, at the heads or in commit set ``at``."""
        spec = parse_file(target)
        if downstream:
            return lineage.downstream(self.pps, spec, at)
        return lineage.upstream(self.pps, spec)

    def reproduce(self, target: str) -> ReproduceReport:
        """Re-run the recorded datums that wrote the files at ``target`` and compare."""
        return reproduce.reproduce_files(self.pps, parse_file(target), self.runner.executor)

    def reproduce_commit(
        self, commit: str, *, sample: int | None = None, seed: int | None = None
    ) -> ReproduceReport:
        """Re-run the datums of output commit ``commit`` (or ``sample`` of them) and compare."""
        return reproduce.reproduce_commit(
            self.pps, parse_commit(commit), self.runner.executor, sample=sample, seed=seed
        )
