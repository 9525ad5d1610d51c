"""The pacer behind LocalLimiter (one process) and RedisLimiter (every process sharing a Redis).

A provider's call starts only when every budget allows it:
- calls in flight: at most the configured capacity, halved on a 429 (once per burst of refusals) and
  grown back by 1/cap per easy answer (AIMD, like TCP); one probe call first while the vendor's
  limits are still to be learned from its headers;
- per-minute rate budgets (requests; for Claude input and output tokens): one GCRA token bucket per
  budget with continuous refill, holding `burst` seconds of budget. An admission *reserves* its start
  time (the bucket's theoretical arrival time moves on by the call's cost), so a waiting call needs no
  second look at the shared state: it sleeps until its turn;
- a Retry-After pause that holds every caller back, and an optional refusal guard (at most N 429s per
  rolling window, counting calls in flight as possible refusals: Bright Data blocks an IP after 25).

Where that state lives is a `PacerState`: memory (tam.adapters.memory.pacer) or Redis (one Lua script
per admission, tam.adapters.redis_limiter). This module is the part both share: within a process, one
caller per provider at a time asks the state (FIFO), so waiting callers never poll it in a herd; the
slot's release and what the answer taught (limits, remaining quota, real token use) travel with the
next admission, so a busy provider costs one round trip per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from tam.adapters.brightdata import GUARD_REASON, REFUSAL_GUARD
from tam.domain.model import (
    NO_LIMITS,
    NO_SIGNAL,
    ONE_CALL,
    BrokerUnavailable,
    Cost,
    Provider,
    ProviderPaused,
    RateLimits,
    RateSignal,
)

log = logging.getLogger(__name__)

NO_COST = Cost(0, 0, 0)


@dataclass(frozen=True, slots=True)
class Pace:
    """How one provider is paced."""

    capacity: int
    limits: RateLimits = NO_LIMITS  # configured per-minute budgets (None: learned, or none)
    learns: bool = False  # the vendor announces its limits in headers: one probe call before the rest
    guard: tuple[int, float] | None = None  # at most this many 429s per window of this many seconds
    guard_reason: str = ""

    def with_capacity(self, capacity: int) -> Pace:
        return Pace(capacity, self.limits, self.learns, self.guard, self.guard_reason)


@dataclass(frozen=True, slots=True)
class Release:
    """A slot given back, with what its call taught."""

    token: str
    started: float  # the state's clock when the slot was taken (a 429 cuts only once per burst)
    answered: bool = False  # the vendor answered (not refused, not failed): the probe is done
    throttled: bool = False
    retry_after: float = 0.0
    correction: Cost = NO_COST  # what the call really spent minus what it was admitted with
    spent: Cost = NO_COST  # what it really spent: counted whole on a budget it was not charged to
    charged: int = 0  # bit i: budget i (requests, input, output) was charged at admission
    limits: RateLimits = NO_LIMITS
    remaining: RateLimits = NO_LIMITS


class Status(enum.IntEnum):
    ADMITTED = 1
    FULL = 0  # every slot is taken: wait for one to be given back
    PAUSED = -1  # a Retry-After pause holds every caller: wait `wait` s
    GUARDED = -2  # the refusal guard holds the provider for `wait` s
    AHEAD = -3  # the rate budgets would admit the call only after `wait` s more than we reserve ahead


@dataclass(frozen=True, slots=True)
class Decision:
    status: Status
    wait: float = 0.0  # ADMITTED: seconds until the reserved start; otherwise seconds to wait
    started: float = 0.0
    charged: int = 0  # ADMITTED: bit i set when budget i had a limit and was charged


class StateUnreachable(Exception):
    """The shared state (Redis) did not answer."""


class PacerState(Protocol):
    async def admit(self, provider: str, budget: Pace, token: str, cost: Cost, releases: Sequence[Release]) -> Decision:
        """Applies `releases`, then admits `token` if every budget allows `cost`. Atomic."""
        ...

    async def release(self, provider: str, budget: Pace, releases: Sequence[Release]) -> None: ...

    def release_now(self, provider: str, budget: Pace, releases: Sequence[Release]) -> bool:
        """Applies `releases` at once when that needs no I/O (memory); False: send them with `release`."""
        ...

    async def aclose(self) -> None: ...


def gcra_start(tat: float, now: float, cost: float, interval: float, tolerance: float) -> float:
    """When a call of `cost` units conforms to a bucket refilled one unit per `interval` s that holds
    `tolerance` s of budget (`tat`: when the bucket would be full again). A call bigger than the whole
    bucket waits until it is full, then goes (so it never waits forever)."""
    debt_after = max(tat, now) + cost * interval
    return max(now, debt_after - max(tolerance, cost * interval))


def effective_limits(budget: Pace, learned: Sequence[float | None]) -> list[float | None]:
    """The smaller of the configured and the learned per-minute limit of each budget."""
    out: list[float | None] = []
    for configured, seen in zip(budget.limits.values(), learned, strict=True):
        known = [v for v in (configured, seen) if v is not None and v > 0]
        out.append(min(known) if known else None)
    return out


@dataclass
class _Lane:
    """One provider's callers in this process."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[Release] = field(default_factory=list)
    flush: asyncio.Task[None] | None = None


