"""The four storage ports over plain dicts, with the same semantics as the SQL stores."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from tam.domain.model import (
    ActiveJobExists,
    Company,
    Contact,
    EmailStatus,
    Job,
    JobStatus,
    JobType,
    NewCompany,
    NotFound,
    Progress,
    Project,
    QualificationStatus,
    TaskClaim,
    Usage,
    active_job_message,
)
from tam.ports.providers import LinkedinCheck
from tam.ports.storage import CompanyPage, ContactPage, ContactStats, ImportResult, QualificationRecord

T = TypeVar("T")


@dataclass
class MemoryDatabase:
    projects: dict[UUID, Project] = field(default_factory=dict)
    companies: dict[UUID, Company] = field(default_factory=dict)
    contacts: dict[UUID, Contact] = field(default_factory=dict)
    jobs: dict[UUID, Job] = field(default_factory=dict)

    def project_companies(self, project_id: UUID) -> list[Company]:
        return [c for c in self.companies.values() if c.project_id == project_id]


def _get(table: Mapping[UUID, T], key: UUID, what: str) -> T:
    try:
        return table[key]
    except KeyError:
        raise NotFound(f"{what} {key} not found") from None


class MemoryProjectRepo:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def add(self, project: Project) -> Project:
        stored = project if project.created_at else replace(project, created_at=_now())
        self._db.projects.setdefault(project.id, stored)
        return self._db.projects[project.id]

    async def get(self, project_id: UUID) -> Project:
        return _get(self._db.projects, project_id, "project")

    async def list(self) -> list[Project]:
        return sorted(self._db.projects.values(), key=lambda p: p.created_at or _now())


class MemoryCompanyRepo:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def add_many(self, project_id: UUID, companies: Sequence[NewCompany]) -> ImportResult:
        _get(self._db.projects, project_id, "project")  # as the SQL stores' foreign key does
        known = {c.domain for c in self._db.project_companies(project_id)}
        inserted = 0
        for new in companies:
            if new.domain in known:
                continue
            known.add(new.domain)
            company = Company.create(project_id, new, at=_now())
            self._db.companies[company.id] = company
            inserted += 1
        return ImportResult(inserted=inserted, skipped=len(companies) - inserted)

    async def pending_qualification(self, project_id: UUID) -> list[Company]:
        return self._where(project_id, lambda c: c.qualification_status is QualificationStatus.PENDING)

    async def needing_contacts(self, project_id: UUID) -> list[Company]:
        return self._where(
            project_id,
            lambda c: (
                c.qualification_status is QualificationStatus.QUALIFIED
                and bool(c.domain)
                and c.contacts_searched_at is None
            ),
        )

    async def get_many(self, company_ids: Sequence[UUID]) -> list[Company]:
        return [self._db.companies[i] for i in company_ids if i in self._db.companies]

    async def record_qualification(
        self, company_id: UUID, status: QualificationStatus, reason: str, at: datetime
    ) -> None:
        company = _get(self._db.companies, company_id, "company")
        self._db.companies[company_id] = replace(
            company, qualification_status=status, qualification_reason=reason, qualified_at=at
        )

    async def record_qualifications(self, records: Sequence[QualificationRecord]) -> int:
        stored = 0
        for r in records:
            company = self._db.companies.get(r.company_id)
            if company is not None and company.qualification_status is QualificationStatus.PENDING:
                self._db.companies[r.company_id] = replace(
                    company, qualification_status=r.status, qualification_reason=r.reason, qualified_at=r.at
                )
                stored += 1
        return stored

    async def list(
        self,
        project_id: UUID,
        status: QualificationStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
    ) -> CompanyPage:
        rows = self._where(
            project_id,
            lambda c: (status is None or c.qualification_status is status) and _matches(q, c.name, c.domain),
        )
        return CompanyPage(tuple(rows[offset : offset + limit]), len(rows))

    async def count_by_status(self, project_id: UUID) -> Mapping[QualificationStatus, int]:
        counts = dict.fromkeys(QualificationStatus, 0)
        for c in self._db.project_companies(project_id):
            counts[c.qualification_status] += 1
        return counts

    def _where(self, project_id: UUID, keep: object) -> builtins.list[Company]:
        rows = [c for c in self._db.project_companies(project_id) if keep(c)]  # type: ignore[operator]
        return sorted(rows, key=lambda c: (c.created_at or _now(), c.domain))


def _matches(q: str | None, *values: str | None) -> bool:
    """The search of CompanyRepo.list and ContactRepo.list: a case-insensitive substring of any value."""
    if not q:
        return True
    needle = q.lower()
    return any(v is not None and needle in v.lower() for v in values)


class MemoryContactRepo:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def record_company_contacts(
        self, company: Company, contacts: Sequence[Contact], searched_at: datetime
    ) -> int:
        stored = _get(self._db.companies, company.id, "company")
        existing = [c for c in self._db.contacts.values() if c.project_id == company.project_id]
        urls = {c.linkedin_url.lower() for c in existing if c.linkedin_url}
        people = {(c.company_id, c.person_key) for c in existing}
        inserted = 0
        for contact in contacts:
            url = contact.linkedin_url.lower() if contact.linkedin_url else None
            if (url and url in urls) or (contact.company_id, contact.person_key) in people:
                continue
            if url:
                urls.add(url)
            people.add((contact.company_id, contact.person_key))
            self._db.contacts[contact.id] = replace(contact, created_at=contact.created_at or _now())
            inserted += 1
        if stored.contacts_searched_at is None:
            self._db.companies[company.id] = replace(stored, contacts_searched_at=searched_at)
        return inserted

    async def unchecked_linkedin(self, project_id: UUID) -> list[Contact]:
        return sorted(
            (
                c
                for c in self._db.contacts.values()
                if c.project_id == project_id and c.linkedin_url and c.linkedin_checked_at is None
            ),
            key=lambda c: (c.created_at or _now(), c.full_name),
        )

    async def record_linkedin(self, checks: Sequence[LinkedinCheck], at: datetime) -> None:
        for check in checks:
            contact = _get(self._db.contacts, check.contact_id, "contact")
            self._db.contacts[check.contact_id] = replace(
                contact, linkedin_active=check.active, linkedin_detail=check.detail, linkedin_checked_at=at
            )

    async def list(
        self,
        project_id: UUID,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
        email_status: EmailStatus | None = None,
    ) -> ContactPage:
        rows = sorted(
            (
                c
                for c in self._db.contacts.values()
                if c.project_id == project_id
                and (email_status is None or c.email_status is email_status)
                and _matches(q, c.full_name, c.title, c.email)
            ),
            key=lambda c: (c.created_at or _now(), c.full_name),
        )
        return ContactPage(tuple(rows[offset : offset + limit]), len(rows))

    async def stats(self, project_id: UUID) -> ContactStats:
        rows = [c for c in self._db.contacts.values() if c.project_id == project_id]
        return ContactStats(
            total=len(rows),
            with_email=sum(1 for c in rows if c.email),
            linkedin_active=sum(1 for c in rows if c.linkedin_active is True),
            linkedin_inactive=sum(1 for c in rows if c.linkedin_active is False),
        )


class MemoryJobRepo:
    """Applies the rules on `Job` (start, progressed, finished_as, ...) to a dict; the event loop makes
    each method atomic (no await between the read and the write)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def add(self, job: Job) -> Job:
        now = _now()
        stored = replace(job, created_at=job.created_at or now, updated_at=now)
        self._db.jobs.setdefault(job.id, stored)
        return self._db.jobs[job.id]

    async def add_exclusive(self, job: Job) -> Job:
        active = self._active_other(job)
        if active is not None:
            raise ActiveJobExists(active_job_message(active), active.id)
        return await self.add(job)

    async def get(self, job_id: UUID) -> Job:
        return _get(self._db.jobs, job_id, "job")

    async def set_batch(self, job_id: UUID, batch_id: str | None) -> None:
        job = _get(self._db.jobs, job_id, "job")
        self._db.jobs[job_id] = replace(job, batch_id=batch_id, updated_at=_now())

    async def set_budget(self, job_id: UUID, max_cost_usd: float | None) -> None:
        job = _get(self._db.jobs, job_id, "job")
        self._db.jobs[job_id] = replace(job, max_cost_usd=max_cost_usd, updated_at=_now())

    async def list(self, project_id: UUID | None = None) -> list[Job]:
        jobs = [j for j in self._db.jobs.values() if project_id is None or j.project_id == project_id]
        return sorted(jobs, key=lambda j: j.created_at or _now(), reverse=True)

    async def start(
        self, job_id: UUID, at: datetime, *, task_id: str | None = None, stale_before: datetime | None = None
    ) -> Job | None:
        started = (await self.get(job_id)).start(at, task_id, stale_before)
        return None if started is None else self._put(started)

    async def save_progress(
        self, job_id: UUID, progress: Progress, usage: Usage, at: datetime, *, token: int | None = None
    ) -> Job:
        return self._put((await self.get(job_id)).progressed(token, progress, usage, at))

    async def finish(
        self,
        job_id: UUID,
        status: JobStatus,
        message: str | None,
        error: str | None,
        at: datetime,
        *,
        token: int | None = None,
    ) -> Job:
        return self._put((await self.get(job_id)).finished_as(status, message, error, at, token))

    async def release(self, job_id: UUID, token: int, at: datetime) -> None:
        self._put((await self.get(job_id)).released(token, at))

    async def requeue(self, job_id: UUID, old_task_id: str | None, new_task_id: str, stale_before: datetime) -> bool:
        requeued = (await self.get(job_id)).requeued(old_task_id, new_task_id, stale_before, _now())
        if requeued is not None:
            self._put(requeued)
        return requeued is not None

    async def claim_dispatch(
        self,
        job_id: UUID,
        project_id: UUID,
        job_type: JobType,
        task_id: str,
        at: datetime,
        stale_before: datetime,
    ) -> TaskClaim:
        job = await self.get(job_id)
        active = self._active_other(job, dispatched=True)
        claim = job.dispatched(project_id, job_type, task_id, at, stale_before, active)
        self._put(claim.job)
        return claim

    async def unclaim_task(self, job_id: UUID, task_id: str) -> None:
        self._put((await self.get(job_id)).unclaimed(task_id))

    async def cancel(self, job_id: UUID, at: datetime) -> Job:
        return await self.finish(job_id, JobStatus.CANCELLED, None, None, at)

    def _active_other(self, job: Job, dispatched: bool = False) -> Job | None:
        for other in sorted(self._db.jobs.values(), key=lambda j: j.created_at or _now()):
            if (
                other.id != job.id
                and other.project_id == job.project_id
                and other.job_type is job.job_type
                and other.active
                and (other.task_id is not None or not dispatched)
            ):
                return other
        return None

    def _put(self, job: Job) -> Job:
        self._db.jobs[job.id] = job
        return job


def _now() -> datetime:
    return datetime.now(UTC)
