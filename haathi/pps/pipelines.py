"""Pipeline lifecycle: create, update, stop, start, delete, inspect and list.

A pipeline owns an output repo of its name whose ``output_branch`` is provenant on the
pipeline's input branches, so every new input commit propagates an open output commit with
the same ID; a job fills it (see ``jobs``). Each create/update stores a new spec *version*;
the salt (part of every datum hash) is kept on update unless ``reprocess`` asks for a new one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Connection

from haathi.auth import activation, bindings
from haathi.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from haathi.models.auth import Role, pipeline_subject
from haathi.models.ids import new_commit_id, split_key
from haathi.models.info import PipelineInfo
from haathi.pfs import commits, projects, provenance, repos, triggers
from haathi.pfs.branches import branch_head, ensure_branch
from haathi.pfs.catalog import delete_repo_rows
from haathi.pfs.context import now
from haathi.pfs.propagation import Deferred
from haathi.pfs.repos import insert_repo, repo_name, repo_row
from haathi.pps import daemon_records, datum_records, records
from haathi.pps.context import PpsContext
from haathi.pps.daemon_info import daemon_info
from haathi.pps.input_spec import CronInput, PfsInput, walk_inputs
from haathi.pps.spec import TRANSFORM, PipelineSpec, parse_spec

PAUSED = "PAUSED"
RUNNING = "RUNNING"
SUPERSEDED = "SUPERSEDED"  # an earlier version of a pipeline (``list pipeline --history``)


def spec_of(conn: Connection, p: records.PipelineRow) -> tuple[PipelineSpec, str]:
    """The pipeline's current spec and salt."""
    v = records.version_row(conn, p.id, p.version)
    return parse_spec(v.spec, stored=True), v.salt


def input_branches(spec: PipelineSpec) -> list[tuple[str, str]]:
    """(repo, branch) of every input leaf (cron inputs read their tick repo's master)."""
    out = []
    for leaf in walk_inputs(spec.input):
        branch = "master" if isinstance(leaf, CronInput) else leaf.branch
        out.append((leaf.repo, branch))
    return list(dict.fromkeys(out))


def _input_keys(conn: Connection, spec: PipelineSpec) -> list[provenance.BranchKey]:
    keys = []
    for repo, branch in input_branches(spec):
        if repo == spec.name:
            raise InvalidArgument(f"pipeline {spec.name} cannot take its own output as input")
        rid = int(repo_row(conn, repo).id)
        ensure_branch(conn, rid, branch)
        keys.append((rid, branch))
    return keys


def _set_input_triggers(conn: Connection, spec: PipelineSpec) -> None:
    """Give each input branch with a trigger its trigger (as Pachyderm's create pipeline
    does), creating the branch it follows if the repo has none of that name yet."""
    for leaf in walk_inputs(spec.input):
        if isinstance(leaf, PfsInput) and leaf.trigger is not None:
            rid = int(repo_row(conn, leaf.repo).id)
            ensure_branch(conn, rid, leaf.trigger.branch)
            triggers.set_trigger(conn, rid, leaf.repo, leaf.branch, leaf.trigger)


def _create_cron_repos(conn: Connection, spec: PipelineSpec) -> None:
    for leaf in walk_inputs(spec.input):
        if isinstance(leaf, CronInput) and not repos.exists(conn, leaf.repo):
            insert_repo(conn, leaf.repo, f"cron ticks of pipeline {spec.name}")


def _start_output_commit(
    conn: Connection,
    pipeline_id: int,
    version: int,
    out: provenance.BranchKey,
    prop: Deferred | None = None,
) -> str:
    """A new commit set: an output commit over the inputs' current heads, and its job (in a
    transaction, ``prop``: the transaction's commit, made at its end)."""
    if prop is not None:
        prop.start(out)
        return prop.cid
    cid = new_commit_id()
    provenance.start_auto_commit(conn, out, cid)
    records.queue_job(conn, pipeline_id, version, cid)
    provenance.propagate(conn, out, cid)
    return cid


