"""ConcurrencyLimiter: LocalLimiter in one process, RedisLimiter across processes (real Redis)."""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tam.adapters.memory import LocalLimiter
from tam.adapters.pacer import Pace
from tam.adapters.redis_limiter import RedisLimiter
from tam.domain.model import NO_SIGNAL, Cost, ProviderPaused, RateLimits, RateSignal
from tam.ports.runtime import Pacer
from tam_fakes import FakeServer
from tests.contract.provider_fakes import KEY, company, live_adapter, project

CAPACITY = 3


@pytest.fixture
def prefix() -> str:
    return f"tamtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["local", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_server_url: str, prefix: str) -> AsyncIterator[Any]:
    if request.param == "local":
        yield LocalLimiter({"p": CAPACITY})
        return
    redis = RedisLimiter(redis_server_url, {"p": CAPACITY}, prefix=prefix, lease_ttl=2)
    yield redis
    await redis.aclose()


async def test_never_more_than_capacity_in_flight(limiter: Pacer) -> None:
    in_flight = peak = 0

    async def call() -> None:
        nonlocal in_flight, peak
        async with limiter.slot("p"):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1

    await asyncio.gather(*(call() for _ in range(20)))
    assert limiter.capacity("p") == CAPACITY
    assert peak == CAPACITY


async def test_a_cancelled_holder_frees_its_slot(limiter: Pacer) -> None:
    async def hold() -> None:
        async with limiter.slot("p"):
            await asyncio.sleep(60)

    holders = [asyncio.create_task(hold()) for _ in range(CAPACITY)]
    await asyncio.sleep(0.2)
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    async with asyncio.timeout(2):
        async with limiter.slot("p"):
            pass


async def test_leases_are_renewed_while_held(redis_server_url: str, prefix: str) -> None:
    limiter = RedisLimiter(redis_server_url, {"p": 1}, prefix=prefix, lease_ttl=1)
    try:
        async with limiter.slot("p"):
            await asyncio.sleep(2.5)  # past the TTL: only renewal keeps the lease
            assert await limiter.in_use("p") == 1
        assert await limiter.in_use("p") == 0
    finally:
        await limiter.aclose()


# --- across processes ------------------------------------------------------------------------


def _search_many(redis_url: str, prefix: str, fake_url: str, calls: int) -> None:
    async def main() -> None:
        limiter = RedisLimiter(redis_url, {"prospeo_search": CAPACITY}, prefix=prefix, lease_ttl=5)
        search = live_adapter("prospeo_search", fake_url)

        async def one(i: int) -> None:
            async with limiter.slot("prospeo_search"):
                await search.search(project(), company(f"company{i}.com"), 1)

        await asyncio.gather(*(one(i) for i in range(calls)))
        await search.aclose()
        await limiter.aclose()

    asyncio.run(main())


def _hold_and_hang(redis_url: str, prefix: str, ready: Any) -> None:
    async def main() -> None:
        limiter = RedisLimiter(redis_url, {"p": CAPACITY}, prefix=prefix, lease_ttl=2)
        async with limiter.slot("p"), limiter.slot("p"), limiter.slot("p"):
            ready.set()
            await asyncio.sleep(3600)

    asyncio.run(main())


@pytest.fixture(scope="module")
def slow_prospeo() -> Iterator[FakeServer]:
    with FakeServer("prospeo", api_key=KEY, latency=0.08, sigma=0.3) as server:
        yield server


@pytest.mark.slow
def test_the_limit_holds_across_two_processes(redis_server_url: str, prefix: str, slow_prospeo: FakeServer) -> None:
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_search_many, args=(redis_server_url, prefix, slow_prospeo.url, 15)) for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert len(slow_prospeo.state.calls("/search-person")) == 30
    assert slow_prospeo.state.peak_in_flight == CAPACITY  # reached, never exceeded


