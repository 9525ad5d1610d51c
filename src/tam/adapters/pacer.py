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
per round trip, tam.adapters.redis_limiter). This module is the part both share: within a process, one
caller per provider at a time asks the state (FIFO), so waiting callers never poll it in a herd; that
caller asks for the callers queued behind it too (one round trip admits every call that may start
within a short window: a batch), and the slots given back and what the answers taught (limits,
remaining quota, real token use) travel with the next admission. A caller that finds every slot taken
by this process waits for one of them to come back instead of asking again. So a busy provider costs
less than one round trip per admitted call.
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
from dataclasses import dataclass, field, replace
from typing import Protocol

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

# Bright Data blocks an IP that gets 25 or more 429s within 5 minutes, until support lifts it
# (docs.brightdata.com/products/scrapers/limits): the pacer stops well before, across every worker.
REFUSAL_GUARD = (10, 300.0)
GUARD_REASON = (
    "Bright Data answered {most} 429s (too many requests) within {minutes:g} minutes; calls to it are paused "
    "so that it does not block this IP (it blocks at 25)"
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
    kept: bool = False  # the lease went on to a waiting call of this process: apply what it taught, keep it


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
    others: int = 0  # FULL: slots held by other processes (0: only ours come back, no need to poll)


Ask = tuple[str, Cost]  # a call asking for a slot: its token and what it will spend


class StateUnreachable(Exception):
    """The shared state (Redis) did not answer."""


class PacerState(Protocol):
    shared: bool  # the state lives elsewhere (Redis): telling it costs a round trip

    async def admit(
        self, provider: str, budget: Pace, asks: Sequence[Ask], releases: Sequence[Release]
    ) -> list[Decision]:
        """Applies `releases`, then decides `asks` in order, atomically: the first one's decision (any
        status), then ADMITTED decisions for those after it that every budget also admits and that may
        start within the state's batch window of the first (at least the second one); the rest stay
        undecided."""
        ...

    async def release(self, provider: str, budget: Pace, releases: Sequence[Release]) -> int:
        """Applies `releases`; returns how many other processes hold or wait for this provider's slots."""
        ...

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


@dataclass(eq=False)
class _Ask:
    """One caller waiting for a slot; the caller asking the state may decide it for them."""

    token: str
    cost: Cost
    decision: Decision | None = None  # ADMITTED, with `start` its loop time
    start: float = 0.0
    error: BaseException | None = None  # the provider is paused (guard) or the state unreachable
    gone: bool = False  # its caller left (cancelled): an admission made for it is given back


@dataclass
class _Lane:
    """One provider's callers in this process."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[Release] = field(default_factory=list)
    asks: list[_Ask] = field(default_factory=list)  # callers not yet decided, in arrival order
    in_flight: int = 0  # slots this process holds
    flush: asyncio.Task[None] | None = None
    all_ours_at: float | None = None  # loop time the state last said every slot was this process's
    asking: bool = False  # a round trip is under way (its callers are not handed slots meanwhile)
    clock_offset: float = 0.0  # the state's clock minus the loop's (ms), as of the last round trip


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
        batch: int = 16,
        local_wait: float = 5.0,
        handoff_for: float = 2.0,
    ) -> None:
        self._state = state
        self._budgets = dict(budgets)
        self._default = default
        self._lead = lead  # the next caller asks for its reservation this long before ours starts
        self._poll_min, self._poll_max = poll
        self._flush_delay = flush_delay
        self._max_hold = max_hold
        self._unavailable_after = unavailable_after
        self._batch = max(1, batch)  # most calls one round trip asks for
        self._local_wait = local_wait  # longest wait for a slot of ours before asking again anyway
        self._handoff_for = handoff_for  # how long "every slot is ours" lets slots go straight to our waiters
        self._lanes: dict[str, _Lane] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.round_trips = 0  # calls to the state (admissions, flushed releases)
        self.admitted = 0  # calls admitted

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
        ask = _Ask(uuid.uuid4().hex, cost)
        admission = _Admission(cost)
        lane.asks.append(ask)
        try:
            async with lane.turn:
                if ask.decision is None and ask.error is None:  # nobody asked for us: ask, for us and those behind
                    await self._admit(lane, provider, ask)
                if ask.error is not None:
                    raise ask.error
                # Keep the turn until just before our start, so the next reservation follows ours
                # instead of piling up far ahead while holding slots.
                if ask.start - self._lead > loop.time():
                    await asyncio.sleep(ask.start - self._lead - loop.time())
            if ask.start > loop.time():  # no await when the call may start now: the window stays full
                await asyncio.sleep(ask.start - loop.time())
            yield admission
        finally:
            ask.gone = True
            with contextlib.suppress(ValueError):
                lane.asks.remove(ask)
            if (decided := ask.decision) is not None:
                self._give_back(lane, provider, admission.release(ask.token, decided.started, decided.charged))

    async def _admit(self, lane: _Lane, provider: str, ask: _Ask) -> None:
        """Asks the state until `ask` is decided, deciding the callers queued behind it on the way."""
        budget = self.budget(provider)
        pause = self._poll_min
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            if ask.decision is not None:  # a slot of ours was handed straight to us while we waited
                return
            if (left := self._all_ours_for(lane)) > 0:  # no need to ask: wait for one of ours
                lane.released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.released.wait(), left)
                continue
            batch = [ask, *(a for a in lane.asks if a is not ask and a.decision is None and a.error is None)]
            batch = batch[: self._batch]
            releases, lane.pending = lane.pending, []
            lane.released.clear()
            call = self._state.admit(provider, budget, [(a.token, a.cost) for a in batch], releases)
            # A shared state's round trip runs as a task of its own, so that a cancelled caller can still
            # see what it decided; the in-memory state decides without suspending (and at once).
            trip = asyncio.ensure_future(call) if self._state.shared else None
            try:
                self.round_trips += 1
                lane.asking = True
                decisions = await (asyncio.shield(trip) if trip is not None else call)
                failing_since = None
            except asyncio.CancelledError:
                # The round trip may already have granted leases (ours and those behind us): finish it
                # while we still hold the turn, record what it decided (our own lease then goes back in
                # `slot`), then stop. Dropping it would leave those leases held until their TTL.
                lane.pending[:0] = releases  # perhaps not applied: applying them twice is harmless
                if trip is not None:
                    with contextlib.suppress(Exception):
                        self._record(lane, provider, batch, await trip, loop.time())
                self._flush_soon(lane, provider, self._flush_delay)  # nobody else may carry them
                raise
            except StateUnreachable as exc:
                lane.pending[:0] = releases  # not applied: they travel with the next try
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since >= self._unavailable_after:
                    # weather, not a provider error: the job pauses (no call starts) until Redis is back
                    for a in batch:
                        a.error = BrokerUnavailable(f"rate limiter unreachable (Redis): {exc}")
                    self._forget(lane, batch)
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, self._poll_max)
                continue
            finally:
                lane.asking = False
            self._record(lane, provider, batch, decisions, loop.time())
            first = decisions[0]
            if first.status is Status.ADMITTED:
                return
            if first.status is Status.GUARDED:  # holds every caller: they all hear it now
                for a in batch:
                    a.error = ProviderPaused(provider, budget.guard_reason or f"{provider} is paused", wait=first.wait)
                self._forget(lane, batch)
                return
            if first.status in (Status.PAUSED, Status.AHEAD):
                # At least a millisecond: a wait rounded to nothing would ask again without time moving.
                await asyncio.sleep(max(first.wait, 0.001))
                pause = self._poll_min
                continue
            # Every slot taken. When this process holds them all, one comes back here: wait for it (a
            # release wakes us at once). Slots held elsewhere are noticed by polling (only this caller
            # polls: the others wait for the turn).
            if lane.in_flight > 0 and first.others == 0:
                wait = self._local_wait
            else:
                wait, pause = pause, min(pause * 1.5, self._poll_max)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.released.wait(), wait)

    def _record(
        self, lane: _Lane, provider: str, batch: Sequence[_Ask], decisions: Sequence[Decision], now: float
    ) -> None:
        """What one admission round trip decided for the callers it asked for."""
        first = decisions[0]
        if first.started:
            lane.clock_offset = first.started - now * 1000
        all_ours = self._state.shared and first.status is Status.FULL and first.others == 0
        lane.all_ours_at = now if all_ours else None
        for a, decision in zip(batch, decisions, strict=False):
            if decision.status is Status.ADMITTED:
                self.admitted += 1
                lane.in_flight += 1
                a.decision, a.start = decision, now + decision.wait
                self._forget(lane, [a])
                if a.gone:  # left while we asked: the slot goes straight back
                    self._give_back(lane, provider, Release(a.token, decision.started, charged=decision.charged))

    @staticmethod
    def _forget(lane: _Lane, decided: Sequence[_Ask]) -> None:
        for a in decided:
            with contextlib.suppress(ValueError):
                lane.asks.remove(a)

    def _give_back(self, lane: _Lane, provider: str, release: Release) -> None:
        lane.in_flight -= 1
        if self._state.release_now(provider, self.budget(provider), [release]):
            lane.released.set()
            return
        if release.throttled:
            lane.all_ours_at = None  # pressure: every call asks the state again
        elif (waiter := self._handoff_to(lane, release)) is not None:
            # The lease goes on to a caller of ours waiting behind slots that are all ours: no round
            # trip. What the answer taught travels with the next one; the lease stays.
            loop = asyncio.get_running_loop()
            started = loop.time() * 1000 + lane.clock_offset
            waiter.token = release.token
            waiter.decision, waiter.start = Decision(Status.ADMITTED, 0.0, started), loop.time()
            self._forget(lane, [waiter])
            self.admitted += 1
            lane.in_flight += 1
            release = replace(release, kept=True)
        lane.pending.append(release)
        lane.released.set()
        self._flush_soon(lane, provider, 0.0 if release.throttled else self._flush_delay)  # a 429 at once

    def _flush_soon(self, lane: _Lane, provider: str, delay: float) -> None:
        if lane.pending and (lane.flush is None or lane.flush.done()):
            lane.flush = asyncio.get_running_loop().create_task(self._flush(lane, provider, delay))

    def _all_ours_for(self, lane: _Lane) -> float:
        """Seconds during which a caller may wait for a slot of ours without asking the state: the
        state said lately that every slot is ours, we still hold some, and nothing we gave back is
        waiting to reach it (a slot given back for good, or a 429, must be told first)."""
        if lane.all_ours_at is None or lane.in_flight <= 0 or not all(r.kept for r in lane.pending):
            return 0.0
        return lane.all_ours_at + self._handoff_for - asyncio.get_running_loop().time()

    def _handoff_to(self, lane: _Lane, release: Release) -> _Ask | None:
        """The caller waiting for a slot that may take this one without asking the state: the state
        said lately that every slot is ours (so nobody else waits on this provider's slots, and no
        call of another process can be refused meanwhile), the call was answered and taught nothing
        (no limits, no rate budget charged: nothing to pace), and a caller of ours is waiting."""
        if lane.asking or lane.all_ours_at is None:
            return None
        if asyncio.get_running_loop().time() - lane.all_ours_at > self._handoff_for:
            return None
        if not release.answered or release.charged or release.limits != NO_LIMITS or release.remaining != NO_LIMITS:
            return None
        return next((a for a in lane.asks if a.decision is None and a.error is None and not a.gone), None)

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
            others = await asyncio.shield(self._state.release(provider, self.budget(provider), releases))
            if others:  # someone else waits: slots go back through the state from now on
                lane.all_ours_at = None
        except StateUnreachable as exc:
            log.warning("could not give %d %s slot(s) back: %s (their leases expire)", len(releases), provider, exc)

    async def drain(self) -> None:
        """Waits until every release was sent (tests, shutdown)."""
        for provider, lane in list(self._lanes.items()):
            self._flush_soon(lane, provider, 0.0)  # releases put back by a cancelled admission too
            while lane.flush is not None and not lane.flush.done():
                with contextlib.suppress(Exception):
                    await lane.flush
                self._flush_soon(lane, provider, 0.0)

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
