"""Structured logs: JSON lines, job and project ids on a job's lines, and no secret in any log line or
any API response, even when a provider refuses the key."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
import structlog
from starlette.testclient import TestClient

from tam.domain.model import Job, JobType
from tam.entrypoints.api import create_app
from tam.logs import JobLogContext, Redactor, configure_logging, secrets_of
from tam.settings import Settings
from tam_fakes.server import FakeServer

SERVICE_KEY = "svc-key-7d41c0a9e2b8f613"
WRONG_ANTHROPIC_KEY = "sk-ant-api03-wrongwrongwrong-0123456789"
RIGHT_ANTHROPIC_KEY = "sk-ant-api03-rightright-9876543210"
PROSPEO_KEY = "prospeo-key-55aa77cc99ee"
DB_PASSWORD = "db-pass-3c9f1e77"
SECRETS = (SERVICE_KEY, WRONG_ANTHROPIC_KEY, RIGHT_ANTHROPIC_KEY, PROSPEO_KEY, DB_PASSWORD)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Routes logging to a buffer for one test and puts the previous set-up back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def log_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_refused_key_never_shows_in_logs_or_responses(captured: io.StringIO) -> None:
    with FakeServer("anthropic", api_key=RIGHT_ANTHROPIC_KEY) as fake:
        settings = Settings(
            _env_file=None,
            tam_store="memory",
            tam_providers="live",
            service_api_key=SERVICE_KEY,
            anthropic_api_key=WRONG_ANTHROPIC_KEY,
            anthropic_base_url=fake.url,
            prospeo_api_key=PROSPEO_KEY,
            database_url=f"postgresql://tam:{DB_PASSWORD}@127.0.0.1:5432/tam",
            redis_url=None,
        )
        configure_logging(json=True, secrets=secrets_of(settings), stream=captured)
        # What a careless line would leak: the redactor masks it.
        logging.getLogger("tam.test").warning(
            "calling with key %s, header x-api-key: %s, dsn %s",
            WRONG_ANTHROPIC_KEY,
            SERVICE_KEY,
            settings.database_url.get_secret_value() if settings.database_url else "",
        )
        auth = {"x-api-key": SERVICE_KEY}
        responses = []
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            project = client.post("/api/tam/projects", headers=auth, json={"name": "Leak check", "icp": "B2B SaaS"})
            project_id = project.json()["id"]
            companies = [{"name": f"Co {i}", "domain": f"co{i}.example.com"} for i in range(5)]
            responses += [
                project,
                client.post(f"/api/tam/projects/{project_id}/companies", headers=auth, json=companies),
            ]
            created = client.post("/api/tam/jobs", headers=auth, json={"projectId": project_id, "jobType": "qualify"})
            responses.append(created)
            job_id = created.json()["jobId"]
            deadline = time.monotonic() + 30
            while True:
                job = client.get(f"/api/tam/jobs/{job_id}", headers=auth)
                if job.json()["status"] in {"failed", "completed"} or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            responses += [
                job,
                client.get(f"/api/tam/jobs?projectId={project_id}", headers=auth),
                client.get(f"/api/tam/projects/{project_id}", headers=auth),
                client.get("/readyz"),
                client.post("/api/tam/jobs", headers={"x-api-key": WRONG_ANTHROPIC_KEY}, json={}),
                client.post("/api/tam/run", headers=auth, content=b"{not json"),
            ]

    failed = job.json()
    assert failed["status"] == "failed", failed
    assert "ANTHROPIC_API_KEY" in failed["error"]
    assert fake.state.calls, "the job reached the fake provider"

    text = captured.getvalue()
    assert text, "something was logged"
    lines = log_lines(captured)
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    for secret in SECRETS:
        assert secret not in text
        for response in responses:
            assert secret not in response.text, response.request.url
            assert secret not in str(response.headers)
    assert "[redacted]" in text


async def test_job_lines_carry_the_job_ids_type_and_attempt(captured: io.StringIO) -> None:
    configure_logging(json=True, stream=captured)
    job = Job(project_id=uuid4(), job_type=JobType.QUALIFY)

    class Jobs:
        async def get(self, job_id: object) -> Job:
            return job

    async def execute(job_id: object, time_limit: float | None, last_attempt: bool) -> Job:
        logging.getLogger("tam.domain.services.runner").warning("stdlib line inside the job")
        structlog.get_logger("tam.worker").info("structlog line inside the job")
        return job

    logging.getLogger("tam").warning("outside any job")
    await JobLogContext(execute, Jobs())(job.id, None, True)  # type: ignore[arg-type]

    outside, *inside = log_lines(captured)
    assert "job_id" not in outside
    assert [line["event"] for line in inside] == [
        "attempt started",
        "stdlib line inside the job",
        "structlog line inside the job",
        "attempt ended",
    ]
    for line in inside:
        assert line["job_id"] == str(job.id)
        assert line["project_id"] == str(job.project_id)
        assert line["job_type"] == "qualify"
        assert line["attempt"] == 1


def test_redactor_masks_secret_shapes() -> None:
    redact = Redactor(["short", "configured-secret-1"]).redact
    assert redact("token configured-secret-1 here") == "token [redacted] here"
    assert "abcdefghijklmnop" not in redact("Authorization: Bearer abcdefghijklmnop")
    assert "pw123456" not in redact("postgresql://user:pw123456@db:5432/x")
    assert "sk-ant-abc123def456" not in redact("key sk-ant-abc123def456")
    assert redact("a short word") == "a short word"  # too short to be treated as a secret
