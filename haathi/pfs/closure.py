"""Transitive commit provenance and subvenance, each in one recursive SQL query.

``commit_provenance`` holds the direct edges (an output commit -> the input commits it was made
from). Full provenance follows them upstream back to user commits; subvenance follows them
downstream to every commit made, directly or not, from a commit. Each walk is one
``WITH RECURSIVE`` query (SQLite and PostgreSQL alike), so it costs one round trip whatever the
depth of the DAG. ``UNION`` (not ``UNION ALL``) keeps one row per (commit, depth): diamonds in
the DAG cannot multiply rows.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    bindparam,
    func,
    literal,
    select,
)

from haathi.meta.schema import commit_provenance, repos

Pair = tuple[ColumnElement[Any], ColumnElement[Any]]


def _ends(table: FromClause, upstream: bool) -> tuple[Pair, Pair]:
    """((repo, commit) an edge is followed from, (repo, commit) it leads to)."""
    here: Pair = (table.c.repo_id, table.c.commit_id)
    there: Pair = (table.c.from_repo_id, table.c.from_commit_id)
    return (here, there) if upstream else (there, here)


@functools.cache
def _statement(upstream: bool) -> Select[Any]:
    """The walk's query, built once per direction (building it costs ~20x running it on an
    empty table): ``repo@commit`` rows reachable from the bound (repo_id, cid)."""
    (src_repo, src_commit), (dst_repo, dst_commit) = _ends(commit_provenance, upstream)
    seed = (
        select(dst_repo.label("repo_id"), dst_commit.label("commit_id"), literal(1).label("depth"))
        .where(src_repo == bindparam("repo_id"), src_commit == bindparam("cid"))
        .cte("reach", recursive=True)
    )
    edge = commit_provenance.alias("edge")
    (e_src_repo, e_src_commit), (e_dst_repo, e_dst_commit) = _ends(edge, upstream)
    reach = seed.union(
        select(e_dst_repo, e_dst_commit, seed.c.depth + 1).join(
            seed, and_(e_src_repo == seed.c.repo_id, e_src_commit == seed.c.commit_id)
        )
    )
    depth = func.min(reach.c.depth).label("depth")
    return (
        select(repos.c.name, reach.c.commit_id, depth)
        .join(repos, repos.c.id == reach.c.repo_id)
        .group_by(repos.c.name, reach.c.commit_id)
        .order_by(depth, repos.c.name, reach.c.commit_id)
    )


def _walk(conn: Connection, repo_id: int, cid: str, *, upstream: bool) -> list[str]:
    """``repo@commit`` of every commit reachable from (repo_id, cid), nearest first."""
    rows = conn.execute(_statement(upstream), {"repo_id": repo_id, "cid": cid})
    return [f"{r[0]}@{r[1]}" for r in rows]


def full_provenance(conn: Connection, repo_id: int, cid: str) -> list[str]:
    """Every commit this one was made from, transitively (back to user commits)."""
    return _walk(conn, repo_id, cid, upstream=True)


def full_subvenance(conn: Connection, repo_id: int, cid: str) -> list[str]:
    """Every commit made from this one, transitively."""
    return _walk(conn, repo_id, cid, upstream=False)
