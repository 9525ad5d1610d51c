"""An item's own write that fails during a database outage is retried with the answers held in memory:
the paid provider calls behind it are never made again (qualify buffers its verdicts; findContacts holds
each company's search results and emails until they are stored)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tam.domain.model import Company, Contact, Job, JobStatus, JobType, QualificationStatus, StorageUnavailable
from tests.unit.harness import Script, ScriptedPeople, World, run_virtual

PEOPLE = {f"co{i}.com": ["ana", "ben"] for i in range(6)}


def test_find_contacts_retries_a_failed_write_without_paying_again() -> None:
    world = World()
    finder = ScriptedPeople(PEOPLE, Script({}), world.instrument)
    record = world.contacts.record_company_contacts
    failures = {"left": 4}  # the database is away for the first four writes of contacts

    async def flaky(company: Company, contacts: Sequence[Contact], at: datetime) -> int:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StorageUnavailable("PostgreSQL unavailable (57P01: terminating connection)")
        return await record(company, contacts, at)

    world.contacts.record_company_contacts = flaky  # type: ignore[method-assign]

    async def main() -> Job:
        await world.setup(list(PEOPLE))
        for c in world.db.companies.values():
            await world.companies.record_qualification(c.id, QualificationStatus.QUALIFIED, "fits", world.clock.now())
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.FIND_CONTACTS))
        return await world.runner(people=finder, limit=2).run(job.id)

    job = run_virtual(main)
    assert job.status is JobStatus.COMPLETED, job
    assert failures["left"] == 0
    repaid = {key: n for key, n in world.instrument.calls.items() if n > 1}
    assert repaid == {}, f"paid again after a failed write: {repaid}"
    assert len(world.db.contacts) == 2 * len(PEOPLE)
    assert all(c.contacts_searched_at is not None for c in world.db.companies.values())
    assert job.items_done == len(PEOPLE)


def test_check_linkedin_retries_a_failed_write_without_paying_again() -> None:
    from tam.domain.model import new_id
    from tests.unit.harness import ScriptedLinkedin

    world = World()
    linkedin = ScriptedLinkedin(Script({}), world.instrument)
    record = world.contacts.record_linkedin
    failures = {"left": 3}

    async def flaky(checks, at):  # type: ignore[no-untyped-def]
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StorageUnavailable("PostgreSQL unavailable (08006: connection failure)")
        return await record(checks, at)

    world.contacts.record_linkedin = flaky  # type: ignore[method-assign]

    async def main() -> Job:
        await world.setup(["acme.com"])
        company = next(iter(world.db.companies.values()))
        contacts = [
            Contact(new_id(), world.project.id, company.id, f"p{i}", linkedin_url=f"https://li/{i}") for i in range(9)
        ]
        await world.contacts.record_company_contacts(company, contacts, world.clock.now())
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.CHECK_LINKEDIN))
        return await world.runner(linkedin=linkedin, limit=2).run(job.id)

    job = run_virtual(main)
    assert job.status is JobStatus.COMPLETED, job
    assert failures["left"] == 0
    assert {key: n for key, n in world.instrument.calls.items() if n > 1} == {}
    assert job.items_done == 9
