"""Lineage methods of the Client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from haathi.models.lineage import LineageGraph, LineageNode

if TYPE_CHECKING:
    from haathi.api.service import Api


class LineageMethods:
    """Mixed into :class:`haathi.client.client.Client`."""

    _api: Api

    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        """Where each file at ``target`` (``repo@ref:/path``, a directory or a glob) came from:
        the datum that wrote it, the job and spec version, and the input files, recursively
        down to user commits. With ``downstream``: every file derived from it, at the output
        branches' heads or in commit set ``at``."""
        return self._api.lineage(target, downstream=downstream, at=at)

    def lineage_graph(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> LineageGraph:
        """The same lineage as one graph (each file version once)."""
        return LineageGraph.of(self.lineage(target, downstream=downstream, at=at))
