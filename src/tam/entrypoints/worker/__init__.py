"""The Dramatiq worker. `tam worker` runs `dramatiq tam.entrypoints.worker:setup`, which builds the
broker from REDIS_URL and only then declares the actors, in every worker process."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO, CurrentMessage

from tam.containers import Container, build_container
from tam.domain.model import JobType
from tam.settings import Settings

log = logging.getLogger(__name__)

MAX_RETRIES = 1  # two attempts (design section 4)
# JobRunner enforces the step's time limit itself and fails the job with a clear message; Dramatiq's
# own limit is a backstop a little later, for a job stuck where cancellation cannot reach it.
BACKSTOP_GRACE_S = 30


class ContainerResources(dramatiq.Middleware):
    """Initialises the container's resources on the AsyncIO middleware's event loop, the loop the
    actors run on, and shuts them down there after the last message."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        _on_loop(self._container.init_resources)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        _on_loop(self._container.shutdown_resources)


def _on_loop(call: Callable[[], Any]) -> None:
    async def run() -> None:
        result = call()
        if inspect.isawaitable(result):
            await result

    loop_thread = get_event_loop_thread()
    if loop_thread is None:
        raise RuntimeError("the AsyncIO middleware must boot before ContainerResources")
    loop_thread.run_coroutine(run())


async def _provide(provider: Callable[[], Any]) -> Any:
    value = provider()
    return await value if inspect.isawaitable(value) else value


def _attempt_is_last() -> bool:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    return bool(retries >= MAX_RETRIES)


def _perform(container: Container, job_type: JobType, time_limit: float) -> Callable[[str], Awaitable[None]]:
    async def perform(job_id: str) -> None:
        execute = await _provide(container.execute_job)
        job = await execute(UUID(job_id), time_limit, _attempt_is_last())
        log.info("job %s (%s) ended %s", job.id, job_type.value, job.status.value)

    perform.__name__ = container.actor_names()[job_type]
    return perform


def declare_actors(broker: dramatiq.Broker, container: Container, settings: Settings) -> list[dramatiq.Actor[Any, Any]]:
    actors = []
    for job_type, name in container.actor_names().items():
        limit = settings.time_limit(job_type)
        declare = dramatiq.actor(
            actor_name=name,
            queue_name=container.queue_name(),
            broker=broker,
            max_retries=MAX_RETRIES,
            min_backoff=1_000,
            max_backoff=5_000,
            time_limit=int((limit + BACKSTOP_GRACE_S) * 1000),
        )
        actors.append(declare(_perform(container, job_type, limit)))
    return actors


def build_worker_broker(container: Container) -> dramatiq.Broker:
    broker: dramatiq.Broker = container.broker()
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    # after AsyncIO: `after_*` hooks run in reverse order, so resources close while its loop still runs
    broker.add_middleware(ContainerResources(container))
    dramatiq.set_broker(broker)
    declare_actors(broker, container, container.settings())
    return broker


def setup() -> None:
    """The `dramatiq` CLI calls this in each worker process to get the broker with its actors."""
    settings = Settings()
    if settings.redis_url is None:
        raise SystemExit("tam worker: REDIS_URL is not set (without it, `tam serve` runs jobs itself)")
    logging.getLogger("tam").setLevel(logging.INFO)
    build_worker_broker(build_container(settings))


__all__ = ["build_worker_broker", "declare_actors", "setup"]
