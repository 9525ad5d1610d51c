"""Every pause between two tries of a provider call stays within the retry policy's caps."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tam.adapters.memory import LocalLimiter
from tam.domain.model import NO_SIGNAL, PermanentItemError, RateSignal, TransientProviderError
from tam.domain.services.calls import ProviderCalls, RetryPolicy


@dataclass(frozen=True)
class Reply:
    """A provider answer: a value and its rate signal."""

    text: str
    rate: RateSignal = NO_SIGNAL


class RecordingClock:
    """A clock whose sleeps return at once and are remembered, so a test sees every pause taken."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._t = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self._t += seconds
        await asyncio.sleep(0)


# None: a plain transient error (5xx, timeout); a number: a 429 with that Retry-After, possibly absurd.
retry_afters = st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=10_000)), min_size=1, max_size=15)


@settings(max_examples=200, deadline=None)
@given(
    answers=retry_afters,
    base=st.floats(min_value=0.01, max_value=5),
    cap=st.floats(min_value=0.1, max_value=40),
    retry_after_cap=st.floats(min_value=1, max_value=120),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_pause_stays_within_the_policy_caps(
    answers: list[float | None], base: float, cap: float, retry_after_cap: float, seed: int
) -> None:
    policy = RetryPolicy(
        max_attempts=len(answers) + 1,
        base_delay=base,
        max_delay=cap,
        max_retry_after=retry_after_cap,
        outage_after=10_000,
    )
    clock = RecordingClock()
    calls = ProviderCalls(LocalLimiter({}), clock, policy, asyncio.Event(), rng=random.Random(seed))
    pending = list(answers)

    async def flaky() -> Reply:
        if pending:
            retry_after = pending.pop(0)
            # not `throttled`: that would also pause the limiter on the real event-loop clock
            raise TransientProviderError("claude", "busy", retry_after=retry_after)
        return Reply("answer")

    assert asyncio.run(calls.call("claude", flaky)).text == "answer"

    assert len(clock.pauses) == len(answers)  # one pause before every retry, none after the answer
    for retry_after, pause in zip(answers, clock.pauses, strict=True):
        assert pause >= 0
        if retry_after is None:
            assert pause <= policy.max_delay
        else:  # the vendor's Retry-After is honoured, up to the cap
            assert pause == min(retry_after, policy.max_retry_after)


def test_a_long_streak_of_failures_pauses_at_most_max_delay_and_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=12, base_delay=0.5, max_delay=3.0, outage_after=10_000)
    clock = RecordingClock()
    calls = ProviderCalls(LocalLimiter({}), clock, policy, asyncio.Event(), rng=random.Random(1))

    async def always_down() -> Reply:
        raise TransientProviderError("prospeo", "503 Service Unavailable")

    with pytest.raises(PermanentItemError, match="gave up after 12 attempts"):
        asyncio.run(calls.call("prospeo", always_down))
    assert len(clock.pauses) == 11
    assert max(clock.pauses) <= 3.0
    assert max(clock.pauses) >= 1.5  # the backoff does grow up to the cap (jitter keeps it above half)
