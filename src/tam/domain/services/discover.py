from __future__ import annotations

from collections.abc import Sequence

from tam.domain.model import Project, Provider, QualificationStatus, Usage
from tam.domain.services.step import Outcome, StepRun, Totals
from tam.ports.providers import CompanySource, DiscoveryQuery
from tam.ports.storage import CompanyRepo

MAX_SEEDS = 10
MAX_EXCLUDED = 250  # domains the project has, sent so the search does not bill them again


class _Discover:
    """One discovery call whose companies are added to the project (known domains skipped)."""

    noun = "searches"
    verb = "Ran"

    def __init__(self, companies: CompanyRepo, source: CompanySource, max_records: int = 100) -> None:
        self._companies = companies
        self._source = source
        self._max_records = max_records

    def workers(self) -> int:
        return 1

    async def query(self, project: Project) -> DiscoveryQuery | None:
        raise NotImplementedError

    async def plan(self, run: StepRun) -> Sequence[DiscoveryQuery]:
        if run.job.items_done + run.job.items_failed > 0:  # an earlier attempt already stored its answer
            return []
        query = await self.query(run.project)
        return [query] if query else []

    def weight(self, item: DiscoveryQuery) -> int:
        return 1

    async def process(self, run: StepRun, item: DiscoveryQuery) -> Outcome:
        worst = Usage.of(discolike_records=item.max_records)  # DiscoLike bills the records it returns
        found = await run.calls.call(Provider.DISCOLIKE, lambda: self._source.discover(item), worst)
        result = await run.calls.stored(lambda: self._companies.add_many(run.project.id, found.companies))
        return Outcome(usage=found.usage, tally={"added": result.inserted, "skipped": result.skipped})

    async def fail(self, run: StepRun, item: DiscoveryQuery, reason: str) -> None:
        """Nothing stored: the job's error says what went wrong."""

    async def summary(self, project: Project, totals: Totals) -> str:
        if totals.failed:
            return "The company search failed"
        added, skipped = totals.tally.get("added", 0), totals.tally.get("skipped", 0)
        return f"Added {added} new companies ({skipped} already in the project)"


class SourceCompanies(_Discover):
    async def query(self, project: Project) -> DiscoveryQuery | None:
        return DiscoveryQuery(
            icp_text=project.icp,
            countries=project.countries,
            employee_range=project.employee_range,
            max_records=self._max_records,
        )


class RefineDiscolike(_Discover):
    """Lookalikes of up to ten qualified companies; new ones arrive as pending."""

    async def query(self, project: Project) -> DiscoveryQuery | None:
        page = await self._companies.list(project.id, QualificationStatus.QUALIFIED, limit=MAX_SEEDS)
        if not page.items:
            return None
        known = await self._companies.list(project.id, None, limit=MAX_EXCLUDED)
        seeds = tuple(c.domain for c in page.items)
        return DiscoveryQuery(
            icp_text=project.icp,
            countries=project.countries,
            employee_range=project.employee_range,
            seed_domains=seeds,
            exclude_domains=tuple(c.domain for c in known.items if c.domain not in seeds),
            max_records=self._max_records,
        )

    async def summary(self, project: Project, totals: Totals) -> str:
        if totals.total == 0:
            return "No qualified companies to seed lookalikes yet; run qualify first"
        return await super().summary(project, totals)
