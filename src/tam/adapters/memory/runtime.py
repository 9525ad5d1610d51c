"""Clock and progress sinks for a single process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from tam.domain.model import Job, Progress, Usage
from tam.ports.runtime import ProgressSink
from tam.ports.storage import JobRepo


class SystemClock:
    """Monotonic time is the event loop's, so tests can fast-forward it (looptime)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class StoreProgressSink:
    """Writes progress to the job row (tam_job_queue), which the frontend polls."""

    def __init__(self, jobs: JobRepo) -> None:
        self._jobs = jobs

    async def publish(self, job_id: UUID, progress: Progress, usage: Usage, token: int | None = None) -> Job:
        return await self._jobs.save_progress(job_id, progress, usage, datetime.now(UTC), token=token)


@dataclass
class RecordingProgressSink:
    """Keeps every update, then passes it on (tests look at the sequence)."""

    inner: ProgressSink | None = None
    updates: list[tuple[UUID, Progress]] = field(default_factory=list)

    async def publish(self, job_id: UUID, progress: Progress, usage: Usage, token: int | None = None) -> Job:
        self.updates.append((job_id, progress))
        if self.inner is None:
            raise RuntimeError("RecordingProgressSink needs an inner sink to answer with the job row")
        return await self.inner.publish(job_id, progress, usage, token)
