"""Ports to the runtime around the use cases: time, limits, dispatch and call metrics."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Literal, Protocol

from tam.domain.model import ONE_CALL, Cost, Job, RateSignal


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC wall time, for timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Admission(Protocol):
    """One admitted call. Whatever the call learns is told here; the pacer applies it when the slot
    is given back (in Redis: in the same round trip as a later admission)."""

    def settle(self, signal: RateSignal) -> None:
        """The call was answered: learn the vendor's limits and remaining quota from `signal`, and
        correct the admitted cost with what the call really spent."""
        ...

    def throttled(self, retry_after: float | None) -> None:
        """The call was refused for the rate limit (429): halve the calls allowed in flight (once per
        burst of refusals, never below 1), hold back every new call for `retry_after` seconds, and
        count it toward the provider's refusal guard."""
        ...


class Pacer(Protocol):
    """Admits calls to each provider only when every budget allows it: calls in flight (adaptive,
    up to `capacity`) and the per-minute rate budgets (requests; for Claude input and output tokens),
    configured or learned from the vendor's headers. Shared by every process when it lives in Redis."""

    def capacity(self, provider: str) -> int:
        """How many calls to `provider` may be in flight at once (across every process that
        shares the pacer)."""
        ...

    def slot(self, provider: str, cost: Cost = ONE_CALL) -> AbstractAsyncContextManager[Admission]:
        """Waits, without blocking the event loop, until a call costing `cost` may start (a slot is
        free, the rate budgets allow it, no Retry-After pause holds), and holds the slot for the call.
        Raises ProviderPaused when a refusal guard holds the provider back for long (the caller waits
        it out and tries again), TransientProviderError when the shared store stays unreachable."""
        ...


# The name the job runner knows the pacer by (it began as a pure concurrency limit).
ConcurrencyLimiter = Pacer


class JobDispatcher(Protocol):
    async def dispatch(self, job: Job) -> str:
        """Hand the job to whatever runs jobs; returns its task id."""
        ...

    async def ping(self) -> None:
        """Raise BrokerUnavailable when jobs could not be handed over now (readiness)."""
        ...

    async def holds(self, task_ids: Collection[str]) -> set[str]:
        """Which of these task ids still have a message waiting or being run (not yet acknowledged);
        a task id missing from the answer lost its message. BrokerUnavailable when it cannot tell."""
        ...

    async def join(self) -> None:
        """Wait for the jobs this process runs itself (embedded mode); returns at once otherwise."""
        ...

    async def aclose(self) -> None:
        """Stop: embedded jobs are cancelled (they stay `running` and resume later), connections close."""
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