class _Admission:
    def __init__(self, cost: Cost) -> None:
        self._cost = cost
        self._signal: RateSignal | None = None
        self._throttled = False
        self._retry_after = 0.0

    def settle(self, signal: RateSignal) -> None:
        self._signal = signal

    def throttled(self, retry_after: float | None) -> None:
        self._throttled = True
        self._retry_after = max(self._retry_after, retry_after or 0.0)

    def release(self, token: str, started: float, charged: int) -> Release:
        signal = self._signal or NO_SIGNAL
        spent = signal.spent
        return Release(
            token,
            started,
            spent=spent if spent is not None else NO_COST,
            charged=charged,
            answered=self._signal is not None,
            throttled=self._throttled,
            retry_after=self._retry_after,
            correction=(spent - self._cost) if spent is not None else NO_COST,
            limits=signal.limits,
            remaining=signal.remaining,
        )


class PacedSlots:
    """The Pacer port over a PacerState."""

    def __init__(
        self,
        state: PacerState,
        budgets: Mapping[str, Pace],
        default: Pace,
        *,
        lead: float = 0.02,
        poll: tuple[float, float] = (0.02, 0.25),
        flush_delay: float = 0.05,
        max_hold: float = 1.0,
        unavailable_after: float = 10.0,
    ) -> None:
        self._state = state
        self._budgets = dict(budgets)
        self._default = default
        self._lead = lead  # the next caller asks for its reservation this long before ours starts
        self._poll_min, self._poll_max = poll
        self._flush_delay = flush_delay
        self._max_hold = max_hold
        self._unavailable_after = unavailable_after
        self._lanes: dict[str, _Lane] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.round_trips = 0  # calls to the state (for the benchmark: one per admitted call)

    def budget(self, provider: str) -> Pace:
        return self._budgets.get(provider, self._default)

    def capacity(self, provider: str) -> int:
        return self.budget(provider).capacity

    def _lane(self, provider: str) -> _Lane:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # locks and events belong to one loop (tests run many)
            self._lanes, self._loop = {}, loop
        lane = self._lanes.get(provider)
        if lane is None:
            lane = self._lanes[provider] = _Lane()
        return lane

    @asynccontextmanager
    async def slot(self, provider: str, cost: Cost = ONE_CALL) -> AsyncIterator[_Admission]:
        lane = self._lane(provider)
        loop = asyncio.get_running_loop()
        token = uuid.uuid4().hex
        admission = _Admission(cost)
        async with lane.turn:
            decision = await self._admit(lane, provider, token, cost)
            start = loop.time() + decision.wait
            try:
                # Keep the turn until just before our start, so the next reservation follows ours
                # instead of piling up far ahead while holding slots.
                if start - self._lead > loop.time():
                    await asyncio.sleep(start - self._lead - loop.time())
            except BaseException:
                self._give_back(lane, provider, admission.release(token, decision.started, decision.charged))
                raise
        try:
            if start > loop.time():  # no await when the call may start now: the window stays full
                await asyncio.sleep(start - loop.time())
            yield admission
        finally:
            self._give_back(lane, provider, admission.release(token, decision.started, decision.charged))

    async def _admit(self, lane: _Lane, provider: str, token: str, cost: Cost) -> Decision:
        budget = self.budget(provider)
        pause = self._poll_min
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            releases, lane.pending = lane.pending, []
            lane.released.clear()
            try:
                self.round_trips += 1
                decision = await self._state.admit(provider, budget, token, cost, releases)
                failing_since = None
            except StateUnreachable as exc:
                lane.pending[:0] = releases  # not applied: they travel with the next try
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since >= self._unavailable_after:
                    # weather, not a provider error: the job pauses (no call starts) until Redis is back
                    raise BrokerUnavailable(f"rate limiter unreachable (Redis): {exc}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, self._poll_max)
                continue
            if decision.status is Status.ADMITTED:
                return decision
            if decision.status is Status.GUARDED:
                raise ProviderPaused(provider, budget.guard_reason or f"{provider} is paused", wait=decision.wait)
            if decision.status in (Status.PAUSED, Status.AHEAD):
                # At least a millisecond: a wait rounded to nothing would ask again without time moving.
                await asyncio.sleep(max(decision.wait, 0.001))
                pause = self._poll_min
                continue
            # Every slot taken: a slot given back in this process wakes us at once; one in another
            # process is noticed by polling (only this caller polls: the others wait for the turn).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.released.wait(), pause)
            pause = min(pause * 1.5, self._poll_max)

    def _give_back(self, lane: _Lane, provider: str, release: Release) -> None:
        if self._state.release_now(provider, self.budget(provider), [release]):
            lane.released.set()
            return
        lane.pending.append(release)
        lane.released.set()
        if lane.flush is None or lane.flush.done():
            delay = 0.0 if release.throttled else self._flush_delay  # a 429 must slow everyone at once
            lane.flush = asyncio.get_running_loop().create_task(self._flush(lane, provider, delay))

    async def _flush(self, lane: _Lane, provider: str, delay: float) -> None:
        """Sends the releases nobody carried after `delay`. While callers queue for the turn the next
        admission carries them (one round trip for both), so the flush waits for the lane to go idle,
        at most `max_hold` s: a slot given back reaches other processes that late at worst."""
        await asyncio.sleep(delay)
        held = delay
        while lane.pending and lane.turn.locked() and held < self._max_hold:
            await asyncio.sleep(self._flush_delay)
            held += self._flush_delay
        releases, lane.pending = lane.pending, []
        if not releases:
            return
        try:
            self.round_trips += 1
            await asyncio.shield(self._state.release(provider, self.budget(provider), releases))
        except StateUnreachable as exc:
            log.warning("could not give %d %s slot(s) back: %s (their leases expire)", len(releases), provider, exc)

    async def drain(self) -> None:
        """Waits until every release was sent (tests, shutdown)."""
        for lane in list(self._lanes.values()):
            if lane.flush is not None:
                with contextlib.suppress(Exception):
                    await lane.flush

    async def aclose(self) -> None:
        if self._loop is asyncio.get_running_loop():
            await self.drain()
        await self._state.aclose()


def minute_interval(limit: float | None) -> float | None:
    """Seconds per unit of a per-minute budget."""
    return None if limit is None or limit <= 0 or math.isinf(limit) else 60.0 / limit


def paces(concurrency: Callable[[Provider], int], rate_limits: Callable[[Provider], RateLimits]) -> dict[str, Pace]:
    """How each provider is paced: calls in flight and per-minute budgets (`Settings.concurrency` and
    `Settings.rate_limits`), whether its limits are learned from headers, its refusal guard."""
    out = {}
    for p in Provider:
        guard = REFUSAL_GUARD if p is Provider.BRIGHTDATA else None
        reason = GUARD_REASON.format(most=guard[0], minutes=guard[1] / 60) if guard else ""
        learns = p in (Provider.CLAUDE, Provider.PROSPEO_SEARCH, Provider.PROSPEO_ENRICH)  # limits in headers
        out[p.value] = Pace(concurrency(p), rate_limits(p), learns, guard, reason)
    return out
