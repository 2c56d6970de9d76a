"""Lineage and reproduction methods of the Client."""

from __future__ import annotations

from collections.abc import Callable

from haathi.models.contract import ApiContract
from haathi.models.lineage import LineageGraph, LineageNode
from haathi.models.reproduce import ReproduceReport


class LineageMethods:
    """Mixed into :class:`haathi.client.client.Client`."""

    _api: ApiContract
    _target: Callable[[str], str]  # a target's repo as a key (ProjectMethods)

    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        """Where each file at ``target`` (``repo@ref:/path``, a directory or a glob) came from:
        the datum that wrote it, the job and spec version, and the input files, recursively
        down to user commits. With ``downstream``: every file derived from it, at the output
        branches' heads or in commit set ``at``."""
        return self._api.lineage(self._target(target), downstream=downstream, at=at)

    def lineage_graph(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> LineageGraph:
        """The same lineage as one graph (each file version once)."""
        return LineageGraph.of(self.lineage(target, downstream=downstream, at=at))

    def reproduce(self, target: str) -> ReproduceReport:
        """Re-run the datums that wrote the files at ``target`` (``repo@ref:/path`` of a
        pipeline's output, a directory or a glob) from their recorded input commits, with the
        spec version and job ID that ran them, in a scratch area, and compare every file those
        datums wrote with the stored one by hash. Writes no branch, commit, job or datum.
        ``report.ok`` says whether everything matched; ``report.mismatches`` lists the rest."""
        return self._api.reproduce(self._target(target))

    def reproduce_commit(
        self, commit: str, *, sample: int | None = None, seed: int | None = None
    ) -> ReproduceReport:
        """:meth:`reproduce` for every datum that wrote files in output commit ``commit``
        (``repo@id`` or ``repo@branch``), or for ``sample`` of them chosen at random (with
        ``seed``, the same ones each time)."""
        return self._api.reproduce_commit(self._target(commit), sample=sample, seed=seed)
