"""What the end-to-end suites share: `tam worker` processes (each in its own session, stopped by PID),
this process's Redis database flushed around each test, a TestClient over the real app, the fake vendor
servers, and a direct PostgreSQL connection that samples job rows while a worker runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import pytest
import redis
from starlette.testclient import TestClient

from tam.entrypoints.api import create_app
from tam.settings import Settings
from tam_fakes import FakeServer
from tests.conftest import FIGURES_PROPERTY

# The suites that kill, stop and starve `tam worker` processes and time the recovery (crash, faults,
# limits) run one after the other on one pytest-xdist worker (--dist loadgroup, pyproject.toml): beside
# each other they would compete for the same two cores in the seconds they measure. The group has the
# most tests but one, so the scheduler starts it first (the longest chain of the run).
TIMED = pytest.mark.xdist_group("e2e-timed")

KEY = "e2e-key"
AUTH = {"x-api-key": KEY}
VENDOR_KEY = "fake-vendor-key"
T = TypeVar("T")


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """This test process's Redis database (tests/conftest.py), flushed before and after: a `tam worker`
    consumes every queue in it. The other suites' keys there carry prefixes of their own, and a process
    runs one test at a time."""
    url = redis_server_url
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def wait_for(predicate: Callable[[], T], timeout: float, step: float = 0.05, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(step)


class Worker:
    """A `tam worker` (dramatiq master and its one child) in a session of its own."""

    def __init__(self, env: dict[str, str], log: Path, threads: int = 2) -> None:
        self.log = log
        tam = Path(sys.executable).with_name("tam")
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(tam), "worker", "--processes", "1", "--threads", str(threads)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the test stops exactly what it started
            )

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: b"ready for action" in self.log.read_bytes(), timeout, what="worker ready")

    def kill(self) -> float:
        """SIGKILL the master and its child at once (machine loss); returns the monotonic time of it."""
        at = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return at

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> None:
        if self.proc.poll() is None:
            # To the dramatiq master only: it forwards SIGTERM to its children, and a child that gets a
            # second one (from a signal to the whole group) exits without a clean shutdown.
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        else:  # the master is gone (a child died); make sure no child is left behind
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(env: dict[str, str], threads: int = 2, ready: bool = True) -> Worker:
        worker = Worker(env, tmp_path / f"worker{len(started)}.log", threads)
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@dataclass(frozen=True)
class JobRow:
    t: float  # monotonic time of the sample
    status: str
    progress: int
    items_total: int
    items_done: int
    items_failed: int
    attempts: int
    heartbeat_at: datetime | None
    started_at: datetime | None
    message: str | None
    error: str | None


class Pg:
    """Synchronous access to the test database on a private event loop."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._conn: asyncpg.Connection = self.run(asyncpg.connect(url))

    def run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return self.run(self._conn.fetch(sql, *args))  # type: ignore[no-any-return]

    def fetchval(self, sql: str, *args: object) -> Any:
        return self.run(self._conn.fetchval(sql, *args))

    def job(self, job_id: str | UUID) -> JobRow:
        row = self.run(
            self._conn.fetchrow(
                "select status, progress, items_total, items_done, items_failed, attempts, heartbeat_at,"
                " started_at, message, error from tam_job_queue where id = $1",
                UUID(str(job_id)),
            )
        )
        return JobRow(time.monotonic(), **dict(row))

    def companies(self, project_id: str) -> dict[str, asyncpg.Record]:
        rows = self.fetch(
            "select domain, qualification_status, qualification_reason, qualified_at, updated_at"
            " from tam_companies where project_id = $1",
            UUID(project_id),
        )
        return {r["domain"]: r for r in rows}

    def close(self) -> None:
        self.run(self._conn.close())
        self._loop.close()


@pytest.fixture
def pg(migrated_database_url: str) -> Iterator[Pg]:
    db = Pg(migrated_database_url)
    yield db
    db.close()


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeServer]]:
    with ExitStack() as stack:
        yield {
            vendor: stack.enter_context(FakeServer(vendor, api_key=VENDOR_KEY, latency=0.01))
            for vendor in ("anthropic", "prospeo", "brightdata", "discolike")
        }


def live_env(fakes: dict[str, FakeServer]) -> dict[str, str]:
    return {
        "TAM_PROVIDERS": "live",
        "ANTHROPIC_API_KEY": VENDOR_KEY,
        "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
        "TAM_CLAUDE_MODEL": "claude-sonnet-5-5",
        "PROSPEO_API_KEY": VENDOR_KEY,
        "PROSPEO_BASE_URL": fakes["prospeo"].url,
        "BRIGHT_DATA_API_KEY": VENDOR_KEY,
        "BRIGHT_DATA_BASE_URL": fakes["brightdata"].url,
        "DISCOLIKE_API_KEY": VENDOR_KEY,
        "DISCOLIKE_BASE_URL": fakes["discolike"].url,
    }


@pytest.fixture
def pg_env(migrated_database_url: str, redis_url: str) -> dict[str, str]:
    """API and workers on PostgreSQL and this test's Redis database, sandbox providers by default."""
    return {
        "REDIS_URL": redis_url,
        "TAM_STORE": "postgres",
        "DATABASE_URL": migrated_database_url,
        "TAM_PROVIDERS": "sandbox",
        "TAM_SANDBOX_LATENCY": "0.05",
        "SERVICE_API_KEY": KEY,
        "TAM_WORKER_HEARTBEAT_TIMEOUT": "15",
    }


@pytest.fixture
def make_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], TestClient]]:
    with ExitStack() as stack:

        def make(env: dict[str, str]) -> TestClient:
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            return stack.enter_context(TestClient(create_app(Settings(_env_file=None))))

        yield make


def new_project(api: TestClient, domains: list[str] | None = None, **fields: Any) -> str:
    body = {"name": "E2E", "icp": "B2B SaaS for logistics teams", **fields}
    created = api.post("/api/tam/projects", headers=AUTH, json=body)
    assert created.status_code == 201, created.text
    project_id = str(created.json()["id"])
    if domains:
        rows = [{"name": d.split(".")[0].title(), "domain": d} for d in domains]
        imported = api.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=rows).json()
        assert imported["inserted"] == len(domains), imported
    return project_id


def create_job(api: TestClient, project_id: str, job_type: str) -> str:
    created = api.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": job_type})
    assert created.status_code == 201, created.text
    return str(created.json()["jobId"])


_RUNNING: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    _RUNNING.append(item)
    try:
        return (yield)
    finally:
        _RUNNING.pop()


def report(line: str) -> None:
    """A measured figure: in the test's output and in the summary at the end of the run (tests/conftest.py
    prints it there, also from a pytest-xdist worker)."""
    _RUNNING[-1].user_properties.append((FIGURES_PROPERTY, line))
    sys.stderr.write(f"\n[e2e] {line}\n")
