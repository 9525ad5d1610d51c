"""Clock, concurrency limiter and progress sinks for a single process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from tam.domain.model import Progress, Usage
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


class LocalLimiter:
    """Per-provider semaphores: the limit holds within this process only."""

    def __init__(self, capacities: Mapping[str, int], default: int = 1) -> None:
        self._capacities = dict(capacities)
        self._default = default
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def capacity(self, provider: str) -> int:
        return self._capacities.get(provider, self._default)

    @asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[None]:
        semaphore = self._semaphores.get(provider)
        if semaphore is None:
            semaphore = self._semaphores[provider] = asyncio.Semaphore(self.capacity(provider))
        async with semaphore:
            yield


class StoreProgressSink:
    """Writes progress to the job row (tam_job_queue), which the frontend polls."""

    def __init__(self, jobs: JobRepo) -> None:
        self._jobs = jobs

    async def publish(self, job_id: UUID, progress: Progress, usage: Usage) -> None:
        await self._jobs.save_progress(job_id, progress, usage, datetime.now(UTC))


@dataclass
class RecordingProgressSink:
    """Keeps every update, then passes it on (tests look at the sequence)."""

    inner: ProgressSink | None = None
    updates: list[tuple[UUID, Progress]] = field(default_factory=list)

    async def publish(self, job_id: UUID, progress: Progress, usage: Usage) -> None:
        self.updates.append((job_id, progress))
        if self.inner is not None:
            await self.inner.publish(job_id, progress, usage)
