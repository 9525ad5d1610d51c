"""Embedded dispatch: jobs run as asyncio tasks in the caller's event loop (no REDIS_URL)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from tam.domain.model import Job, JobType

log = logging.getLogger(__name__)

Execute = Callable[[UUID, float | None, bool], Awaitable[object]]


class InProcessJobDispatcher:
    """Runs each job with two attempts, like the worker. Jobs in flight when the process exits stay
    `running` with their task id; the next `tam serve` resumes them (ResumeStaleJobs)."""

    def __init__(
        self,
        new_execute: Callable[[], Execute | Awaitable[Execute]],
        time_limit: Callable[[JobType], float],
        attempts: int = 2,
    ) -> None:
        # A fresh use case per job: steps keep per-run state (buffered results) that jobs running
        # side by side in this loop must not share.
        self._new_execute = new_execute
        self._time_limit = time_limit
        self._attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self, job: Job) -> str:
        if job.task_id is None:
            raise ValueError("dispatch needs a claimed task id")
        task = asyncio.create_task(self._run(job.id, job.job_type), name=f"tam-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job.task_id

    async def _run(self, job_id: UUID, job_type: JobType) -> None:
        limit = self._time_limit(job_type)
        for attempt in range(1, self._attempts + 1):
            try:
                execute = self._new_execute()
                if inspect.isawaitable(execute):
                    execute = await execute
                await execute(job_id, limit, attempt == self._attempts)
                return
            except Exception:
                log.warning("job %s: attempt %d failed, retrying", job_id, attempt, exc_info=True)

    async def ping(self) -> None:
        return None

    async def join(self) -> None:
        """Wait for every job dispatched so far (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
