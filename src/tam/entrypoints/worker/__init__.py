"""The Dramatiq worker. `tam worker` runs `dramatiq tam.entrypoints.worker:setup`, which builds the
broker from REDIS_URL and only then declares the actors, in every worker process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from uuid import UUID

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO, CurrentMessage

from tam.containers import Services, dramatiq_routes, open_services, redis_broker
from tam.domain.model import JobType
from tam.domain.services.dispatch import AttemptEnd
from tam.entrypoints.worker.supervisor import die_with_parent
from tam.logs import configure_logging, level_from_env, secrets_of
from tam.settings import Settings

log = logging.getLogger(__name__)

ACTOR_NAMES, QUEUE = dramatiq_routes()  # the names the API's dispatcher sends to

# Dramatiq never retries a message itself: JobAttempt owns attempts, time limits and poison jobs, and
# a message that raised would only land in the dead-letter queue. An attempt that ends resumable at once
# (a time limit before the last attempt) is put back on the queue by the actor.
MAX_RETRIES = 0
# JobRunner enforces the step's time limit itself and fails the job with a clear message; Dramatiq's
# own limit is a backstop a little later, for a job stuck where cancellation cannot reach it.
BACKSTOP_GRACE_S = 30


class OpenServices(dramatiq.Middleware):
    """Opens the services (`open_services`) once per worker process, on the AsyncIO middleware's event
    loop (the loop the actors run on): when the worker boots, or by the first message if that comes
    first (the consumers start before the boot hooks run). Closes them there after the last message."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        self._services: Services | None = None

    async def get(self) -> Services:
        async with self._opening:
            if self._services is None:
                self._services = await self._stack.enter_async_context(open_services(self._settings))
        return self._services

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        _on_loop(self.get())

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        _on_loop(self._stack.aclose())


class StopOnShutdown(dramatiq.Middleware):
    """SIGTERM, cleanly. Dramatiq would let a running message go on for up to the shutdown timeout
    and then drop it, and a job can run for half an hour. Instead, the worker's running jobs are
    cancelled at once (finished items stay; items in flight stay pending) and their messages are
    put back on the queue as they were, retries count included, so another worker resumes them
    right away rather than after the broker's heartbeat timeout."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: set[asyncio.Task[Any]] = set()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()
        loop_thread = get_event_loop_thread()
        with self._lock:
            running = list(self._running)
        if loop_thread is not None:
            for task in running:
                loop_thread.loop.call_soon_threadsafe(task.cancel)

    async def run(self, broker: dramatiq.Broker, work: Awaitable[None]) -> None:
        """Run one delivery; if the worker is shutting down, requeue its message instead."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task on the AsyncIO loop
            await work
            return
        message = CurrentMessage.get_current_message()
        with self._lock:
            self._running.add(task)
        try:
            if self.stopping.is_set():
                raise asyncio.CancelledError
            await work
        except asyncio.CancelledError:
            if not self.stopping.is_set() or message is None:
                raise
            task.uncancel()
            # the same message (same id and retries); the broker gives it a fresh Redis id
            await asyncio.to_thread(broker.enqueue, message)
            log.info("worker shutting down: message %s put back on the queue", message.message_id)
        finally:
            with self._lock:
                self._running.discard(task)
            if inspect.iscoroutine(work):
                work.close()


def _on_loop(work: Coroutine[Any, Any, object]) -> None:
    loop_thread = get_event_loop_thread()
    if loop_thread is None:
        work.close()
        raise RuntimeError("the AsyncIO middleware must boot before OpenServices")
    loop_thread.run_coroutine(work)


