from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tam.domain.model import (
    Company,
    Contact,
    EmailStatus,
    PermanentItemError,
    Person,
    Project,
    Provider,
    Usage,
    new_id,
    person_key,
)
from tam.domain.services.calls import ProviderCalls
from tam.domain.services.step import Outcome, StepRun, Totals
from tam.ports.providers import EmailFinder, EmailFound, PersonSearch
from tam.ports.runtime import Clock
from tam.ports.storage import CompanyRepo, ContactRepo

# Prospeo bills one credit per search that finds anyone and per email found (worst case of a call).
ONE_PROSPEO_CREDIT = Usage.of(prospeo_credits=1)


class FindContacts:
    """For each qualified company: one person search, then one email lookup per person found.
    A company's contacts are stored together with its searched mark, so a resumed job repeats
    at most the companies that were in flight."""

    noun = "companies"
    verb = "Searched"

    def __init__(
        self,
        companies: CompanyRepo,
        contacts: ContactRepo,
        search: PersonSearch,
        finder: EmailFinder,
        clock: Clock,
        search_workers: int,
        enrich_workers: int,
    ) -> None:
        self._companies = companies
        self._contacts = contacts
        self._search = search
        self._finder = finder
        self._clock = clock
        # Searches wait on their own slots, so extra companies in flight keep both windows full.
        self._workers = search_workers + enrich_workers

    def workers(self) -> int:
        return self._workers

    async def plan(self, run: StepRun) -> Sequence[Company]:
        return await self._companies.needing_contacts(run.project.id)

    def weight(self, item: Company) -> int:
        return 1

    async def process(self, run: StepRun, item: Company) -> Outcome:
        project, calls = run.project, run.calls
        limit = project.max_contacts_per_company
        found = await calls.call(
            Provider.PROSPEO_SEARCH, lambda: self._search.search(project, item, limit), ONE_PROSPEO_CREDIT
        )
        people = _unique(found.people)[:limit]
        async with asyncio.TaskGroup() as group:
            lookups = [group.create_task(self._email(person, item, calls)) for person in people]
        emails = [task.result() for task in lookups]
        contacts = [_contact(project, item, p, e) for p, e in zip(people, emails, strict=True)]
        # paid for: an outage is waited out holding them, not answered by searching again
        inserted = await calls.stored(lambda: self._contacts.record_company_contacts(item, contacts, self._clock.now()))
        usage = sum((e.usage for e in emails), found.usage)
        with_email = sum(1 for e in emails if e.email)
        return Outcome(usage=usage, tally={"contacts": inserted, "emails": with_email})

    async def _email(self, person: Person, company: Company, calls: ProviderCalls) -> EmailFound:
        try:
            return await calls.call(
                Provider.PROSPEO_ENRICH, lambda: self._finder.find_email(person, company), ONE_PROSPEO_CREDIT
            )
        except PermanentItemError:
            return EmailFound(None, EmailStatus.NOT_FOUND)  # the person is still worth keeping

    async def fail(self, run: StepRun, item: Company, reason: str) -> None:
        # Marked searched (with nobody) so a retry does not pay for the same failing search again.
        await self._contacts.record_company_contacts(item, [], self._clock.now())

    async def summary(self, project: Project, totals: Totals) -> str:
        if totals.total == 0:
            return "No qualified companies left to search for contacts"
        # From the table, so the numbers cover every attempt of the job (and match what is stored).
        stats = await self._contacts.stats(project.id)
        text = (
            f"Searched {totals.done + totals.failed} of {totals.total} companies; the project now has "
            f"{stats.total} contacts, {stats.with_email} with an email"
        )
        return text + (f", {totals.failed} failed" if totals.failed else "")


def _unique(people: Sequence[Person]) -> list[Person]:
    seen: set[str] = set()
    out = []
    for p in people:
        key = person_key(p.linkedin_url, p.provider_person_id, p.full_name)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _contact(project: Project, company: Company, person: Person, email: EmailFound) -> Contact:
    return Contact(
        id=new_id(),
        project_id=project.id,
        company_id=company.id,
        full_name=person.full_name,
        first_name=person.first_name,
        last_name=person.last_name,
        title=person.title,
        linkedin_url=person.linkedin_url,
        email=email.email,
        email_status=email.status,
        provider_person_id=person.provider_person_id,
    )