def _close_spout_commit(
    conn: Connection, out: provenance.BranchKey, prop: Deferred | None = None
) -> str:
    """A spout's new version: a commit of its output made and finished at once, holding what
    its parent holds (Pachyderm's "close spout commit"); it starts no job of the spout's own
    (a spout's commits are its program's), its downstream pipelines' as any commit does (in a
    transaction, ``prop``: at its end, in its commit set)."""
    cid = new_commit_id() if prop is None else prop.cid
    provenance.start_auto_commit(conn, out, cid)
    made = commits.find_commit(conn, out[0], repo_name(conn, out[0]), cid)
    assert made is not None
    parent = (
        None if made.parent is None else commits.find_commit(conn, out[0], made.repo, made.parent)
    )
    root, totals = (
        (None, (0, 0)) if parent is None else (parent.root, (parent.file_count, parent.size_bytes))
    )
    commits.finish_open(
        conn, out[0], cid, root=root, totals=totals, description="close spout commit"
    )
    triggers.on_finish(conn, out[0], made.repo, cid)
    if prop is not None:
        prop.move(out)
    else:
        provenance.propagate(conn, out, cid)
    return cid


def create_pipeline(
    ctx: PpsContext,
    spec: PipelineSpec,
    *,
    is_update: bool = False,
    reprocess: bool = False,
    salt: str | None = None,
    then: Callable[[Connection], None] | None = None,
) -> str:
    """Create (or with ``is_update`` replace) a pipeline; the ID of the job it starts.

    As with pachctl, updating a pipeline that does not exist creates it. One transaction:
    a failure anywhere (a missing input repo, ``then``, which the caller uses for its own
    writes) changes nothing. The new version's salt is ``salt`` if given (rerun and rollback
    choose it: :mod:`haathi.pps.pipeline_versions`), else the spec's, else on update the old
    one unless ``reprocess``, else a new one.
    """
    with ctx.pfs.db.write() as conn:
        job = create_pipeline_in(conn, spec, is_update=is_update, reprocess=reprocess, salt=salt)
        if then is not None:
            then(conn)
        return job


def create_pipeline_in(
    conn: Connection,
    spec: PipelineSpec,
    *,
    is_update: bool = False,
    reprocess: bool = False,
    salt: str | None = None,
    prop: Deferred | None = None,
) -> str:
    """:func:`create_pipeline` in this transaction (``prop``: a transaction's, at whose end
    its output commit is made)."""
    t = now()
    for key in (spec.name, *(repo for repo, _ in input_branches(spec))):
        projects.require(conn, split_key(key)[0])
    existing = records.find_pipeline(conn, spec.name)
    if existing is not None and not is_update:
        raise AlreadyExists(
            f"pipeline {spec.name} already exists: use update pipeline", pipeline=spec.name
        )
    _create_cron_repos(conn, spec)
    inputs = _input_keys(conn, spec)
    _set_input_triggers(conn, spec)
    if existing is None:
        if repos.exists(conn, spec.name):
            raise AlreadyExists(
                f"pipeline {spec.name} cannot be created because a repo with the same "
                "name already exists",
                repo=spec.name,
            )
        out_repo = insert_repo(conn, spec.name, f"output of pipeline {spec.name}")
        p = records.insert_pipeline(conn, spec.name, RUNNING, t)
        version, salt = 1, salt or spec.salt or uuid.uuid4().hex
    else:
        p = existing
        old_spec, old_salt = spec_of(conn, p)
        if old_spec.output_branch != spec.output_branch:
            raise InvalidArgument(
                f"update pipeline cannot change output_branch ({old_spec.output_branch} "
                f"-> {spec.output_branch}): delete and re-create the pipeline"
            )
        if old_spec.kind != spec.kind:
            raise InvalidArgument(
                f"update pipeline cannot make a {old_spec.kind} pipeline a {spec.kind}: "
                "delete and re-create the pipeline"
            )
        out_repo = int(repo_row(conn, spec.name, lock=True).id)
        version = p.version + 1
        salt = salt or spec.salt or (uuid.uuid4().hex if reprocess else old_salt)
        records.set_version(conn, p.id, version, RUNNING, t)
    records.insert_version(conn, p.id, version, spec.to_dict(), salt)
    out = (out_repo, spec.output_branch)
    provenance.set_provenance(conn, out, inputs)
    if spec.kind != TRANSFORM:
        daemon_records.ensure(conn, p.id, spec.kind)
    if spec.spout is not None:
        return _close_spout_commit(conn, out, prop)
    return _start_output_commit(conn, p.id, version, out, prop)


