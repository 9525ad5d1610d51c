"""Dispatch over Dramatiq with Redis as broker: the API enqueues, `tam worker` processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor

import dramatiq
import dramatiq.errors
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name

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


Waiting = list[tuple[dramatiq.Message[None], asyncio.Future[None]]]


class _EnqueueThreads:
    """Runs the broker's blocking `enqueue` (redis-py, synchronous) on a few threads of its own, so the
    event loop never waits on Redis. A message goes out at once while fewer than `parallel` batches are
    in Redis; otherwise it waits, and the messages waiting go together when a thread frees: one
    hand-over to a thread per batch (`asyncio.to_thread` paid one per message), while a slow Redis
    still has `parallel` calls in flight. Each message keeps its own outcome (a RedisError for it alone).
    One event loop at a time."""

    def __init__(self, enqueue: Callable[[dramatiq.Message[None]], object], parallel: int = 4) -> None:
        self._enqueue = enqueue
        self._parallel = parallel
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tam-enqueue")
        self._waiting: Waiting = []
        self._in_flight = 0

    async def send(self, message: dramatiq.Message[None]) -> None:
        loop = asyncio.get_running_loop()
        sent: asyncio.Future[None] = loop.create_future()
        self._waiting.append((message, sent))
        if self._in_flight < self._parallel:
            self._start(loop)
        await sent

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._waiting = self._waiting, []
        try:
            future = loop.run_in_executor(self._executor, self._send_all, [m for m, _ in batch])
        except RuntimeError as exc:  # the executor was shut down (the dispatcher is closed)
            self._settle(batch, [redis.ConnectionError(f"enqueue stopped: {exc}")] * len(batch))
            return
        self._in_flight += 1
        future.add_done_callback(lambda done: self._sent(loop, batch, done))

    def _sent(
        self, loop: asyncio.AbstractEventLoop, batch: Waiting, done: asyncio.Future[list[Exception | None]]
    ) -> None:
        self._in_flight -= 1
        if done.cancelled() or done.exception() is not None:
            self._settle(batch, [redis.ConnectionError("enqueue stopped")] * len(batch))
        else:
            self._settle(batch, done.result())
        if self._waiting and self._in_flight < self._parallel:
            self._start(loop)

    @staticmethod
    def _settle(batch: Waiting, errors: list[Exception | None]) -> None:
        for (_, sent), error in zip(batch, errors, strict=True):
            if sent.done():  # its caller went away
                continue
            if error is None:
                sent.set_result(None)
            else:
                sent.set_exception(error)

    def _send_all(self, messages: list[dramatiq.Message[None]]) -> list[Exception | None]:
        errors: list[Exception | None] = []
        for message in messages:
            try:
                self._enqueue(message)
                errors.append(None)
            except redis.RedisError as exc:
                errors.append(exc)
        return errors

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class DramatiqJobDispatcher:
    def __init__(self, broker: RedisBroker, queue: str = QUEUE) -> None:
        self._broker = broker
        self._queue = queue
        self._threads = _EnqueueThreads(broker.enqueue)

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
            await self._threads.send(message)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the job broker (REDIS_URL) is unreachable: {type(exc).__name__}") from None
        return job.task_id

    async def holds(self, task_ids: Collection[str]) -> set[str]:
        """The task ids among `task_ids` whose message Redis still holds: queued, delayed, or delivered
        and not acknowledged yet (Dramatiq keeps a message's body in `<queue>.msgs` until its ack).
        Reads every message body of the queue: there is one per job, so a few at a time."""
        wanted = set(task_ids)
        if not wanted:
            return set()
        keys = [f"{self._broker.namespace}:{name}.msgs" for name in (self._queue, dq_name(self._queue))]
        try:
            bodies = await asyncio.to_thread(lambda: [body for key in keys for body in self._broker.client.hvals(key)])
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the job broker (REDIS_URL) is unreachable: {type(exc).__name__}") from None
        held = set()
        for body in bodies:
            try:
                message_id = dramatiq.Message.decode(body if isinstance(body, bytes) else str(body).encode()).message_id
            except dramatiq.errors.DecodeError:
                continue
            if message_id in wanted:
                held.add(message_id)
        return held

    async def join(self) -> None:
        return None  # the jobs run in `tam worker` processes, not here

    async def aclose(self) -> None:
        """Close the broker's Redis connections (the API calls this when it stops)."""
        client = self._broker.client
        await asyncio.to_thread(self._threads.close)
        await asyncio.to_thread(client.close)
        client.connection_pool.disconnect()  # a pool passed in is not closed by close()

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self._broker.client.ping)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the job broker (REDIS_URL) is unreachable: {type(exc).__name__}") from None
