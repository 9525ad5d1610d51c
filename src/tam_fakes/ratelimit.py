"""Rate limits as the vendors document them, for the fakes (and for simulated providers in tests).

- `TokenBucket`: a per-minute budget refilled continuously, holding `burst` units. Anthropic:
  "the capacity is continuously replenished up to your maximum limit, rather than being reset at
  fixed intervals" (docs.anthropic.com/en/api/rate-limits), so by default the bucket holds a minute.
- `AnthropicBudgets`: requests, input tokens and output tokens per minute. Input tokens that count are
  uncached input plus cache writes: "cache_read_input_tokens do not count towards ITPM" on current
  models. Output tokens are "estimated based on max_tokens at the beginning of each request and
  adjusted at the end". Answers carry `anthropic-ratelimit-{requests,input-tokens,output-tokens}-
  {limit,remaining,reset}`; a 429 carries `retry-after` (seconds until the request would pass).
- `RefusalBlock`: Bright Data blocks an IP that got 25 or more 429s within 5 minutes, until support
  lifts it (docs.brightdata.com/products/scrapers/limits).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class TokenBucket:
    def __init__(self, per_minute: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.burst = burst if burst is not None else per_minute
        self._clock = clock
        self.level = self.burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.burst, self.level + (now - self._stamp) * self.per_minute / 60)
        self._stamp = now

    def wait_for(self, units: float) -> float:
        """Seconds until `units` fit (0: they fit now). A request larger than the whole bucket fits
        when it is full."""
        self._refill()
        need = min(units, self.burst)
        return 0.0 if self.level >= need else (need - self.level) * 60 / self.per_minute

    def take(self, units: float) -> None:
        self._refill()
        self.level -= units  # may go below zero: an underestimate is a debt paid by waiting

    def give(self, units: float) -> None:
        self._refill()
        self.level = min(self.burst, self.level + units)

    def remaining(self) -> int:
        self._refill()
        return max(0, math.floor(self.level))

    def full_at(self) -> float:
        """Seconds until the bucket is full again."""
        self._refill()
        return max(0.0, (self.burst - self.level) * 60 / self.per_minute)


class AnthropicBudgets:
    """RPM, ITPM and OTPM buckets (0 = not limited), checked together, atomically."""

    def __init__(
        self,
        rpm: float = 0,
        itpm: float = 0,
        otpm: float = 0,
        burst_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        def bucket(limit: float) -> TokenBucket | None:
            burst = limit * burst_seconds / 60 if burst_seconds is not None else None
            return TokenBucket(limit, burst, clock) if limit > 0 else None

        self._buckets = {"requests": bucket(rpm), "input-tokens": bucket(itpm), "output-tokens": bucket(otpm)}
        self._lock = threading.Lock()
        self.refused = 0
        self.admitted_input = 0  # uncached input tokens admitted (for benchmarks)
        self.admitted_requests = 0

    def admit(self, input_tokens: int, max_tokens: int) -> float | None:
        """None when the request fits every budget (and is charged); else seconds to wait."""
        wants = {"requests": 1, "input-tokens": input_tokens, "output-tokens": max_tokens}
        with self._lock:
            waits = [b.wait_for(wants[k]) for k, b in self._buckets.items() if b is not None]
            wait = max(waits, default=0.0)
            if wait > 0:
                self.refused += 1
                return wait
            for k, b in self._buckets.items():
                if b is not None:
                    b.take(wants[k])
            self.admitted_input += input_tokens
            self.admitted_requests += 1
            return None

    def settle(self, max_tokens: int, output_tokens: int) -> None:
        """The answer is done: output tokens reserved but not produced go back."""
        bucket = self._buckets["output-tokens"]
        if bucket is not None:
            with self._lock:
                bucket.give(max(0, max_tokens - output_tokens))

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        with self._lock:
            for kind, b in self._buckets.items():
                if b is None:
                    continue
                reset = datetime.now(UTC) + timedelta(seconds=b.full_at())
                out[f"anthropic-ratelimit-{kind}-limit"] = str(int(b.per_minute))
                out[f"anthropic-ratelimit-{kind}-remaining"] = str(b.remaining())
                out[f"anthropic-ratelimit-{kind}-reset"] = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    def limited(self) -> bool:
        return any(b is not None for b in self._buckets.values())


def anthropic_budgets(options: dict[str, object]) -> AnthropicBudgets | None:
    """The fake's token budgets from its options (`input_tpm`, `output_tpm`, `token_burst_seconds`)."""
    itpm = float(options.get("input_tpm", 0) or 0)  # type: ignore[arg-type]
    otpm = float(options.get("output_tpm", 0) or 0)  # type: ignore[arg-type]
    if not (itpm or otpm):
        return None
    burst = options.get("token_burst_seconds")
    return AnthropicBudgets(0, itpm, otpm, float(burst) if burst is not None else None)  # type: ignore[arg-type]


def charge_message(budgets: AnthropicBudgets | None, usage: dict[str, int], max_tokens: int) -> float | None:
    """Charges one answered message to the token budgets: None when it fits (output tokens reserved
    as `max_tokens`, then corrected to what was produced), else the seconds until it would."""
    if budgets is None:
        return None
    uncached = usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
    wait = budgets.admit(uncached, max_tokens)
    if wait is None:
        budgets.settle(max_tokens, usage.get("output_tokens", 0))
    return wait


class RefusalBlock:
    """Counts 429s in a rolling window; past `most` of them the caller is blocked for good."""

    def __init__(self, most: int = 25, window: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.most = most
        self.window = window
        self._clock = clock
        self._refusals: deque[float] = deque()
        self.blocked = False
        self.peak = 0  # the most 429s seen within one window
        self._lock = threading.Lock()

    def refused(self) -> None:
        with self._lock:
            now = self._clock()
            self._refusals.append(now)
            while self._refusals and self._refusals[0] <= now - self.window:
                self._refusals.popleft()
            self.peak = max(self.peak, len(self._refusals))
            if len(self._refusals) >= self.most:
                self.blocked = True
