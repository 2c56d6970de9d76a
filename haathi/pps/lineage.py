"""File-level lineage, from the datum records of jobs.

Upstream: a pipeline output file names the datum that wrote it (in its tree entry); that
datum's record in the output commit's job names the input paths it read, at which input
commits; each input file that is itself a pipeline output is followed the same way, down to
files of user commits. Downstream: the ``datum_inputs`` index says which datums of a job read
a path (or a directory above it); their records name the files they wrote.

Each walk reads in one transaction and visits each file version once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection

from haathi.errors import NotFound
from haathi.models import paths
from haathi.models.info import DatumState, FileType, Origin
from haathi.models.lineage import LineageNode
from haathi.models.refspec import FileSpec
from haathi.pfs import files, provenance
from haathi.pfs.branches import branch_head
from haathi.pfs.commits import CommitRow, find_commit, resolve
from haathi.pfs.repos import repo_id_of, repo_name
from haathi.pps import datum_records, records
from haathi.pps.context import PpsContext
from haathi.tree import prolly
from haathi.tree.entry import FileEntry

# Datum states whose outputs are in the job's output commit.
WROTE = (DatumState.SUCCESS.value, DatumState.SKIPPED.value)
_GLOB_CHARS = frozenset("*?[{")


def upstream(ctx: PpsContext, target: FileSpec) -> list[LineageNode]:
    """For each file at ``target`` (a file, a directory or a glob): what it was made from."""
    with ctx.pfs.db.read() as conn:
        walk = LineageWalk(ctx, conn)
        commit, entries = walk.target(target)
        return [walk.up(commit, e) for e in entries]


def downstream(ctx: PpsContext, target: FileSpec, at: str | None = None) -> list[LineageNode]:
    """For each file at ``target``: the files derived from it in downstream pipelines, at their
    output branches' heads or, with ``at``, in commit set ``at``."""
    with ctx.pfs.db.read() as conn:
        walk = LineageWalk(ctx, conn, at)
        commit, entries = walk.target(target)
        return [walk.down(commit, e) for e in entries]


