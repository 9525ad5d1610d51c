from __future__ import annotations

from collections.abc import Sequence

from tam.domain.model import Project, Provider, Usage
from tam.domain.services.step import Outcome, StepRun, Totals
from tam.ports.providers import LinkedinChecker, LinkedinTarget
from tam.ports.runtime import Clock
from tam.ports.storage import CompanyRepo, ContactRepo

Batch = tuple[LinkedinTarget, ...]


class CheckLinkedin:
    """Checks unchecked LinkedIn profiles in batches of the checker's size. Profiles that could
    not be checked stay unchecked (counted failed), so a later run tries them again."""

    noun = "profiles"
    verb = "Checked"

    def __init__(
        self, contacts: ContactRepo, companies: CompanyRepo, checker: LinkedinChecker, clock: Clock, workers: int
    ) -> None:
        self._contacts = contacts
        self._companies = companies
        self._checker = checker
        self._clock = clock
        self._workers = workers

    def workers(self) -> int:
        return self._workers

    async def plan(self, run: StepRun) -> Sequence[Batch]:
        contacts = await self._contacts.unchecked_linkedin(run.project.id)
        companies = {c.id: c for c in await self._companies.get_many(list({c.company_id for c in contacts}))}
        targets = [
            LinkedinTarget(
                contact_id=c.id,
                url=c.linkedin_url,
                company_name=companies[c.company_id].name,
                company_domain=companies[c.company_id].domain,
                company_linkedin_url=companies[c.company_id].linkedin_url,
            )
            for c in contacts
            if c.linkedin_url and c.company_id in companies
        ]
        size = max(1, self._checker.max_batch)
        return [tuple(targets[i : i + size]) for i in range(0, len(targets), size)]

    def weight(self, item: Batch) -> int:
        return len(item)

    async def process(self, run: StepRun, item: Batch) -> Outcome:
        worst = Usage.of(brightdata_records=len(item))  # Bright Data bills each profile record
        result = await run.calls.call(Provider.BRIGHTDATA, lambda: self._checker.check(item), worst)
        wanted = {t.contact_id for t in item}
        checked = [c for c in result.checks if c.active is not None and c.contact_id in wanted]
        await run.calls.stored(lambda: self._contacts.record_linkedin(checked, self._clock.now()))
        active = sum(1 for c in checked if c.active)
        return Outcome(
            done=len(checked),
            failed=len(item) - len(checked),
            usage=result.usage,
            tally={"active": active, "inactive": len(checked) - active},
        )

    async def fail(self, run: StepRun, item: Batch, reason: str) -> None:
        """Nothing to write: the contacts stay unchecked for a later run."""

    async def summary(self, project: Project, totals: Totals) -> str:
        if totals.total == 0:
            return "No unchecked LinkedIn profiles"
        # From the table, so the numbers cover every attempt of the job (and match what is stored).
        stats = await self._contacts.stats(project.id)
        text = (
            f"Checked {totals.done + totals.failed} of {totals.total} profiles; the project now has "
            f"{stats.linkedin_active} active, {stats.linkedin_inactive} inactive"
        )
        return text + (f", {totals.failed} could not be checked" if totals.failed else "")
