"""Storage ports. Every write is idempotent: running it twice leaves the same state.
Lookups of a missing id raise NotFound."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from tam.domain.model import (
    Company,
    Contact,
    EmailStatus,
    Job,
    JobStatus,
    JobType,
    NewCompany,
    Progress,
    Project,
    QualificationStatus,
    TaskClaim,
    Usage,
)
from tam.ports.providers import LinkedinCheck


@dataclass(frozen=True, slots=True)
class ImportResult:
    inserted: int
    skipped: int
    rejected: tuple[tuple[str, str], ...] = field(default=())  # (raw domain, reason)


@dataclass(frozen=True, slots=True)
class QualificationRecord:
    """One verdict to store: `record_qualifications` writes many in one round trip."""

    company_id: UUID
    status: QualificationStatus
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CompanyPage:
    items: tuple[Company, ...]
    total: int


@dataclass(frozen=True, slots=True)
class ContactPage:
    items: tuple[Contact, ...]
    total: int


@dataclass(frozen=True, slots=True)
class ContactStats:
    total: int = 0
    with_email: int = 0
    linkedin_active: int = 0
    linkedin_inactive: int = 0


class ProjectRepo(Protocol):
    async def add(self, project: Project) -> Project: ...

    async def get(self, project_id: UUID) -> Project: ...

    async def list(self) -> list[Project]: ...


class CompanyRepo(Protocol):
    async def add_many(self, project_id: UUID, companies: Sequence[NewCompany]) -> ImportResult:
        """Insert companies whose (project, domain) is new; the rest count as skipped."""
        ...

    async def pending_qualification(self, project_id: UUID) -> list[Company]: ...

    async def needing_contacts(self, project_id: UUID) -> list[Company]:
        """Qualified companies whose contacts were never searched."""
        ...

    async def get_many(self, company_ids: Sequence[UUID]) -> list[Company]: ...

    async def record_qualification(
        self, company_id: UUID, status: QualificationStatus, reason: str, at: datetime
    ) -> None: ...

    async def record_qualifications(self, records: Sequence[QualificationRecord]) -> int:
        """Store many verdicts at once (one statement where the store allows); companies that no
        longer exist are skipped. Returns how many were stored."""
        ...

    async def list(
        self,
        project_id: UUID,
        status: QualificationStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
    ) -> CompanyPage:
        """A page in a stable order, with the total that matches. `q`: only companies whose name or domain
        contains it, ignoring case (ASCII case everywhere; SQLite folds no other letters)."""
        ...

    async def count_by_status(self, project_id: UUID) -> Mapping[QualificationStatus, int]: ...


class ContactRepo(Protocol):
    async def record_company_contacts(
        self, company: Company, contacts: Sequence[Contact], searched_at: datetime
    ) -> int:
        """Store the contacts found at `company` (skipping people already stored) and mark its
        contacts searched, in one transaction. Returns how many were inserted."""
        ...

    async def unchecked_linkedin(self, project_id: UUID) -> list[Contact]:
        """Contacts with a LinkedIn URL that was never checked."""
        ...

    async def record_linkedin(self, checks: Sequence[LinkedinCheck], at: datetime) -> None: ...

    async def list(
        self,
        project_id: UUID,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
        email_status: EmailStatus | None = None,
    ) -> ContactPage:
        """Like CompanyRepo.list; `q` matches the full name, title or email (so also the email's domain)."""
        ...

    async def stats(self, project_id: UUID) -> ContactStats: ...


class JobRepo(Protocol):
    """The job row's lifecycle; each write is the rule of the same name on `Job` (start, progressed,
    finished_as, released, requeued), applied atomically. `token` is the fencing token of an attempt:
    the `attempts` value its `start` returned."""

    async def add(self, job: Job) -> Job: ...

    async def add_exclusive(self, job: Job) -> Job:
        """Insert the job unless a job of its type is active (pending or running) for its project:
        then raise ActiveJobExists naming that job. Atomic across processes."""
        ...

    async def get(self, job_id: UUID) -> Job: ...

    async def list(self, project_id: UUID | None = None) -> list[Job]: ...

    async def start(
        self, job_id: UUID, at: datetime, *, task_id: str | None = None, stale_before: datetime | None = None
    ) -> Job | None:
        """Start an attempt (`Job.start`): the job as started (its token is `attempts`), or None when
        it is finished, `task_id` was superseded, or a live attempt holds it."""
        ...

    async def save_progress(
        self, job_id: UUID, progress: Progress, usage: Usage, at: datetime, *, token: int | None = None
    ) -> Job:
        """Write counts, message, usage and heartbeat of a running job (`Job.progressed`); return the row
        as it is after, so a caller sees a cancel or a lost lease without another read."""
        ...

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
        """Move a job that is not finished yet to a final status (`Job.finished_as`); return the row."""
        ...

    async def release(self, job_id: UUID, token: int, at: datetime) -> None:
        """The lease holder lets the job go without finishing it (`Job.released`)."""
        ...

    async def requeue(self, job_id: UUID, old_task_id: str | None, new_task_id: str, stale_before: datetime) -> bool:
        """Give a stale running job a new task id (`Job.requeued`); True for the one caller that did."""
        ...

    async def set_budget(self, job_id: UUID, max_cost_usd: float | None) -> None:
        """Set the most the job may spend, in US dollars (None: no cap)."""
        ...

    async def set_batch(self, job_id: UUID, batch_id: str | None) -> None:
        """Remember the Message Batch the job waits on (None: it waits on none)."""
        ...

    async def claim_dispatch(
        self,
        job_id: UUID,
        project_id: UUID,
        job_type: JobType,
        task_id: str,
        at: datetime,
        stale_before: datetime,
    ) -> TaskClaim:
        """`Job.dispatched` in one step (one database round trip): validate the job against the request,
        then keep its task, requeue it under `task_id` if its attempt is gone, claim `task_id`, or cancel
        it when another job of its type is active and dispatched. Atomic across processes: however many
        callers race on a job or on one (project, type), one task is claimed. NotFound for no such job."""
        ...

    async def unclaim_task(self, job_id: UUID, task_id: str) -> None:
        """Give back a task id whose message the broker refused (`Job.unclaimed`)."""
        ...

    async def cancel(self, job_id: UUID, at: datetime) -> Job:
        """Cancel a pending or running job; a finished job is returned unchanged."""
        ...


@dataclass(frozen=True, slots=True)
class Store:
    """One store's four repositories, sharing its connection (TAM_STORE picks the store)."""

    projects: ProjectRepo
    companies: CompanyRepo
    contacts: ContactRepo
    jobs: JobRepo
