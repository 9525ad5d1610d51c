"""Rate signals and vendor details of the live adapters against the fakes: a 429 is a throttled
transient error with its Retry-After; answers carry the limits and remaining quota of the vendor's
headers and what the call really spent (Claude: uncached input tokens, cache reads excluded); and
each vendor's documented quirks (Prospeo's retryable 400, its billing; Bright Data's text answers;
DiscoLike's exclude_domain and plan errors)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tam.adapters.memory import LocalLimiter
from tam.adapters.pacer import paces
from tam.containers import open_services, run_job
from tam.domain.model import (
    Contact,
    CredentialError,
    Job,
    JobStatus,
    JobType,
    NewCompany,
    Person,
    Project,
    TransientProviderError,
)
from tam.ports.providers import DiscoveryQuery, LinkedinTarget
from tam.settings import Settings
from tam_fakes import FakeServer
from tam_fakes.prospeo import email_outcome
from tests.contract.provider_fakes import KEY, company, live_adapter, project


async def call(kind: str, adapter: Any) -> Any:
    if kind == "claude":
        return await adapter.qualify(project(), company())
    if kind == "prospeo_search":
        return await adapter.search(project(), company(), 3)
    person = Person(full_name="Ada Lovelace", first_name="Ada", last_name="Lovelace")
    return await adapter.find_email(person, company())


@pytest.mark.parametrize("kind", ["claude", "prospeo_search", "prospeo_enrich"])
async def test_answers_carry_the_limits_and_what_is_left_and_a_429_is_throttled(kind: str) -> None:
    vendor = "anthropic" if kind == "claude" else "prospeo"
    # A bucket of 3 requests refilled at 1 a minute: the third empties it, the fourth is refused.
    with FakeServer(vendor, api_key=KEY, rate_limit=1, rate_burst=3) as fake:
        adapter = live_adapter(kind, fake.url, concurrency=10)
        try:
            first = await call(kind, adapter)
            await call(kind, adapter)
            third = await call(kind, adapter)
            with pytest.raises(TransientProviderError) as refused:
                await call(kind, adapter)
        finally:
            await adapter.aclose()
    assert first.rate.limits.requests == 1
    assert first.rate.remaining.requests == 2
    assert third.rate.remaining.requests == 0
    assert first.rate.spent is not None and first.rate.spent.requests == 1
    assert refused.value.throttled
    assert refused.value.retry_after is not None and refused.value.retry_after > 1
    assert fake.state.throttled == 1


async def test_claude_counts_uncached_input_and_real_output_tokens_against_its_budgets() -> None:
    options = {"input_tpm": 1_000_000, "output_tpm": 100_000}
    with FakeServer("anthropic", api_key=KEY, options=options) as fake:
        adapter = live_adapter("claude", fake.url)
        try:
            estimate = adapter.cost(project(), company())
            first = await adapter.qualify(project(), company("first.com"))
            second = await adapter.qualify(project(), company("second.com"))
            warm_estimate = adapter.cost(project(), company("third.com"))
        finally:
            await adapter.aclose()
    counts = second.usage.counts
    assert second.rate.limits.input_tokens == 1_000_000
    assert second.rate.limits.output_tokens == 100_000
    assert second.rate.remaining.input_tokens is not None and second.rate.remaining.input_tokens < 1_000_000
    # Cache reads do not count toward the input budget: only fresh input and cache writes do.
    assert second.rate.spent.input_tokens == counts.get("claude_input_tokens", 0) + counts.get(
        "claude_cache_write_tokens", 0
    )
    assert second.rate.spent.output_tokens == counts["claude_output_tokens"]
    assert estimate.output_tokens >= first.rate.spent.output_tokens  # max_tokens is reserved
    if counts.get("claude_cache_read_tokens"):
        assert warm_estimate.input_tokens < estimate.input_tokens  # a warm prefix is not counted


async def test_claude_answers_429_with_retry_after_past_its_input_token_budget() -> None:
    options = {"input_tpm": 60, "token_burst_seconds": 60}
    with FakeServer("anthropic", api_key=KEY, options=options) as fake:
        adapter = live_adapter("claude", fake.url)
        try:
            await adapter.qualify(project(), company("c0.com"))  # ~60 uncached tokens: the minute's budget
            with pytest.raises(TransientProviderError) as refused:
                await adapter.qualify(project(), company("c1.com"))
        finally:
            await adapter.aclose()
    assert refused.value.throttled
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1


async def test_prospeo_internal_error_is_transient() -> None:
    with FakeServer("prospeo", api_key=KEY) as fake:
        adapter = live_adapter("prospeo_search", fake.url)
        try:
            fake.state.inject("internal")
            with pytest.raises(TransientProviderError) as failed:
                await adapter.search(project(), company(), 3)
            assert "INTERNAL_ERROR" in str(failed.value)
            assert (await adapter.search(project(), company(), 3)).people  # and the retry works
        finally:
            await adapter.aclose()


async def test_prospeo_charges_a_match_without_an_email_unless_it_is_free() -> None:
    with FakeServer("prospeo", api_key=KEY) as fake:
        search = live_adapter("prospeo_search", fake.url)
        finder = live_adapter("prospeo_enrich", fake.url)
        try:
            target = company("manypeople.com")
            fake.state.options["people"] = {"manypeople.com": 40}
            people = (await search.search(project(), target, 40)).people
            no_email = next(p for p in people if email_outcome(p.provider_person_id or "") == "NO_EMAIL")
            no_match = next(p for p in people if email_outcome(p.provider_person_id or "") == "NO_MATCH")
            before = fake.state.options["credits_used"]
            first = await finder.find_email(no_email, target)
            again = await finder.find_email(no_email, target)
            unmatched = await finder.find_email(no_match, target)
        finally:
            await search.aclose()
            await finder.aclose()
    assert first.email is None and first.usage.counts == {"prospeo_credits": 1}
    assert not again.usage and not unmatched.usage
    assert fake.state.options["credits_used"] - before == 1  # what we count is what the vendor billed


async def test_bright_data_account_text_in_a_200_is_a_credential_error() -> None:
    with FakeServer("brightdata", api_key=KEY) as fake:
        checker = live_adapter("brightdata", fake.url)
        fake.state.inject("suspended")
        try:
            url = "https://www.linkedin.com/in/ada-x-acme-0"
            with pytest.raises(CredentialError) as failed:
                await checker.check([LinkedinTarget(company().id, url, "Acme", "acme.com")])
        finally:
            await checker.aclose()
    assert "BRIGHT_DATA_API_KEY" in str(failed.value)
    assert "suspended" in str(failed.value)


async def test_discolike_excludes_known_domains_with_exclude_domain_and_bills_only_new_ones() -> None:
    with FakeServer("discolike", api_key=KEY) as fake:
        source = live_adapter("discolike", fake.url)
        try:
            query = DiscoveryQuery(icp_text="B2B software", seed_domains=("seed.com",), max_records=20)
            everything = await source.discover(query)
            known = tuple(c.domain for c in everything.companies[:8])
            fake.state.options["records_billed"] = 0
            fresh = await source.discover(replace(query, exclude_domains=known))
        finally:
            await source.aclose()
    sent = fake.state.requests[-1].query
    assert [v for k, v in sent if k == "exclude_domain"] == list(known)
    assert not any(k == "negate_domain" for k, _ in sent)
    assert not {c.domain for c in fresh.companies} & set(known)
    assert fake.state.options["records_billed"] == fresh.usage.counts["discolike_records"]
    assert fresh.usage.counts["discolike_records"] < everything.usage.counts["discolike_records"]


async def test_a_403_for_the_plan_says_so_instead_of_key_rejected() -> None:
    with FakeServer("discolike", api_key=KEY) as fake:
        source = live_adapter("discolike", fake.url)
        fake.state.inject("plan")
        try:
            with pytest.raises(CredentialError) as failed:
                await source.discover(DiscoveryQuery(icp_text="B2B software"))
        finally:
            await source.aclose()
    assert "plan does not include" in str(failed.value)
    assert "rejected" not in str(failed.value)


CONTACTS = 400


@pytest.mark.slow
@pytest.mark.parametrize("guarded", [True, False], ids=["guard", "no-guard"])
async def test_a_check_linkedin_job_under_bright_data_s_block_rule_is_never_blocked_with_the_guard(
    guarded: bool,
) -> None:
    """The fake answers 429 above 2 running scrapes and blocks the IP at 25 429s in 5 minutes. A
    checkLinkedin job of 400 calls at 5 workers: with the guard (at most 10 429s per 5 minutes across
    workers) it completes unblocked; without it, the same job gets the IP blocked (the test has teeth)."""
    with FakeServer("brightdata", api_key=KEY, latency=0.12, sigma=0.3, options={"max_running": 2}) as fake:
        settings = Settings(
            _env_file=None,
            tam_providers="live",
            tam_store="memory",
            redis_url=None,
            bright_data_api_key=KEY,
            bright_data_base_url=fake.url,
            tam_check_linkedin_concurrency=5,
        )
        budgets = paces(settings.concurrency, settings.rate_limits)
        if not guarded:
            budgets = {k: replace(v, guard=None) for k, v in budgets.items()}
        async with open_services(settings, limiter=LocalLimiter(budgets)) as services:
            project_ = await services.projects.add(Project(name="bd", icp="logistics software"))
            await services.companies.add_many(project_.id, [NewCompany(name="Acme", domain="acme.com")])
            acme = (await services.companies.list(project_.id, None, limit=1)).items[0]
            people = [
                Contact(
                    id=uuid.uuid4(),
                    project_id=project_.id,
                    company_id=acme.id,
                    full_name=f"Person {i}",
                    linkedin_url=f"https://www.linkedin.com/in/person-{i}-acme-{i}",
                )
                for i in range(CONTACTS)
            ]
            await services.contacts.record_company_contacts(acme, people, datetime.now(UTC))
            services.vendors.linkedin_checker.max_batch = 1  # one profile a call
            job = await services.jobs.add(Job(project_id=project_.id, job_type=JobType.CHECK_LINKEDIN))
            done = await run_job(services, job.id, 120)
    block = fake.state.options["blocked"]
    if guarded:
        assert done.status is JobStatus.COMPLETED, done.error
        assert (done.items_done, done.items_failed) == (CONTACTS, 0)
        assert fake.state.throttled > 0  # the guard was needed: 429s happened
        assert block.peak <= 10
        assert not block.blocked
    else:
        assert block.blocked
        assert done.status is JobStatus.FAILED and "blocked" in (done.error or "")
