"""Estimates against the fake Anthropic server, through the real ClaudeQualifier: nothing is called
or stored, and the dollars come within 20% of what the job then records."""

from __future__ import annotations

from typing import Any

import pytest

from tam.containers import Services
from tam.domain.model import JobStatus, JobType, NewCompany, Project
from tam.domain.services.estimate import Estimate
from tam_fakes import FakeServer
from tests.contract.provider_fakes import KEY
from tests.contract.test_providers_live_e2e import live_settings, make_services, run

__all__ = ["make_services"]  # the fixture, re-exported for pytest

_WORDS = [
    "logistics",
    "freight",
    "routing",
    "fleet",
    "analytics",
    "warehouse",
    "customs",
    "billing",
    "carrier",
    "dispatch",
]


async def _project(container: Services, name: str, n: int, seed: int) -> Project:
    project = await container.projects.add(Project(name=name, icp="B2B SaaS for logistics teams"))
    companies = [
        NewCompany(
            name=f"{name} Co {i}",
            domain=f"{name.lower()}-co{i}.example",
            description=" ".join(_WORDS[(i * seed + k) % len(_WORDS)] for k in range(3 + (i * seed) % 25)),
            country="US",
            employee_range="51,200",
        )
        for i in range(n)
    ]
    await container.companies.add_many(project.id, companies)
    return project


async def _estimate(container: Services, project: Project) -> Estimate:
    return await container.estimate_job(project.id, JobType.QUALIFY)


async def test_qualify_estimate_calls_nothing_and_comes_within_20_percent(make_services: Any) -> None:
    with FakeServer("anthropic", api_key=KEY) as anthropic:
        fakes: dict[str, Any] = {v: anthropic for v in ("anthropic", "prospeo", "brightdata", "discolike")}
        container = await make_services(live_settings(fakes, tam_qualify_mode="online"))
        # An earlier qualify teaches the estimate how long answers run (the request does not say).
        earlier = await _project(container, "Earlier", 60, seed=3)
        assert (await run(container, earlier, JobType.QUALIFY)).status is JobStatus.COMPLETED

        project = await _project(container, "Target", 120, seed=7)
        calls_before = len(anthropic.state.requests)
        estimate = await _estimate(container, project)
        assert len(anthropic.state.requests) == calls_before  # nothing called
        assert estimate.items == estimate.calls == 120
        assert estimate.mode == "online"
        assert (await _estimate(container, project)) == estimate  # nothing stored either: same answer

        job = await run(container, project, JobType.QUALIFY)
        assert job.status is JobStatus.COMPLETED
        measured = container.prices.cost(job.usage)
        assert measured > 0
        assert estimate.cost_usd == pytest.approx(measured, rel=0.20), (estimate, job.usage)


async def test_a_budget_stops_the_job_before_it_could_pass_and_a_later_job_resumes(make_services: Any) -> None:
    with FakeServer("anthropic", api_key=KEY) as anthropic:
        fakes: dict[str, Any] = {v: anthropic for v in ("anthropic", "prospeo", "brightdata", "discolike")}
        container = await make_services(live_settings(fakes, tam_qualify_mode="online"))
        project = await _project(container, "Capped", 80, seed=5)
        prices = container.prices
        dispatch = container.dispatch_job
        # The 80 cost about $0.2; one call's worst case (two tries filling max_tokens 2048, then 4096,
        # with a prompt of ~3,000 tokens written to the cache each time) is about $0.1.
        cap = 0.15

        job, _ = await dispatch.create(project.id, JobType.QUALIFY, max_cost_usd=cap)
        await container.dispatcher.join()
        job = await container.jobs.get(job.id)
        left = len(await container.companies.pending_qualification(project.id))
        assert job.status is JobStatus.FAILED
        assert job.max_cost_usd == cap
        assert job.error == f"budget of ${cap:,.2f} reached; {left} companies left"
        assert 0 < left < 80
        assert job.items_done == 80 - left
        assert prices.cost(job.usage) <= cap  # never past the budget
        paid = len(anthropic.state.requests)
        assert paid == job.items_done  # every call that was made is a stored verdict

        rest, _ = await dispatch.create(project.id, JobType.QUALIFY)
        await container.dispatcher.join()
        rest = await container.jobs.get(rest.id)
        assert rest.status is JobStatus.COMPLETED
        assert rest.items_done == left
        assert len(anthropic.state.requests) == 80  # no company was asked twice
