"""All five job types in live mode, in-process, through the container and JobRunner, against the
fake vendor servers; checks what was stored and the usage recorded with each job."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import pytest

from tam.containers import Services, open_services, run_job
from tam.domain.model import (
    CompanySourceKind,
    EmailStatus,
    Job,
    JobStatus,
    JobType,
    Project,
    QualificationStatus,
    Usage,
)
from tam.settings import Settings
from tam_fakes import FakeServer
from tam_fakes.anthropic import expected_qualified
from tam_fakes.brightdata import expected_active
from tam_fakes.prospeo import email_outcome
from tests.contract.provider_fakes import KEY

ORDER = [
    JobType.SOURCE_COMPANIES,
    JobType.QUALIFY,
    JobType.FIND_CONTACTS,
    JobType.CHECK_LINKEDIN,
    JobType.REFINE_DISCOLIKE,
]


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeServer]]:
    with ExitStack() as stack:
        yield {
            vendor: stack.enter_context(FakeServer(vendor, api_key=KEY, latency=0.01))
            for vendor in ("anthropic", "prospeo", "brightdata", "discolike")
        }


def live_settings(fakes: dict[str, FakeServer], **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "tam_providers": "live",
        "tam_store": "memory",
        "redis_url": None,
        "anthropic_api_key": KEY,
        "anthropic_base_url": fakes["anthropic"].url,
        "tam_claude_model": "claude-sonnet-5-5",
        "prospeo_api_key": KEY,
        "prospeo_base_url": fakes["prospeo"].url,
        "bright_data_api_key": KEY,
        "bright_data_base_url": fakes["brightdata"].url,
        "discolike_api_key": KEY,
        "discolike_base_url": fakes["discolike"].url,
        "tam_source_companies_max_records": 24,
        "tam_refine_discolike_max_records": 10,
    }
    values.update(changes)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def make_services() -> AsyncIterator[Any]:
    """Opens services for a test; they close after it (with the live adapters' HTTP clients)."""
    async with AsyncExitStack() as stack:

        async def make(settings: Settings) -> Services:
            return await stack.enter_async_context(open_services(settings))

        yield make


async def run(container: Services, project: Project, job_type: JobType) -> Job:
    job = await container.jobs.add(Job(project_id=project.id, job_type=job_type))
    return await run_job(container, job.id, 60)


def sample_project() -> Project:
    return Project(
        name="Live e2e",
        icp="B2B SaaS for logistics teams",
        target_titles=("Head of Sales", "VP Sales"),
        target_seniorities=("Head", "Vice President"),
        countries=("US", "GB"),
        employee_range="51,500",
        max_contacts_per_company=2,
    )


async def test_all_five_steps_run_live_against_the_fakes(fakes: dict[str, FakeServer], make_services: Any) -> None:
    container = await make_services(live_settings(fakes))
    project = await container.projects.add(sample_project())
    jobs = {job_type: await run(container, project, job_type) for job_type in ORDER}

    for job in jobs.values():
        assert job.status is JobStatus.COMPLETED, (job.job_type, job.error)
        assert job.progress == 100
        stored = await container.jobs.get(job.id)
        assert stored.usage == job.usage

    companies = (await container.companies.list(project.id, limit=1000)).items
    sourced = [c for c in companies if c.source is CompanySourceKind.DISCOLIKE]
    refined = [c for c in companies if c.source is CompanySourceKind.DISCOLIKE_REFINE]
    assert len(sourced) == 24 - 2  # the fake's two unusable domains (and its duplicate) were dropped
    assert refined and all(c.qualification_status is QualificationStatus.PENDING for c in refined)
    for c in sourced:
        want = QualificationStatus.QUALIFIED if expected_qualified(c.domain) else QualificationStatus.DISQUALIFIED
        assert c.qualification_status is want
        assert c.qualification_reason

    contacts = (await container.contacts.list(project.id, limit=1000)).items
    qualified = {c.id for c in sourced if c.qualification_status is QualificationStatus.QUALIFIED}
    assert contacts and {c.company_id for c in contacts} <= qualified
    for contact in contacts:
        outcome = email_outcome(contact.provider_person_id or "")
        assert contact.email_status is {"VERIFIED": EmailStatus.VERIFIED, "UNVERIFIED": EmailStatus.UNVERIFIED}.get(
            outcome, EmailStatus.NOT_FOUND
        )
        assert contact.linkedin_active is expected_active(contact.linkedin_url or "")
        assert contact.linkedin_checked_at is not None and contact.linkedin_detail

    # Each job's usage record matches what the vendors counted.
    usage = {job_type: job.usage.counts for job_type, job in jobs.items()}
    assert usage[JobType.SOURCE_COMPANIES] == {"discolike_records": 25}
    assert usage[JobType.REFINE_DISCOLIKE] == {"discolike_records": 11}
    claude = usage[JobType.QUALIFY]
    billed = fakes["anthropic"].state.options["usage"]
    assert claude == {
        "claude_input_tokens": billed["input_tokens"],
        "claude_output_tokens": billed["output_tokens"],
        "claude_cache_read_tokens": billed["cache_read_input_tokens"],
        "claude_cache_write_tokens": billed["cache_creation_input_tokens"],
    }
    assert claude["claude_cache_write_tokens"] > 0 and claude["claude_cache_read_tokens"] > 0
    assert len(fakes["anthropic"].state.calls("/v1/messages")) == len(sourced)
    assert usage[JobType.FIND_CONTACTS] == {"prospeo_credits": fakes["prospeo"].state.options["credits_used"]}
    assert usage[JobType.CHECK_LINKEDIN] == {"brightdata_records": fakes["brightdata"].state.options["records_billed"]}
    total = sum((job.usage for job in jobs.values()), Usage())
    assert set(total.counts) == {
        "discolike_records",
        "claude_input_tokens",
        "claude_output_tokens",
        "claude_cache_read_tokens",
        "claude_cache_write_tokens",
        "prospeo_credits",
        "brightdata_records",
    }


async def test_a_missing_key_fails_only_the_job_that_needs_it(fakes: dict[str, FakeServer], make_services: Any) -> None:
    container = await make_services(live_settings(fakes, anthropic_api_key=None))
    project = await container.projects.add(sample_project())
    sourced = await run(container, project, JobType.SOURCE_COMPANIES)
    qualify = await run(container, project, JobType.QUALIFY)
    assert sourced.status is JobStatus.COMPLETED
    assert qualify.status is JobStatus.FAILED
    assert "ANTHROPIC_API_KEY" in (qualify.error or "")
    assert fakes["anthropic"].state.requests == []


async def test_transient_faults_are_retried_without_failing_items(
    fakes: dict[str, FakeServer], make_services: Any
) -> None:
    container = await make_services(live_settings(fakes))
    project = await container.projects.add(sample_project())
    await run(container, project, JobType.SOURCE_COMPANIES)
    fakes["anthropic"].state.inject("429", times=3, retry_after=0.05)
    fakes["anthropic"].state.inject("529", times=2)
    job = await run(container, project, JobType.QUALIFY)
    assert job.status is JobStatus.COMPLETED
    assert job.items_failed == 0 and job.items_done == 22