class LineageWalk:
    """One walk over lineage records, in one read transaction, with its lookups cached."""

    def __init__(self, ctx: PpsContext, conn: Connection, at: str | None = None) -> None:
        self.ctx, self.conn, self.at = ctx, conn, at
        self.commits: dict[tuple[str, str], CommitRow | None] = {}
        self.jobs: dict[tuple[str, str], records.JobRow | None] = {}
        self.jobs_by_pk: dict[int, records.JobRow] = {}
        self.repo_ids: dict[str, int] = {}
        self.ups: dict[tuple[str, str, str], LineageNode] = {}
        self.downs: dict[tuple[str, str, str], LineageNode] = {}

    # ---- lookups (cached for the walk) ----

    def repo_id(self, repo: str) -> int:
        if repo not in self.repo_ids:
            self.repo_ids[repo] = repo_id_of(self.conn, repo)
        return self.repo_ids[repo]

    def commit(self, repo: str, cid: str) -> CommitRow | None:
        key = (repo, cid)
        if key not in self.commits:
            self.commits[key] = find_commit(self.conn, self.repo_id(repo), repo, cid)
        return self.commits[key]

    def job(self, pipeline: str, cid: str) -> records.JobRow | None:
        """The job whose outputs the commit holds: its own if it made them (it succeeded,
        or only its egress failed), else the last one before it that did (a failed job's
        output commit keeps its base's files)."""
        key = (pipeline, cid)
        if key not in self.jobs:
            job = records.job_of_commit(self.conn, pipeline, cid)
            if job is not None and not job.made_output:
                job = records.last_success_before(self.conn, job)
            self.jobs[key] = job
        return self.jobs[key]

    def job_by_pk(self, pk: int) -> records.JobRow:
        if pk not in self.jobs_by_pk:
            self.jobs_by_pk[pk] = records.job_by_pk(self.conn, pk)
        return self.jobs_by_pk[pk]

    def datum_record(self, job: records.JobRow, datum_id: str) -> dict[str, Any] | None:
        return datum_records.datum_record(self.conn, job.id, datum_id)

    def entries(self, root: bytes | None, path: str, is_dir: bool) -> Iterator[FileEntry]:
        """The file at ``path``, or every file under directory ``path``."""
        if not is_dir:
            e = prolly.get(root, path, self.ctx.pfs.nodes)
            if e is not None:
                yield e
        else:
            yield from prolly.iter_prefix(root, paths.dir_prefix(path), self.ctx.pfs.nodes)

    def target(self, spec: FileSpec) -> tuple[CommitRow, list[FileEntry]]:
        """The commit and the files a file, directory or glob names."""
        commit = resolve(self.conn, spec.commit)
        root = files.tree_of(self.ctx.pfs, commit)
        if _GLOB_CHARS & set(spec.path):
            hits = [
                (f.path, f.type == FileType.DIR)
                for f in files.glob_file(self.ctx.pfs, spec.commit, spec.path)
            ]
        else:
            hits = [(spec.path, prolly.get(root, spec.path, self.ctx.pfs.nodes) is None)]
        found: dict[str, FileEntry] = {}
        for path, is_dir in hits:
            found.update((e.path, e) for e in self.entries(root, path, is_dir))
        if not found:
            raise NotFound(f"{spec}: no such file or directory", path=spec.path)
        return commit, [found[p] for p in sorted(found)]

    # ---- upstream ----

    def up(self, commit: CommitRow, e: FileEntry) -> LineageNode:
        key = (commit.repo, commit.id, e.path)
        if key in self.ups:
            return self.ups[key]
        node = _leaf(commit, e)
        job = None
        if commit.origin == Origin.AUTO.value and e.datum is not None:
            job = self.job(commit.repo, commit.id)
        rec = self.datum_record(job, e.datum) if job is not None and e.datum else None
        if job is not None and rec is not None:
            ran = self.job_by_pk(rec["source_job"] or job.id)
            inputs: list[LineageNode] = []
            for i in json.loads(rec["inputs"]):
                c = self.commit(i["repo"], i["commit"])
                if c is None:  # the input commit was deleted since
                    continue
                found = self.entries(c.root, i["path"], i["is_dir"])
                inputs.extend(self.up(c, f) for f in found)
            node = _leaf(
                commit,
                e,
                e.datum,
                f"{ran.pipeline}@{ran.commit_id}",
                ran.version,
                image=_image_of(ran),
                inputs=tuple(inputs),
            )
        self.ups[key] = node
        return node

    # ---- downstream ----

    def down(self, commit: CommitRow, e: FileEntry) -> LineageNode:
        key = (commit.repo, commit.id, e.path)
        if key in self.downs:
            return self.downs[key]
        self.downs[key] = _leaf(commit, e)  # guards against cycles while this one is built
        derived: list[LineageNode] = []
        for out_repo, out_branch in self.pipelines_reading(commit):
            out = self.output_commit(out_repo, out_branch)
            job = self.job(out_repo, out.id) if out is not None else None
            if out is None or job is None:
                continue
            for datum_id in self.datums_reading(job, commit.repo, e.path):
                rec = self.datum_record(job, datum_id)
                if rec is None or rec["state"] not in WROTE:
                    continue
                for path, _h, _size in json.loads(rec["outputs"]):
                    written = prolly.get(out.root, path, self.ctx.pfs.nodes)
                    if written is not None:
                        derived.append(self.down(out, written))
        node = self.downs[key] = _leaf(commit, e, *self.writer(commit, e), derived=tuple(derived))
        return node

    def writer(
        self, commit: CommitRow, e: FileEntry
    ) -> tuple[str | None, str | None, int | None, str | None]:
        """(datum, job, spec version, image) of an output file; Nones for a user file."""
        if commit.origin != Origin.AUTO.value or e.datum is None:
            return None, None, None, None
        job = self.job(commit.repo, commit.id)
        rec = self.datum_record(job, e.datum) if job is not None else None
        if job is None or rec is None:
            return e.datum, None, None, None
        ran = self.job_by_pk(rec["source_job"] or job.id)
        return e.datum, f"{ran.pipeline}@{ran.commit_id}", ran.version, _image_of(ran)

    def pipelines_reading(self, commit: CommitRow) -> list[tuple[str, str]]:
        """Output branches provenant on the commit's branch (or on any branch of its repo)."""
        readers = provenance.reading(self.conn, commit.repo_id, commit.branch)
        return [(repo_name(self.conn, rid), b) for rid, b in readers]

    def output_commit(self, repo: str, branch: str) -> CommitRow | None:
        """The pipeline's output commit to look in: of commit set ``at``, else the branch's
        newest finished commit."""
        if self.at is not None:
            return self.commit(repo, self.at)
        cid = branch_head(self.conn, self.repo_id(repo), branch)[1]
        c = self.commit(repo, cid) if cid else None
        while c is not None and not c.finished and c.parent is not None:
            c = self.commit(repo, c.parent)
        return c if c is not None and c.finished else None

    def datums_reading(self, job: records.JobRow, repo: str, path: str) -> list[str]:
        return datum_records.datums_reading(self.conn, job.id, self.repo_id(repo), _ancestors(path))


def _ancestors(path: str) -> list[str]:
    """``/a/b`` -> ``/``, ``/a``, ``/a/b``: the paths whose datums include the file."""
    parts = path.strip("/").split("/")
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _image_of(job: records.JobRow) -> str | None:
    """``image@sha256:...``: the image a job ran in, by the digest it resolved to."""
    digest = job.context.get("image_digest")
    return f"{job.context.get('image')}@{digest}" if digest else None


def _leaf(
    commit: CommitRow,
    e: FileEntry,
    datum: str | None = None,
    job: str | None = None,
    version: int | None = None,
    image: str | None = None,
    *,
    inputs: tuple[LineageNode, ...] = (),
    derived: tuple[LineageNode, ...] = (),
) -> LineageNode:
    return LineageNode(
        commit.repo,
        commit.id,
        e.path,
        e.hash.hex(),
        e.size,
        commit.origin,
        datum,
        job,
        version,
        image,
        inputs=inputs,
        derived=derived,
    )
