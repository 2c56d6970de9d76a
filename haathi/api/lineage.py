"""Lineage operations of the Api: where a file came from, what was derived from it, and
whether the recorded work reproduces."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from haathi.models.auth import Permission
from haathi.models.lineage import LineageNode
from haathi.models.refspec import parse_commit, parse_file
from haathi.models.reproduce import ReproduceReport
from haathi.pps import lineage, reproduce
from haathi.pps.context import PpsContext
from haathi.pps.runner import JobRunner


class LineageApi:
    """Mixed into :class:`haathi.api.service.Api`."""

    pps: PpsContext

    def authorize(self, permission: Permission, *repos: str) -> None:  # AccessApi's
        raise NotImplementedError

    @property
    def runner(self) -> JobRunner:  # the Api's (its executor runs the re-runs)
        raise NotImplementedError

    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        """Upstream lineage of each file at ``target`` (a file, directory or glob), or with
        ``downstream`` the files derived from each, at the heads or in commit set ``at``."""
        spec = parse_file(target)
        self.authorize(Permission.READ, spec.commit.repo)
        if downstream:
            nodes = lineage.downstream(self.pps, spec, at)
        else:
            nodes = lineage.upstream(self.pps, spec)
        self.authorize(Permission.READ, *dict.fromkeys(_repos(nodes)))  # the caller sees them all
        return nodes

    def reproduce(self, target: str) -> ReproduceReport:
        """Re-run the recorded datums that wrote the files at ``target`` and compare."""
        spec = parse_file(target)
        self.authorize(Permission.WRITE, spec.commit.repo)  # it runs the pipeline's code
        return self._readable_report(
            reproduce.reproduce_files(self.pps, spec, self.runner.executor)
        )

    def reproduce_commit(
        self, commit: str, *, sample: int | None = None, seed: int | None = None
    ) -> ReproduceReport:
        """Re-run the datums of output commit ``commit`` (or ``sample`` of them) and compare."""
        spec = parse_commit(commit)
        self.authorize(Permission.WRITE, spec.repo)
        return self._readable_report(
            reproduce.reproduce_commit(
                self.pps, spec, self.runner.executor, sample=sample, seed=seed
            )
        )

    def _readable_report(self, report: ReproduceReport) -> ReproduceReport:
        inputs = (i.partition("@")[0] for d in report.datums for i in d.inputs)
        self.authorize(Permission.READ, *dict.fromkeys(inputs))
        return report


def _repos(nodes: Iterable[LineageNode]) -> Iterator[str]:
    for n in nodes:
        yield n.repo
        yield from _repos(n.inputs)
        yield from _repos(n.derived)
