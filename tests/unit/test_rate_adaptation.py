"""Rate-limit adaptation on virtual time: a 429 slows every worker sharing the provider, Retry-After
pauses them all, and the allowance grows back once the provider answers freely again."""

from __future__ import annotations

import asyncio
import random

from tam.adapters.memory import LocalLimiter, SystemClock
from tam.domain.model import Pressure, TransientProviderError
from tam.domain.services.calls import ProviderCalls, RetryPolicy
from tests.unit.harness import now, run_virtual


def test_a_throttle_halves_the_allowance_once_per_burst_and_success_grows_it_back() -> None:
    async def main() -> list[int]:
        limiter = LocalLimiter({"p": 16})
        seen = [limiter.allowed("p")]

        async def throttled_call() -> None:
            async with limiter.slot("p"):
                await asyncio.sleep(0.05)
            await limiter.report("p", Pressure.THROTTLED)

        # Eight calls refused together are one burst: one cut, not eight.
        await asyncio.gather(*(throttled_call() for _ in range(8)))
        seen.append(limiter.allowed("p"))
        await throttled_call()  # started after the cut: cuts again
        seen.append(limiter.allowed("p"))
        for _ in range(200):
            async with limiter.slot("p"):
                pass
            await limiter.report("p", Pressure.EASY)
        seen.append(limiter.allowed("p"))
        return seen

    assert run_virtual(main) == [16, 8, 4, 16]


def test_near_eases_off_but_never_below_one() -> None:
    async def main() -> int:
        limiter = LocalLimiter({"p": 4})
        for _ in range(100):
            async with limiter.slot("p"):
                pass
            await limiter.report("p", Pressure.NEAR)
        return limiter.allowed("p")

    assert run_virtual(main) == 1


def test_retry_after_pauses_every_worker_sharing_the_provider() -> None:
    async def main() -> tuple[float, list[float]]:
        limiter = LocalLimiter({"p": 10})
        async with limiter.slot("p"):
            pass
        started = now()
        await limiter.report("p", Pressure.THROTTLED, retry_after=2.0)
        starts: list[float] = []

        async def call() -> None:
            async with limiter.slot("p"):
                starts.append(now() - started)

        await asyncio.gather(*(call() for _ in range(5)))
        return limiter.allowed("p"), starts

    allowed, starts = run_virtual(main)
    assert allowed == 5
    assert len(starts) == 5
    assert all(s >= 2.0 for s in starts)


def test_a_waiter_cancelled_during_a_pause_leaves_no_slot_behind() -> None:
    async def main() -> int:
        limiter = LocalLimiter({"p": 1})
        async with limiter.slot("p"):
            pass
        await limiter.report("p", Pressure.THROTTLED, retry_after=5.0)

        async def wait() -> None:
            async with limiter.slot("p"):
                await asyncio.sleep(60)

        task = asyncio.create_task(wait())
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(5)
        async with asyncio.timeout(1), limiter.slot("p"):
            return 1

    assert run_virtual(main) == 1


def test_without_adaptation_the_limit_stays_fixed() -> None:
    async def main() -> int:
        limiter = LocalLimiter({"p": 8}, adaptive=False)
        async with limiter.slot("p"):
            pass
        await limiter.report("p", Pressure.THROTTLED, retry_after=3.0)
        return limiter.allowed("p")

    assert run_virtual(main) == 8


class RateLimitedProvider:
    """Admits `per_second` calls a second (token bucket, burst of one second); refuses the rest with a
    429 and the time until the next token as Retry-After."""

    def __init__(self, per_second: float, latency: float) -> None:
        self.rate = per_second
        self.latency = latency
        self.tokens = per_second
        self.stamp = 0.0
        self.served = self.refused = self.in_flight = self.peak = 0

    async def call(self) -> str:
        t = now()
        self.tokens = min(self.rate, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t
        if self.tokens < 1:
            self.refused += 1
            raise TransientProviderError("p", "429", retry_after=(1 - self.tokens) / self.rate, throttled=True)
        self.tokens -= 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        self.served += 1
        return "ok"


def test_workers_settle_near_the_provider_rate_with_few_refusals() -> None:
    """50 workers against 100 calls/s of 50 ms each: about 5 in flight are enough."""

    async def main() -> tuple[RateLimitedProvider, float]:
        provider = RateLimitedProvider(per_second=100, latency=0.05)
        limiter = LocalLimiter({"p": 50})
        calls = ProviderCalls(limiter, SystemClock(), RetryPolicy(), asyncio.Event(), random.Random(1))
        items = list(range(2000))

        async def worker() -> None:
            while items:
                items.pop()
                await calls.call("p", provider.call)

        started = now()
        await asyncio.gather(*(worker() for _ in range(50)))
        return provider, now() - started

    provider, elapsed = run_virtual(main)
    assert provider.served == 2000
    assert provider.served / elapsed >= 90  # >= 90% of the provider's rate
    assert provider.refused / (provider.served + provider.refused) <= 0.10
