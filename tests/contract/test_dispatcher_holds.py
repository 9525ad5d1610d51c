"""JobDispatcher.holds: whether a dispatched job's message still exists (waiting, delayed, or being run and
not yet acknowledged), on real Redis through Dramatiq and in process. The stale-job sweep relies on it to
tell a job that waits its turn from one whose message was lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import redis

from tam.adapters.dramatiq_dispatch import DramatiqJobDispatcher, build_redis_broker
from tam.adapters.inprocess_dispatch import InProcessJobDispatcher
from tam.domain.model import BrokerUnavailable, Job, JobType
from tam.domain.services.dispatch import AttemptEnd, AttemptResult


def a_job() -> Job:
    return Job(project_id=uuid4(), job_type=JobType.QUALIFY, task_id=uuid.uuid4().hex)


@pytest.fixture
async def dispatcher(redis_server_url: str) -> AsyncIterator[DramatiqJobDispatcher]:
    queue = f"tam-holds-{uuid.uuid4().hex[:8]}"  # a queue of its own: other tests share the database
    broker = build_redis_broker(redis_server_url)
    dispatcher = DramatiqJobDispatcher(broker, queue)
    try:
        yield dispatcher
    finally:
        broker.flush(queue)
        await dispatcher.aclose()


async def test_a_queued_message_is_held_and_an_acknowledged_one_is_not(dispatcher: DramatiqJobDispatcher) -> None:
    waiting, running, done = a_job(), a_job(), a_job()
    for job in (waiting, running, done):
        await dispatcher.dispatch(job)
    never = uuid.uuid4().hex
    everything = {j.task_id for j in (waiting, running, done) if j.task_id} | {never}
    assert await dispatcher.holds(everything) == everything - {never}

    # a worker takes every message: it acks one, still runs another (delivered, not acknowledged), and
    # puts the third back (as a worker does with what it prefetched when it stops)
    consumer = dispatcher._broker.consume(dispatcher._queue, prefetch=3, timeout=1000)
    try:
        taken = {}
        deadline = asyncio.get_running_loop().time() + 10
        while len(taken) < 3 and asyncio.get_running_loop().time() < deadline:
            message = next(consumer)
            if message is not None:
                taken[message.message_id] = message
        consumer.ack(taken[done.task_id])
        consumer.requeue([taken[waiting.task_id]])
        assert await dispatcher.holds(everything) == {waiting.task_id, running.task_id}
    finally:
        consumer.close()


async def test_a_delayed_message_is_held(dispatcher: DramatiqJobDispatcher) -> None:
    import dramatiq

    job = a_job()
    message: dramatiq.Message[None] = dramatiq.Message(
        queue_name=dispatcher._queue, actor_name="tam_qualify_companies", args=(str(job.id),), kwargs={},
        options={}, message_id=job.task_id,
    )  # fmt: skip
    dispatcher._broker.enqueue(message, delay=60_000)  # a retry waiting its backoff
    assert job.task_id is not None
    assert await dispatcher.holds([job.task_id]) == {job.task_id}


async def test_holds_without_redis_is_a_broker_outage() -> None:
    unreachable = DramatiqJobDispatcher(build_redis_broker("redis://127.0.0.1:1/0"))
    with pytest.raises(BrokerUnavailable, match="REDIS_URL"):
        await unreachable.holds(["t"])
    with pytest.raises(redis.RedisError):
        unreachable._broker.client.ping()


async def test_in_process_a_task_is_held_until_its_attempt_returns() -> None:
    release = asyncio.Event()

    async def attempt(job_id: object, limit: float | None, task_id: str | None) -> AttemptResult:
        await release.wait()
        return AttemptResult(AttemptEnd.FINISHED, None)

    dispatcher = InProcessJobDispatcher(attempt, lambda job_type: 60.0)
    job = a_job()
    assert job.task_id is not None
    await dispatcher.dispatch(job)
    assert await dispatcher.holds([job.task_id, "other"]) == {job.task_id}
    release.set()
    await dispatcher.join()
    assert await dispatcher.holds([job.task_id]) == set()
    # a new process (after a restart) holds nothing it did not dispatch itself
    assert await InProcessJobDispatcher(attempt, lambda job_type: 60.0).holds([job.task_id]) == set()