def _perform(
    opened: OpenServices, job_type: JobType, time_limit: float, broker: dramatiq.Broker, shutdown: StopOnShutdown
) -> Callable[[str], Awaitable[None]]:
    async def run(job_id: str) -> None:
        message = CurrentMessage.get_current_message()
        attempt = (await opened.get()).attempt
        result = await attempt(UUID(job_id), time_limit, message.message_id if message is not None else None)
        log.debug("job %s (%s): attempt ended %s %s", job_id, job_type.value, result.end.value, result.detail)
        if result.end is AttemptEnd.RETRY and message is not None:
            await asyncio.to_thread(broker.enqueue, message)

    async def perform(job_id: str) -> None:
        await shutdown.run(broker, run(job_id))

    perform.__name__ = ACTOR_NAMES[job_type]
    return perform


class StaleJobSweeper(dramatiq.Middleware):
    """Every few seconds, each worker process looks for running jobs whose heartbeat stopped (their
    worker died, or their message was lost) and enqueues them again (StaleJobSweep: one new message per
    stale job however many processes sweep)."""

    def __init__(self, opened: OpenServices, interval: float) -> None:
        self._opened = opened
        self._interval = interval
        self._task: asyncio.Future[None] | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            self._task = asyncio.run_coroutine_threadsafe(self._sweep_forever(), loop_thread.loop)  # type: ignore[assignment]

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _sweep_forever(self) -> None:
        sweep = (await self._opened.get()).stale_job_sweep  # one per process: it remembers what it watched
        while True:
            await asyncio.sleep(self._interval * random.uniform(0.5, 1.0))
            try:
                for job in await sweep():
                    log.info("job %s: no heartbeat since %s; enqueued again", job.id, job.heartbeat_at)
            except Exception as exc:  # weather (the database or Redis away): the next sweep tries again
                log.warning("stale-job sweep skipped: %s: %s", type(exc).__name__, exc)


def declare_actors(
    broker: dramatiq.Broker, opened: OpenServices, settings: Settings, shutdown: StopOnShutdown | None = None
) -> list[dramatiq.Actor[Any, Any]]:
    shutdown = shutdown or StopOnShutdown()
    actors = []
    for job_type, name in ACTOR_NAMES.items():
        limit = settings.time_limit(job_type)
        declare = dramatiq.actor(
            actor_name=name,
            queue_name=QUEUE,
            broker=broker,
            max_retries=MAX_RETRIES,
            min_backoff=1_000,
            max_backoff=5_000,
            time_limit=int((limit + BACKSTOP_GRACE_S) * 1000),
        )
        actors.append(declare(_perform(opened, job_type, limit, broker, shutdown)))
    return actors


def build_worker_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker = redis_broker(settings)
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    opened = OpenServices(settings)
    # before OpenServices: its after_worker_boot runs after theirs (reverse order), on open services
    broker.add_middleware(StaleJobSweeper(opened, settings.tam_worker_heartbeat_timeout / 3))
    # after AsyncIO: `after_*` hooks run in reverse order, so the services close while its loop still runs
    broker.add_middleware(opened)
    shutdown = StopOnShutdown()
    broker.add_middleware(shutdown)
    dramatiq.set_broker(broker)
    declare_actors(broker, opened, settings, shutdown)
    return broker


def use_uvloop() -> None:
    """The actors' event loop (Dramatiq's AsyncIO middleware creates it) on uvloop where it is
    installed, as `tam serve`'s uvicorn: less CPU per provider call, store write and Redis command."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def setup() -> None:
    """The `dramatiq` CLI calls this in each worker process to get the broker with its actors."""
    die_with_parent()  # SIGTERM (a clean shutdown) when the dramatiq master above it dies
    settings = Settings()
    # Imported now, not on the first job: importing the Claude SDK takes a second or more, and inside
    # a job it would block the event loop (and so every heartbeat on it).
    with contextlib.suppress(ImportError):
        importlib.import_module("anthropic")
    if settings.redis_url is None:
        raise SystemExit("tam worker: REDIS_URL is not set (without it, `tam serve` runs jobs itself)")
    use_uvloop()
    configure_logging(json=True, secrets=secrets_of(settings), level=level_from_env())
    build_worker_broker(settings)


__all__ = ["StopOnShutdown", "build_worker_broker", "declare_actors", "setup"]
