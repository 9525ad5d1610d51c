"""Embedded mode (no REDIS_URL): a job that a dead `tam serve` left `running` resumes when the next one
starts, doing only what was left."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tam.containers import open_services
from tam.domain.model import Job, JobStatus, JobType, NewCompany, Project, QualificationStatus
from tam.entrypoints.api import create_app
from tam.settings import Settings
from tests.e2e.conftest import AUTH, KEY, wait_for

pytestmark = pytest.mark.slow


def embedded(tmp_path: Path, heartbeat_timeout: float = 15) -> Settings:
    return Settings(
        tam_worker_heartbeat_timeout=heartbeat_timeout,
        _env_file=None,
        tam_store="sqlite",
        tam_sqlite_path=str(tmp_path / "tam.db"),
        redis_url=None,
        tam_providers="sandbox",
        tam_sandbox_latency=0.02,
        service_api_key=KEY,
    )


async def left_running(settings: Settings, heartbeat_age: float) -> tuple[str, str, dict[str, Any]]:
    """What a process that died mid-qualify leaves behind: 5 of 30 companies decided, the job running."""
    async with open_services(settings) as s:
        projects, repo, jobs = s.projects, s.companies, s.jobs
        project = await projects.add(Project(name="Embedded", icp="B2B SaaS"))
        await repo.add_many(project.id, [NewCompany(name=f"E{i}", domain=f"e{i}.example") for i in range(30)])
        companies = (await repo.list(project.id, limit=100)).items
        then = datetime.now(UTC) - timedelta(seconds=heartbeat_age)
        for company in companies[:5]:
            await repo.record_qualification(company.id, QualificationStatus.QUALIFIED, "before", then)
        job = await jobs.add(
            Job(
                project_id=project.id,
                job_type=JobType.QUALIFY,
                status=JobStatus.RUNNING,
                task_id="dead-process-task",
                attempts=1,
                items_total=30,
                items_done=5,
                progress=16,
                started_at=then,
                heartbeat_at=then,
            )
        )
        decided = {c.domain: c.qualified_at for c in (await repo.list(project.id, limit=100)).items}
        return str(project.id), str(job.id), {d: at for d, at in decided.items() if at is not None}


def test_serve_resumes_a_job_a_dead_process_left_running(tmp_path: Path) -> None:
    # a sweeper watches for a heartbeat timeout before it judges a job stale: a short one here
    settings = embedded(tmp_path, heartbeat_timeout=3)
    project_id, job_id, before = asyncio.run(left_running(settings, heartbeat_age=120))
    assert len(before) == 5
    with TestClient(create_app(settings)) as api:
        job = wait_for(
            lambda: (j := api.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json())["status"] != "running" and j,
            20,
            what="resumed job finished",
        )
        companies = api.get(f"/api/tam/projects/{project_id}/companies?limit=100", headers=AUTH).json()["items"]
    assert job["status"] == "completed", job
    assert job["attempts"] == 2 and job["progress"] == 100
    assert job["itemsDone"] + job["itemsFailed"] == 30
    assert all(c["qualificationStatus"] != "pending" for c in companies)
    reasons = {c["domain"]: c["qualificationReason"] for c in companies}
    assert all(reasons[d] == "before" for d in before)  # the 5 decided before were not asked again


def test_a_job_with_a_fresh_heartbeat_is_left_alone(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    _, job_id, _ = asyncio.run(left_running(settings, heartbeat_age=5))  # maybe another live process's
    with TestClient(create_app(settings)) as api:
        first = api.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json()
        assert first["status"] == "running" and first["attempts"] == 1
