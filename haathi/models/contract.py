"""``ApiContract``: every operation the :class:`~haathi.client.Client` calls on its transport.

Two implementations satisfy it, checked by mypy: the in-process ``haathi.api.Api`` (embedded)
and ``haathi.client.remote.RemoteApi`` (the same operations over HTTP). The Client holds an
``ApiContract``, so it reaches either only through these methods, and a signature that drifts
in either implementation fails type checking. Arguments are the typed values of
:mod:`haathi.models` (specs, ops); the CLI's strings are parsed by the Client.

Here at the models layer, so that the HTTP client can name it without importing the Api.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from haathi.models.auth import Access, ProjectAccess, RoleBindings
from haathi.models.info import (
    BranchInfo,
    CommitInfo,
    DatumInfo,
    DiffEntry,
    FileInfo,
    JobInfo,
    JobProgress,
    LogLine,
    PipelineInfo,
    Problem,
    ProjectInfo,
    RepoInfo,
    RunSummary,
)
from haathi.models.lineage import LineageNode
from haathi.models.ops import Ops, ProgressFn
from haathi.models.refspec import CommitSpec, FileSpec
from haathi.models.reproduce import ReproduceReport
from haathi.models.secret import SecretInfo
from haathi.models.transaction import TransactionInfo, TxnOp, TxnResponse
from haathi.models.trigger import Trigger

JobProgressFn = Callable[[JobProgress], None]


class ApiContract(Protocol):
    """The operations of haathi, as the Client calls them (see the module).

    Repos and pipelines are named by key (``project/name``, the bare name in the default
    project); a list's ``project`` filter None means every project.
    """

    # projects
    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        """Create a project."""
        ...

    def inspect_project(self, name: str) -> ProjectInfo:
        """One project."""
        ...

    def list_project(self) -> list[ProjectInfo]:
        """Every project."""
        ...

    def update_project(self, name: str, description: str) -> ProjectInfo:
        """Replace a project's description."""
        ...

    def delete_project(self, name: str, force: bool = False) -> None:
        """Delete a project (``force``: with the pipelines and repos it holds)."""
        ...

    # repos
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        """Create a repo."""
        ...

    def inspect_repo(self, name: str) -> RepoInfo:
        """One repo."""
        ...

    def list_repo(self, project: str | None = None) -> list[RepoInfo]:
        """Every repo (of ``project``) the caller may read."""
        ...

    def update_repo(self, name: str, description: str) -> RepoInfo:
        """Change a repo's description."""
        ...

    def delete_repo(self, name: str, force: bool = False) -> None:
        """Delete a repo and its commits (``force``: even if downstream branches use it)."""
        ...

    # branches
    def create_branch(
        self, spec: CommitSpec, head: str | None = None, trigger: Trigger | None = None
    ) -> BranchInfo:
        """Create the branch ``spec.ref`` (or move it) at commit ``head``, with ``trigger``."""
        ...

    def inspect_branch(self, spec: CommitSpec) -> BranchInfo:
        """One branch."""
        ...

    def list_branch(self, repo: str) -> list[BranchInfo]:
        """The branches of a repo."""
        ...

    def delete_branch(self, spec: CommitSpec) -> None:
        """Delete a branch (its commits stay)."""
        ...

    # commits
    def start_commit(
        self, spec: CommitSpec, parent: str | None = None, description: str = ""
    ) -> CommitInfo:
        """Open a commit on a branch."""
        ...

    def finish_commit(self, spec: CommitSpec, description: str | None = None) -> CommitInfo:
        """Finish an open commit."""
        ...

    def inspect_commit(self, spec: CommitSpec) -> CommitInfo:
        """One commit, with its provenance and subvenance."""
        ...

    def list_commit(
        self, repo: str, branch: str | None = None, number: int | None = None
    ) -> list[CommitInfo]:
        """Commits of a repo or branch, newest first (at most ``number``)."""
        ...

    def list_commit_set(self, commit_id: str) -> list[CommitInfo]:
        """The commits of a commit set (one global ID)."""
        ...

    def wait_commit(self, spec: CommitSpec | str, timeout: float | None = None) -> list[CommitInfo]:
        """Block until the commit (a bare ID: its whole commit set) has finished."""
        ...

    def delete_commit(self, spec: CommitSpec) -> str:
        """Drop a commit that has no children; its ID."""
        ...

    def squash_commit(self, spec: CommitSpec) -> str:
        """Remove a commit from history, keeping every branch's content; its ID."""
        ...

    def find_commit(self, spec: FileSpec, limit: int | None = None) -> list[CommitInfo]:
        """The commits in ``spec``'s history (newest first) that changed its path."""
        ...

    # metadata
    def edit_metadata(
        self,
        kind: str,
        spec: CommitSpec,
        action: str,
        items: Mapping[str, str] | Sequence[str],
    ) -> dict[str, str]:
        """Edit the key/value metadata of a repo, branch or commit; the new metadata."""
        ...

    # files
    def modify_file(
        self,
        spec: CommitSpec,
        ops: Ops,
        *,
        parallelism: int = 1,
        progress: ProgressFn | None = None,
        description: str = "",
    ) -> str:
        """Apply ``ops`` as one atomic change; the ID of the commit written."""
        ...

    def read_file(
        self, spec: FileSpec, *, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes]]:
        """A file's info and its bytes from ``offset`` (at most ``length``), streamed."""
        ...

    def read_files(self, spec: FileSpec) -> Iterator[tuple[FileInfo, Iterator[bytes]]]:
        """Every file at or below the path in path order, each with its bytes (a restore)."""
        ...

    def inspect_file(self, spec: FileSpec) -> FileInfo:
        """One file or directory."""
        ...

    def list_file(
        self, spec: FileSpec, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """A directory's entries (or the file), from ``start`` (``list_key``), ``limit`` of them."""
        ...

    def walk_file(
        self, spec: FileSpec, *, start: str | None = None, limit: int | None = None
    ) -> list[FileInfo]:
        """Every file at or below the path, in path order (from ``start``, at most ``limit``)."""
        ...

    def glob_file(self, spec: CommitSpec, pattern: str) -> list[FileInfo]:
        """Files and directories of a commit matching a glob pattern."""
        ...

    def diff_file(
        self,
        new: FileSpec,
        old: FileSpec | None = None,
        *,
        start: str | None = None,
        limit: int | None = None,
    ) -> list[DiffEntry]:
        """What changed from ``old`` (default: the parent) to ``new``, paged by start, limit."""
        ...

    # checks and the store
    def fsck(self, *, fast: bool = False, fix: bool = False) -> list[Problem]:
        """Problems found in the store (``fix``: repair the safely repairable)."""
        ...

    def gc(self, *, grace_s: float = 600.0, orphan_grace_s: float = 3600.0) -> dict[str, int]:
        """Delete stored data nothing can reach; counts of what was done."""
        ...

    def store_info(self) -> dict[str, Any]:
        """The store's configuration, as the caller may see it (never secrets)."""
        ...

    # pipelines
    def create_pipeline(
        self, spec: dict[str, Any], *, update: bool = False, reprocess: bool = False
    ) -> str:
        """Create (or update) a pipeline from one spec document; the ID of its first job."""
        ...

    def validate_pipeline(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The effective spec (defaults applied) and notes, or InvalidArgument."""
        ...

    def inspect_pipeline(
        self, name: str, *, version: int | None = None, back: int = 0
    ) -> PipelineInfo:
        """One pipeline, at its current version, at ``version`` or ``back`` versions before."""
        ...

    def list_pipeline(
        self, *, name: str | None = None, history: int = 0, project: str | None = None
    ) -> list[PipelineInfo]:
        """Every pipeline the caller may read (of ``project``, or ``name``), ``history`` too."""
        ...

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        """Delete a pipeline (and its output repo unless ``keep_repo``)."""
        ...

    def stop_pipeline(self, name: str) -> None:
        """Stop a pipeline: it starts no new jobs."""
        ...

    def start_pipeline(self, name: str) -> str | None:
        """Resume a stopped pipeline; the ID of the job it starts, if its inputs moved."""
        ...

    def run_cron(self, name: str) -> list[str]:
        """Tick a pipeline's cron inputs now; the IDs of the jobs started."""
        ...

    def rerun_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        """Make the current spec a new version (salt kept unless ``reprocess``); its job's ID."""
        ...

    def rollback_pipeline(
        self,
        name: str,
        *,
        version: int | None = None,
        back: int = 0,
        reprocess: bool = False,
    ) -> str:
        """Make an earlier version's spec and salt the new version (default: the previous)."""
        ...

    def preview_datums(self, spec: dict[str, Any]) -> list[DatumInfo]:
        """The datums a spec's input has now, without creating anything."""
        ...

    # jobs and datums
    def list_job(
        self,
        pipeline: str | None = None,
        job: str | None = None,
        limit: int | None = None,
        *,
        history: int = -1,
        states: tuple[str, ...] = (),
        project: str | None = None,
    ) -> list[JobInfo]:
        """Jobs, newest first: of a pipeline, a job set, or all (of ``project``); in ``states``."""
        ...

    def inspect_job(self, pipeline: str, job: str) -> JobInfo:
        """One job."""
        ...

    def wait_job(
        self, pipeline: str | None, job: str, timeout: float | None = None
    ) -> list[JobInfo]:
        """Block until the job (no pipeline: every job of the set) has ended."""
        ...

    def stop_job(self, pipeline: str, job: str) -> JobInfo:
        """Stop a job."""
        ...

    def list_datum(
        self,
        pipeline: str,
        job: str,
        number: int | None = None,
        marker: str | None = None,
        *,
        states: tuple[str, ...] = (),
    ) -> list[DatumInfo]:
        """A job's datums by ID: after ``marker``, at most ``number``, in ``states`` (or any)."""
        ...

    def inspect_datum(self, pipeline: str, job: str, datum: str) -> DatumInfo:
        """One datum of a job (by ID, or a unique prefix of 4 or more characters)."""
        ...

    def logs(
        self, pipeline: str, job: str | None = None, datum: str | None = None
    ) -> tuple[JobInfo, list[tuple[str, str]]]:
        """(the job, [(datum ID, its user code's output)]); by default the newest job's."""
        ...

    def daemon_logs(
        self, pipeline: str, since: int | None = None, limit: int | None = 1000
    ) -> list[LogLine]:
        """A spout's or service's output: ``limit`` lines after ``since``, else its newest."""
        ...

    # running jobs
    def queue_jobs(self) -> int:
        """Record a job for every output commit a write started; how many."""
        ...

    def run_jobs(self, progress: JobProgressFn | None = None) -> RunSummary:
        """Run the queued jobs the caller may see, and wait until they have ended."""
        ...

    def run_worker(self, stop: threading.Event, progress: JobProgressFn | None = None) -> None:
        """Run jobs and cron ticks until ``stop`` is set (a store directory only)."""
        ...

    # lineage
    def lineage(
        self, target: str, *, downstream: bool = False, at: str | None = None
    ) -> list[LineageNode]:
        """Where each file at ``target`` came from (``downstream``: what was derived from it)."""
        ...

    def reproduce(self, target: str) -> ReproduceReport:
        """Re-run the recorded datums that wrote the files at ``target`` and compare."""
        ...

    def reproduce_commit(
        self, commit: str, *, sample: int | None = None, seed: int | None = None
    ) -> ReproduceReport:
        """Re-run the datums of an output commit (or ``sample`` of them) and compare."""
        ...

    # auth
    def auth_activate(self) -> str:
        """Turn auth on; the root token (shown once)."""
        ...

    def auth_deactivate(self) -> None:
        """Turn auth off: every token and role binding is dropped."""
        ...

    def whoami(self) -> dict[str, Any]:
        """``{"subject", "cluster_admin"}`` of the caller."""
        ...

    def get_auth_token(self, subject: str, ttl_s: float | None = None) -> str:
        """A new token for ``subject``."""
        ...

    def get_robot_token(self, robot: str, ttl_s: float | None = None) -> str:
        """A new token for ``robot:NAME``."""
        ...

    def revoke_auth_token(self, token: str | None = None, subject: str | None = None) -> int:
        """Revoke one token, or every token of ``subject``; how many were revoked."""
        ...

    def set_repo_roles(self, repo: str, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` what ``subject`` holds on ``repo``."""
        ...

    def get_repo_roles(self, repo: str) -> RoleBindings:
        """Who holds which roles on ``repo``."""
        ...

    def check_repo(self, repo: str, subject: str | None = None) -> Access:
        """The roles and permissions of the caller (or ``subject``) on ``repo``."""
        ...

    def set_project_roles(self, project: str, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` what ``subject`` holds on ``project`` (and so on its repos)."""
        ...

    def get_project_roles(self, project: str) -> RoleBindings:
        """Who holds which roles on ``project``."""
        ...

    def check_project(self, project: str, subject: str | None = None) -> ProjectAccess:
        """The roles and permissions of the caller (or ``subject``) on ``project``."""
        ...

    def set_cluster_roles(self, roles: str, subject: str) -> RoleBindings:
        """Make ``roles`` what ``subject`` holds on the cluster."""
        ...

    def get_cluster_roles(self) -> RoleBindings:
        """Who holds which roles on the cluster."""
        ...

    # secrets
    def create_secret(self, doc: dict[str, Any]) -> SecretInfo:
        """Store a secret from a Kubernetes Secret document (cluster admins)."""
        ...

    def inspect_secret(self, name: str) -> SecretInfo:
        """A secret's name, type, key names and creation time (never a value)."""
        ...

    def list_secret(self) -> list[SecretInfo]:
        """Every secret (never a value)."""
        ...

    def delete_secret(self, name: str) -> None:
        """Delete a secret."""
        ...

    # transactions
    def start_transaction(self) -> TransactionInfo:
        """A new, empty transaction."""
        ...

    def append_transaction(self, transaction: str, op: TxnOp) -> TxnResponse:
        """Add a request to a transaction if a dry run of all its requests succeeds."""
        ...

    def finish_transaction(self, transaction: str) -> TransactionInfo:
        """Apply every request of a transaction at once, or none of them."""
        ...

    def delete_transaction(self, transaction: str) -> None:
        """Delete a transaction (none of its requests is applied)."""
        ...

    def inspect_transaction(self, transaction: str) -> TransactionInfo:
        """One transaction, with its requests."""
        ...

    def list_transaction(self) -> list[TransactionInfo]:
        """Every transaction, oldest first."""
        ...

    # the connection
    def close(self) -> None:
        """Release what the implementation holds (the store, or the HTTP connections)."""
        ...
