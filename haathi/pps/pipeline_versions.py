"""A pipeline's spec versions: its history, one earlier version, rerun and rollback.

Every create or update of a pipeline stores a version: the effective spec and the salt (part
of every datum hash; :mod:`haathi.pps.records`). Versions count from 1 and are never removed
while the pipeline lives.

- **rerun** makes the current spec the next version, with the same salt unless
  ``reprocess`` (Pachyderm's ``RerunPipeline``): its job skips every datum that succeeded
  before and retries the rest; with ``reprocess`` every datum runs again.
- **rollback** makes an earlier version's spec *and salt* the next version (Pachyderm has no
  rollback: pachyderm/pachyderm#6827). Its job compares its datums with the last successful
  job's, as after an update: when the versions since kept the salt (plain updates), the
  datum hashes match and the outputs stay as they are (``reprocess`` re-runs them with the
  restored code); when one of them was made with ``reprocess`` (a new salt), every hash
  differs and every datum runs again with the restored code.

Both go through :func:`haathi.pps.pipelines.create_pipeline` in one transaction, which fails
with Conflict if the pipeline changed since the version to make was chosen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from haathi.errors import Conflict, InvalidArgument, NotFound
from haathi.models.info import PipelineInfo
from haathi.models.pipeline_ref import check_history
from haathi.pps import pipelines, records
from haathi.pps.context import PpsContext
from haathi.pps.spec import PipelineSpec, parse_spec


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What rerun or rollback makes version ``current + 1`` of pipeline ``name``: ``spec``
    (the current one's, or an earlier one's) with ``salt``."""

    name: str
    spec: PipelineSpec
    salt: str
    current: int


def resolve(p: records.PipelineRow, version: int | None = None, back: int = 0) -> int:
    """The version ``version`` of pipeline ``p``, or the one ``back`` versions before its
    current one (NotFound if there is no such version)."""
    if version is not None and back:
        raise InvalidArgument("name a pipeline version once: NAME@vN or NAME^k, not both")
    if back < 0:
        raise InvalidArgument("cannot inspect future pipelines: ^k counts versions back")
    if version is not None:
        if not 1 <= version <= p.version:
            raise NotFound(
                f"pipeline {p.name} has no version {version} (versions 1-{p.version})",
                pipeline=p.name,
            )
        return version
    if back >= p.version:
        raise NotFound(
            f'pipeline "{p.name}" has only {p.version} versions, not enough to find '
            f"ancestor {back}",
            pipeline=p.name,
        )
    return p.version - back


def inspect_version(
    ctx: PpsContext, name: str, *, version: int | None = None, back: int = 0
) -> PipelineInfo:
    """The pipeline as of one version (see :func:`resolve`; default: the current one)."""
    with ctx.pfs.db.read() as conn:
        p = records.pipeline_row(conn, name)
        v = records.version_row(conn, p.id, resolve(p, version, back))
        return pipelines.pipeline_info(conn, p, v)


def with_history(
    ctx: PpsContext, current: Sequence[PipelineInfo], history: int
) -> list[PipelineInfo]:
    """Each pipeline of ``current`` followed by its ``history`` earlier versions (-1: all of
    them), newest first, as pachctl's ``list pipeline --history``."""
    check_history(history)
    out: list[PipelineInfo] = []
    with ctx.pfs.db.read() as conn:
        for info in current:
            out.append(info)
            p = records.find_pipeline(conn, info.name)
            if p is None or not history:
                continue
            since = 1 if history < 0 else info.version - history
            older = records.versions(conn, p.id, since)
            out.extend(
                pipelines.pipeline_info(conn, p, v) for v in older if v.version < info.version
            )
    return out


def _new_salt() -> str:
    return uuid.uuid4().hex


def rerun_version(ctx: PpsContext, name: str, *, reprocess: bool = False) -> NewVersion:
    """The version rerun makes: the current spec, with the current salt unless
    ``reprocess``."""
    with ctx.pfs.db.read() as conn:
        p = records.pipeline_row(conn, name)
        v = records.version_row(conn, p.id, p.version)
    salt = _new_salt() if reprocess else v.salt
    return NewVersion(name, parse_spec(v.spec, stored=True), salt, p.version)


def rollback_version(
    ctx: PpsContext,
    name: str,
    *,
    version: int | None = None,
    back: int = 0,
    reprocess: bool = False,
) -> NewVersion:
    """The version rollback makes: the spec and salt (a new salt with ``reprocess``) of
    version ``version``, or of the one ``back`` versions before the current one (neither:
    the previous version)."""
    with ctx.pfs.db.read() as conn:
        p = records.pipeline_row(conn, name)
        if version is None and not back and p.version == 1:
            raise NotFound(
                f"pipeline {name} has one version: there is none to roll back to", pipeline=name
            )
        target = resolve(p, version, back or (1 if version is None else 0))
        if target == p.version:
            raise InvalidArgument(
                f"{name}@v{target} is the current version: use rerun pipeline", pipeline=name
            )
        v = records.version_row(conn, p.id, target)
    salt = _new_salt() if reprocess else v.salt
    return NewVersion(name, parse_spec(v.spec, stored=True), salt, p.version)


def make_version(
    ctx: PpsContext, new: NewVersion, *, then: Callable[[Connection], None] | None = None
) -> str:
    """Store ``new`` as the pipeline's next version and start its job; the job's ID. Conflict
    (and nothing changed) if the pipeline changed since ``new`` was chosen."""

    def check(conn: Connection) -> None:
        p = records.find_pipeline(conn, new.name)
        if p is None or p.version != new.current + 1:
            raise Conflict(
                f"pipeline {new.name} changed while its version {new.current + 1} was being "
                "made: try again",
                pipeline=new.name,
            )
        if then is not None:
            then(conn)

    return pipelines.create_pipeline(ctx, new.spec, is_update=True, salt=new.salt, then=check)
