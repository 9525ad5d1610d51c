"""A tiny app over the memory store and sandbox providers, built fresh for each test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dependency_injector import providers
from starlette.testclient import TestClient

from tam.containers import Container, build_container
from tam.domain.model import Job
from tam.entrypoints.api import create_app
from tam.settings import Settings

KEY = "test-key-0123456789"
AUTH = {"x-api-key": KEY}
T = TypeVar("T")


@dataclass
class RecordingDispatcher:
    """Enqueues nothing; remembers what it was asked to enqueue."""

    dispatched: list[Job] = field(default_factory=list)

    async def dispatch(self, job: Job) -> str:
        assert job.task_id is not None
        self.dispatched.append(job)
        return job.task_id

    async def ping(self) -> None:
        return None

    async def join(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def make_container(**overrides: Any) -> Container:
    fields: dict[str, Any] = {
        "tam_store": "memory",
        "tam_providers": "sandbox",
        "tam_sandbox_latency": 0,
        "service_api_key": KEY,
        "redis_url": None,
        **overrides,
    }
    settings = Settings(_env_file=None, **fields)
    return build_container(settings)


def make_client(container: Container | None = None, recorder: RecordingDispatcher | None = None) -> TestClient:
    c = container or make_container()
    if recorder is not None:
        c.dispatcher.override(providers.Object(recorder))
    return TestClient(create_app(c), raise_server_exceptions=False)


def run(client: TestClient, make: Callable[[], Awaitable[T]]) -> T:
    """Drive store calls on the app's own event loop (a second loop, such as asyncio.run's, would
    orphan the loop pytest plugins set for sync tests)."""

    async def main() -> T:
        return await make()

    return client.portal.call(main)


def new_project(client: TestClient, **body: Any) -> str:
    response = client.post("/api/tam/projects", headers=AUTH, json={"name": "Acme TAM", "icp": "B2B SaaS", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
