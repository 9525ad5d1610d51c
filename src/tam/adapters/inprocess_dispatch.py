"""Embedded dispatch: jobs run as asyncio tasks in the caller's event loop (no REDIS_URL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol
from uuid import UUID

from tam.domain.model import Job, JobType


class Ended(Protocol):
    @property
    def end(self) -> str:
        """How the attempt ended; "retry": resumable at once (a time limit before the last attempt)."""
        ...


Attempt = Callable[[UUID, float | None, str | None], Awaitable[Ended]]


class InProcessJobDispatcher:
    """Runs each job as a task of this event loop, one JobAttempt after another while an attempt ends
    resumable at once (a time limit before the last attempt). Jobs in flight when the process exits stay
    `running`; the stale-job sweep of the next `tam serve` resumes them."""

    def __init__(self, attempt: Attempt, time_limit: Callable[[JobType], float], max_rounds: int = 10) -> None:
        self._attempt = attempt  # one for every job: its state lives in each call (jobs run side by side)
        self._time_limit = time_limit
        self._max_rounds = max_rounds
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_ids: dict[asyncio.Task[None], str] = {}

    async def dispatch(self, job: Job) -> str:
        if job.task_id is None:
            raise ValueError("dispatch needs a claimed task id")
        task_id = job.task_id
        task = asyncio.create_task(self._run(job.id, job.job_type, task_id), name=f"tam-job-{job.id}")
        self._tasks.add(task)
        self._task_ids[task] = task_id
        task.add_done_callback(self._forget)
        return task_id

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._task_ids.pop(task, None)

    async def holds(self, task_ids: Collection[str]) -> set[str]:
        """The task ids among `task_ids` that a task of this process is running or about to run. A job
        dispatched by a process that has since exited is held by none."""
        return set(task_ids) & set(self._task_ids.values())

    async def _run(self, job_id: UUID, job_type: JobType, task_id: str) -> None:
        limit = self._time_limit(job_type)
        for _ in range(self._max_rounds):
            result = await self._attempt(job_id, limit, task_id)
            if result.end != "retry":
                return

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
