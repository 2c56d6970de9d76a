"""File-level lineage: trees of files linked through the datums that read and wrote them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LineageNode:
    """One file version, ``repo@commit:/path``, and how it links to others.

    A file in a pipeline's output names the ``datum`` that wrote it, the ``job``
    (``pipeline@id``) that ran that datum and the pipeline ``spec_version`` it ran; a file of a
    user commit names none. Upstream lineage fills ``inputs`` (the files the datum read, each
    with its own inputs, down to user commits); downstream lineage fills ``derived`` (the files
    written by datums that read this one, recursively).
    """

    repo: str
    commit: str
    path: str
    hash: str
    size_bytes: int
    origin: str  # USER | AUTO
    datum: str | None = None
    job: str | None = None
    spec_version: int | None = None
    image: str | None = None  # image@sha256:... the job ran in (None: the host sandbox)
    inputs: tuple[LineageNode, ...] = ()
    derived: tuple[LineageNode, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.repo}@{self.commit}:{self.path}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "repo": self.repo,
            "commit": self.commit,
            "path": self.path,
            "hash": self.hash,
            "size_bytes": self.size_bytes,
            "origin": self.origin,
        }
        if self.datum is not None:
            out |= {"datum": self.datum, "job": self.job, "spec_version": self.spec_version}
            if self.image is not None:
                out["image"] = self.image
        out["inputs"] = [n.to_dict() for n in self.inputs]
        out["derived"] = [n.to_dict() for n in self.derived]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LineageNode:
        return cls(
            repo=d["repo"],
            commit=d["commit"],
            path=d["path"],
            hash=d["hash"],
            size_bytes=d["size_bytes"],
            origin=d["origin"],
            datum=d.get("datum"),
            job=d.get("job"),
            spec_version=d.get("spec_version"),
            image=d.get("image"),
            inputs=tuple(cls.from_dict(n) for n in d.get("inputs", ())),
            derived=tuple(cls.from_dict(n) for n in d.get("derived", ())),
        )

    def walk(self) -> list[LineageNode]:
        """This node and every node it links to, each file version once."""
        seen: dict[str, LineageNode] = {}
        stack = [self]
        while stack:
            n = stack.pop()
            if n.ref not in seen:
                seen[n.ref] = n
                stack.extend(n.inputs)
                stack.extend(n.derived)
        return list(seen.values())


_LINKS = ("inputs", "derived")


@dataclass(frozen=True)
class LineageGraph:
    """Lineage as a graph: file versions as nodes, edges from a datum's input to its output."""

    nodes: tuple[LineageNode, ...]  # without their links
    edges: tuple[tuple[str, str], ...]  # (input ref, output ref)

    @classmethod
    def of(cls, roots: list[LineageNode]) -> LineageGraph:
        nodes: dict[str, LineageNode] = {}
        edges: dict[tuple[str, str], None] = {}
        for root in roots:
            for n in root.walk():
                nodes.setdefault(
                    n.ref,
                    LineageNode(
                        n.repo,
                        n.commit,
                        n.path,
                        n.hash,
                        n.size_bytes,
                        n.origin,
                        n.datum,
                        n.job,
                        n.spec_version,
                        n.image,
                    ),
                )
                edges.update({(i.ref, n.ref): None for i in n.inputs})
                edges.update({(n.ref, d.ref): None for d in n.derived})
        return cls(tuple(nodes.values()), tuple(edges))

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [
                {"ref": n.ref} | {k: v for k, v in n.to_dict().items() if k not in _LINKS}
                for n in self.nodes
            ],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
        }
