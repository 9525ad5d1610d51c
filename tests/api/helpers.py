"""A tiny app over the memory store and sandbox providers, built fresh for each test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.testclient import TestClient

from tam.containers import Services
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

    async def holds(self, task_ids: Collection[str]) -> set[str]:
        return {job.task_id for job in self.dispatched if job.task_id in task_ids}

    async def join(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def make_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "tam_store": "memory",
        "tam_providers": "sandbox",
        "tam_sandbox_latency": 0,
        "service_api_key": KEY,
        "redis_url": None,
        **overrides,
    }
    return Settings(_env_file=None, **fields)


def make_client(settings: Settings | None = None, recorder: RecordingDispatcher | None = None) -> TestClient:
    return TestClient(create_app(settings or make_settings(), dispatcher=recorder), raise_server_exceptions=False)


def services(client: TestClient) -> Services:
    """The services the app opened when the client started it."""
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


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
