"""The job runner: claims runnable jobs from the metadata DB and runs them.

Embedded, the command that queued jobs runs them until none is runnable (``run_pending``);
``haathi run worker`` (and ``haathi serve``) run :meth:`JobRunner.run_forever`, which also
ticks cron inputs. Several runners may share a store: a job is claimed with a lease in the DB,
and a job whose runner died is claimed again when its lease expires.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable

from haathi.models.info import JobState, RunSummary
from haathi.pps import cron_ticks, jobs, records
from haathi.pps.context import PpsContext
from haathi.pps.executors import Executor, make_executor
from haathi.pps.worker import register_store

__all__ = ["JobRunner", "RunSummary"]


class JobRunner:
    def __init__(self, ctx: PpsContext) -> None:
        if not ctx.runner_id:
            ctx.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ctx = ctx
        self._executor: Executor | None = None
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

    def _next(
        self, summary: RunSummary, only: Callable[[str], bool] | None = None
    ) -> records.JobRow | None:
        """The oldest runnable queued job (unrunnable ones are ended on the way); ``only``:
        of the pipelines it accepts."""
        jobs.ensure_jobs(self.ctx)
        while True:  # scan again after ending an unrunnable job: its downstream may be next
            with self.ctx.pfs.db.read() as conn:
                queued = records.list_jobs(conn, states=(JobState.CREATED, JobState.RUNNING))
            if only is not None:
                queued = [j for j in queued if only(j.pipeline)]
            summary.waiting.clear()
            for job in sorted(queued, key=lambda j: j.id):
                key = f"{job.pipeline}@{job.commit_id}"
                if job.state == JobState.RUNNING:
                    if jobs.claim(self.ctx, job):  # its runner's lease expired
                        return job
                    summary.waiting[key] = "running in another runner"
                    continue
                with self.ctx.pfs.db.read() as conn:
                    r = jobs.readiness(conn, job)
                if r.unrunnable:
                    base = jobs.base_root(self.ctx, job)
                    if jobs.end_job(
                        self.ctx, job, JobState.UNRUNNABLE, r.why, root=base,
                        only_if_running=False,
                    ):
                        summary.ran[key] = JobState.UNRUNNABLE
                    break
                if r.ready and jobs.claim(self.ctx, job):
                    return job
                summary.waiting[key] = r.why
            else:
                return None

    def run_pending(
        self, progress: jobs.ProgressFn | None = None, only: Callable[[str], bool] | None = None
    ) -> RunSummary:
        """Run jobs until none is runnable; report those left waiting and why. ``only``: the
        jobs of the pipelines it accepts (by name), no others."""
        summary = RunSummary()
        while (job := self._next(summary, only)) is not None:
            try:
                state = jobs.run_job(self.ctx, job, self.executor, progress)
            except KeyboardInterrupt:
                jobs.release(self.ctx, job)  # queued again: the next runner starts it afresh
                raise
            summary.ran[f"{job.pipeline}@{job.commit_id}"] = state
        return summary

    def run_forever(
        self, stop: threading.Event, progress: jobs.ProgressFn | None = None, poll: float = 0.5
    ) -> None:
        """Run jobs and tick cron inputs until ``stop`` is set."""
        while not stop.is_set():
            cron_ticks.tick_due(self.ctx)
            self.run_pending(progress)
            stop.wait(poll)