def _output_key(conn: Connection, name: str, spec: PipelineSpec) -> provenance.BranchKey:
    return int(repo_row(conn, name, lock=True).id), spec.output_branch


def stop_pipeline(ctx: PpsContext, name: str) -> None:
    """Pause: new input commits start no jobs until ``start_pipeline`` (queued jobs wait)."""
    with ctx.pfs.db.write() as conn:
        p = records.pipeline_row(conn, name)
        spec, _ = spec_of(conn, p)
        provenance.set_provenance(conn, _output_key(conn, name, spec), [])
        records.set_state(conn, p.id, PAUSED)


def start_pipeline(ctx: PpsContext, name: str) -> str | None:
    """Resume a paused pipeline; the ID of the job it starts if its inputs moved meanwhile."""
    with ctx.pfs.db.write() as conn:
        p = records.pipeline_row(conn, name)
        if p.state == RUNNING:
            return None
        spec, _ = spec_of(conn, p)
        out = _output_key(conn, name, spec)
        provenance.set_provenance(conn, out, _input_keys(conn, spec))
        records.set_state(conn, p.id, RUNNING)
        head = branch_head(conn, *out)[1]
        seen = set(provenance.direct_provenance(conn, out[0], head)) if head else set()
        current = {
            (repo, h)
            for repo, branch in input_branches(spec)
            if (h := branch_head(conn, int(repo_row(conn, repo).id), branch)[1])
        }
        if head is not None and current <= seen:
            return None
        return _start_output_commit(conn, p.id, p.version, out)


def delete_pipeline(ctx: PpsContext, name: str, *, keep_repo: bool = False) -> None:
    """Delete a pipeline, its jobs and datums, and (unless ``keep_repo``) its output repo."""
    with ctx.pfs.db.write() as conn:
        delete_pipeline_rows(conn, name, keep_repo=keep_repo)


def downstream_of(conn: Connection, name: str) -> list[str]:
    """The repos (pipeline outputs) whose branches take pipeline ``name``'s output as input."""
    p = records.pipeline_row(conn, name)
    out = _output_key(conn, name, spec_of(conn, p)[0])
    return sorted({repo_name(conn, rid) for rid, _ in provenance.downstream_order(conn, out)})


def delete_pipeline_rows(conn: Connection, name: str, *, keep_repo: bool = False) -> list[str]:
    """:func:`delete_pipeline` in this transaction; the repos it deleted (its output unless
    ``keep_repo``, and its cron tick repos)."""
    p = records.pipeline_row(conn, name)
    spec, _ = spec_of(conn, p)
    out = _output_key(conn, name, spec)
    downstream = provenance.downstream_order(conn, out)
    if downstream and not keep_repo:
        names = sorted({repo_name(conn, rid) for rid, _ in downstream})
        raise FailedPrecondition(
            f"pipeline {name}'s output is an input of {', '.join(names)}: delete those "
            "first, or use --keep-repo",
            pipeline=name,
        )
    datum_records.forget_jobs(conn, records.job_ids(conn, p.id))
    daemon_records.forget(conn, p.id)
    records.delete_pipeline(conn, p.id)
    provenance.set_provenance(conn, out, [])
    deleted = []
    if keep_repo:
        _close_open_outputs(conn, out[0])
    else:
        delete_repo_rows(conn, name, force=True)
        deleted.append(name)
    for leaf in walk_inputs(spec.input):
        if isinstance(leaf, CronInput):
            delete_repo_rows(conn, leaf.repo, force=True)
            deleted.append(leaf.repo)
    return deleted


