"""DramatiqJobDispatcher against a real Redis: every message arrives once with its task id, whatever the
concurrency; Redis away answers BrokerUnavailable for each waiting dispatch and the next one works once
it is back; the blocking enqueue runs off the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
import redis

from tam.adapters.dramatiq_dispatch import DramatiqJobDispatcher, build_redis_broker
from tam.domain.model import BrokerUnavailable, Job, JobType
from tests.support.tcp_proxy import TcpProxy


def a_job() -> Job:
    return Job(project_id=uuid4(), job_type=JobType.QUALIFY, task_id=uuid4().hex)


@pytest.fixture
def queue(redis_server_url: str) -> Iterator[str]:
    """A queue of this test's own; its keys are deleted after."""
    name = f"test-{uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_server_url)
    client.delete(f"dramatiq:{name}", f"dramatiq:{name}.msgs")
    client.close()


def stored_task_ids(url: str, queue: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(body)["message_id"] for body in client.hvals(f"dramatiq:{queue}.msgs")]
    finally:
        client.close()


async def test_concurrent_dispatches_each_store_one_message(redis_server_url: str, queue: str) -> None:
    dispatcher = DramatiqJobDispatcher(build_redis_broker(redis_server_url), queue=queue)
    try:
        jobs = [a_job() for _ in range(64)]
        sent = await asyncio.gather(*(dispatcher.dispatch(job) for job in jobs))
        assert sent == [job.task_id for job in jobs]
        assert sorted(stored_task_ids(redis_server_url, queue)) == sorted(sent)
        later = a_job()  # the sender starts again after a quiet moment
        assert await dispatcher.dispatch(later) == later.task_id
        assert later.task_id in stored_task_ids(redis_server_url, queue)
    finally:
        await dispatcher.aclose()


async def test_redis_away_refuses_every_waiting_dispatch_then_recovers(redis_server_url: str, queue: str) -> None:
    target = urlsplit(redis_server_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 6379))
    url = urlunsplit(target._replace(netloc=f"127.0.0.1:{proxy.port}"))
    dispatcher = DramatiqJobDispatcher(build_redis_broker(url), queue=queue)
    try:
        outcomes = await asyncio.gather(*(dispatcher.dispatch(a_job()) for _ in range(8)), return_exceptions=True)
        assert all(isinstance(o, BrokerUnavailable) and "REDIS_URL" in str(o) for o in outcomes), outcomes
        proxy.open()
        job = a_job()
        assert await dispatcher.dispatch(job) == job.task_id
        assert stored_task_ids(redis_server_url, queue) == [job.task_id]
    finally:
        await dispatcher.aclose()
        proxy.close()


class BlockingBroker:
    """A broker whose enqueue blocks its thread until released; records each call's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, parallel: int) -> None:
        self._loop = loop
        self._parallel = parallel
        self.all_threads_busy = asyncio.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        self.client = redis.Redis()  # closed by aclose, never connected

    def enqueue(self, message: object) -> None:
        self.threads.append(threading.current_thread().name)
        if len(self.threads) == self._parallel:
            self._loop.call_soon_threadsafe(self.all_threads_busy.set)
        assert self.release.wait(timeout=30), "never released"


async def test_the_blocking_enqueue_runs_on_threads_of_its_own_and_the_loop_goes_on() -> None:
    broker = BlockingBroker(asyncio.get_running_loop(), parallel=4)
    dispatcher = DramatiqJobDispatcher(broker)  # type: ignore[arg-type]
    try:
        dispatches = [asyncio.create_task(dispatcher.dispatch(a_job())) for _ in range(10)]
        # the loop runs while four enqueues block their threads; the other six wait for a free one
        await asyncio.wait_for(broker.all_threads_busy.wait(), timeout=30)
        await asyncio.sleep(0.05)
        assert len(broker.threads) == 4 and not any(d.done() for d in dispatches)
        broker.release.set()
        await asyncio.wait_for(asyncio.gather(*dispatches), timeout=30)
        assert len(broker.threads) == 10 and all(name.startswith("tam-enqueue") for name in broker.threads)
    finally:
        broker.release.set()
        await dispatcher.aclose()
