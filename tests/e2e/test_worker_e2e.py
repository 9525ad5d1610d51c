"""HTTP API -> Redis -> `tam worker` subprocess -> SQLite, with sandbox providers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tam.entrypoints.api import create_app
from tam.settings import Settings

KEY = "e2e-key"
AUTH = {"x-api-key": KEY}
pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """This process's Redis database (flushed before and after: tests/e2e/conftest.py) and a fresh SQLite file."""
    return {
        "REDIS_URL": redis_url,
        "TAM_STORE": "sqlite",
        "TAM_SQLITE_PATH": str(tmp_path / "tam.db"),
        "TAM_PROVIDERS": "sandbox",
        "TAM_SANDBOX_LATENCY": "0.05",
        "SERVICE_API_KEY": KEY,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    tam = Path(sys.executable).with_name("tam")
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(tam), "worker", "--processes", "1", "--threads", "2"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the test stops exactly what it started
        )


def stop(worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if worker.poll() is None:
        # To the dramatiq master only: it forwards SIGTERM to its children, and a child that gets a
        # second one (from a signal to the whole group) exits without a clean shutdown.
        os.kill(worker.pid, sig)
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for(predicate, timeout: float, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def api(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app(Settings(_env_file=None))) as client:
        yield client


def project_with_companies(api: TestClient, n: int) -> str:
    project_id = api.post("/api/tam/projects", headers=AUTH, json={"name": "E2E", "icp": "B2B SaaS"}).json()["id"]
    rows = [{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(n)]
    assert api.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=rows).json()["inserted"] == n
    return str(project_id)


def test_qualify_through_redis_and_a_worker_process(api: TestClient, env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        wait_for(lambda: b"ready for action" in log.read_bytes(), timeout=30)
        project_id = project_with_companies(api, 60)
        created = api.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"})
        assert created.status_code == 201
        job_id = created.json()["jobId"]
        posted = time.monotonic()

        def job() -> dict:  # type: ignore[type-arg]
            return api.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json()  # type: ignore[no-any-return]

        wait_for(lambda: job()["itemsDone"] > 0, timeout=30)
        first_progress = time.monotonic() - posted
        done = wait_for(lambda: (j := job())["status"] in ("completed", "failed") and j, timeout=60)
        companies = api.get(f"/api/tam/projects/{project_id}/companies?limit=1000", headers=AUTH).json()
    finally:
        stop(worker)
    sys.stderr.write(f"\nPOST /api/tam/jobs -> first progress update: {first_progress:.2f} s\n")
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    assert done["attempts"] == 1
    assert done["itemsDone"] + done["itemsFailed"] == 60
    statuses = {c["domain"]: c["qualificationStatus"] for c in companies["items"]}
    assert len(statuses) == 60
    assert all(s in ("qualified", "disqualified", "error") for s in statuses.values())
    assert all(c["qualificationReason"] for c in companies["items"])


def test_cancel_stops_a_job_in_the_worker_process(api: TestClient, env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "TAM_SANDBOX_LATENCY": "0.3", "TAM_QUALIFY_CONCURRENCY": "2"}
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        project_id = project_with_companies(api, 200)
        job_id = api.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"}).json()[
            "jobId"
        ]

        def job(jid: str = job_id) -> dict:  # type: ignore[type-arg]
            return api.get(f"/api/tam/jobs/{jid}", headers=AUTH).json()  # type: ignore[no-any-return]

        wait_for(lambda: job()["itemsDone"] > 2, timeout=30)
        api.post(f"/api/tam/jobs/{job_id}/cancel", headers=AUTH)
        asked = time.monotonic()
        time.sleep(2.5)  # the worker notices within a second and stops between items
        first = api.get(f"/api/tam/projects/{project_id}", headers=AUTH).json()["companies"]
        time.sleep(2.5)
        later = api.get(f"/api/tam/projects/{project_id}", headers=AUTH).json()["companies"]
        assert job()["status"] == "cancelled"
        assert first == later, "qualifying went on after the cancel"
        assert later["pending"] > 0
        assert time.monotonic() - asked < 10
    finally:
        stop(worker)


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        except OSError:
            children = []
        found.update(children)
        todo.extend(children)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def test_no_process_outlives_a_sigkill_of_tam_worker(env: dict[str, str], tmp_path: Path) -> None:
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        # the supervisor, one dramatiq master and its child running the actors
        below = wait_for(lambda: d if len(d := _descendants(worker.pid)) >= 2 else None, timeout=60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        wait_for(lambda: not any(_alive(p) for p in below), timeout=60, step=0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of its process group
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
