"""ContactRepo contract, run against every storage adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from tam.domain.model import Company, Contact, EmailStatus, NewCompany, NotFound, Project, new_id
from tam.ports.providers import LinkedinCheck
from tests.contract.conftest import Stores

AT = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def two_companies(store: Stores) -> tuple[Company, Company]:
    project = await store.projects.add(Project(name="p", icp="icp"))
    await store.companies.add_many(project.id, [NewCompany("A", "a.com"), NewCompany("B", "b.com")])
    a, b = (await store.companies.list(project.id)).items
    return a, b


def contact(company: Company, full_name: str, **fields: object) -> Contact:
    return Contact(id=new_id(), project_id=company.project_id, company_id=company.id, full_name=full_name, **fields)  # type: ignore[arg-type]


async def test_contacts_are_stored_and_the_company_marked_searched(store: Stores) -> None:
    a, _ = await two_companies(store)
    found = [
        contact(
            a,
            "Zoë Ångström-Nguyễn",
            first_name="Zoë",
            last_name="Ångström-Nguyễn",
            title="Directrice financière",
            linkedin_url="https://www.linkedin.com/in/zoe",
            email="zoe@a.com",
            email_status=EmailStatus.VERIFIED,
            provider_person_id="p-1",
        ),
        contact(a, "Bob Stone", provider_person_id="p-2", email_status=EmailStatus.NOT_FOUND),
    ]
    assert await store.contacts.record_company_contacts(a, found, AT) == 2
    page = await store.contacts.list(a.project_id)
    assert page.total == 2
    stored = {c.id: c for c in page.items}
    zoe = stored[found[0].id]
    assert zoe.full_name == "Zoë Ångström-Nguyễn" and zoe.title == "Directrice financière"
    assert (zoe.email, zoe.email_status, zoe.provider_person_id) == ("zoe@a.com", EmailStatus.VERIFIED, "p-1")
    assert (zoe.linkedin_active, zoe.linkedin_checked_at, zoe.created_at is not None) == (None, None, True)
    assert stored[found[1].id].email is None
    (company,) = await store.companies.get_many([a.id])
    assert company.contacts_searched_at == AT


async def test_recording_again_stores_no_one_twice(store: Stores) -> None:
    a, b = await two_companies(store)
    url = "https://www.linkedin.com/in/same-person"
    await store.contacts.record_company_contacts(
        a, [contact(a, "Ann", linkedin_url=url), contact(a, "Pid Person", provider_person_id="p-9")], AT
    )
    retry = [
        contact(a, "Ann (retry)", linkedin_url=url + "/"),  # same person key
        contact(a, "Pid Person", provider_person_id="p-9"),
        contact(a, "  NAME   only "),
        contact(a, "name ONLY"),  # same person by name
        contact(b, "Ann at B", linkedin_url=url.upper()),  # same profile elsewhere in the project
    ]
    assert await store.contacts.record_company_contacts(a, retry[:4], LATER) == 1
    assert await store.contacts.record_company_contacts(b, retry[4:], LATER) == 0
    assert (await store.contacts.list(a.project_id)).total == 3
    (company,) = await store.companies.get_many([a.id])
    assert company.contacts_searched_at == AT, "the first search time stays"


async def test_recording_contacts_of_a_missing_company_is_not_found(store: Stores) -> None:
    a, _ = await two_companies(store)
    ghost = Company(id=uuid4(), project_id=a.project_id, name="ghost", domain="ghost.com")
    with pytest.raises(NotFound):
        await store.contacts.record_company_contacts(ghost, [contact(ghost, "Nobody")], AT)


async def test_linkedin_checks_leave_the_unchecked_list(store: Stores) -> None:
    a, b = await two_companies(store)
    one = contact(a, "One", linkedin_url="https://linkedin.com/in/one")
    two = contact(b, "Two", linkedin_url="https://linkedin.com/in/two")
    three = contact(b, "Three", linkedin_url="https://linkedin.com/in/three")
    await store.contacts.record_company_contacts(a, [one, contact(a, "No URL")], AT)
    await store.contacts.record_company_contacts(b, [two, three], AT)
    unchecked = await store.contacts.unchecked_linkedin(a.project_id)
    assert {c.id for c in unchecked} == {one.id, two.id, three.id}
    await store.contacts.record_linkedin(
        [
            LinkedinCheck(one.id, True, "current employer matches"),
            LinkedinCheck(two.id, False, "dead_page"),
            LinkedinCheck(three.id, None, "profile could not be fetched"),
        ],
        LATER,
    )
    assert await store.contacts.unchecked_linkedin(a.project_id) == []
    stored = {c.id: c for c in (await store.contacts.list(a.project_id)).items}
    assert (stored[one.id].linkedin_active, stored[one.id].linkedin_detail) == (True, "current employer matches")
    assert (stored[two.id].linkedin_active, stored[two.id].linkedin_checked_at) == (False, LATER)
    assert stored[three.id].linkedin_active is None
    stats = await store.contacts.stats(a.project_id)
    assert (stats.total, stats.with_email, stats.linkedin_active, stats.linkedin_inactive) == (4, 0, 1, 1)
    await store.contacts.record_linkedin([], LATER)


async def test_checking_a_missing_contact_is_not_found(store: Stores) -> None:
    with pytest.raises(NotFound):
        await store.contacts.record_linkedin([LinkedinCheck(uuid4(), True, "x")], AT)


async def test_list_pages_and_stats_count_emails(store: Stores) -> None:
    a, _ = await two_companies(store)
    people = [contact(a, f"Person {i:02d}", email=f"p{i}@a.com" if i % 2 else None) for i in range(7)]
    await store.contacts.record_company_contacts(a, people, AT)
    page = await store.contacts.list(a.project_id, limit=3, offset=3)
    assert page.total == 7
    assert [c.full_name for c in page.items] == ["Person 03", "Person 04", "Person 05"]
    assert (await store.contacts.stats(a.project_id)).with_email == 3
    assert await store.contacts.stats(uuid4()) == type(await store.contacts.stats(uuid4()))()


async def test_list_searches_name_title_or_email_ignoring_case(store: Stores) -> None:
    a, b = await two_companies(store)
    await store.contacts.record_company_contacts(
        a,
        [
            contact(a, "Ada Lovelace", title="CTO", email="ada@analytical.io"),
            contact(a, "Grace Hopper", title="VP Engineering", email=None),
        ],
        AT,
    )
    await store.contacts.record_company_contacts(b, [contact(b, "Alan Turing", title="Head of Research")], AT)

    async def names(q: str, limit: int = 100, offset: int = 0) -> tuple[int, list[str]]:
        page = await store.contacts.list(a.project_id, limit=limit, offset=offset, q=q)
        return page.total, sorted(c.full_name for c in page.items)

    assert await names("LOVELACE") == (1, ["Ada Lovelace"])
    assert await names("engineering") == (1, ["Grace Hopper"])
    assert await names("analytical.IO") == (1, ["Ada Lovelace"])  # the email's domain
    assert (await names("a", limit=1, offset=2))[0] == 3
    assert await names("") == (3, ["Ada Lovelace", "Alan Turing", "Grace Hopper"])
    assert await names("nobody") == (0, [])


async def test_list_filters_by_email_status(store: Stores) -> None:
    a, _ = await two_companies(store)
    statuses = [EmailStatus.VERIFIED, EmailStatus.NOT_FOUND, EmailStatus.VERIFIED, EmailStatus.UNVERIFIED, None]
    people = [contact(a, f"Person {i}", email_status=s) for i, s in enumerate(statuses)]
    await store.contacts.record_company_contacts(a, people, AT)
    verified = await store.contacts.list(a.project_id, email_status=EmailStatus.VERIFIED)
    assert (verified.total, sorted(c.full_name for c in verified.items)) == (2, ["Person 0", "Person 2"])
    page = await store.contacts.list(a.project_id, limit=1, offset=1, email_status=EmailStatus.VERIFIED)
    assert (page.total, [c.full_name for c in page.items]) == (2, [verified.items[1].full_name])
    both = await store.contacts.list(a.project_id, q="person 3", email_status=EmailStatus.UNVERIFIED)
    assert [c.full_name for c in both.items] == ["Person 3"]
    assert (await store.contacts.list(a.project_id, q="person 3", email_status=EmailStatus.VERIFIED)).total == 0
    assert (await store.contacts.list(a.project_id)).total == 5
