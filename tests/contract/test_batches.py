"""Qualify in batch mode through the real ClaudeBatchQualifier against the fake Message Batches API:
verdicts, batch pricing, errored and expired requests asked again online, a retried attempt polling
the same batch (the fake counts creates), and cancel."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import pytest

from tam.adapters import claude_batches
from tam.containers import Services
from tam.domain.model import (
    Company,
    Job,
    JobStatus,
    JobType,
    NewCompany,
    Project,
    QualificationStatus,
    TimeLimitExceeded,
)
from tam.domain.services.dispatch import AttemptEnd
from tam_fakes import FakeServer
from tam_fakes.anthropic import expected_qualified
from tam_fakes.anthropic_batches import batches
from tests.contract.provider_fakes import KEY
from tests.contract.test_providers_live_e2e import live_settings, make_services

__all__ = ["make_services"]  # the fixture, re-exported for pytest


async def _project(container: Services, name: str, n: int) -> Project:
    project = await container.projects.add(Project(name=name, icp="B2B SaaS for logistics teams"))
    companies = [
        NewCompany(name=f"Co {i}", domain=f"co{i}.example", description=f"Routing software, {i % 7} offices")
        for i in range(n)
    ]
    await container.companies.add_many(project.id, companies)
    return project


async def _container(make: Any, anthropic: FakeServer, **changes: Any) -> Services:
    fakes = {v: anthropic for v in ("anthropic", "prospeo", "brightdata", "discolike")}
    return await make(live_settings(fakes, tam_qualify_batch_poll=0.05, **changes))  # type: ignore[no-any-return]


async def _attempt(container: Services, job_id: UUID, time_limit: float) -> Job:
    """One delivery, as a worker makes it; an attempt that ends resumable raises TimeLimitExceeded."""
    result = await container.attempt(job_id, time_limit, None)
    if result.end is AttemptEnd.RETRY:
        raise TimeLimitExceeded(result.detail)
    return await container.jobs.get(job_id)


async def _run(container: Services, project: Project, time_limit: float = 60) -> Job:
    job = await container.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
    return await _attempt(container, job.id, time_limit)


async def _stored(container: Services, project: Project) -> dict[str, QualificationStatus]:
    page = await container.companies.list(project.id, limit=1000)
    return {c.domain: c.qualification_status for c in page.items}


def _expected(n: int) -> dict[str, QualificationStatus]:
    return {
        f"co{i}.example": QualificationStatus.QUALIFIED
        if expected_qualified(f"co{i}.example")
        else QualificationStatus.DISQUALIFIED
        for i in range(n)
    }


async def test_a_batch_qualifies_every_company_once_at_half_the_online_price(make_services: Any) -> None:
    with FakeServer("anthropic", api_key=KEY, options={"batch_seconds": 0.3}) as anthropic:
        online = await _container(make_services, anthropic, tam_qualify_mode="online")
        first = await _run(online, await _project(online, "Online", 30))
        assert first.status is JobStatus.COMPLETED
        assert len(anthropic.state.calls("/v1/messages")) == 30

        batch = await _container(make_services, anthropic, tam_qualify_mode="batch")
        project = await _project(batch, "Batchy", 30)  # same length of name: the same prompt tokens
        job = await _run(batch, project)
        assert job.status is JobStatus.COMPLETED, job.error
        assert job.items_done == 30 and job.batch_id is None
        assert batches(anthropic.state).creates == 1
        assert len(anthropic.state.calls("/v1/messages")) == 30  # no online call for the batch
        assert await _stored(batch, project) == _expected(30)
        assert all(unit.startswith("claude_batch_") for unit in job.usage.counts)
        assert {k.replace("claude_batch_", "claude_"): v for k, v in job.usage.counts.items()} == dict(
            first.usage.counts
        )
        prices = batch.prices
        assert prices.cost(job.usage) == pytest.approx(prices.cost(first.usage) / 2)


async def test_errored_and_expired_requests_are_asked_again_online(make_services: Any) -> None:
    options = {"batch_seconds": 0.2, "batch_error_rate": 0.2, "batch_expire_rate": 0.15}
    with FakeServer("anthropic", api_key=KEY, options=options) as anthropic:
        container = await _container(make_services, anthropic, tam_qualify_mode="auto", tam_qualify_batch_min=10)
        project = await _project(container, "Retry", 40)
        job = await _run(container, project)
        assert job.status is JobStatus.COMPLETED, job.error
        assert await _stored(container, project) == _expected(40)
        online = len(anthropic.state.calls("/v1/messages"))
        assert 0 < online < 40  # only the errored and expired ones
        assert job.usage.counts["claude_output_tokens"] > 0 and job.usage.counts["claude_batch_output_tokens"] > 0


async def test_a_retried_attempt_polls_the_same_batch(make_services: Any) -> None:
    with FakeServer("anthropic", api_key=KEY, options={"batch_seconds": 6}) as anthropic:
        container = await _container(make_services, anthropic, tam_qualify_mode="batch")
        project = await _project(container, "Resume", 25)
        jobs = container.jobs
        job = await jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        with pytest.raises(TimeLimitExceeded):  # the attempt ends while the batch is still running
            await _attempt(container, job.id, 2.5)
        stored = await jobs.get(job.id)
        assert stored.status is JobStatus.RUNNING and stored.batch_id is not None
        assert batches(anthropic.state).creates == 1

        done = await _attempt(container, job.id, 30)
        assert done.status is JobStatus.COMPLETED, done.error
        assert batches(anthropic.state).creates == 1  # the same batch, polled again
        assert await _stored(container, project) == _expected(25)
        assert len(anthropic.state.calls("/v1/messages")) == 0


async def test_cancelling_the_job_cancels_the_batch(make_services: Any) -> None:
    with FakeServer("anthropic", api_key=KEY, options={"batch_seconds": 30}) as anthropic:
        container = await _container(make_services, anthropic, tam_qualify_mode="batch")
        project = await _project(container, "Cancel", 20)
        jobs = container.jobs
        job = await jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        running = asyncio.create_task(_attempt(container, job.id, 60))
        for _ in range(200):
            if (await jobs.get(job.id)).batch_id:
                break
            await asyncio.sleep(0.05)
        clock = container.clock
        await jobs.cancel(job.id, clock.now())
        ended = await asyncio.wait_for(running, 20)
        assert ended.status is JobStatus.CANCELLED
        (fake_batch,) = batches(anthropic.state).store.values()
        assert fake_batch.cancel_initiated_at is not None
        assert len(anthropic.state.calls("/v1/messages")) == 0  # nothing asked online instead
        assert set((await _stored(container, project)).values()) == {QualificationStatus.PENDING}


async def test_companies_past_one_batch_s_size_limit_go_in_the_next_batch(
    make_services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeServer("anthropic", api_key=KEY, options={"batch_seconds": 0.1}) as anthropic:
        container = await _container(make_services, anthropic, tam_qualify_mode="batch")
        project = await _project(container, "Chunks", 25)
        one = len(json.dumps({"custom_id": "x" * 32, "params": _params(container, project)}))
        monkeypatch.setattr(claude_batches, "MAX_BYTES", int(one * 1.1 * 10 / 0.9) + 1)  # ten requests a batch
        job = await _run(container, project)
        assert job.status is JobStatus.COMPLETED, job.error
        assert batches(anthropic.state).creates == 3  # 10 + 10 + 5
        assert await _stored(container, project) == _expected(25)
        assert len(anthropic.state.calls("/v1/messages")) == 0


def _params(container: Services, project: Project) -> dict[str, Any]:
    qualifier = claude_batches.ClaudeQualifier(api_key=None, model="claude-sonnet-5-5")
    company = NewCompany(name="Co 10", domain="co10.example", description="Routing software, 3 offices")
    return qualifier.request_params(project, Company.create(project.id, company))