@pytest.mark.slow
async def test_slots_of_a_killed_process_free_within_the_lease_ttl(redis_server_url: str, prefix: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    holder = spawn.Process(target=_hold_and_hang, args=(redis_server_url, prefix, ready))
    holder.start()
    limiter = RedisLimiter(redis_server_url, {"p": CAPACITY}, prefix=prefix, lease_ttl=2)
    try:
        assert await asyncio.to_thread(ready.wait, 30)
        assert await limiter.in_use("p") == CAPACITY
        await asyncio.sleep(2.5)  # still renewed while the holder lives
        assert await limiter.in_use("p") == CAPACITY
        os.kill(holder.pid or 0, signal.SIGKILL)
        killed_at = time.monotonic()
        async with asyncio.timeout(30):
            async with limiter.slot("p"), limiter.slot("p"), limiter.slot("p"):
                freed_after = time.monotonic() - killed_at
        assert freed_after < 2 + 1.0  # one lease TTL plus polling slack
    finally:
        holder.join(timeout=5)
        await limiter.aclose()
    assert holder.exitcode == -signal.SIGKILL


async def test_a_throttle_slows_every_holder_and_retry_after_pauses_them(limiter: Any) -> None:
    """Rate-limit pressure is shared: after a 429 with Retry-After nobody starts a call before it
    ends, and the number allowed in flight is halved (in Redis: for every process)."""
    async with limiter.slot("p") as admission:
        admission.throttled(0.3)
    allowed = limiter.allowed("p")
    if inspect.isawaitable(allowed):
        allowed = await allowed
    assert allowed == max(1, CAPACITY // 2)
    started = time.monotonic()
    async with limiter.slot("p"):
        waited = time.monotonic() - started
    assert waited >= 0.25


async def test_redis_pressure_reaches_other_processes(redis_server_url: str, prefix: str) -> None:
    one = RedisLimiter(redis_server_url, {"p": 8}, prefix=prefix)
    other = RedisLimiter(redis_server_url, {"p": 8}, prefix=prefix)  # as if in another worker process
    try:
        async with one.slot("p") as admission:
            admission.throttled(0.4)
        await one.drain()  # the release (and its 429) reach Redis
        assert await other.allowed("p") == 4
        assert 0.2 < await other.paused_for("p") <= 0.4
        started = time.monotonic()
        async with other.slot("p"):
            assert time.monotonic() - started >= 0.2
        for _ in range(40):  # answers grow the shared allowance back
            async with other.slot("p") as admission:
                admission.settle(NO_SIGNAL)
        await other.drain()
        assert await one.allowed("p") == 8
    finally:
        await one.aclose()
        await other.aclose()


# --- rate budgets -----------------------------------------------------------------------------


def _pacers(kind: str, url: str, prefix: str, budget: Pace, count: int) -> list[Any]:
    if kind == "local":
        return [LocalLimiter({"p": budget})] * count
    return [RedisLimiter(url, {"p": budget}, prefix=prefix) for _ in range(count)]


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_a_request_budget_holds_across_every_pacer_sharing_it(
    kind: str, redis_server_url: str, prefix: str
) -> None:
    """600/min with one second of burst: two pacers (as if two processes) together start at most
    10 + 10·t calls within any t seconds."""
    pacers = _pacers(kind, redis_server_url, prefix, Pace(20, RateLimits(requests=600)), 2)
    starts: list[float] = []

    async def call(pacer: Any) -> None:
        async with pacer.slot("p") as admission:
            starts.append(time.monotonic())
            await asyncio.sleep(0.01)
            admission.settle(NO_SIGNAL)

    try:
        await asyncio.gather(*(call(pacers[i % 2]) for i in range(40)))
    finally:
        for pacer in set(pacers):
            await pacer.aclose()
    starts.sort()
    for i, first in enumerate(starts):
        within = [s for s in starts[i:] if s - first <= 1.0]
        assert len(within) <= 10 + 10 + 1  # the burst, one second of refill, one of timing slack
    assert starts[-1] - starts[0] >= 2.5  # 40 calls at 10/s after a burst of 10 take about 3 s


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_limits_learned_from_one_answer_pace_every_pacer(kind: str, redis_server_url: str, prefix: str) -> None:
    budget = Pace(10, learns=True)
    one, other = _pacers(kind, redis_server_url, prefix, budget, 2)
    try:
        async with one.slot("p") as admission:  # the probe: alone until the vendor has answered
            admission.settle(RateSignal(RateLimits(requests=120), spent=Cost(1)))
        starts = []
        for _ in range(6):
            async with other.slot("p") as admission:
                starts.append(time.monotonic())
                admission.settle(NO_SIGNAL)
        assert starts[-1] - starts[0] >= 1.5  # 2/s after a burst of 2
    finally:
        await one.aclose()
        if other is not one:
            await other.aclose()


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_the_refusal_guard_holds_across_pacers(kind: str, redis_server_url: str, prefix: str) -> None:
    budget = Pace(5, guard=(3, 300.0), guard_reason="held back: too many 429s")
    one, other = _pacers(kind, redis_server_url, prefix, budget, 2)
    try:
        for _ in range(3):
            async with one.slot("p") as admission:
                admission.throttled(None)
        with pytest.raises(ProviderPaused) as paused:
            async with other.slot("p"):
                pass
        assert "too many 429s" in str(paused.value)
        assert 290 < paused.value.wait <= 300
    finally:
        await one.aclose()
        if other is not one:
            await other.aclose()


@pytest.mark.parametrize("budget", [Pace(4), Pace(8, RateLimits(requests=1200))], ids=["slots", "rate"])
async def test_less_than_one_redis_command_per_admitted_call(redis_server_url: str, prefix: str, budget: Pace) -> None:
    """Counted at the client: every command the pacer sent (connection set-up, admissions, releases,
    renewals, the last flush). Busy workers give their slot back inside the next admission, and one
    admission decides the callers queued behind it too."""
    pacer = RedisLimiter(redis_server_url, {"p": budget}, prefix=prefix)
    admitted = 0

    async def worker() -> None:
        nonlocal admitted
        for _ in range(25):
            async with pacer.slot("p") as admission:
                admitted += 1
                await asyncio.sleep(0.005)
                admission.settle(NO_SIGNAL)

    try:
        await asyncio.gather(*(worker() for _ in range(budget.capacity)))
    finally:
        await pacer.aclose()  # sends what is still held: counted too
    assert admitted == pacer.admitted == 25 * budget.capacity
    assert pacer.redis.commands == sum(pacer.redis.by_command.values())
    assert pacer.redis.by_command["EVALSHA"] >= 1
    assert pacer.redis.commands < admitted


async def test_one_admission_decides_the_callers_queued_behind_it(redis_server_url: str, prefix: str) -> None:
    pacer = RedisLimiter(redis_server_url, {"p": 8}, prefix=prefix)
    in_flight = peak = 0

    async def call() -> None:
        nonlocal in_flight, peak
        async with pacer.slot("p"):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.2)
            in_flight -= 1

    try:
        await asyncio.gather(*(call() for _ in range(8)))
    finally:
        await pacer.aclose()
    assert peak == 8
    # the first caller asks alone (the others are not queued yet); the second asks for all 7 left
    assert pacer.round_trips <= 3  # two admissions and the last flush


async def test_a_waiter_behind_slots_of_its_own_process_waits_for_one_instead_of_polling(
    redis_server_url: str, prefix: str
) -> None:
    pacer = RedisLimiter(redis_server_url, {"p": 1}, prefix=prefix)

    async def call() -> None:
        async with pacer.slot("p"):
            await asyncio.sleep(1.0)

    try:
        started = time.monotonic()
        await asyncio.gather(call(), call())
        assert time.monotonic() - started < 2.5  # the second started as soon as the first was back
    finally:
        await pacer.aclose()
    # the holder's admission, the waiter's "full", its admission (carrying the release), the last flush;
    # polling every 20-250 ms would have asked about 8 times in that second
    assert pacer.round_trips <= 4


async def test_a_busy_provider_renews_its_held_leases_inside_admissions(redis_server_url: str, prefix: str) -> None:
    pacer = RedisLimiter(redis_server_url, {"p": 2}, prefix=prefix, lease_ttl=1)
    held_after_ttl = 0
    done = asyncio.Event()

    async def long_call() -> None:
        nonlocal held_after_ttl
        async with pacer.slot("p"):
            await asyncio.sleep(2.5)  # past the TTL: only renewal keeps the lease
            client = pacer.redis.client()
            held_after_ttl = await client.zcount(pacer.key("p"), f"({(await _redis_ms(client))}", "+inf")
        done.set()

    async def short_calls() -> None:
        await asyncio.sleep(0.05)
        while not done.is_set():
            async with pacer.slot("p"):
                await asyncio.sleep(0.03)

    try:
        await asyncio.gather(long_call(), short_calls())
    finally:
        await pacer.aclose()
    assert held_after_ttl >= 1
    assert pacer.redis.renewals == 0  # no renewal of its own: the admissions carried them


async def _redis_ms(client: Any) -> int:
    seconds, micros = await client.time()
    return int(seconds * 1000 + micros // 1000)


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_callers_cancelled_while_queued_or_decided_leave_no_slot_behind(
    kind: str, redis_server_url: str, prefix: str
) -> None:
    pacer: Any = LocalLimiter({"p": 2}) if kind == "local" else RedisLimiter(redis_server_url, {"p": 2}, prefix=prefix)

    async def call() -> None:
        async with pacer.slot("p"):
            await asyncio.sleep(0.05)

    try:
        for _ in range(5):
            tasks = [asyncio.create_task(call()) for _ in range(12)]
            await asyncio.sleep(0.01 * random.random())
            for task in tasks[1::3]:  # queued, decided by another caller's admission, or holding
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        in_use = pacer.in_use("p")
        assert (await in_use if inspect.isawaitable(in_use) else in_use) == 0
        async with asyncio.timeout(2), pacer.slot("p"), pacer.slot("p"):
            pass
    finally:
        await pacer.aclose()


async def test_slots_all_held_by_one_process_go_straight_to_its_waiters_yet_others_get_their_turn(
    redis_server_url: str, prefix: str
) -> None:
    """While the state says every slot is this process's (nobody else holds or waits for one), a slot
    given back goes to a caller of ours waiting for one, without a round trip. Another process that
    asks meanwhile is heard: it gets a slot, and the two never hold more than the capacity together."""
    busy = RedisLimiter(redis_server_url, {"p": 2}, prefix=prefix)
    other = RedisLimiter(redis_server_url, {"p": 2}, prefix=prefix)
    in_flight = peak = 0
    waited: list[float] = []

    async def call(pacer: RedisLimiter) -> None:
        nonlocal in_flight, peak
        async with pacer.slot("p") as admission:
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.03)
            in_flight -= 1
            admission.settle(NO_SIGNAL)

    async def worker() -> None:
        for _ in range(25):
            await call(busy)

    async def late_comer() -> None:
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await call(other)
        waited.append(time.monotonic() - started)

    try:
        await asyncio.gather(*(worker() for _ in range(6)))  # alone
        await busy.drain()
        alone = busy.redis.commands
        assert busy.admitted == 150
        assert alone < busy.admitted / 3
        await asyncio.gather(*(worker() for _ in range(6)), late_comer())  # with another process
    finally:
        await busy.aclose()
        await other.aclose()
    assert peak == 2
    assert waited and waited[0] < 2.0
