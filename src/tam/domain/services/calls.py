"""One provider call admitted by the pacer, retried on transient errors, watched for outages."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from tam.domain.model import (
    NO_USAGE,
    ONE_CALL,
    Cost,
    PermanentItemError,
    ProviderOutage,
    ProviderPaused,
    TransientProviderError,
    Usage,
)
from tam.domain.services.budget import Budget
from tam.domain.services.weather import Weather
from tam.ports.providers import Answer
from tam.ports.runtime import CallObserver, CallOutcome, Clock, ConcurrencyLimiter, SilentCallObserver

A = TypeVar("A", bound=Answer)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    # An outage is this many transient failures in a row with no success for `outage_window` s.
    outage_after: int = 10
    outage_window: float = 20.0


class Stopped(Exception):
    """The job was cancelled or failed while this call waited; the item stays unfinished."""


class ProviderCalls:
    """Shared by every worker of one job run, so the outage streak spans the whole job. `gate`, if
    given, runs once a call is admitted and just before it starts; it raises Stopped to keep the call
    from being made. `weather`: the attempt's, for `stored`."""

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        clock: Clock,
        policy: RetryPolicy,
        stop: asyncio.Event,
        rng: random.Random | None = None,
        observer: CallObserver | None = None,
        budget: Budget | None = None,
        gate: Callable[[], Awaitable[None]] | None = None,
        weather: Weather | None = None,
    ) -> None:
        self._limiter = limiter
        self._gate = gate
        self._weather = weather
        self._clock = clock
        self._policy = policy
        self._stop = stop
        self._rng = rng or random.Random()
        self._observer = observer or SilentCallObserver()
        self._budget = budget
        self._streak: dict[str, int] = {}
        self._last_success: dict[str, float] = {}
        self._notes: dict[str, str] = {}
        self.transient_errors = 0

    async def call(
        self, provider: str, fn: Callable[[], Awaitable[A]], worst: Usage = NO_USAGE, *, cost: Cost = ONE_CALL
    ) -> A:
        """`fn()` once the pacer admits a call of `cost` (rate budgets), retried on transient errors;
        the answer's rate signal (and any 429) goes back to the pacer, so every worker sharing the
        provider adapts. `worst`: the most the call can use; with a budget it is held before the call
        starts (a call that does not fit raises BudgetReached) and settled at what the call used."""
        attempt = 0
        while True:
            if self._stop.is_set():
                raise Stopped
            attempt += 1
            try:
                result = await self._paid(provider, fn, worst, cost)
            except ProviderPaused as exc:  # no call was made: wait it out, and say why meanwhile
                attempt -= 1
                self._notes[provider] = str(exc)
                await self._pause(exc.wait)
                continue
            except TransientProviderError as exc:
                self._on_transient(provider, exc)
                if attempt >= self._policy.max_attempts:
                    raise PermanentItemError(provider, f"gave up after {attempt} attempts: {exc}") from exc
                self._observer.call_retried(provider)
                await self._pause(self._delay(attempt, exc.retry_after))
                continue
            self._notes.pop(provider, None)
            self._streak[provider] = 0
            self._last_success[provider] = self._clock.monotonic()
            return result

    async def _paid(self, provider: str, fn: Callable[[], Awaitable[A]], worst: Usage, cost: Cost) -> A:
        if self._budget is None:
            return await self._admitted(provider, fn, cost)
        held = await self._budget.reserve(worst)
        used = NO_USAGE
        try:
            result = await self._admitted(provider, fn, cost)
            used = result.usage
            return result
        except PermanentItemError as exc:  # paid calls that came to nothing still cost what they used
            used = exc.usage
            raise
        finally:
            await self._budget.settle(held, used)

    async def _admitted(self, provider: str, fn: Callable[[], Awaitable[A]], cost: Cost) -> A:
        async with self._limiter.slot(provider, cost) as admission:
            if self._gate is not None:  # the last word before paying (the runner: is the lease still ours?)
                await self._gate()
            with self._observed(provider):
                try:
                    result = await fn()
                except TransientProviderError as exc:
                    if exc.throttled:  # everyone sharing the provider slows down, not just this call
                        admission.throttled(exc.retry_after)
                    raise
            admission.settle(result.rate)
            return result

    async def stored(self, write: Callable[[], Awaitable[T]]) -> T:
        """Store what paid calls brought: a database outage is waited out with the answers held (the
        attempt's Weather: no new paid call starts meanwhile), never answered by asking again."""
        if self._weather is None:
            return await write()
        return await self._weather.run(write)

    @property
    def budgeted(self) -> bool:
        """A budget holds each call's worst case (`call`'s `worst`): without one it is not needed."""
        return self._budget is not None

    @property
    def note(self) -> str | None:
        """Why calls are being held back right now (for the job's message), if they are."""
        return "; ".join(self._notes.values()) or None

    @contextlib.contextmanager
    def _observed(self, provider: str) -> Iterator[None]:
        self._observer.call_started(provider)
        began = self._clock.monotonic()
        outcome: CallOutcome = "failed"
        try:
            yield
            outcome = "ok"
        except TransientProviderError as exc:
            outcome = "throttled" if exc.throttled else "transient"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._observer.call_finished(provider, self._clock.monotonic() - began, outcome)

    def _on_transient(self, provider: str, exc: TransientProviderError) -> None:
        self.transient_errors += 1
        now = self._clock.monotonic()
        self._last_success.setdefault(provider, now)
        streak = self._streak[provider] = self._streak.get(provider, 0) + 1
        quiet_for = now - self._last_success[provider]
        if streak >= self._policy.outage_after and quiet_for >= self._policy.outage_window:
            raise ProviderOutage(
                provider,
                f"{provider} looks unavailable: {streak} transient errors in a row over "
                f"{quiet_for:.0f} s (last: {exc})",
            ) from exc

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._policy.max_retry_after)
        ceiling = min(self._policy.max_delay, self._policy.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # jitter keeps workers apart

    async def _pause(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if self._stop.is_set():
            raise Stopped
