"""PersonSearch and EmailFinder contracts: the sandbox adapters and Prospeo against its fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tam.adapters.memory import SystemClock
from tam.adapters.sandbox import SandboxBehaviour, SandboxEmailFinder, SandboxPersonSearch
from tam.domain.model import EmailStatus, PermanentItemError, Person
from tam.ports.providers import EmailFinder, PersonSearch
from tam_fakes import FakeServer
from tam_fakes.prospeo import email_outcome
from tests.contract.provider_fakes import company, fake, live_adapter, project


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with fake("prospeo") as running:
        yield running


@pytest.fixture
def prospeo(server: FakeServer) -> FakeServer:
    server.state.reset()
    server.state.options["people"] = {}
    return server


@pytest.fixture(params=["sandbox", "live"])
async def ports(request: pytest.FixtureRequest, prospeo: FakeServer) -> AsyncIterator[tuple[PersonSearch, EmailFinder]]:
    if request.param == "sandbox":
        behaviour = SandboxBehaviour(SystemClock(), latency=0)
        yield SandboxPersonSearch(behaviour), SandboxEmailFinder(behaviour)
        return
    search, finder = live_adapter("prospeo_search", prospeo.url), live_adapter("prospeo_enrich", prospeo.url)
    yield search, finder
    await search.aclose()
    await finder.aclose()


@pytest.fixture
async def live(prospeo: FakeServer) -> AsyncIterator[tuple[Any, Any]]:
    search, finder = live_adapter("prospeo_search", prospeo.url), live_adapter("prospeo_enrich", prospeo.url)
    yield search, finder
    await search.aclose()
    await finder.aclose()


async def test_finds_at_most_limit_people_then_their_emails(ports: tuple[PersonSearch, EmailFinder]) -> None:
    search, finder = ports
    seen = 0
    for domain in ("northwind3.com", "bluegate7.io", "deepwave2.co", "ironpath4.com"):
        target = company(domain)
        found = await search.search(project(), target, 2)
        assert len(found.people) <= 2
        for person in found.people:
            seen += 1
            assert person.full_name and person.provider_person_id and person.linkedin_url
            email = await finder.find_email(person, target)
            assert email.status in set(EmailStatus)
            assert (email.email is None) == (email.status is EmailStatus.NOT_FOUND)
            # An email costs a credit; a match without one may too (Prospeo bills the match).
            assert email.usage.counts.get("prospeo_credits", 0) in ((1,) if email.email else (0, 1))
        assert found.usage.counts.get("prospeo_credits", 0) == (1 if found.people else 0)
    assert seen > 0


async def test_search_sends_the_documented_filters(live: tuple[Any, Any], prospeo: FakeServer) -> None:
    search, _ = live
    found = await search.search(project(), company("northwind3.com"), 2)
    [sent] = prospeo.state.calls("/search-person")
    assert sent.headers["x-key"] == "fake-key-123"
    assert sent.body == {
        "page": 1,
        "filters": {
            "company": {"websites": {"include": ["northwind3.com"]}},
            "max_person_per_company": 2,
            "person_job_title": {"include": ["Head of Sales", "VP Sales"]},
            "person_seniority": {"include": ["Head", "Vice President"]},
        },
    }
    assert {p.title for p in found.people} <= {"Head of Sales", "VP Sales"}


async def test_no_results_is_an_empty_answer_and_free(live: tuple[Any, Any]) -> None:
    search, _ = live
    found = await search.search(project(), company("nobody-here.com"), 3)
    assert found.people == ()
    assert not found.usage


async def test_each_page_with_results_costs_one_credit(live: tuple[Any, Any], prospeo: FakeServer) -> None:
    search, _ = live
    prospeo.state.options["people"] = {"bigcorp.com": 40}
    found = await search.search(project(), company("bigcorp.com"), 40)
    assert len(found.people) == 40
    assert [r.body["page"] for r in prospeo.state.calls("/search-person")] == [1, 2]
    assert found.usage.counts == {"prospeo_credits": 2}


async def test_enrich_uses_the_person_id_and_reports_verification(live: tuple[Any, Any], prospeo: FakeServer) -> None:
    search, finder = live
    target = company("northwind3.com")
    prospeo.state.options["people"] = {"northwind3.com": 12}
    found = await search.search(project(), target, 12)
    outcomes = set()
    for person in found.people:
        email = await finder.find_email(person, target)
        expected = email_outcome(person.provider_person_id or "")
        outcomes.add(expected)
        want = {"VERIFIED": EmailStatus.VERIFIED, "UNVERIFIED": EmailStatus.UNVERIFIED}.get(
            expected, EmailStatus.NOT_FOUND
        )
        assert email.status is want
    assert {"VERIFIED", "UNVERIFIED", "NO_MATCH"} <= outcomes <= {"VERIFIED", "UNVERIFIED", "NO_MATCH", "NO_EMAIL"}
    sent = prospeo.state.calls("/enrich-person")[0].body
    assert sent["only_verified_email"] is False
    assert sent["data"]["person_id"] == found.people[0].provider_person_id
    assert sent["data"]["company_website"] == "northwind3.com"


async def test_a_repeat_enrichment_is_free(live: tuple[Any, Any]) -> None:
    search, finder = live
    target = company("repeatonce4.com")  # enriched by no other test
    people = (await search.search(project(), target, 5)).people
    person = next(p for p in people if email_outcome(p.provider_person_id or "") != "NO_MATCH")
    first, again = await finder.find_email(person, target), await finder.find_email(person, target)
    assert first.email == again.email
    assert first.usage.counts == {"prospeo_credits": 1}
    assert not again.usage


async def test_unusable_datapoints_are_an_item_error(live: tuple[Any, Any]) -> None:
    _, finder = live
    with pytest.raises(PermanentItemError, match="INVALID_DATAPOINTS"):
        await finder.find_email(Person(full_name=""), company(domain="northwind3.com", name=""))
