"""Handing jobs to whatever runs them, and running one delivery of a job (JobAttempt)."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

from tam.domain.model import (
    ClaimOutcome,
    InfrastructureError,
    Job,
    JobStatus,
    JobType,
    LeaseLost,
    NotFound,
    TamError,
    TimeLimitExceeded,
)
from tam.domain.services.runner import JobRunner
from tam.domain.services.weather import DEFAULT_TOLERANCE_S, Weather
from tam.ports.runtime import Clock, JobDispatcher
from tam.ports.storage import JobRepo, ProjectRepo

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_S = 15.0


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
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
    ) -> None:
        self._jobs = jobs
        self._projects = projects
        self._dispatcher = dispatcher
        self._clock = clock
        self._new_task_id = new_task_id
        self._heartbeat_timeout = heartbeat_timeout

    async def trigger(self, job_id: UUID, job_type: JobType, project_id: UUID) -> str:
        """The seed's `POST /api/tam/run`: the job already exists (maybe already `running`). One call to
        the store validates it and claims its task id (`Job.dispatched`); then the enqueue."""
        return await self._claim_and_enqueue(job_id, project_id, job_type)

    async def create(self, project_id: UUID, job_type: JobType, max_cost_usd: float | None = None) -> tuple[Job, str]:
        """`POST /api/tam/jobs`: ActiveJobExists (409 naming it) while one of the type is active.
        `max_cost_usd`: the job's budget; it is stored before the job is dispatched."""
        await self._projects.get(project_id)
        job = await self._jobs.add_exclusive(Job(project_id=project_id, job_type=job_type))
        if max_cost_usd is not None:
            await self._jobs.set_budget(job.id, max_cost_usd)
            job = job.with_(max_cost_usd=max_cost_usd)
        return job, await self.dispatch(job)

    async def dispatch(self, job: Job) -> str:
        """Enqueue the job once. A job that already has a task keeps it, unless it is running and its
        heartbeat stopped (its message is gone): then it gets a new task and is enqueued again. If the
        broker cannot take the message the job is left as it was (no task), so the same call can be
        repeated once the broker is back."""
        return await self._claim_and_enqueue(job.id, job.project_id, job.job_type)

    async def _claim_and_enqueue(self, job_id: UUID, project_id: UUID, job_type: JobType) -> str:
        now = self._clock.now()
        stale_before = now - timedelta(seconds=self._heartbeat_timeout)
        claim = await self._jobs.claim_dispatch(job_id, project_id, job_type, self._new_task_id(), now, stale_before)
        refusal = claim.refusal(job_type)
        if refusal is not None:
            raise refusal  # ActiveJobExists: this job was cancelled; the others: nothing changed
        if claim.outcome is ClaimOutcome.REQUEUED:
            log.info("job %s: running with no heartbeat since %s; enqueued again", job_id, claim.job.heartbeat_at)
        if claim.enqueue:
            await self._enqueue(claim.job, previous=claim.previous_task_id)
        assert claim.job.task_id is not None
        return claim.job.task_id

    async def requeue_stale(self, job: Job) -> bool:
        """Enqueue a running job again under a new task id if its heartbeat stopped; True for the one
        caller (of however many at once) that did."""
        stale_before = self._clock.now() - timedelta(seconds=self._heartbeat_timeout)
        if job.status is not JobStatus.RUNNING or job.held(stale_before):
            return False
        task_id = self._new_task_id()
        if not await self._jobs.requeue(job.id, job.task_id, task_id, stale_before):
            return False
        log.info("job %s: running with no heartbeat since %s; enqueued again", job.id, job.heartbeat_at)
        await self._enqueue(job.with_(task_id=task_id), previous=job.task_id)
        return True

    async def without_message(self, jobs: Sequence[Job]) -> list[Job]:
        """The dispatched jobs among `jobs` whose message the broker no longer holds (neither waiting nor
        being run): acknowledged without running, or lost with the broker's data."""
        held = await self._dispatcher.holds([job.task_id for job in jobs if job.task_id])
        return [job for job in jobs if job.task_id and job.task_id not in held]

    async def redeliver(self, job: Job) -> None:
        """Send a message again under the job's own task id, for a job that never started and whose
        message is gone. Two sweepers that do it at once send two messages for one task: the lease lets
        one attempt run, and the other delivery leaves."""
        log.info("job %s: %s, never started, and its message is gone; enqueued again", job.id, job.status.value)
        await self._dispatcher.dispatch(job)

    async def _enqueue(self, job: Job, previous: str | None) -> None:
        try:
            await self._dispatcher.dispatch(job)
        except TamError:
            # The broker never saw the message: give the task id back, so that the same request,
            # repeated when the broker is back, enqueues it. (A stale running job needs nothing undone:
            # it is still stale, so a repeat requeues it again.)
            assert job.task_id is not None
            if previous is None:
                await self._jobs.unclaim_task(job.id, job.task_id)
            raise


