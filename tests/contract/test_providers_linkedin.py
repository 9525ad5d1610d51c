"""LinkedinChecker contract: the sandbox adapter and Bright Data against its fake."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tam.adapters.memory import SystemClock
from tam.adapters.sandbox import SandboxBehaviour, SandboxLinkedinChecker
from tam.domain.model import PermanentItemError, TransientProviderError
from tam.ports.providers import LinkedinChecker, LinkedinTarget
from tam_fakes import FakeServer
from tam_fakes.brightdata import expected_active
from tests.contract.provider_fakes import fake, live_adapter

URLS = [f"https://www.linkedin.com/in/person{i}-x-northwind3-{i}" for i in range(18)]
GONE = "https://www.linkedin.com/in/ghost-user-1"
BLOCKED = "https://www.linkedin.com/in/blocked-user-1"


def target(url: str, **changes: Any) -> LinkedinTarget:
    fields: dict[str, Any] = {
        "contact_id": uuid.uuid4(),
        "url": url,
        "company_name": "Northwind3",
        "company_domain": "northwind3.com",
        "company_linkedin_url": "https://www.linkedin.com/company/northwind3",
    }
    fields.update(changes)
    return LinkedinTarget(**fields)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with fake("brightdata") as running:
        yield running


@pytest.fixture
def brightdata(server: FakeServer) -> FakeServer:
    server.state.reset()
    server.state.options.update(async_scrape=False, snapshot_fails=False, progress_polls=1, snapshot_retry_after=10)
    return server


@pytest.fixture
async def live(brightdata: FakeServer) -> AsyncIterator[Any]:
    adapter = live_adapter("brightdata", brightdata.url)
    yield adapter
    await adapter.aclose()


@pytest.fixture(params=["sandbox", "live"])
async def checker(request: pytest.FixtureRequest, brightdata: FakeServer) -> AsyncIterator[LinkedinChecker]:
    if request.param == "sandbox":
        yield SandboxLinkedinChecker(SandboxBehaviour(SystemClock(), latency=0))
        return
    adapter = live_adapter("brightdata", brightdata.url)
    yield adapter
    await adapter.aclose()


async def test_one_check_per_target_in_batches_of_twenty(checker: LinkedinChecker) -> None:
    assert checker.max_batch == 20
    targets = [target(u) for u in [*URLS, GONE]]
    result = await checker.check(targets)
    assert sorted(str(c.contact_id) for c in result.checks) == sorted(str(t.contact_id) for t in targets)
    assert all(c.detail for c in result.checks)
    assert {c.active for c in result.checks} <= {True, False, None}
    assert result.usage.counts["brightdata_records"] > 0


async def test_verdicts_follow_the_profile(live: Any, brightdata: FakeServer) -> None:
    targets = [target(u) for u in [*URLS, GONE, BLOCKED]]
    result = await live.check(targets)
    by_id = {c.contact_id: c for c in result.checks}
    for t in targets:
        check = by_id[t.contact_id]
        assert check.active is expected_active(t.url), (t.url, check)
    assert by_id[targets[-2].contact_id].detail == "profile is gone (dead_page)"
    assert "blocked" in by_id[targets[-1].contact_id].detail
    moved = [by_id[t.contact_id] for t in targets[:-2] if not expected_active(t.url)]
    assert moved, "the fake moves a fifth of people"
    assert all("Othercorp" in c.detail and "Northwind3" in c.detail for c in moved)
    # Only records without an error are billed.
    assert result.usage.counts == {"brightdata_records": len(URLS)}
    [sent] = brightdata.state.calls("/datasets/v3/scrape")
    assert dict(sent.query) == {"dataset_id": "gd_l1viktl72bvl7bjuj0", "format": "json", "include_errors": "true"}
    assert sent.body == [{"url": t.url} for t in targets]
    assert sent.headers["authorization"] == "Bearer fake-key-123"


async def test_the_company_matches_by_name_without_a_linkedin_page(live: Any) -> None:
    url = next(u for u in URLS if expected_active(u))
    [check] = (await live.check([target(url, company_linkedin_url=None, company_name="Northwind3 Inc.")])).checks
    assert check.active is True


async def test_a_202_is_followed_through_progress_and_download(live: Any, brightdata: FakeServer) -> None:
    brightdata.state.options.update(async_scrape=True, progress_polls=2, snapshot_retry_after=0.05)
    targets = [target(u) for u in URLS[:5]]
    result = await live.check(targets)
    assert [c.active for c in result.checks] == [expected_active(t.url) for t in targets]
    paths = [r.path.split("/")[3] for r in brightdata.state.requests]
    assert paths == ["scrape", "progress", "progress", "progress", "snapshot"]


async def test_a_long_retry_after_is_capped(live: Any, brightdata: FakeServer) -> None:
    brightdata.state.options.update(async_scrape=True, progress_polls=1, snapshot_retry_after=600)
    started = time.monotonic()
    await live.check([target(URLS[0])])
    assert time.monotonic() - started < 3


async def test_a_slow_snapshot_gives_the_slot_back_and_is_resumed(brightdata: FakeServer) -> None:
    brightdata.state.options.update(async_scrape=True, progress_polls=10_000, snapshot_retry_after=0.02)
    adapter = live_adapter("brightdata", brightdata.url, snapshot_budget=0.2)
    targets = [target(u) for u in URLS[:3]]
    try:
        with pytest.raises(TransientProviderError, match="still running"):
            await adapter.check(targets)
        for snapshot in brightdata.state.options["snapshots"].values():
            snapshot["polls"] = 0
        result = await adapter.check(targets)
    finally:
        await adapter.aclose()
    assert len(result.checks) == 3
    assert len(brightdata.state.calls("/datasets/v3/scrape")) == 1  # not paid twice


async def test_a_failed_snapshot_is_transient(live: Any, brightdata: FakeServer) -> None:
    brightdata.state.options.update(async_scrape=True, snapshot_fails=True, snapshot_retry_after=0.02)
    with pytest.raises(TransientProviderError, match="failed"):
        await live.check([target(URLS[0])])


async def test_an_invalid_url_rejects_the_batch(live: Any) -> None:
    with pytest.raises(PermanentItemError, match="validation_error"):
        await live.check([target("https://www.linkedin.com/company/northwind3")])


async def test_more_than_twenty_is_refused_before_any_request(live: Any, brightdata: FakeServer) -> None:
    with pytest.raises(PermanentItemError):
        await live.check([target(f"https://www.linkedin.com/in/p-{i}") for i in range(21)])
    assert brightdata.state.requests == []
