"""CompanySource contract: the sandbox adapter and DiscoLike against its fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tam.adapters.memory import SystemClock
from tam.adapters.sandbox import SandboxBehaviour, SandboxCompanySource
from tam.domain.domains import normalise_domain
from tam.domain.model import CompanySourceKind, PermanentItemError
from tam.ports.providers import CompanySource, DiscoveryQuery
from tam_fakes import FakeServer
from tests.contract.provider_fakes import fake, live_adapter

ICP = DiscoveryQuery(icp_text="logistics SaaS", countries=("US", "GB"), employee_range="51,500", max_records=30)
SEEDS = tuple(f"seed{i}.com" for i in range(12))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with fake("discolike") as running:
        yield running


@pytest.fixture
def discolike(server: FakeServer) -> FakeServer:
    server.state.reset()
    return server


@pytest.fixture
async def live(discolike: FakeServer) -> AsyncIterator[Any]:
    adapter = live_adapter("discolike", discolike.url)
    yield adapter
    await adapter.aclose()


@pytest.fixture(params=["sandbox", "live"])
async def source(request: pytest.FixtureRequest, discolike: FakeServer) -> AsyncIterator[CompanySource]:
    if request.param == "sandbox":
        yield SandboxCompanySource(SandboxBehaviour(SystemClock(), latency=0))
        return
    adapter = live_adapter("discolike", discolike.url)
    yield adapter
    await adapter.aclose()


async def test_companies_have_unique_normalised_domains(source: CompanySource) -> None:
    found = await source.discover(ICP)
    domains = [c.domain for c in found.companies]
    assert 0 < len(domains) <= ICP.max_records
    assert len(set(domains)) == len(domains)
    assert all(normalise_domain(d) == d for d in domains)
    assert found.usage.counts["discolike_records"] >= len(domains)


async def test_seeds_make_a_refinement(source: CompanySource) -> None:
    found = await source.discover(DiscoveryQuery(icp_text="logistics SaaS", seed_domains=SEEDS[:3], max_records=10))
    assert found.companies
    assert not {c.domain for c in found.companies} & set(SEEDS)
    assert all(c.similarity is not None for c in found.companies)


async def test_sources_are_marked(live: Any) -> None:
    plain = await live.discover(ICP)
    refined = await live.discover(DiscoveryQuery(icp_text="x", seed_domains=SEEDS[:2], max_records=5))
    assert {c.source for c in plain.companies} == {CompanySourceKind.DISCOLIKE}
    assert {c.source for c in refined.companies} == {CompanySourceKind.DISCOLIKE_REFINE}


async def test_the_query_uses_repeated_keys_and_sets_variance(live: Any, discolike: FakeServer) -> None:
    await live.discover(DiscoveryQuery(icp_text="logistics SaaS", countries=("us", "GB"), seed_domains=SEEDS))
    [sent] = discolike.state.calls("/discover")
    assert sent.headers["x-discolike-key"] == "fake-key-123"
    keys = [k for k, _ in sent.query]
    assert [v for k, v in sent.query if k == "country"] == ["US", "GB"]
    assert [v for k, v in sent.query if k == "domain"] == list(SEEDS[:10])  # at most ten seeds
    assert dict(sent.query)["variance"] == "MEDIUM"
    assert dict(sent.query)["icp_text"] == "logistics SaaS"
    assert keys.count("max_records") == 1


async def test_messy_answers_are_cleaned(live: Any, discolike: FakeServer) -> None:
    found = await live.discover(ICP)
    returned = found.usage.counts["discolike_records"]
    assert returned == 31  # 30 plus one duplicate from the fake
    domains = [c.domain for c in found.companies]
    assert "not a domain" not in domains
    assert any(c.linkedin_url for c in found.companies)
    assert all(c.employee_range == "51,500" for c in found.companies)
    assert len(domains) == 30 - 3  # two unusable domains and the duplicate are dropped


async def test_a_rejected_query_is_an_item_error(discolike: FakeServer) -> None:
    adapter = live_adapter("discolike", discolike.url, variance="WILD")
    try:
        with pytest.raises(PermanentItemError, match="422"):
            await adapter.discover(ICP)
    finally:
        await adapter.aclose()