class AttemptEnd(enum.StrEnum):
    FINISHED = "finished"  # the job has a final status
    RETRY = "retry"  # resumable now (time limit before the last attempt, or shutdown): deliver again
    PAUSED = "paused"  # the database or broker stayed away past the tolerance; the sweep resumes it later
    LEFT = "left"  # another attempt holds the job, or this message was superseded: nothing to do


@dataclass(frozen=True, slots=True)
class AttemptResult:
    end: AttemptEnd
    job: Job | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AttemptPolicy:
    """Attempts, time limits and poison, as one policy (design section 4)."""

    attempts: int = 2  # attempts that may run into the time limit; the last one fails the job
    max_deliveries: int = 3  # starts without an ending (the worker died every time): a poison job
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S
    outage_tolerance: float = DEFAULT_TOLERANCE_S


class JobAttempt:
    """One delivery of a job, whoever delivers it (a Dramatiq actor, the in-process dispatcher). It
    reads the row once, takes the lease (fencing token), runs the job, and decides what the ending
    means. It is the only place that catches an unexpected error: a bug fails the job with a message;
    an outage, a lost lease or a shutdown leaves it resumable."""

    def __init__(self, jobs: JobRepo, runner: JobRunner, clock: Clock, policy: AttemptPolicy = AttemptPolicy()):
        self._jobs = jobs
        self._runner = runner
        self._clock = clock
        self._policy = policy

    async def __call__(self, job_id: UUID, time_limit: float | None, task_id: str | None = None) -> AttemptResult:
        weather = Weather(self._clock, self._policy.outage_tolerance)
        try:
            return await self._attempt(job_id, time_limit, task_id, weather)
        except InfrastructureError as exc:
            log.warning("job %s: attempt ends, job left to resume: %s", job_id, exc)
            return AttemptResult(AttemptEnd.PAUSED, None, str(exc))

    async def _attempt(
        self, job_id: UUID, time_limit: float | None, task_id: str | None, weather: Weather
    ) -> AttemptResult:
        try:
            job = await weather.run(lambda: self._jobs.get(job_id))
        except NotFound:  # deleted with its project while its message waited: nothing to run, not a bug
            log.info("job %s: no such job any more; its message is dropped", job_id)
            return AttemptResult(AttemptEnd.LEFT, None, "no such job (deleted)")
        if weather.interrupted and not job.status.finished:
            # This delivery waited out an outage, so the heartbeat it read says nothing: the attempt
            # holding the job was cut off too. Give it a heartbeat timeout to write again first.
            await self._clock.sleep(self._policy.heartbeat_timeout)
            job = await weather.run(lambda: self._jobs.get(job_id))
        if job.status.finished:
            return AttemptResult(AttemptEnd.FINISHED, job)
        now = self._clock.now()
        stale_before = now - timedelta(seconds=self._policy.heartbeat_timeout)
        if job.held(stale_before) or (task_id is not None and job.task_id not in (None, task_id)):
            return AttemptResult(AttemptEnd.LEFT, job, "held by another attempt, or superseded")
        if job.attempts >= self._policy.max_deliveries:
            error = (
                f"stopped after {job.attempts} deliveries: the worker running this job died every time"
                " (poison job); see the worker log"
            )
            return AttemptResult(AttemptEnd.FINISHED, await self._fail(job_id, error, None, weather))
        lease = await weather.run(lambda: self._jobs.start(job_id, now, task_id=task_id, stale_before=stale_before))
        if lease is None:
            return AttemptResult(AttemptEnd.LEFT, job, "another attempt took it first")
        token = lease.attempts
        try:
            return AttemptResult(AttemptEnd.FINISHED, await self._runner.run(lease, time_limit))
        except TimeLimitExceeded as exc:
            if token >= self._policy.attempts:
                return AttemptResult(AttemptEnd.FINISHED, await self._fail(job_id, str(exc), token, weather))
            await weather.run(lambda: self._jobs.release(job_id, token, self._clock.now()))
            return AttemptResult(AttemptEnd.RETRY, lease, str(exc))
        except LeaseLost as exc:
            return AttemptResult(AttemptEnd.LEFT, lease, str(exc))
        except InfrastructureError:
            raise
        except asyncio.CancelledError:  # the worker is shutting down: let the next attempt start at once
            await asyncio.shield(self._release_quietly(job_id, token))
            raise
        except Exception as exc:  # a bug, not weather: the job fails and says where to look
            log.exception("job %s: unexpected error", job_id)
            error = str(exc) if isinstance(exc, TamError) else f"internal error ({type(exc).__name__})"
            failed = await self._fail(job_id, f"{error}; see the worker log", token, weather)
            return AttemptResult(AttemptEnd.FINISHED, failed)

    async def _fail(self, job_id: UUID, error: str, token: int | None, weather: Weather) -> Job:
        return await weather.run(
            lambda: self._jobs.finish(job_id, JobStatus.FAILED, None, error, self._clock.now(), token=token)
        )

    async def _release_quietly(self, job_id: UUID, token: int) -> None:
        try:
            await self._jobs.release(job_id, token, self._clock.now())
        except TamError as exc:  # the lease then simply expires after the heartbeat timeout
            log.warning("job %s: could not release the lease: %s", job_id, exc)