def _close_open_outputs(conn: Connection, repo_id: int) -> None:
    """A kept output repo's open commits are finished with an error (no job will fill them)."""
    commits.close_open(conn, repo_id, "pipeline deleted")


def pipeline_info(
    conn: Connection, p: records.PipelineRow, version: records.VersionRow | None = None
) -> PipelineInfo:
    """The pipeline at its current version, or at an earlier ``version``: then its state is
    SUPERSEDED, ``updated`` is when that version was made and ``last_job`` is of its jobs."""
    if version is None or version.version == p.version:
        spec, _ = spec_of(conn, p)
        last = records.list_jobs(conn, pipeline=p.name, limit=1)
        state, updated, last_job = p.state, p.updated_at, last[0].state if last else None
        daemon = daemon_info(conn, p, spec) if spec.kind != TRANSFORM else None
        if daemon is not None:
            state = daemon["state"]
    else:
        spec = parse_spec(version.spec, stored=True)
        state, updated = SUPERSEDED, version.created_at
        last_job = records.last_job_state(conn, p.id, version.version)
        daemon = None
    return PipelineInfo(
        name=p.name,
        version=p.version if version is None else version.version,
        state=state,
        spec=spec.to_dict(),
        created=p.created_at,
        updated=updated,
        inputs=tuple(f"{r}@{b}" for r, b in input_branches(spec)),
        output_branch=spec.output_branch,
        last_job=None if last_job is None else last_job.value,
        notes=spec.notes,
        reason=None if daemon is None else daemon["reason"],
        daemon=daemon,
    )


def inspect_pipeline(ctx: PpsContext, name: str) -> PipelineInfo:
    with ctx.pfs.db.read() as conn:
        return pipeline_info(conn, records.pipeline_row(conn, name))


def list_pipeline(ctx: PpsContext, project: str | None = None) -> list[PipelineInfo]:
    """The pipelines of ``project`` (None: of every project), by project and name."""
    with ctx.pfs.db.read() as conn:
        found = sorted(records.all_pipelines(conn, project), key=lambda p: split_key(p.name))
        return [pipeline_info(conn, p) for p in found]


# ---- the pipeline's own identity, with auth on ---------------------------------------------


def grant_roles(conn: Connection, spec: PipelineSpec) -> None:
    """The pipeline's own identity (``pipeline:NAME``) reads its inputs and writes its output."""
    who = pipeline_subject(spec.name)
    for repo, _ in input_branches(spec):
        bindings.grant(conn, bindings.repo_resource(repo), who, Role.REPO_READER)
    bindings.grant(conn, bindings.repo_resource(spec.name), who, Role.REPO_WRITER)


def grant_all_roles(conn: Connection) -> None:
    """Every pipeline's roles (see :func:`grant_roles`): when auth is turned on."""
    for p in records.all_pipelines(conn):
        grant_roles(conn, spec_of(conn, p)[0])


def secure(conn: Connection, spec: PipelineSpec, *, new: bool, owner: str | None) -> None:
    """In the transaction creating or updating ``spec``, with auth on (else nothing): the
    pipeline's roles, and for a ``new`` one its output repo owned by ``owner`` (None: by
    cluster admins only)."""
    if not activation.is_active(conn):
        return
    if new:
        bindings.make_owner(conn, bindings.repo_resource(spec.name), owner)
    grant_roles(conn, spec)
