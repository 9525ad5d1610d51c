"""The pacer on virtual time: rate budgets (requests, input and output tokens per minute) paced to the
limit without refusals, limits learned from the answers, a 429 slowing every worker sharing the
provider, Retry-After pausing them all, and the refusal guard that keeps Bright Data from blocking us."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from tam.adapters.memory import LocalLimiter, SystemClock
from tam.adapters.pacer import Pace
from tam.domain.model import (
    NO_SIGNAL,
    ONE_CALL,
    Cost,
    ProviderPaused,
    RateLimits,
    RateSignal,
    TransientProviderError,
)
from tam.domain.services.calls import ProviderCalls, RetryPolicy
from tam_fakes.ratelimit import AnthropicBudgets, RefusalBlock
from tests.unit.harness import now, run_virtual


@dataclass(frozen=True)
class Answer:
    rate: RateSignal = NO_SIGNAL


def test_a_throttle_halves_the_allowance_once_per_burst_and_answers_grow_it_back() -> None:
    async def main() -> list[int]:
        limiter = LocalLimiter({"p": 16})
        seen = [limiter.allowed("p")]

        async def throttled_call() -> None:
            async with limiter.slot("p") as admission:
                await asyncio.sleep(0.05)
                admission.throttled(None)

        # Eight calls refused together are one burst: one cut, not eight.
        await asyncio.gather(*(throttled_call() for _ in range(8)))
        seen.append(limiter.allowed("p"))
        await throttled_call()  # started after the cut: cuts again
        seen.append(limiter.allowed("p"))
        for _ in range(200):
            async with limiter.slot("p") as admission:
                admission.settle(NO_SIGNAL)
        seen.append(limiter.allowed("p"))
        return seen

    assert run_virtual(main) == [16, 8, 4, 16]


def test_retry_after_pauses_every_worker_sharing_the_provider() -> None:
    async def main() -> tuple[float, list[float]]:
        limiter = LocalLimiter({"p": 10})
        started = now()
        async with limiter.slot("p") as admission:
            admission.throttled(2.0)
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
        async with limiter.slot("p") as admission:
            admission.throttled(5.0)

        async def wait() -> None:
            async with limiter.slot("p"):
                await asyncio.sleep(60)

        task = asyncio.create_task(wait())
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(5)
        async with asyncio.timeout(1), limiter.slot("p"):
            return limiter.in_use("p")

    assert run_virtual(main) == 1


def test_without_adaptation_the_limit_stays_fixed() -> None:
    async def main() -> int:
        limiter = LocalLimiter({"p": 8}, adaptive=False)
        async with limiter.slot("p") as admission:
            admission.throttled(3.0)
        return limiter.allowed("p")

    assert run_virtual(main) == 8


class Provider:
    """A provider on virtual time with Anthropic's documented budgets: 429 with Retry-After when a
    request does not fit; answers carry the limits, what is left and the real usage."""

    def __init__(
        self, rpm: float = 0, itpm: float = 0, otpm: float = 0, latency: float = 0.05, burst: float | None = None
    ):
        self.budgets = AnthropicBudgets(rpm, itpm, otpm, burst_seconds=burst, clock=now)
        self.latency = latency
        self.limits = RateLimits(rpm or None, itpm or None, otpm or None)
        self.served = 0
        self.in_flight = self.peak = 0

    async def call(self, input_tokens: int = 0, max_tokens: int = 0, output_tokens: int = 0) -> Answer:
        wait = self.budgets.admit(input_tokens, max_tokens)
        if wait is not None:
            raise TransientProviderError("p", "429", retry_after=wait, throttled=True)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        self.budgets.settle(max_tokens, output_tokens)
        self.served += 1
        headers = self.budgets.headers()
        left = RateLimits(
            *(
                float(headers[f"anthropic-ratelimit-{k}-remaining"]) if limit else None
                for k, limit in zip(("requests", "input-tokens", "output-tokens"), self.limits.values(), strict=True)
            )
        )
        return Answer(RateSignal(self.limits, left, Cost(1, input_tokens, output_tokens)))


async def drive(calls: ProviderCalls, items: int, workers: int, one: object, cost: Cost = ONE_CALL) -> float:
    todo = list(range(items))
    started = now()

    async def worker() -> None:
        while todo:
            todo.pop()
            await calls.call("p", one, cost=cost)  # type: ignore[arg-type]

    await asyncio.gather(*(worker() for _ in range(workers)))
    return now() - started


def new_calls(limiter: LocalLimiter) -> ProviderCalls:
    return ProviderCalls(limiter, SystemClock(), RetryPolicy(), asyncio.Event(), random.Random(1))


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "learned"])
def test_a_request_budget_is_paced_to_the_limit_without_refusals(configured: bool) -> None:
    """600/min with a bucket of 100 at the vendor, 50 workers, 50 ms calls: the whole budget, no 429.
    Learned: one probe call, then the limit the headers announce."""

    async def main() -> tuple[Provider, float]:
        provider = Provider(rpm=600, burst=10)  # the vendor's bucket holds 10 s = 100 requests
        limits = RateLimits(requests=600) if configured else RateLimits()
        limiter = LocalLimiter({"p": Pace(50, limits, learns=not configured)})
        elapsed = await drive(new_calls(limiter), 1000, 50, provider.call)
        return provider, elapsed

    provider, elapsed = run_virtual(main)
    assert provider.served == 1000
    assert provider.budgets.refused == 0
    assert provider.served / elapsed * 60 >= 0.95 * 600


def test_tier_one_fifty_a_minute_with_slow_answers() -> None:
    async def main() -> tuple[Provider, float]:
        provider = Provider(rpm=50, latency=2.0)
        limiter = LocalLimiter({"p": Pace(10, learns=True)})
        elapsed = await drive(new_calls(limiter), 100, 10, provider.call)
        return provider, elapsed

    provider, elapsed = run_virtual(main)
    assert provider.served == 100
    assert provider.budgets.refused == 0  # the first minute's bucket is the vendor's, not ours to spend
    assert provider.served / elapsed * 60 >= 0.9 * 50


def test_an_input_token_budget_counts_only_uncached_tokens_and_is_corrected_after() -> None:
    """20,000 input tokens a minute, ~500 uncached tokens a call estimated as 800: the estimate holds
    each call back a little, the correction gives the rest back, so the run spends the whole budget."""

    async def main() -> tuple[Provider, float]:
        provider = Provider(itpm=20_000, otpm=8_000, latency=0.5, burst=6)
        limiter = LocalLimiter({"p": Pace(20, RateLimits(None, 20_000, 8_000))})
        calls = new_calls(limiter)
        rng = random.Random(3)

        async def one() -> Answer:
            return await provider.call(input_tokens=400 + rng.randrange(200), max_tokens=300, output_tokens=30)

        elapsed = await drive(calls, 200, 20, one, Cost(1, 800, 300))
        return provider, elapsed

    provider, elapsed = run_virtual(main)
    assert provider.budgets.refused <= 2
    assert provider.budgets.admitted_input / elapsed * 60 >= 0.9 * 20_000


def test_the_remaining_quota_in_the_headers_slows_us_when_someone_else_spends_the_budget() -> None:
    async def main() -> int:
        provider = Provider(rpm=60, latency=0.01, burst=10)
        provider.budgets.admit(0, 0)  # another client of the same account takes most of the bucket
        for _ in range(8):
            provider.budgets.admit(0, 0)
        limiter = LocalLimiter({"p": Pace(10, learns=True)})
        await drive(new_calls(limiter), 60, 10, provider.call)
        return provider.budgets.refused

    assert run_virtual(main) <= 1


def test_the_refusal_guard_pauses_the_provider_and_says_why() -> None:
    """A vendor that refuses more than 2 concurrent calls and blocks after 25 429s in 5 minutes: with
    the guard (10 per 5 min) every call ends answered and the block never comes."""

    async def main() -> tuple[RefusalBlock, int, list[str]]:
        block = RefusalBlock(clock=now)
        busy = 0
        served = 0
        notes: list[str] = []
        reason = "paused so that Bright Data does not block this IP"
        limiter = LocalLimiter({"p": Pace(5, guard=(10, 300.0), guard_reason=reason)})
        calls = new_calls(limiter)

        async def one() -> Answer:
            nonlocal busy, served
            assert not block.blocked
            if busy >= 2:
                block.refused()
                raise TransientProviderError("p", "429 too many running jobs", throttled=True)
            busy += 1
            await asyncio.sleep(20)
            busy -= 1
            served += 1
            if calls.note:
                notes.append(calls.note)
            return Answer()

        await drive(calls, 25, 5, one)
        return block, served, notes

    block, served, _notes = run_virtual(main)
    assert served == 25
    assert not block.blocked
    assert block.peak <= 10


def test_a_guard_pause_raises_with_its_reason() -> None:
    async def main() -> ProviderPaused:
        limiter = LocalLimiter({"p": Pace(3, guard=(2, 300.0), guard_reason="held back")})
        for _ in range(2):
            async with limiter.slot("p") as admission:
                admission.throttled(None)
        with pytest.raises(ProviderPaused) as paused:
            async with limiter.slot("p"):
                pass
        return paused.value

    paused = run_virtual(main)
    assert str(paused) == "held back"
    assert 299 < paused.wait <= 300


def test_a_pause_that_ends_a_hair_later_is_waited_out_not_spun_on() -> None:
    """Float rounding can leave a pause a few femtoseconds long; waiting must still move time on."""

    async def main() -> float:
        limiter = LocalLimiter({"p": 2})
        async with limiter.slot("p") as admission:
            admission.throttled(0.1 + 0.2)  # 0.30000000000000004
        started = now()
        async with asyncio.timeout(5), limiter.slot("p"):
            return now() - started

    assert 0.29 < run_virtual(main) < 1


def test_a_slot_given_back_starts_the_next_waiting_call_at_once() -> None:
    """Every slot taken by this process: the caller waiting for one starts the moment one comes back
    (here after 1 s), not when the longer call ends or a timer fires."""

    async def main() -> float:
        limiter = LocalLimiter({"p": 2})
        started: list[float] = []

        async def call(seconds: float) -> None:
            async with limiter.slot("p"):
                started.append(now())
                await asyncio.sleep(seconds)

        begin = now()
        await asyncio.gather(call(10), call(1), call(1))
        return started[-1] - begin

    assert 1 <= run_virtual(main) < 1.1
