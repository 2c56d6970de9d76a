"""Lineage operations of the Api: where a file came from, and what was derived from it."""

from __future__ import annotations

from haathi.models.lineage import LineageNode
from haathi.models.refspec import parse_file
from haathi.pps import lineage
from haathi.pps.context import PpsContext


class LineageApi:
    """Mixed into :class:`haathi.api.service.Api`."""

    pps: PpsContext

    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        """Upstream lineage of each file at ``target`` (a file, directory or glob), or with
        ``downstream`` the files derived from each, at the heads or in commit set ``at``."""
        spec = parse_file(target)
        if downstream:
            return lineage.downstream(self.pps, spec, at)
        return lineage.upstream(self.pps, spec)
