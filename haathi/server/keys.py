"""Repo and pipeline keys from a route's path and query.

A key (``project/name``) cannot be one path segment: the path is percent-decoded before
routing, so ``p%2Fdata`` becomes two segments. A route takes the bare name in its path and
the project in the query ``project`` (default ``default``); these dependencies join them.
They are ``async`` (no blocking work): see :mod:`haathi.server.offload`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from haathi.models.ids import DEFAULT_PROJECT, repo_key

ProjectQuery = Annotated[
    str, Query(description="the project of the repo or pipeline the path names")
]


async def _repo(repo: str, project: ProjectQuery = DEFAULT_PROJECT) -> str:
    return repo_key(project, repo)


async def _name(name: str, project: ProjectQuery = DEFAULT_PROJECT) -> str:
    return repo_key(project, name)


async def _pipeline(pipeline: str, project: ProjectQuery = DEFAULT_PROJECT) -> str:
    return repo_key(project, pipeline)


RepoKey = Annotated[str, Depends(_repo)]  # path ``{repo}``
NameKey = Annotated[str, Depends(_name)]  # path ``{name}`` (a pipeline)
PipelineKey = Annotated[str, Depends(_pipeline)]  # path ``{pipeline}``
ProjectFilter = Annotated[
    str | None, Query(description="only those of this project (none: of every project)")
]
