"""Clock, concurrency limiter and progress sinks for a single process."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from tam.domain.model import Pressure, Progress, Usage
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


class AdaptiveCap:
    """The AIMD rule both limiters follow (RedisLimiter mirrors it in Lua): halve the calls allowed in
    flight on a 429, at most once per burst (only a call started after the last cut cuts again);
    ease off by 1/cap per NEAR answer and grow by 1/cap per EASY one (about one slot per round of
    calls, like TCP); never below 1 nor above the configured capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.cap = float(capacity)
        self.cut_at = -math.inf

    def allowed(self) -> int:
        return max(1, min(self.capacity, int(self.cap)))

    def apply(self, pressure: Pressure, now: float, started: float) -> None:
        if pressure is Pressure.THROTTLED:
            if started >= self.cut_at:
                self.cap = max(1.0, self.cap / 2)
                self.cut_at = now
        elif pressure is Pressure.NEAR:
            self.cap = max(1.0, self.cap - 1 / self.cap)
        else:
            self.cap = min(float(self.capacity), self.cap + 1 / self.cap)


# When the current task took its last slot (loop time): `report` follows `slot` in the same task.
slot_started: ContextVar[float] = ContextVar("slot_started", default=-math.inf)


class _Gate:
    """A semaphore whose size follows an AdaptiveCap, with a shared pause; FIFO hand-over."""

    def __init__(self, capacity: int, adaptive: bool) -> None:
        self.limit = AdaptiveCap(capacity)
        self.adaptive = adaptive
        self.in_flight = 0
        self.not_before = 0.0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def _open(self, now: float) -> bool:
        return now >= self.not_before and self.in_flight < self.limit.allowed()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        if not self.waiters and self._open(loop.time()):
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        self.wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            else:
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self.wake()

    def wake(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a slot released while its loop is being torn down: nobody to wake
            return
        while self.waiters and self._open(loop.time()):
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
        if self.waiters and loop.time() < self.not_before and self.timer is None:
            self.timer = loop.call_at(self.not_before, self._resume)

    def _resume(self) -> None:
        self.timer = None
        self.wake()

    def report(self, pressure: Pressure, retry_after: float | None) -> None:
        if not self.adaptive:
            return
        now = asyncio.get_running_loop().time()
        self.limit.apply(pressure, now, slot_started.get())
        if pressure is Pressure.THROTTLED and retry_after:
            self.not_before = max(self.not_before, now + retry_after)
        self.wake()


class LocalLimiter:
    """Per-provider adaptive semaphores: the limit and the slow-downs hold within this process only."""

    def __init__(self, capacities: Mapping[str, int], default: int = 1, *, adaptive: bool = True) -> None:
        self._capacities = dict(capacities)
        self._default = default
        self._adaptive = adaptive
        self._gates: dict[str, _Gate] = {}

    def capacity(self, provider: str) -> int:
        return self._capacities.get(provider, self._default)

    def allowed(self, provider: str) -> int:
        """Calls allowed in flight right now (the capacity, or less under rate-limit pressure)."""
        return self._gate(provider).limit.allowed()

    def _gate(self, provider: str) -> _Gate:
        gate = self._gates.get(provider)
        if gate is None:
            gate = self._gates[provider] = _Gate(self.capacity(provider), self._adaptive)
        return gate

    @asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[None]:
        gate = self._gate(provider)
        await gate.acquire()
        slot_started.set(asyncio.get_running_loop().time())
        try:
            yield
        finally:
            gate.release()

    async def report(self, provider: str, pressure: Pressure, retry_after: float | None = None) -> None:
        self._gate(provider).report(pressure, retry_after)


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
