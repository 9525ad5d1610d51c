"""LocalLimiter: the pacer's state in this process (RedisLimiter keeps the same state in Redis).

The rules are those of tam.adapters.pacer; the Lua script of tam.adapters.redis_limiter mirrors
`MemoryPacerState.admit` and `_apply` line for line. Time is the event loop's, so tests fast-forward it.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tam.adapters.pacer import (
    Ask,
    Decision,
    Pace,
    PacedSlots,
    Release,
    Status,
    effective_limits,
    gcra_start,
    minute_interval,
)


class AdaptiveCap:
    """The AIMD rule: halve the calls allowed in flight on a 429, at most once per burst (only a call
    started after the last cut cuts again); grow by 1/cap per answered call (about one slot per round
    of calls, like TCP); never below 1 nor above the configured capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.cap = float(capacity)
        self.cut_at = -math.inf

    def allowed(self) -> int:
        return max(1, min(self.capacity, int(self.cap)))

    def throttled(self, now: float, started: float) -> None:
        if started >= self.cut_at:
            self.cap = max(1.0, self.cap / 2)
            self.cut_at = now

    def answered(self) -> None:
        self.cap = min(float(self.capacity), self.cap + 1 / self.cap)


@dataclass
class _Provider:
    cap: AdaptiveCap
    leases: set[str] = field(default_factory=set)
    not_before: float = 0.0
    learned: bool = False
    seen_limits: list[float | None] = field(default_factory=lambda: [None, None, None])
    tat: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    refusals: deque[float] = field(default_factory=deque)


