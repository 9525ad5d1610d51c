from __future__ import annotations

from collections.abc import Sequence

from tam.domain.model import NO_USAGE, Company, Job, Project, Provider, QualificationStatus
from tam.domain.services.calls import ProviderCalls
from tam.domain.services.step import Outcome, Totals
from tam.ports.providers import LLMQualifier, UsageForecaster
from tam.ports.runtime import Clock
from tam.ports.storage import CompanyRepo, QualificationRecord


class QualifyCompanies:
    """Asks the LLM about every pending company, one call each. Verdicts wait in a buffer until the
    runner's next flush (at least once a second), which stores them all in one write: a company whose
    verdict was not stored yet when a worker dies stays pending, and the retry asks about it again."""

    noun = "companies"
    verb = "Qualified"
    # A crash loses the buffered verdicts (those companies are asked again), so the buffer is
    # also written as soon as it holds this many: at most this many paid answers are ever at risk.
    max_buffered = 10

    def __init__(
        self,
        companies: CompanyRepo,
        qualifier: LLMQualifier,
        clock: Clock,
        workers: int,
        forecaster: UsageForecaster | None = None,  # the worst case of each call, for budgets
    ) -> None:
        self._forecaster = forecaster
        self._companies = companies
        self._qualifier = qualifier
        self._clock = clock
        self._workers = workers
        self._verdicts: list[QualificationRecord] = []

    def workers(self) -> int:
        return self._workers

    async def plan(self, project: Project, job: Job) -> Sequence[Company]:
        return await self._companies.pending_qualification(project.id)

    def weight(self, item: Company) -> int:
        return 1

    async def process(self, project: Project, item: Company, calls: ProviderCalls) -> Outcome:
        worst = self._forecaster.qualify_call(project, item, warm_cache=False).worst if self._forecaster else NO_USAGE
        verdict = await calls.call(Provider.CLAUDE, lambda: self._qualifier.qualify(project, item), worst)
        status = QualificationStatus.QUALIFIED if verdict.qualified else QualificationStatus.DISQUALIFIED
        self._verdicts.append(QualificationRecord(item.id, status, verdict.reason, self._clock.now()))
        if len(self._verdicts) >= self.max_buffered:
            await self.flush()
        return Outcome(usage=verdict.usage, tally={status.value: 1})

    async def fail(self, project: Project, item: Company, reason: str) -> None:
        await self._companies.record_qualification(item.id, QualificationStatus.ERROR, reason, self._clock.now())

    async def flush(self) -> None:
        batch, self._verdicts = self._verdicts, []
        if batch:
            await self._companies.record_qualifications(batch)

    def summary(self, totals: Totals) -> str:
        if totals.total == 0:
            return "No pending companies to qualify"
        text = (
            f"Qualified {totals.done + totals.failed} of {totals.total} companies: "
            f"{totals.tally.get('qualified', 0)} qualified, {totals.tally.get('disqualified', 0)} disqualified"
        )
        return text + (f", {totals.failed} failed" if totals.failed else "")
