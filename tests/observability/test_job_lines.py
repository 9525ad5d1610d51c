"""What an operator reads: one line when an attempt starts, resumes (and why) and ends, with the
job's ids as fields; retries and 429s summed on that line, never a line per call; an error as one
line naming its type, the traceback only at debug level and never with frame locals; no per-request
lines from the HTTP clients; and a worker whose every line is JSON, Dramatiq's boot lines included."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tam.containers import open_services
from tam.domain.model import Job, JobStatus, JobType, Project
from tam.domain.services.calls import RetryPolicy
from tam.domain.services.projects import CompanyRow
from tam.domain.services.runner import RunnerSettings
from tam.logs import JobLogContext, configure_logging
from tam.settings import Settings


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_an_attempt_logs_its_start_and_its_end_with_the_calls_summed(captured: io.StringIO) -> None:
    configure_logging(json=True, stream=captured)
    # Sandbox providers that fail a third of the calls (429s, 503s, timeouts): many retries.
    settings = Settings(
        _env_file=None,
        tam_store="memory",
        tam_providers="sandbox",
        tam_sandbox_fault_rate=0.35,
        tam_sandbox_latency=0.0,
        redis_url=None,
    )
    fast = RetryPolicy(base_delay=0.001, max_delay=0.002, max_retry_after=0.001, max_attempts=20)
    async with open_services(settings, runner_settings=RunnerSettings(policy=fast)) as s:
        project = await s.projects.add(Project(name="Logs", icp="B2B SaaS"))
        rows = [CompanyRow(name=f"Co {i}", domain=f"co{i}.example.com") for i in range(30)]
        await s.import_companies(project.id, rows)
        job = await s.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        ended = (await s.attempt(job.id, 60.0, None)).job

    assert ended.status is JobStatus.COMPLETED, ended
    lines = lines_of(captured)
    job_lines = [line for line in lines if line.get("job_id") == str(job.id)]
    assert [line["event"] for line in job_lines] == ["attempt started", "attempt ended"], lines
    for line in job_lines:
        assert line["project_id"] == str(project.id)
        assert line["job_type"] == "qualify"
        assert line["attempt"] == 1
    end = job_lines[-1]
    assert end["status"] == "completed"
    assert end["items_done"] + end["items_failed"] == 30
    assert end["duration_s"] >= 0
    claude = end["calls"]["claude"]
    assert claude["retries"] > 0 and claude["throttled"] > 0  # the faults happened...
    assert claude["calls"] == 30 + claude["retries"]  # ...and each retry was one more call
    assert len(lines) == 2, "no line per retry or per 429"


async def test_a_resumed_attempt_says_why(captured: io.StringIO) -> None:
    configure_logging(json=True, stream=captured)
    stale = datetime.now(UTC) - timedelta(seconds=90)
    job = Job(
        project_id=Project(name="x", icp="y").id,
        job_type=JobType.FIND_CONTACTS,
        status=JobStatus.RUNNING,
        attempts=1,
        items_total=10,
        items_done=4,
        heartbeat_at=stale,
    )

    class Jobs:
        async def get(self, job_id: object) -> Job:
            return job

    async def execute(job_id: object, time_limit: float | None, last_attempt: bool) -> Job:
        return job.with_(status=JobStatus.COMPLETED, items_done=10, attempts=2)

    await JobLogContext(execute, Jobs())(job.id, 30.0, True)  # type: ignore[arg-type]
    begin, end = lines_of(captured)
    assert begin["event"] == "attempt resumed"
    assert begin["attempt"] == 2 and begin["job_type"] == "findContacts"
    assert begin["reason"].startswith("worker lost: no heartbeat for 9")
    assert begin["items_done"] == 4
    assert end["event"] == "attempt ended" and end["items_done"] == 10


async def test_an_attempt_that_raises_is_one_line_with_the_error_type(captured: io.StringIO) -> None:
    configure_logging(json=True, stream=captured)
    job = Job(project_id=Project(name="x", icp="y").id, job_type=JobType.QUALIFY)

    class Jobs:
        async def get(self, job_id: object) -> Job:
            return job

    async def execute(job_id: object, time_limit: float | None, last_attempt: bool) -> Job:
        raise ConnectionResetError("database went away")

    with pytest.raises(ConnectionResetError):
        await JobLogContext(execute, Jobs())(job.id, 30.0, False)  # type: ignore[arg-type]
    _, stopped = lines_of(captured)
    assert stopped["event"] == "attempt stopped"
    assert stopped["error_type"] == "ConnectionResetError"
    assert stopped["job_id"] == str(job.id)


def _raise_with_a_secret_local() -> None:
    api_key = "local-secret-value-0123456789"  # a local variable a traceback with locals would show
    raise ValueError(f"boom ({len(api_key)})")


@pytest.mark.parametrize("json_mode", [True, False])
def test_an_error_is_one_line_and_the_traceback_only_at_debug(captured: io.StringIO, json_mode: bool) -> None:
    for level in (logging.INFO, logging.DEBUG):
        stream = io.StringIO()
        configure_logging(json=json_mode, level=level, stream=stream)
        try:
            _raise_with_a_secret_local()
        except ValueError:
            logging.getLogger("dramatiq.worker.WorkerThread").exception("Failed to process message")
            structlog.get_logger("tam").exception("structlog error")
        text = stream.getvalue()
        assert "local-secret-value" not in text, "frame locals never reach a log"
        if level == logging.INFO:
            assert len(text.splitlines()) == 2, text
            assert "Traceback" not in text and "_raise_with_a_secret_local" not in text
            if json_mode:
                first, second = (json.loads(line) for line in text.splitlines())
                assert first["error_type"] == second["error_type"] == "ValueError"
                assert first["error"] == "boom (29)"
                assert "exception" not in first
        else:
            assert "_raise_with_a_secret_local" in text  # the frames, at debug level
            if json_mode:
                assert all(json.loads(line) for line in text.splitlines())


def test_the_http_clients_request_lines_are_silenced(captured: io.StringIO) -> None:
    configure_logging(json=True, stream=captured)
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).info('HTTP Request: POST https://api.anthropic.com/v1/messages "HTTP/1.1 200 OK"')
    logging.getLogger("httpx2").warning("a warning still shows")
    assert [line["event"] for line in lines_of(captured)] == ["a warning still shows"]


def test_every_line_of_a_worker_is_json_dramatiq_boot_lines_included(tmp_path: Path, redis_server_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAM_") and k != "DATABASE_URL"}
    env.update(
        REDIS_URL=redis_server_url,
        TAM_STORE="sqlite",
        TAM_SQLITE_PATH=str(tmp_path / "tam.db"),
        TAM_PROVIDERS="sandbox",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("tam")), "worker", "--processes", "1", "--threads", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while b"ready for action" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert any("is booting up" in event for event in events), events
    assert any("ready for action" in event for event in events), events
    assert all(line["level"] in {"debug", "info", "warning", "error", "critical"} for line in lines)
