"""Runs one job: a sliding window of workers over the step's unfinished items, with progress,
cancellation and the failure rules of design section 4."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tam.domain.model import (
    CredentialError,
    Job,
    JobStatus,
    JobType,
    LeaseLost,
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
from tam.domain.services.step import Step, StepRun, Totals
from tam.domain.services.weather import DEFAULT_TOLERANCE_S, Weather
from tam.ports.runtime import CallObserver, Clock, ConcurrencyLimiter
from tam.ports.storage import JobRepo, ProjectRepo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    flush_interval: float = 1.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    seed: int | None = None
    outage_tolerance: float = DEFAULT_TOLERANCE_S
    # A worker that went this long without a heartbeat (it was paused: SIGSTOP, a long GC, a partition)
    # confirms it still holds the job before it starts another paid call.
    lease_check_after: float = 5.0


def progress_message(step: Step[Any], run: StepRun, totals: Totals) -> str:
    verb = f"{run.status}; {step.verb.lower()}" if run.status else step.verb
    text = f"{verb} {totals.done + totals.failed} of {totals.total} {step.noun}"
    return text + (f", {totals.failed} failed" if totals.failed else "")


@dataclass(frozen=True, slots=True)
class Wiring:
    """What every attempt of every job uses; built once (the runner holds no per-attempt state)."""

    jobs: JobRepo
    projects: ProjectRepo
    steps: Mapping[JobType, Step[Any]]
    limiter: ConcurrencyLimiter
    clock: Clock
    settings: RunnerSettings
    observer: CallObserver | None
    prices: PriceTable | None


class JobRunner:
    """Runs one attempt at a job whose lease it holds (JobAttempt starts it and decides what an ending
    means). Per-attempt state lives in `_Execution`, created for each run; the runner and its steps
    are built once and serve every job."""

    def __init__(
        self,
        jobs: JobRepo,
        projects: ProjectRepo,
        steps: Mapping[JobType, Step[Any]],
        limiter: ConcurrencyLimiter,
        clock: Clock,
        settings: RunnerSettings = RunnerSettings(),
        observer: CallObserver | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._wiring = Wiring(jobs, projects, steps, limiter, clock, settings, observer, prices)

    async def run(self, lease: Job, time_limit: float | None = None) -> Job:
        """Run the attempt that `lease` (the job as its start returned it) began, to a final status.

        Raises TimeLimitExceeded past `time_limit` seconds (the items finished so far are stored and
        counted), LeaseLost when a newer attempt took the job over, OutageTooLong when the database or
        broker stayed away past the tolerance; in each case the job stays resumable."""
        execution = _Execution(self._wiring, lease)
        try:
            async with asyncio.timeout(time_limit):
                return await execution.run()
        except TimeoutError:
            await execution.flush_counts()  # the items this attempt finished before the limit
            raise TimeLimitExceeded(f"time limit of {time_limit:g} s exceeded") from None


class _Execution:
    """The state of one attempt at one job: its queue, totals, the step's run, timers."""

    def __init__(self, w: Wiring, job: Job) -> None:
        self.w = w
        self.job = job
        self.token = job.attempts
        self.step = w.steps[job.job_type]
        self.stop = asyncio.Event()
        self.fatal: BaseException | None = None
        self.lost: LeaseLost | None = None
        self.cancelled = False
        self.planned = False  # the counts below mean something once the items are planned
        self.totals = Totals(total=job.items_total, done=job.items_done, failed=job.items_failed, usage=job.usage)
        self.ticking: asyncio.Future[None] | None = None
        self.checking: asyncio.Future[None] | None = None  # a lease check the workers share
        self.flushing = asyncio.Lock()  # one flush at a time, so progress follows the stored results
        self.finished_item = asyncio.Event()
        self.last_beat = w.clock.monotonic()
        self.weather = Weather(w.clock, w.settings.outage_tolerance)
        self.broker = Weather(w.clock, w.settings.outage_tolerance)
        seed = w.settings.seed
        budget = None
        if job.max_cost_usd is not None and w.prices is not None:
            budget = Budget(job.max_cost_usd, w.prices, job.usage)
        self.calls = ProviderCalls(
            w.limiter,
            w.clock,
            w.settings.policy,
            self.stop,
            random.Random(seed) if seed is not None else None,
            w.observer,
            budget,
            gate=self.confirm_lease,
            weather=self.weather,
        )
        self.step_run: StepRun | None = None

    async def run(self) -> Job:
        w, job, step = self.w, self.job, self.step
        project = await self.weather.run(lambda: w.projects.get(job.project_id))
        run = self.step_run = StepRun(project, job, self.calls)
        items = list(await self.weather.run(lambda: step.plan(run)))
        remaining = sum(step.weight(item) for item in items)
        total = max(job.items_total, job.items_done + job.items_failed + remaining)
        self.totals = Totals(total=total, failed=job.items_failed, usage=job.usage)
        self.totals.done = total - remaining - job.items_failed
        self.planned = True
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        await self.flush()
        ticker = asyncio.create_task(self.tick())
        committer = asyncio.create_task(self.commit())
        try:
            workers = [
                asyncio.create_task(self.work(run, queue)) for _ in range(min(step.workers(), max(len(items), 1)))
            ]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
        except asyncio.CancelledError:  # a time limit or a worker shutting down: keep what is done
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store_buffered())
            raise
        finally:
            for task in (ticker, committer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for write in (self.ticking, self.checking):  # let a write begun finish before the last one
                if write is not None:
                    await asyncio.gather(write, return_exceptions=True)
        if self.lost is not None:
            # Answers paid for and not stored yet are still stored: a result goes only over an
            # unfinished item, so never over one the newer attempt finished.
            with contextlib.suppress(TamError):
                await self.weather.run(self.store_buffered)
            raise self.lost
        await self.flush()
        return await self.finish(project)

    async def work(self, run: StepRun, queue: asyncio.Queue[Any]) -> None:
        while not self.stop.is_set():
            # An outage pauses the job: no new paid call starts while results cannot be stored.
            await self.weather.clear.wait()
            if self.stop.is_set():
                return
            try:
                await self.confirm_lease()
            except Stopped:
                return
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                outcome = await self.broker.run(functools.partial(self.step.process, run, item), "Redis")
            except Stopped:
                return
            except PermanentItemError as exc:
                await self.weather.run(functools.partial(self.step.fail, run, item, str(exc)))
                self.totals.failed += self.step.weight(item)
            except (CredentialError, ProviderOutage, BudgetReached) as exc:
                self.halt(exc)
                return
            else:
                self.totals.add(outcome)
            self.finished_item.set()

    async def confirm_lease(self) -> None:
        """Before a paid call: an attempt that went `lease_check_after` without a heartbeat (it was
        paused: SIGSTOP, a long GC, a partition) writes one first, and its answer says whether a newer
        attempt took the job meanwhile. Raises Stopped if the attempt must start nothing more. The
        workers share one check: a paused attempt wakes with all of them at this gate at once."""
        if self.w.clock.monotonic() - self.last_beat > self.w.settings.lease_check_after:
            if self.checking is None or self.checking.done():
                self.checking = asyncio.ensure_future(self.flush())
            await asyncio.shield(self.checking)
        if self.stop.is_set():
            raise Stopped

    async def store_buffered(self) -> None:
        """The step's buffered results, in one write (nothing when the step buffers none)."""
        if self.step_run is not None and self.step_run.buffer is not None:
            await self.step_run.buffer.flush()

    async def commit(self) -> None:
        """Group commit: whatever results arrived while the previous write ran go in the next one."""
        while True:
            await self.finished_item.wait()
            self.finished_item.clear()
            async with self.flushing:
                await self.weather.run(self.store_buffered)

    def halt(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop.set()

    async def tick(self) -> None:
        """Keeps the heartbeat fresh, publishes progress, and notices a cancel or a lost lease."""
        interval = self.w.settings.flush_interval
        while True:
            await self.w.clock.sleep(interval)
            # Shielded: cancelling the ticker must not cut a store write in half (an open transaction).
            self.ticking = asyncio.ensure_future(self.flush())
            await asyncio.shield(self.ticking)

    async def flush_counts(self) -> None:
        """Write the counts so far, if the attempt got as far as planning its items."""
        if self.planned:
            with contextlib.suppress(LeaseLost):
                await self.flush()

    async def flush(self) -> None:
        """Stores the buffered results, then the progress (the job's heartbeat, JobRepo.save_progress),
        whose answer, the row, shows a cancel or a lost lease."""
        assert self.step_run is not None
        w, run = self.w, self.step_run
        async with self.flushing:
            # The counts and the step's buffer are taken together (no await in between): the progress
            # written counts exactly the items stored by then.
            message = progress_message(self.step, run, self.totals)
            if self.calls.note:  # e.g. a provider paused so that it does not block us: say why
                message = f"{message}; {self.calls.note}"
            progress = Progress(self.totals.total, self.totals.done, self.totals.failed, message)
            usage = self.totals.usage
            await self.weather.run(self.store_buffered)
            row = await self.weather.run(
                lambda: w.jobs.save_progress(self.job.id, progress, usage, w.clock.now(), token=self.token)
            )
            self.last_beat = w.clock.monotonic()
        self.observe(row)

    def observe(self, row: Job) -> None:
        if row.attempts == self.token and row.status.finished:  # cancelled (or ended) from outside
            self.cancelled = True
            self.stop.set()
        elif row.attempts != self.token:
            if self.lost is None:
                self.lost = LeaseLost(f"job {row.id}: attempt {self.token} was superseded by attempt {row.attempts}")
                log.warning("%s; this attempt stops", self.lost)
            self.stop.set()

    async def finish(self, project: Project) -> Job:
        w, fatal = self.w, self.fatal
        if fatal is None and self.cancelled:
            return await self.weather.run(lambda: w.jobs.get(self.job.id))
        if fatal is None:
            summary = await self.weather.run(lambda: self.step.summary(project, self.totals))
            row = await self.weather.run(
                lambda: w.jobs.finish(self.job.id, JobStatus.COMPLETED, summary, None, w.clock.now(), token=self.token)
            )
        else:
            error = self.describe(fatal)
            row = await self.weather.run(
                lambda: w.jobs.finish(self.job.id, JobStatus.FAILED, None, error, w.clock.now(), token=self.token)
            )
        if row.attempts != self.token:
            raise LeaseLost(f"job {row.id}: attempt {self.token} was superseded by attempt {row.attempts}")
        return row

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
