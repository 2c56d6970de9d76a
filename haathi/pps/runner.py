"""The job runner: claims runnable jobs from the metadata DB and runs them.

Embedded, the command that queued jobs runs them until none is runnable (``run_pending``);
``haathi run worker`` (and ``haathi serve``) run :meth:`JobRunner.run_forever`, which also
ticks cron inputs, fires cron branch triggers and runs spouts and services
(:mod:`haathi.pps.daemons`). Several runners may share a store: a job is claimed with a lease
in the DB, and a job whose runner died is claimed again when its lease expires. The jobs of
services are not a runner's: the worker running the service takes them.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from haathi.models.info import JobState, RunSummary
from haathi.pfs.triggers import CronTriggers
from haathi.pps import cron_ticks, daemon_records, job_queue, jobs, records
from haathi.pps.context import PpsContext
from haathi.pps.daemons import DaemonSupervisor
from haathi.pps.executors import Executor, make_executor
from haathi.pps.sandbox import resolve_sandbox
from haathi.pps.sidecars import SpoutApis
from haathi.pps.worker import forget_job, register_store

__all__ = ["JobRunner", "RunSummary"]

HELD_OR_QUEUED = (JobState.CREATED, JobState.RUNNING, JobState.EGRESSING)


class JobRunner:
    def __init__(self, ctx: PpsContext) -> None:
        if not ctx.runner_id:
            ctx.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ctx = ctx
        self._executor: Executor | None = None
        self._cron_triggers = CronTriggers()
        register_store(ctx.store_key, ctx.pfs)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = make_executor(self.ctx.executor)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _claim(self, job: records.JobRow, held: list[records.JobRow]) -> bool:
        if not job_queue.claim(self.ctx, job):
            return False
        held.append(job)  # until run_job has it (see run_pending)
        return True

    def _next(
        self,
        summary: RunSummary,
        held: list[records.JobRow],
        only: Callable[[str], bool] | None = None,
    ) -> records.JobRow | None:
        """The oldest runnable queued job, claimed and added to ``held`` (unrunnable ones are
        ended on the way); ``only``: of the pipelines it accepts."""
        job_queue.ensure_jobs(self.ctx)
        while True:  # scan again after ending an unrunnable job: its downstream may be next
            with self.ctx.pfs.db.read() as conn:
                queued = records.list_jobs(conn, states=HELD_OR_QUEUED)
                daemon_pipelines = daemon_records.pipeline_ids(conn)
            queued = [j for j in queued if j.pipeline_id not in daemon_pipelines]
            if only is not None:
                queued = [j for j in queued if only(j.pipeline)]
            summary.waiting.clear()
            for job in sorted(queued, key=lambda j: j.id):
                key = f"{job.pipeline}@{job.commit_id}"
                if job.state in (JobState.RUNNING, JobState.EGRESSING):
                    if self._claim(job, held):  # its runner's lease expired (or it stopped)
                        return job
                    summary.waiting[key] = "running in another runner"
                    continue
                with self.ctx.pfs.db.read() as conn:
                    r = job_queue.readiness(conn, job)
                if r.unrunnable:
                    base = job_queue.base_root(self.ctx, job)
                    if job_queue.end_job(
                        self.ctx,
                        job,
                        JobState.UNRUNNABLE,
                        r.why,
                        root=base,
                        only_if_running=False,
                    ):
                        summary.ran[key] = JobState.UNRUNNABLE
                    break
                if r.ready and self._claim(job, held):
                    return job
                summary.waiting[key] = r.why
            else:
                return None

    def check(self) -> None:
        """Raise the error that keeps this runner from running jobs here (its sandbox or its
        executor cannot start), if any; the executor is made once, shared by every thread
        that runs jobs."""
        resolve_sandbox(self.ctx.sandbox)
        self.executor  # noqa: B018

    def run_pending(
        self,
        progress: jobs.ProgressFn | None = None,
        only: Callable[[str], bool] | None = None,
        stop: threading.Event | None = None,
    ) -> RunSummary:
        """Run jobs until none is runnable (or ``stop`` is set); report those left waiting
        and why. ``only``: the jobs of the pipelines it accepts (by name), no others.

        Every job this claims is ended or given back to the queue before this returns or
        raises (KeyboardInterrupt, SIGTERM in the CLI, a bug), so no job waits for a lease
        to expire."""
        summary = RunSummary()
        executor = self.executor  # one that cannot start fails here, before any claim
        while stop is None or not stop.is_set():
            held: list[records.JobRow] = []
            try:
                job = self._next(summary, held, only)
                if job is None:
                    break
                state = jobs.run_job(self.ctx, job, executor, progress, stop)
            except BaseException:
                for j in held:  # run_job gives back what it ran; this, a claim it never got
                    if job_queue.release(self.ctx, j):
                        forget_job(j.commit_id)
                raise
            key = f"{job.pipeline}@{job.commit_id}"
            if state == JobState.CREATED:  # given back: the runner is stopping
                summary.waiting[key] = jobs.RUNNER_STOPPED
                break
            summary.ran[key] = state
        return summary

    def run_forever(
        self,
        stop: threading.Event,
        progress: jobs.ProgressFn | None = None,
        poll: float = 0.5,
        apis: SpoutApis | None = None,
    ) -> None:
        """Run jobs, tick cron inputs, fire cron triggers and run spouts and services (their
        API served by ``apis``) until ``stop`` is set; a job running then goes back to the
        queue at once, and the spouts and services stop. Raises at once if this runner cannot
        run jobs here."""
        self.check()
        daemons = DaemonSupervisor(self.ctx, apis)
        daemons.start()
        try:
            while not stop.is_set():
                cron_ticks.tick_due(self.ctx)
                self._cron_triggers.due(self.ctx.pfs, datetime.now(UTC))
                self.run_pending(progress, stop=stop)
                stop.wait(poll)
        finally:
            daemons.stop()
