from __future__ import annotations

from collections.abc import Sequence

from tam.domain.model import (
    NO_USAGE,
    Company,
    PermanentItemError,
    Project,
    Provider,
    QualificationStatus,
    Usage,
)
from tam.domain.services.estimate import EstimateSettings, QualifyMode, qualify_mode
from tam.domain.services.qualify_batch import BatchRun
from tam.domain.services.step import Buffer, Outcome, StepRun, Totals
from tam.ports.providers import BatchQualifier, LLMQualifier, UsageForecaster, Verdict
from tam.ports.runtime import Clock
from tam.ports.storage import CompanyRepo, JobRepo, QualificationRecord


class QualifyCompanies:
    """Asks the LLM about every pending company, one call each. Verdicts wait in a buffer only while
    the previous write runs (the runner's group commit), then go in one statement: a company whose
    verdict was not stored yet when a worker dies stays pending, and the retry asks about it again.
    The buffer and a Message Batch belong to the attempt (its StepRun), so one instance serves all."""

    noun = "companies"
    verb = "Qualified"

    def __init__(
        self,
        companies: CompanyRepo,
        qualifier: LLMQualifier,
        clock: Clock,
        workers: int,
        forecaster: UsageForecaster | None = None,  # the worst case of each call, for budgets
        batches: BatchQualifier | None = None,  # Message Batches, when the deployment has them
        jobs: JobRepo | None = None,  # where a batch id is kept (with batches)
        mode: QualifyMode = "online",
        batch_min: int = 1000,
        poll_interval: float = 30.0,
    ) -> None:
        self._forecaster = forecaster
        self._batches = batches
        self._jobs = jobs
        self._mode = mode
        self._batch_min = batch_min
        self._poll = poll_interval
        self._companies = companies
        self._qualifier = qualifier
        self._clock = clock
        self._workers = workers

    def workers(self) -> int:
        return self._workers

    async def plan(self, run: StepRun) -> Sequence[Company]:
        job, project = run.job, run.project
        pending = await self._companies.pending_qualification(project.id)
        run.buffer = Buffer[QualificationRecord](self._companies.record_qualifications)
        if self._batches is not None and self._jobs is not None and job.max_cost_usd is None and pending:
            # A budget admits calls one by one, so a capped job runs online.
            wanted = EstimateSettings(qualify_mode=self._mode, batch_min=self._batch_min, batch_available=True)
            if job.batch_id is not None or qualify_mode(wanted, len(pending)) == "batch":

                def show(text: str | None) -> None:
                    run.status = text

                run.state = BatchRun(self._jobs, self._batches, self._clock, job, project, pending, self._poll, show)
        return pending

    def weight(self, item: Company) -> int:
        return 1

    async def process(self, run: StepRun, item: Company) -> Outcome:
        spent, project, calls = NO_USAGE, run.project, run.calls
        if isinstance(run.state, BatchRun):
            answer = await run.state.answer(item)
            if answer is not None and answer.verdict is not None:
                return self._record(run, item, answer.verdict, answer.usage)
            if answer is not None and not answer.retry:  # a refusal, say: the item fails, its usage counts
                if not answer.usage:
                    raise PermanentItemError(Provider.CLAUDE, answer.error or "Claude batch request failed")
                error = answer.error or "Claude batch request failed"
                await calls.stored(lambda: self.fail(run, item, error))
                return Outcome(done=0, failed=self.weight(item), usage=answer.usage)
            spent = answer.usage if answer is not None else NO_USAGE  # then asked again online
        worst = NO_USAGE  # only a budget holds the worst case (the forecast costs CPU on every call)
        if self._forecaster is not None and calls.budgeted:
            worst = self._forecaster.qualify_call(project, item, warm_cache=False).worst
        try:
            cost = self._qualifier.cost(project, item)  # what the rate budgets must hold for this call
            verdict = await calls.call(
                Provider.CLAUDE, lambda: self._qualifier.qualify(project, item), worst, cost=cost
            )
        except PermanentItemError as exc:
            if not (spent + exc.usage):
                raise
            # Paid calls that came to nothing (a refusal, an answer cut at max_tokens): the item
            # fails as the runner would fail it, and the job's usage still counts what they cost.
            reason = str(exc)
            await calls.stored(lambda: self.fail(run, item, reason))
            return Outcome(done=0, failed=self.weight(item), usage=spent + exc.usage)
        return self._record(run, item, verdict, spent + verdict.usage)

    def _record(self, run: StepRun, item: Company, verdict: Verdict, usage: Usage) -> Outcome:
        status = QualificationStatus.QUALIFIED if verdict.qualified else QualificationStatus.DISQUALIFIED
        assert run.buffer is not None  # set by plan
        run.buffer.add(QualificationRecord(item.id, status, verdict.reason, self._clock.now()))
        return Outcome(usage=usage, tally={status.value: 1})

    async def fail(self, run: StepRun, item: Company, reason: str) -> None:
        await self._companies.record_qualification(item.id, QualificationStatus.ERROR, reason, self._clock.now())

    async def summary(self, project: Project, totals: Totals) -> str:
        if totals.total == 0:
            return "No pending companies to qualify"
        # From the table, so the numbers cover every attempt of the job (and match what is stored).
        counts = await self._companies.count_by_status(project.id)
        text = (
            f"Qualified {totals.done + totals.failed} of {totals.total} companies; the project now has "
            f"{counts.get(QualificationStatus.QUALIFIED, 0)} qualified, "
            f"{counts.get(QualificationStatus.DISQUALIFIED, 0)} disqualified"
        )
        return text + (f", {totals.failed} failed" if totals.failed else "")
