"""Ports to the runtime around the use cases: time, limits, progress and dispatch."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from tam.domain.model import Job, Pressure, Progress, Usage


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC wall time, for timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class ConcurrencyLimiter(Protocol):
    def capacity(self, provider: str) -> int:
        """How many calls to `provider` may be in flight at once (across every process that
        shares the limiter)."""
        ...

    def slot(self, provider: str) -> AbstractAsyncContextManager[None]:
        """Hold one of `provider`'s slots for the duration of one call; waits without blocking
        the event loop (also while `provider` is paused after a Retry-After)."""
        ...

    async def report(self, provider: str, pressure: Pressure, retry_after: float | None = None) -> None:
        """How `provider` answered the call this task just made under `slot`, so that every caller
        sharing the limit adapts: THROTTLED halves the calls allowed in flight (once per burst of
        refusals; never below 1) and, with `retry_after` seconds, holds back every new call until
        then; NEAR eases the allowance down; EASY grows it back up to `capacity`. Never raises."""
        ...


class ProgressSink(Protocol):
    async def publish(self, job_id: UUID, progress: Progress, usage: Usage) -> None:
        """Called at most about once per flush interval and once at the end of a job."""
        ...


class JobDispatcher(Protocol):
    async def dispatch(self, job: Job) -> str:
        """Hand the job to whatever runs jobs; returns its task id."""
        ...


# How one provider call ended: answered, refused for the rate limit (429), another transient error
# (5xx, timeout), any other error (permanent, credentials), or cancelled with its job.
CallOutcome = Literal["ok", "throttled", "transient", "failed", "cancelled"]


class CallObserver(Protocol):
    """Watches provider calls, for metrics. Called around every call, so it must be cheap; never raises."""

    def call_started(self, provider: str) -> None:
        """A call to `provider` got its slot and is now in flight."""
        ...

    def call_finished(self, provider: str, seconds: float, outcome: CallOutcome) -> None:
        """The call that `call_started` announced ended after `seconds`."""
        ...

    def call_retried(self, provider: str) -> None:
        """A transient failure of `provider` will be retried after a pause."""
        ...


class SilentCallObserver:
    """The default observer: watches nothing."""

    def call_started(self, provider: str) -> None:
        pass

    def call_finished(self, provider: str, seconds: float, outcome: CallOutcome) -> None:
        pass

    def call_retried(self, provider: str) -> None:
        pass