class MemoryPacerState:
    shared = False  # every caller of this process sees it at once: nothing to spare

    def __init__(
        self,
        *,
        adaptive: bool = True,
        pace: bool = True,
        burst: float = 1.0,
        ahead: float = 5.0,
        batch_window: float = 0.25,
    ) -> None:
        self._adaptive = adaptive  # False: a fixed number in flight (for comparisons)
        self._pace = pace  # False: no rate budgets, only calls in flight (the limiter before pacing)
        self._burst = burst  # seconds of budget a bucket holds
        self._ahead = ahead  # how far ahead a start may be reserved
        self._batch_window = batch_window  # calls admitted with the first start at most this much later
        self._providers: dict[str, _Provider] = {}

    def provider(self, name: str, budget: Pace) -> _Provider:
        state = self._providers.get(name)
        if state is None:
            state = self._providers[name] = _Provider(AdaptiveCap(budget.capacity))
        return state

    async def admit(
        self, provider: str, budget: Pace, asks: Sequence[Ask], releases: Sequence[Release]
    ) -> list[Decision]:
        now = asyncio.get_running_loop().time()
        p = self.provider(provider, budget)
        self._apply(p, budget, releases, now)
        if now < p.not_before:
            return [Decision(Status.PAUSED, p.not_before - now)]
        allowed = p.cap.allowed() if self._adaptive else budget.capacity
        if budget.learns and not p.learned and self._pace:
            allowed = 1  # one probe call until the vendor's headers tell its limits
        if budget.guard is not None:
            most, window = budget.guard
            while p.refusals and p.refusals[0] <= now - window:
                p.refusals.popleft()
            if len(p.refusals) >= most:
                return [Decision(Status.GUARDED, p.refusals[len(p.refusals) - most] + window - now)]
            allowed = min(allowed, most - len(p.refusals))  # a call in flight may be one more refusal
        limits = effective_limits(budget, p.seen_limits) if self._pace else [None, None, None]
        out: list[Decision] = []
        first = now
        for k, (token, cost) in enumerate(asks):
            if len(p.leases) >= allowed:
                if k == 0:
                    return [Decision(Status.FULL)]  # every lease is this process's: no others
                break
            start = now
            costs = (cost.requests, cost.input_tokens, cost.output_tokens)
            for i, limit in enumerate(limits):
                interval = minute_interval(limit)
                if interval is not None and costs[i] > 0:
                    start = max(start, gcra_start(p.tat[i], now, costs[i], interval, self._burst))
            if k == 0 and start - now > self._ahead:
                return [Decision(Status.AHEAD, start - now - self._ahead)]
            if start - now > self._ahead or (k >= 2 and start > first + self._batch_window):
                break
            charged = 0
            for i, limit in enumerate(limits):
                interval = minute_interval(limit)
                if interval is not None:
                    p.tat[i] = max(p.tat[i], start) + costs[i] * interval
                    charged |= 1 << i
            p.leases.add(token)
            first = start if k == 0 else first
            out.append(Decision(Status.ADMITTED, start - now, now, charged))
        return out

    async def release(self, provider: str, budget: Pace, releases: Sequence[Release]) -> int:
        self.release_now(provider, budget, releases)
        return 0

    def release_now(self, provider: str, budget: Pace, releases: Sequence[Release]) -> bool:
        self._apply(self.provider(provider, budget), budget, releases, asyncio.get_running_loop().time())
        return True

    def _apply(self, p: _Provider, budget: Pace, releases: Sequence[Release], now: float) -> None:
        for r in releases:
            if not r.kept:
                p.leases.discard(r.token)
            if r.throttled:
                if self._adaptive:
                    p.cap.throttled(now, r.started)
                p.not_before = max(p.not_before, now + r.retry_after)
                if budget.guard is not None:
                    p.refusals.append(now)
                continue
            if not r.answered:
                continue
            p.learned = True
            if self._adaptive:
                p.cap.answered()
            for i, seen in enumerate(r.limits.values()):
                if seen is not None and seen > 0:
                    p.seen_limits[i] = seen
            limits = effective_limits(budget, p.seen_limits)
            corrections = (r.correction.requests, r.correction.input_tokens, r.correction.output_tokens)
            spent = (r.spent.requests, r.spent.input_tokens, r.spent.output_tokens)
            for i, limit in enumerate(limits):
                interval = minute_interval(limit)
                if interval is None:
                    continue
                if r.charged & (1 << i):  # spent more than estimated: later; less: sooner
                    p.tat[i] += corrections[i] * interval
                else:  # admitted before this limit was known (the probe): it counts whole
                    p.tat[i] = max(p.tat[i], now) + spent[i] * interval
                left = r.remaining.values()[i]
                if left is not None:  # the vendor says less is left than we think: believe it
                    p.tat[i] = max(p.tat[i], now + self._burst - left * interval)

    def allowed(self, provider: str, budget: Pace) -> int:
        return self.provider(provider, budget).cap.allowed()

    def paused_for(self, provider: str, budget: Pace) -> float:
        return max(0.0, self.provider(provider, budget).not_before - asyncio.get_running_loop().time())

    def in_use(self, provider: str, budget: Pace) -> int:
        return len(self.provider(provider, budget).leases)

    async def aclose(self) -> None:
        pass


class LocalLimiter(PacedSlots):
    """The pacer within this process only (no REDIS_URL)."""

    def __init__(
        self,
        budgets: Mapping[str, Pace | int],
        default: int = 1,
        *,
        adaptive: bool = True,
        pace: bool = True,
        burst: float = 1.0,
    ) -> None:
        self.memory = MemoryPacerState(adaptive=adaptive, pace=pace, burst=burst)
        super().__init__(self.memory, as_budgets(budgets), Pace(default))

    def allowed(self, provider: str) -> int:
        """Calls allowed in flight right now (the capacity, or less under rate-limit pressure)."""
        return self.memory.allowed(provider, self.budget(provider))

    def paused_for(self, provider: str) -> float:
        return self.memory.paused_for(provider, self.budget(provider))

    def in_use(self, provider: str) -> int:
        return self.memory.in_use(provider, self.budget(provider))


def as_budgets(budgets: Mapping[str, Pace | int]) -> dict[str, Pace]:
    """A plain number is a capacity with no rate budget (tests, simple setups)."""
    return {k: v if isinstance(v, Pace) else Pace(v) for k, v in budgets.items()}
