"""CompanyRepo contract, run against every storage adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from tam.domain.domains import normalise_domain
from tam.domain.model import CompanySourceKind, NewCompany, NotFound, Project, QualificationStatus
from tam.domain.services.projects import CompanyRow, ImportCompanies
from tam.ports.storage import QualificationRecord
from tests.contract.conftest import Stores

AT = datetime(2026, 11, 29, 12, 30, 15, 123456, tzinfo=UTC)


async def a_project(store: Stores) -> UUID:
    return (await store.projects.add(Project(name="Acme TAM", icp="fintech"))).id


def companies(*domains: str) -> list[NewCompany]:
    return [NewCompany(name=f"Company {d}", domain=d) for d in domains]


async def test_add_many_inserts_new_domains_and_skips_known_ones(store: Stores) -> None:
    project_id = await a_project(store)
    first = await store.companies.add_many(project_id, companies("a.com", "b.com", "c.com"))
    assert (first.inserted, first.skipped) == (3, 0)
    again = await store.companies.add_many(project_id, companies("b.com", "c.com", "d.com"))
    assert (again.inserted, again.skipped) == (1, 2)
    assert (await store.companies.list(project_id)).total == 4


async def test_duplicates_within_one_call_are_skipped(store: Stores) -> None:
    project_id = await a_project(store)
    result = await store.companies.add_many(project_id, companies("a.com", "a.com", "b.com"))
    assert (result.inserted, result.skipped) == (2, 1)


async def test_an_empty_import_does_nothing(store: Stores) -> None:
    project_id = await a_project(store)
    assert await store.companies.add_many(project_id, []) == (await store.companies.add_many(project_id, []))
    assert (await store.companies.list(project_id)).total == 0


async def test_the_same_domain_may_live_in_two_projects(store: Stores) -> None:
    one, two = await a_project(store), await a_project(store)
    await store.companies.add_many(one, companies("shared.io"))
    result = await store.companies.add_many(two, companies("shared.io"))
    assert result.inserted == 1


async def test_spellings_of_one_domain_are_one_company(store: Stores) -> None:
    assert normalise_domain("https://www.Acme.com/about") == normalise_domain("acme.com") == "acme.com"
    project_id = await a_project(store)
    rows = [
        CompanyRow("Acme", "https://www.Acme.com/about"),
        CompanyRow("Acme again", "acme.com"),
        CompanyRow("Acme port", "http://ACME.com:8080/x?y=1"),
        CompanyRow("Acme dot", "acme.com."),
        CompanyRow("Broken", "not a domain"),
        CompanyRow("Empty", None),
    ]
    result = await ImportCompanies(store.companies)(project_id, rows)
    assert (result.inserted, result.skipped) == (1, 3)
    assert [raw for raw, _ in result.rejected] == ["not a domain", ""]
    page = await store.companies.list(project_id)
    assert [(c.name, c.domain) for c in page.items] == [("Acme", "acme.com")]


async def test_every_field_round_trips_with_unicode_intact(store: Stores) -> None:
    project_id = await a_project(store)
    new = NewCompany(
        name="Zürich Füße AG — 株式会社",
        domain="xn--zrich-kva.ch",
        source=CompanySourceKind.DISCOLIKE,
        description="Ünïcödé «quotes» 'and' \"doubles\"; DROP TABLE tam_companies; --",
        country="CH",
        employee_range="11,50",
        linkedin_url="https://www.linkedin.com/company/zurich",
        similarity=0.875,
    )
    await store.companies.add_many(project_id, [new])
    (company,) = (await store.companies.list(project_id)).items
    assert company.project_id == project_id
    assert (company.name, company.domain, company.source) == (new.name, new.domain, new.source)
    assert (company.description, company.country, company.employee_range) == (
        new.description,
        new.country,
        new.employee_range,
    )
    assert (company.linkedin_url, company.similarity) == (new.linkedin_url, new.similarity)
    assert company.qualification_status is QualificationStatus.PENDING
    assert company.qualification_reason is None and company.qualified_at is None
    assert company.contacts_searched_at is None and company.created_at is not None
    assert await store.companies.get_many([company.id]) == [company]


async def test_qualification_moves_companies_out_of_pending(store: Stores) -> None:
    project_id = await a_project(store)
    await store.companies.add_many(project_id, companies("a.com", "b.com", "c.com"))
    a, b, c = await store.companies.pending_qualification(project_id)
    await store.companies.record_qualification(a.id, QualificationStatus.QUALIFIED, "fits the ICP", AT)
    await store.companies.record_qualification(b.id, QualificationStatus.DISQUALIFIED, "too small", AT)
    assert [x.id for x in await store.companies.pending_qualification(project_id)] == [c.id]
    (got,) = await store.companies.get_many([a.id])
    assert (got.qualification_status, got.qualification_reason, got.qualified_at) == (
        QualificationStatus.QUALIFIED,
        "fits the ICP",
        AT,
    )
    counts = await store.companies.count_by_status(project_id)
    assert dict(counts) == {
        QualificationStatus.PENDING: 1,
        QualificationStatus.QUALIFIED: 1,
        QualificationStatus.DISQUALIFIED: 1,
        QualificationStatus.ERROR: 0,
    }


async def test_many_verdicts_are_recorded_at_once_and_missing_companies_skipped(store: Stores) -> None:
    project_id = await a_project(store)
    await store.companies.add_many(project_id, companies("a.com", "b.com", "c.com"))
    a, b, c = await store.companies.pending_qualification(project_id)
    assert await store.companies.record_qualifications([]) == 0
    records = [
        QualificationRecord(a.id, QualificationStatus.QUALIFIED, "fits the ICP", AT),
        QualificationRecord(uuid4(), QualificationStatus.QUALIFIED, "gone", AT),
        QualificationRecord(b.id, QualificationStatus.DISQUALIFIED, "too small", AT),
    ]
    assert await store.companies.record_qualifications(records) == 2
    assert [x.id for x in await store.companies.pending_qualification(project_id)] == [c.id]
    got = {x.id: x for x in await store.companies.get_many([a.id, b.id])}
    assert (got[a.id].qualification_status, got[a.id].qualification_reason, got[a.id].qualified_at) == (
        QualificationStatus.QUALIFIED,
        "fits the ICP",
        AT,
    )
    assert (got[b.id].qualification_status, got[b.id].qualification_reason) == (
        QualificationStatus.DISQUALIFIED,
        "too small",
    )
    # a verdict is written once: a second write (another job, or a stale attempt) changes nothing
    later = QualificationRecord(a.id, QualificationStatus.DISQUALIFIED, "overwrite?", AT)
    assert await store.companies.record_qualifications([later]) == 0
    (kept,) = await store.companies.get_many([a.id])
    assert (kept.qualification_status, kept.qualification_reason) == (QualificationStatus.QUALIFIED, "fits the ICP")


async def test_needing_contacts_is_qualified_and_never_searched(store: Stores) -> None:
    project_id = await a_project(store)
    await store.companies.add_many(project_id, companies("a.com", "b.com", "c.com"))
    a, b, _ = await store.companies.pending_qualification(project_id)
    for company in (a, b):
        await store.companies.record_qualification(company.id, QualificationStatus.QUALIFIED, "ok", AT)
    assert [x.id for x in await store.companies.needing_contacts(project_id)] == [a.id, b.id]
    await store.contacts.record_company_contacts(a, [], AT)
    assert [x.id for x in await store.companies.needing_contacts(project_id)] == [b.id]


async def test_get_many_keeps_the_order_asked_and_drops_unknown_ids(store: Stores) -> None:
    project_id = await a_project(store)
    await store.companies.add_many(project_id, companies("a.com", "b.com"))
    a, b = (await store.companies.list(project_id)).items
    got = await store.companies.get_many([b.id, uuid4(), a.id])
    assert [c.id for c in got] == [b.id, a.id]
    assert await store.companies.get_many([]) == []


async def test_list_filters_pages_and_counts(store: Stores) -> None:
    project_id = await a_project(store)
    await store.companies.add_many(project_id, companies(*(f"c{i:02d}.com" for i in range(12))))
    first = await store.companies.pending_qualification(project_id)
    await store.companies.record_qualification(first[0].id, QualificationStatus.ERROR, "boom", AT)
    page = await store.companies.list(project_id, limit=5, offset=5)
    assert page.total == 12 and len(page.items) == 5
    everything = (await store.companies.list(project_id, limit=100)).items
    assert page.items == everything[5:10]
    errors = await store.companies.list(project_id, status=QualificationStatus.ERROR)
    assert (errors.total, [c.id for c in errors.items]) == (1, [first[0].id])
    beyond = await store.companies.list(project_id, offset=50)
    assert (beyond.total, beyond.items) == (12, ())


async def test_recording_a_missing_company_is_not_found(store: Stores) -> None:
    with pytest.raises(NotFound):
        await store.companies.record_qualification(uuid4(), QualificationStatus.QUALIFIED, "x", AT)


async def test_an_unknown_project_counts_nothing(store: Stores) -> None:
    assert set((await store.companies.count_by_status(uuid4())).values()) == {0}
    assert (await store.companies.list(uuid4())).total == 0


async def test_adding_companies_to_an_unknown_project_is_not_found(store: Stores) -> None:
    with pytest.raises(NotFound):
        await store.companies.add_many(uuid4(), companies("acme.com"))


async def test_list_searches_name_or_domain_ignoring_case(store: Stores) -> None:
    project_id = await a_project(store)
    other = await a_project(store)
    await store.companies.add_many(
        project_id,
        [
            NewCompany("Northwind Traders", "northwind.com"),
            NewCompany("Globex", "globex-north.io"),
            NewCompany("Initech", "initech.com"),
            NewCompany("100% Pure_Foods (EU), Ltd.", "pure.eu"),
            NewCompany("Zürich Versicherung", "zurich.ch"),
        ],
    )
    await store.companies.add_many(other, [NewCompany("Northwind elsewhere", "northwind.net")])

    async def names(q: str, **kw: object) -> list[str]:
        page = await store.companies.list(project_id, q=q, **kw)  # type: ignore[arg-type]
        assert page.total == len(page.items)
        return sorted(c.name for c in page.items)

    assert await names("NORTH") == ["Globex", "Northwind Traders"]  # name in one, domain in the other
    assert await names("initech.COM") == ["Initech"]
    assert await names("zürich") == ["Zürich Versicherung"]
    assert await names("% Pure_Foods (EU), L") == ["100% Pure_Foods (EU), Ltd."]  # PostgREST's reserved characters
    assert await names("nothing like it") == []
    assert len(await names("")) == 5  # a blank search is no search
    northwind = next(c for c in (await store.companies.list(project_id)).items if c.domain == "northwind.com")
    await store.companies.record_qualification(northwind.id, QualificationStatus.QUALIFIED, "fits", AT)
    assert await names("north", status=QualificationStatus.QUALIFIED) == ["Northwind Traders"]
    assert await names("north", status=QualificationStatus.PENDING) == ["Globex"]
    paged = await store.companies.list(project_id, q="o", limit=2, offset=1)
    everything = await store.companies.list(project_id, q="o")
    assert (paged.total, paged.items) == (everything.total, everything.items[1:3])


async def test_a_value_postgresql_cannot_store_is_bad_input_in_one_line(store: Stores) -> None:
    """Too large for the (project, domain) index, or out of an integer column's range: RejectedValue (a
    400, a rejected import row), never an outage to wait out; SQLite and memory store both."""
    import random

    from tam.domain.model import RejectedValue

    rnd = random.Random(1)  # random letters: a compressible value would fit in the index
    huge = ".".join("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(60)) for _ in range(60)) + ".io"
    project_id = await a_project(store)
    if not store.kind.startswith("postgres"):
        assert (await store.companies.add_many(project_id, companies(huge))).inserted == 1
        return
    with pytest.raises(RejectedValue) as refused:
        await store.companies.add_many(project_id, companies("ok.io", huge))
    assert "\n" not in str(refused.value) and "too large" in str(refused.value)
    with pytest.raises(RejectedValue) as out_of_range:
        await store.projects.add(Project(name="p", icp="i", max_contacts_per_company=10**10))
    assert "\n" not in str(out_of_range.value)
    # the refused statement stored nothing, and the pool still works
    assert (await store.companies.add_many(project_id, companies("ok.io"))).inserted == 1
