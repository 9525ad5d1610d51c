"""What a job would cost before it runs: items, calls, tokens, credits and dollars. Nothing is called
or stored. Token counts of a qualify come from the requests the adapter would send; what no request
shows (how long the answers are, how many people a search finds) comes from the jobs of the same type
that already ran here, per item, or else from the step's worst case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from tam.domain.model import Job, JobType, Project, Usage
from tam.domain.pricing import PriceTable, batch_unit
from tam.ports.providers import UsageForecaster
from tam.ports.storage import CompanyRepo, ContactRepo, JobRepo, ProjectRepo

QualifyMode = Literal["online", "batch", "auto"]
HISTORY_JOBS = 20  # the most recent jobs of a type that teach the per-item figures
LINKEDIN_BATCH = 20  # profiles per Bright Data call

_CREDIT_UNIT = {
    JobType.SOURCE_COMPANIES: "discolike_records",
    JobType.REFINE_DISCOLIKE: "discolike_records",
    JobType.FIND_CONTACTS: "prospeo_credits",
    JobType.CHECK_LINKEDIN: "brightdata_records",
}


@dataclass(frozen=True, slots=True)
class Estimate:
    items: int
    calls: int
    input_tokens: int
    output_tokens: int
    credits: int
    cost_usd: float
    mode: str  # "online" or "batch": how a qualify would run; other steps are always online


@dataclass(frozen=True, slots=True)
class EstimateSettings:
    qualify_mode: QualifyMode = "auto"
    batch_min: int = 1000
    batch_available: bool = False  # whether this deployment can run a qualify as a Message Batch
    source_max_records: int = 150
    refine_max_records: int = 50


def qualify_mode(settings: EstimateSettings, pending: int) -> str:
    """`batch` when configured so, or in `auto` from `batch_min` pending companies; else `online`."""
    if not settings.batch_available:
        return "online"
    if settings.qualify_mode == "batch" or (settings.qualify_mode == "auto" and pending >= settings.batch_min):
        return "batch"
    return "online"


def as_batch(usage: Usage) -> Usage:
    return Usage({batch_unit(k) if k.startswith("claude_") else k: v for k, v in usage.counts.items()})


def per_item(jobs: Sequence[Job], job_type: JobType, units: Sequence[str]) -> float | None:
    """Units per finished item over the most recent jobs of `job_type` that finished items."""
    done = [j for j in jobs if j.job_type is job_type and j.items_done + j.items_failed > 0][:HISTORY_JOBS]
    items = sum(j.items_done + j.items_failed for j in done)
    if not items:
        return None
    return sum(j.usage.counts.get(u, 0) for j in done for u in units) / items


def input_tokens(usage: Usage) -> int:
    return sum(v for k, v in usage.counts.items() if k.startswith("claude_") and not k.endswith("output_tokens"))


def output_tokens(usage: Usage) -> int:
    return sum(v for k, v in usage.counts.items() if k.startswith("claude_") and k.endswith("output_tokens"))


class EstimateJob:
    def __init__(
        self,
        projects: ProjectRepo,
        companies: CompanyRepo,
        contacts: ContactRepo,
        jobs: JobRepo,
        forecaster: UsageForecaster,
        prices: PriceTable,
        settings: EstimateSettings = EstimateSettings(),
    ) -> None:
        self._projects = projects
        self._companies = companies
        self._contacts = contacts
        self._jobs = jobs
        self._forecaster = forecaster
        self._prices = prices
        self._settings = settings

    async def __call__(self, project_id: UUID, job_type: JobType) -> Estimate:
        project = await self._projects.get(project_id)
        history = await self._jobs.list()  # newest first
        if job_type is JobType.QUALIFY:
            return await self._qualify(project, history)
        return await self._credits(project, job_type, history)

    async def _qualify(self, project: Project, history: Sequence[Job]) -> Estimate:
        pending = await self._companies.pending_qualification(project.id)
        answer = per_item(history, JobType.QUALIFY, ("claude_output_tokens", "claude_batch_output_tokens"))
        usage = Usage()
        forecast = self._forecaster.qualify_call
        for n, company in enumerate(pending):
            usage = usage + forecast(project, company, warm_cache=n > 0, output_tokens=answer).expected
        mode = qualify_mode(self._settings, len(pending))
        if mode == "batch":
            usage = as_batch(usage)
        return Estimate(
            items=len(pending),
            calls=len(pending),
            input_tokens=input_tokens(usage),
            output_tokens=output_tokens(usage),
            credits=0,
            cost_usd=round(self._prices.cost(usage), 6),
            mode=mode,
        )

    async def _credits(self, project: Project, job_type: JobType, history: Sequence[Job]) -> Estimate:
        unit = _CREDIT_UNIT[job_type]
        if job_type is JobType.FIND_CONTACTS:
            items = len(await self._companies.needing_contacts(project.id))
            people = project.max_contacts_per_company
            calls = items * (1 + people)  # one search, then one email lookup per person found (at most)
            worst = float(1 + people)  # a credit for a search that finds anyone, one per email found
        elif job_type is JobType.CHECK_LINKEDIN:
            items = len(await self._contacts.unchecked_linkedin(project.id))
            calls = math.ceil(items / LINKEDIN_BATCH)
            worst = 1.0  # Bright Data bills each profile record
        else:
            items, calls = 1, 1
            source = job_type is JobType.SOURCE_COMPANIES
            worst = float(self._settings.source_max_records if source else self._settings.refine_max_records)
        learned = per_item(history, job_type, (unit,))
        credits = math.ceil(items * (learned if learned is not None else worst))
        return Estimate(
            items=items,
            calls=calls,
            input_tokens=0,
            output_tokens=0,
            credits=credits,
            cost_usd=round(self._prices.cost(Usage.of(**{unit: credits})), 6),
            mode="online",
        )
