"""Handing jobs to whatever runs them, and running one delivery of a job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from uuid import UUID, uuid4

from tam.domain.model import Conflict, Job, JobStatus, JobType, TamError
from tam.domain.services.runner import JobRunner
from tam.ports.runtime import Clock, JobDispatcher
from tam.ports.storage import JobRepo, ProjectRepo

log = logging.getLogger(__name__)

MAX_DELIVERIES = 3


def _new_task_id() -> str:
    return uuid4().hex


class DispatchJob:
    """Gives a job a task id and enqueues it, exactly once however often it is asked."""

    def __init__(
        self,
        jobs: JobRepo,
        projects: ProjectRepo,
        dispatcher: JobDispatcher,
        clock: Clock,
        new_task_id: Callable[[], str] = _new_task_id,
    ) -> None:
        self._jobs = jobs
        self._projects = projects
        self._dispatcher = dispatcher
        self._clock = clock
        self._new_task_id = new_task_id

    async def trigger(self, job_id: UUID, job_type: JobType, project_id: UUID) -> str:
        """The seed's `POST /api/tam/run`: the job already exists (maybe already `running`)."""
        job = await self._jobs.get(job_id)
        if job.project_id != project_id:
            raise Conflict(f"job {job_id} belongs to another project")
        if job.job_type is not job_type:
            raise Conflict(f"job {job_id} is a {job.job_type.value} job, not {job_type.value}")
        return await self.dispatch(job)

    async def create(self, project_id: UUID, job_type: JobType, max_cost_usd: float | None = None) -> tuple[Job, str]:
        """`max_cost_usd`: the job's budget; it is stored before the job is dispatched."""
        await self._projects.get(project_id)
        job = await self._jobs.add(Job(project_id=project_id, job_type=job_type))
        if max_cost_usd is not None:
            await self._jobs.set_budget(job.id, max_cost_usd)
            job = job.with_(max_cost_usd=max_cost_usd)
        return job, await self.dispatch(job)

    async def dispatch(self, job: Job) -> str:
        if job.status.finished:
            raise Conflict(f"job {job.id} is already {job.status.value}")
        if job.task_id:
            return job.task_id
        task_id = self._new_task_id()
        claimed = await self._jobs.claim_task(job.id, task_id)
        if claimed != task_id:  # someone else won the race and enqueued it
            return claimed
        try:
            await self._dispatcher.dispatch(job.with_(task_id=task_id))
        except TamError as exc:
            # The task id is claimed, so a retry would not enqueue again: fail visibly instead.
            await self._jobs.finish(job.id, JobStatus.FAILED, None, f"could not enqueue: {exc}", self._clock.now())
            raise
        return task_id


class ExecuteJob:
    """One delivery of a job to a worker: stops a job that keeps killing its worker, runs the
    rest, and turns an unexpected error on the last attempt into a failed job."""

    def __init__(self, jobs: JobRepo, runner: JobRunner, clock: Clock, max_deliveries: int = MAX_DELIVERIES) -> None:
        self._jobs = jobs
        self._runner = runner
        self._clock = clock
        self._max_deliveries = max_deliveries

    async def __call__(self, job_id: UUID, time_limit: float | None, last_attempt: bool = True) -> Job:
        job = await self._jobs.get(job_id)
        if job.status.finished:
            return job
        if job.attempts >= self._max_deliveries:
            error = (
                f"stopped after {job.attempts} deliveries: the worker running this job died every time"
                " (poison job); see the worker log"
            )
            return await self._jobs.finish(job_id, JobStatus.FAILED, None, error, self._clock.now())
        try:
            return await self._runner.run(job_id, time_limit, last_attempt)
        except Exception as exc:
            if not last_attempt:
                raise
            log.exception("job %s: last attempt failed", job_id)
            error = str(exc) if isinstance(exc, TamError) else f"internal error ({type(exc).__name__})"
            return await self._jobs.finish(
                job_id, JobStatus.FAILED, None, f"{error} on the last attempt; see the worker log", self._clock.now()
            )


STALE_AFTER_S = 60.0


class ResumeStaleJobs:
    """Embedded mode has no broker to redeliver the job of a process that died. So when `tam serve`
    starts without REDIS_URL, jobs left `running` with a task id and a heartbeat older than
    `stale_after` seconds (the process that ran them is gone: a live one beats every second) are
    dispatched again; each resumes where it stopped. Returns the jobs it resumed."""

    def __init__(
        self, jobs: JobRepo, dispatcher: JobDispatcher, clock: Clock, stale_after: float = STALE_AFTER_S
    ) -> None:
        self._jobs = jobs
        self._dispatcher = dispatcher
        self._clock = clock
        self._stale_after = stale_after

    async def __call__(self) -> list[Job]:
        now = self._clock.now()
        resumed = []
        for job in await self._jobs.list():
            if job.status is not JobStatus.RUNNING or not job.task_id:
                continue  # a running row without a task was never triggered: /api/tam/run does that
            beat = job.heartbeat_at or job.updated_at or job.created_at
            if beat is not None and (now - beat).total_seconds() < self._stale_after:
                continue
            log.info("job %s: running with no heartbeat since %s; resuming it", job.id, beat)
            await self._dispatcher.dispatch(job)
            resumed.append(job)
        return resumed
