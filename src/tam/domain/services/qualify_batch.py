"""One attempt's Message Batch for a qualify job.

The batch id is stored with the job as soon as the batch exists, before anything else, so an attempt
that dies (a crash, a redeploy, a time limit) leaves it for the next attempt, which polls the same
batch instead of paying for a second one. The window left is the moment between the vendor's answer
to the create call and that one write.

The first worker that asks for a verdict drives the batch (create or resume, poll, stream results);
the others wait for their company's result. A company whose result is `retry` (expired, canceled,
errored for a passing reason) or that the batch does not hold is asked online by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from tam.domain.model import Company, Job, JobStatus, Project, ProviderOutage, TransientProviderError
from tam.domain.services.calls import Stopped
from tam.ports.providers import BatchAnswer, BatchProgress, BatchQualifier
from tam.ports.runtime import Clock
from tam.ports.storage import JobRepo

POLL_STREAK_LIMIT = 30  # transient errors in a row while polling before the provider counts as down


class BatchRun:
    def __init__(
        self,
        jobs: JobRepo,
        batches: BatchQualifier,
        clock: Clock,
        job: Job,
        project: Project,
        companies: Sequence[Company],
        poll_interval: float,
        on_progress: Callable[[str | None], None] = lambda text: None,
    ) -> None:
        self._jobs = jobs
        self._batches = batches
        self._clock = clock
        self._job = job
        self._project = project
        self._companies = list(companies)
        self._poll = poll_interval
        self._on_progress = on_progress
        self._results: dict[UUID, asyncio.Future[BatchAnswer]] = {}
        self._driving: asyncio.Future[None] | None = None  # done once the driver has ended
        self.progress: BatchProgress | None = None

    def describe(self) -> str | None:
        """For the job's message while the batch runs."""
        p = self.progress
        if p is None or p.ended:
            return None
        answered = p.succeeded + p.errored + p.canceled + p.expired
        return f"Batch {p.batch_id}: {answered:,} of {answered + p.processing:,} answered"

    async def answer(self, company: Company) -> BatchAnswer | None:
        """The batch's result for `company`; None when the batch does not hold it. The first caller
        drives the batch in its own task, so cancelling the attempt (a time limit) stops it too."""
        if not self._results:
            loop = asyncio.get_running_loop()
            self._results = {c.id: loop.create_future() for c in self._companies}
        future = self._results.get(company.id)
        if future is None:
            return None
        if future.done():
            return future.result()
        if self._driving is None:
            self._driving = asyncio.get_running_loop().create_future()
            try:
                await self._drive()
            finally:
                self._driving.set_result(None)
        either: set[asyncio.Future[Any]] = {future, self._driving}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not future.done():
            raise Stopped  # the driver was cancelled before this company's result came
        return future.result()

    async def _drive(self) -> None:
        """One batch at a time until every company has a result: a batch holds what fits in the
        vendor's limits (100,000 requests, 256 MB), the next one the companies still without one."""
        try:
            batch_id = self._job.batch_id  # an earlier attempt's batch: poll it first
            while True:
                chunk: list[Company] | None = None
                if batch_id is None:
                    todo = [c for c in self._companies if not self._results[c.id].done()]
                    if not todo:
                        return
                    chunk = todo[: max(1, self._batches.capacity(self._project, todo))]
                    batch_id = await self._batches.submit(self._project, chunk)
                    await self._jobs.set_batch(self._job.id, batch_id)  # first, before anything else
                if not await self._wait(batch_id):
                    await self._batches.cancel(batch_id)
                    await self._jobs.set_batch(self._job.id, None)
                    raise Stopped
                async for answer in self._batches.answers(batch_id):
                    future = self._results.get(answer.company_id)
                    if future is not None and not future.done():
                        future.set_result(answer)
                await self._jobs.set_batch(self._job.id, None)
                batch_id = None
                for company in chunk or ():
                    future = self._results[company.id]
                    if not future.done():  # sent but no result came back: the caller asks online
                        future.set_result(BatchAnswer(company.id, error="no result in the batch", retry=True))
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else Stopped()
            for future in self._results.values():
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved here: the waiting workers raise it themselves
            raise

    async def _wait(self, batch_id: str) -> bool:
        """Poll until the batch ends (True) or the job is cancelled (False)."""
        streak = 0
        while True:
            try:
                self.progress = await self._batches.progress(batch_id)
                self._on_progress(self.describe())
                streak = 0
            except TransientProviderError as exc:
                streak += 1
                if streak >= POLL_STREAK_LIMIT:
                    raise ProviderOutage(exc.provider, f"{exc.provider} batch {batch_id}: {exc}") from exc
            if self.progress is not None and self.progress.ended:
                return True
            with contextlib.suppress(Exception):  # a storage hiccup only delays noticing a cancel
                if (await self._jobs.get(self._job.id)).status is JobStatus.CANCELLED:
                    return False
            await self._clock.sleep(self._poll)
