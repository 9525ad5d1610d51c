"""Dispatch over Dramatiq with Redis as broker: the API enqueues, `tam worker` processes."""

from __future__ import annotations

import asyncio

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from tam.domain.model import BrokerUnavailable, Job, JobType

QUEUE = "tam"

# The seed's Trigger.dev task names, in Python spelling; the worker declares one actor per name.
ACTOR_NAMES: dict[JobType, str] = {
    JobType.SOURCE_COMPANIES: "tam_source_companies",
    JobType.QUALIFY: "tam_qualify_companies",
    JobType.FIND_CONTACTS: "tam_find_contacts",
    JobType.CHECK_LINKEDIN: "tam_check_linkedin",
    JobType.REFINE_DISCOLIKE: "tam_refine_discolike",
}

# Dramatiq's defaults (60 s heartbeat timeout, maintenance on 0.1% of commands) leave the message of
# a SIGKILLed worker unacknowledged for many minutes. Every live worker heartbeats about once a
# second (its consumers poll Redis that often; the delay-queue one even when the worker is busy), so
# 15 s without one means the worker is gone (TAM_WORKER_HEARTBEAT_TIMEOUT), and maintenance on every
# command requeues its messages on the next poll of any live worker.
HEARTBEAT_TIMEOUT_MS = 15_000
MAINTENANCE_CHANCE = 1_000_000


def build_redis_broker(url: str, heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS) -> RedisBroker:
    """A broker without the actors; the worker adds middleware and declares them."""
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=url, heartbeat_timeout=heartbeat_timeout_ms, maintenance_chance=MAINTENANCE_CHANCE
    )


class DramatiqJobDispatcher:
    def __init__(self, broker: RedisBroker, queue: str = QUEUE) -> None:
        self._broker = broker
        self._queue = queue

    async def dispatch(self, job: Job) -> str:
        """Enqueue `tam_<step>(job_id)` with the job's claimed task id as the message id."""
        if job.task_id is None:
            raise ValueError("dispatch needs a claimed task id")
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self._queue,
            actor_name=ACTOR_NAMES[job.job_type],
            args=(str(job.id),),
            kwargs={},
            options={},
            message_id=job.task_id,
        )
        try:
            await asyncio.to_thread(self._broker.enqueue, message)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the job broker (REDIS_URL) is unreachable: {type(exc).__name__}") from None
        return job.task_id

    async def join(self) -> None:
        return None  # the jobs run in `tam worker` processes, not here

    async def aclose(self) -> None:
        """Close the broker's Redis connections (the API calls this when it stops)."""
        client = self._broker.client
        await asyncio.to_thread(client.close)
        client.connection_pool.disconnect()  # a pool passed in is not closed by close()

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self._broker.client.ping)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the job broker (REDIS_URL) is unreachable: {type(exc).__name__}") from None
