"""Runs one job: a sliding window of workers over the step's unfinished items, with progress,
cancellation and the failure rules of design section 4."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from tam.domain.model import (
    CredentialError,
    Job,
    JobStatus,
    JobType,
    PermanentItemError,
    Progress,
    Project,
    ProviderOutage,
    TamError,
    TimeLimitExceeded,
)
from tam.domain.pricing import PriceTable
from tam.domain.services.budget import Budget, BudgetReached
from tam.domain.services.calls import ProviderCalls, RetryPolicy, Stopped
from tam.domain.services.step import Step, Totals
from tam.ports.runtime import CallObserver, Clock, ConcurrencyLimiter, ProgressSink
from tam.ports.storage import JobRepo, ProjectRepo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    flush_interval: float = 1.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    seed: int | None = None


def progress_message(step: Step[Any], totals: Totals) -> str:
    text = f"{step.verb} {totals.done + totals.failed} of {totals.total} {step.noun}"
    return text + (f", {totals.failed} failed" if totals.failed else "")


class JobRunner:
    def __init__(
        self,
        jobs: JobRepo,
        projects: ProjectRepo,
        steps: Mapping[JobType, Step[Any]],
        limiter: ConcurrencyLimiter,
        progress: ProgressSink,
        clock: Clock,
        settings: RunnerSettings = RunnerSettings(),
        observer: CallObserver | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._jobs = jobs
        self._prices = prices
        self._projects = projects
        self._steps = steps
        self._limiter = limiter
        self._progress = progress
        self._clock = clock
        self._settings = settings
        self._observer = observer

    async def run(self, job_id: UUID, time_limit: float | None = None, last_attempt: bool = True) -> Job:
        """Run (or resume) a job to a final status and return it. A finished job is left as is.

        Past `time_limit` seconds the attempt stops; on the last attempt the job fails, otherwise
        TimeLimitExceeded is raised and the job stays running for the next attempt to resume."""
        job = await self._jobs.get(job_id)
        if job.status.finished:
            return job
        job = await self._jobs.start(job_id, self._clock.now())
        if job.status.finished:
            return job
        execution = _Execution(self, job)
        try:
            async with asyncio.timeout(time_limit):
                return await execution.run()
        except TimeoutError:
            await execution.flush_counts()  # the items this attempt finished before the limit
            error = f"time limit of {time_limit:g} s exceeded"
            if not last_attempt:
                raise TimeLimitExceeded(error) from None
            return await self._jobs.finish(job_id, JobStatus.FAILED, None, error, self._clock.now())


class _Execution:
    """The state of one attempt at one job."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.r = runner
        self.job = job
        self.step = runner._steps[job.job_type]
        self.stop = asyncio.Event()
        self.fatal: BaseException | None = None
        self.cancelled = False
        self.ticking: asyncio.Future[None] | None = None
        self.flushing = asyncio.Lock()  # one flush at a time, so progress follows the stored results
        seed = runner._settings.seed
        budget = None
        if job.max_cost_usd is not None and runner._prices is not None:
            budget = Budget(job.max_cost_usd, runner._prices, job.usage)
        self.calls = ProviderCalls(
            runner._limiter,
            runner._clock,
            runner._settings.policy,
            self.stop,
            random.Random(seed) if seed is not None else None,
            runner._observer,
            budget,
        )

    async def run(self) -> Job:
        r, job, step = self.r, self.job, self.step
        project = await r._projects.get(job.project_id)
        items = list(await step.plan(project, job))
        remaining = sum(step.weight(item) for item in items)
        total = max(job.items_total, job.items_done + job.items_failed + remaining)
        self.totals = Totals(total=total, failed=job.items_failed, usage=job.usage)
        self.totals.done = total - remaining - job.items_failed
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        await self.flush()
        ticker = asyncio.create_task(self.tick())
        try:
            workers = [
                asyncio.create_task(self.work(project, queue)) for _ in range(min(step.workers(), max(len(items), 1)))
            ]
            await asyncio.gather(*workers)
        except asyncio.CancelledError:  # a time limit or a worker shutting down: keep what is done
            with contextlib.suppress(Exception):
                await asyncio.shield(self.step.flush())
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if self.ticking is not None:  # let a write the ticker had begun finish before the last one
                await asyncio.gather(self.ticking, return_exceptions=True)
        await self.flush()
        return await self.finish()

    async def work(self, project: Project, queue: asyncio.Queue[Any]) -> None:
        while not self.stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                outcome = await self.step.process(project, item, self.calls)
            except Stopped:
                return
            except PermanentItemError as exc:
                await self.step.fail(project, item, str(exc))
                self.totals.failed += self.step.weight(item)
            except (CredentialError, ProviderOutage, BudgetReached) as exc:
                self.halt(exc)
                return
            except Exception as exc:  # a bug, not a provider answer: stop the job, keep the cause
                log.exception("job %s: unexpected error", self.job.id)
                self.halt(exc)
                return
            else:
                self.totals.add(outcome)
            if self.r._clock.monotonic() - self.last_flush >= self.r._settings.flush_interval:
                await self.flush()

    def halt(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop.set()

    async def tick(self) -> None:
        """Keeps the heartbeat fresh during long calls and notices a cancel between items."""
        interval = self.r._settings.flush_interval
        while True:
            await self.r._clock.sleep(interval)
            # Shielded: cancelling the ticker must not cut a store write in half (an open transaction).
            self.ticking = asyncio.ensure_future(self.tick_once(interval))
            await asyncio.shield(self.ticking)

    async def tick_once(self, interval: float) -> None:
        if self.r._clock.monotonic() - self.last_flush >= interval:
            await self.flush()
        current = await self.r._jobs.get(self.job.id)
        if current.status is JobStatus.CANCELLED:
            self.cancelled = True
            self.stop.set()

    async def flush_counts(self) -> None:
        """Write the counts so far, if the attempt got as far as planning its items."""
        if hasattr(self, "totals"):
            await self.flush()

    async def flush(self) -> None:
        self.last_flush = self.r._clock.monotonic()
        async with self.flushing:
            # The counts and the step's buffer are taken together (no await in between): the progress
            # written counts exactly the items stored by then.
            message = progress_message(self.step, self.totals)
            if self.calls.note:  # e.g. a provider paused so that it does not block us: say why
                message = f"{message}; {self.calls.note}"
            progress = Progress(self.totals.total, self.totals.done, self.totals.failed, message)
            usage = self.totals.usage
            await self.step.flush()
            await self.r._progress.publish(self.job.id, progress, usage)

    async def finish(self) -> Job:
        r, now = self.r, self.r._clock.now()
        fatal = self.fatal
        if fatal is None and (self.cancelled or (await r._jobs.get(self.job.id)).status is JobStatus.CANCELLED):
            return await r._jobs.get(self.job.id)
        if fatal is None:
            return await r._jobs.finish(self.job.id, JobStatus.COMPLETED, self.step.summary(self.totals), None, now)
        return await r._jobs.finish(self.job.id, JobStatus.FAILED, None, self.describe(fatal), now)

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, BudgetReached):  # a later job (with more budget) resumes the rest
            return f"{exc}; {self.totals.remaining} {self.step.noun} left"
        left = f"; {self.totals.remaining} {self.step.noun} left for a retry" if self.totals.remaining else ""
        if isinstance(exc, CredentialError):
            text = str(exc)
            if exc.setting not in text:
                text = f"{text} (check {exc.setting})"
            return text + left
        if isinstance(exc, TamError):
            return str(exc) + left
        return f"internal error ({type(exc).__name__}); see the worker log{left}"
