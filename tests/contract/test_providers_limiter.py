"""ConcurrencyLimiter: LocalLimiter in one process, RedisLimiter across processes (real Redis)."""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tam.adapters.memory import LocalLimiter
from tam.adapters.redis_limiter import RedisLimiter
from tam.domain.model import Pressure
from tam.ports.runtime import ConcurrencyLimiter
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


async def test_never_more_than_capacity_in_flight(limiter: ConcurrencyLimiter) -> None:
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


async def test_a_cancelled_holder_frees_its_slot(limiter: ConcurrencyLimiter) -> None:
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
    async with limiter.slot("p"):
        pass
    await limiter.report("p", Pressure.THROTTLED, retry_after=0.3)
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
        async with one.slot("p"):
            pass
        await one.report("p", Pressure.THROTTLED, retry_after=0.4)
        assert await other.allowed("p") == 4
        assert 0.2 < await other.paused_for("p") <= 0.4
        started = time.monotonic()
        async with other.slot("p"):
            assert time.monotonic() - started >= 0.2
        for _ in range(40):  # answers without pressure grow the shared allowance back
            async with other.slot("p"):
                pass
            await other.report("p", Pressure.EASY)
        assert await one.allowed("p") == 8
    finally:
        await one.aclose()
        await other.aclose()