class StaleJobSweep:
    """Finds running jobs whose attempt is gone (no heartbeat for the heartbeat timeout: its worker died)
    and enqueues each again under a new task id; the task id swap is atomic, so however many workers
    sweep at once, one message goes out per stale job. A job dispatched a heartbeat timeout ago that
    never started is enqueued again only if the broker lost its message (it was acknowledged without
    running, or Redis lost it; in embedded mode, the process that had it exited): a pending job under
    its own task id, a running one under a new one. A job still waiting in the queue keeps its place.
    `tam worker` runs it periodically, `tam serve` in embedded mode too. Returns the jobs enqueued.

    A sweeper judges only what it has watched for a whole heartbeat timeout with the database
    reachable: after an outage every heartbeat looks old, but the attempts that were waiting it out
    write theirs within seconds, and must not be taken over for having been cut off."""

    def __init__(
        self, jobs: JobRepo, dispatch: DispatchJob, clock: Clock, heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S
    ) -> None:
        self._jobs = jobs
        self._dispatch = dispatch
        self._clock = clock
        self._heartbeat_timeout = heartbeat_timeout
        self._watching_since: float | None = None

    async def __call__(self) -> list[Job]:
        try:
            listed = await self._jobs.list()
        except InfrastructureError:
            self._watching_since = None
            raise
        now = self._clock.monotonic()
        if self._watching_since is None:
            self._watching_since = now
        if now - self._watching_since < self._heartbeat_timeout:
            return []
        stale_before = self._clock.now() - timedelta(seconds=self._heartbeat_timeout)
        started, unstarted = [], []
        for job in listed:
            if job.status.finished or not job.task_id or job.held(stale_before):
                continue  # a row without a task was never triggered: /api/tam/run does that
            if job.attempts > 0:
                if job.status is JobStatus.RUNNING:
                    started.append(job)  # its attempt is gone: its heartbeat stopped
            elif job.updated_at is None or job.updated_at < stale_before:
                unstarted.append(job)  # dispatched a while ago and not started: queued, or lost?
        resumed = []
        try:
            # A job that waits its turn in the queue is left there; one whose message is gone goes again.
            lost = await self._dispatch.without_message(unstarted) if unstarted else []
            for job in started + lost:
                if job.status is JobStatus.PENDING:
                    await self._dispatch.redeliver(job)
                    resumed.append(job)
                elif await self._dispatch.requeue_stale(job):
                    resumed.append(job)
        except InfrastructureError:
            self._watching_since = None
            raise
        return resumed
