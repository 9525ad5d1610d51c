"""The four storage ports over asyncpg. Multi-row and read-modify-write operations are the tam_*
SQL functions (supabase/migrations), the same ones the Supabase adapter calls through RPC."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from tam.adapters.postgres.connection import translated_errors
from tam.adapters.sql.rows import (
    company_from_row,
    contact_from_row,
    contact_payload,
    job_from_row,
    new_company_payload,
    project_from_row,
    qualification_payload,
    status_counts,
    task_claim_from_row,
)
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

_COMPANY_ORDER = "order by created_at, domain, id"
_CONTACT_ORDER = "order by created_at, full_name, id"


def _search(param: int, *columns: str) -> str:
    """A list's search condition on parameter `$param` (null: no search): a case-insensitive substring
    of any column (strpos, not like, so that % and _ in the search are plain characters)."""
    found = " or ".join(f"strpos(lower({c}), lower(${param}::text)) > 0" for c in columns)
    return f"(${param}::text is null or {found})"


class _Repo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _fetch(self, sql: str, *args: object) -> builtins.list[asyncpg.Record]:
        with translated_errors():
            rows: builtins.list[asyncpg.Record] = await self._pool.fetch(sql, *args)
        return rows

    async def _fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        with translated_errors():
            return await self._pool.fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: object) -> Any:
        with translated_errors():
            return await self._pool.fetchval(sql, *args)

    async def _one(self, what: str, key: UUID, sql: str, *args: object) -> asyncpg.Record:
        row = await self._fetchrow(sql, *args)
        if row is None:
            raise NotFound(f"{what} {key} not found")
        return row


class PostgresProjectRepo(_Repo):
    async def add(self, project: Project) -> Project:
        await self._fetchval(
            """insert into tam_projects (id, name, icp, target_titles, target_seniorities, countries,
                   employee_range, max_contacts_per_company, created_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
               on conflict (id) do nothing""",
            project.id,
            project.name,
            project.icp,
            list(project.target_titles),
            list(project.target_seniorities),
            list(project.countries),
            project.employee_range,
            project.max_contacts_per_company,
            project.created_at,
        )
        return await self.get(project.id)

    async def get(self, project_id: UUID) -> Project:
        row = await self._one("project", project_id, "select * from tam_projects where id = $1", project_id)
        return project_from_row(row)

    async def list(self) -> builtins.list[Project]:
        return [project_from_row(r) for r in await self._fetch("select * from tam_projects order by created_at, id")]


class PostgresCompanyRepo(_Repo):
    async def add_many(self, project_id: UUID, companies: Sequence[NewCompany]) -> ImportResult:
        if not companies:
            return ImportResult(inserted=0, skipped=0)
        row = await self._fetchrow(
            "select * from tam_add_companies($1, $2::jsonb)",
            project_id,
            [new_company_payload(c) for c in companies],
        )
        assert row is not None
        return ImportResult(inserted=row["inserted"], skipped=row["skipped"])

    async def pending_qualification(self, project_id: UUID) -> builtins.list[Company]:
        rows = await self._fetch(
            f"select * from tam_companies where project_id = $1 and qualification_status = 'pending' {_COMPANY_ORDER}",
            project_id,
        )
        return [company_from_row(r) for r in rows]

    async def needing_contacts(self, project_id: UUID) -> builtins.list[Company]:
        rows = await self._fetch(
            f"""select * from tam_companies
                 where project_id = $1 and qualification_status = 'qualified' and domain <> ''
                   and contacts_searched_at is null {_COMPANY_ORDER}""",
            project_id,
        )
        return [company_from_row(r) for r in rows]

    async def get_many(self, company_ids: Sequence[UUID]) -> builtins.list[Company]:
        rows = await self._fetch("select * from tam_companies where id = any($1::uuid[])", list(company_ids))
        by_id = {c.id: c for c in map(company_from_row, rows)}
        return [by_id[i] for i in company_ids if i in by_id]

    async def record_qualification(
        self, company_id: UUID, status: QualificationStatus, reason: str, at: datetime
    ) -> None:
        await self._one(
            "company",
            company_id,
            """update tam_companies set qualification_status = $2, qualification_reason = $3, qualified_at = $4,
                   updated_at = now()
               where id = $1 returning id""",
            company_id,
            status.value,
            reason,
            at,
        )

    async def record_qualifications(self, records: Sequence[QualificationRecord]) -> int:
        if not records:
            return 0
        return int(await self._fetchval("select tam_record_qualifications($1::jsonb)", qualification_payload(records)))

    async def list(
        self,
        project_id: UUID,
        status: QualificationStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
    ) -> CompanyPage:
        search = _search(3, "name", "domain")
        where = f"where project_id = $1 and ($2::text is null or qualification_status = $2) and {search}"
        args = (project_id, status.value if status else None, q or None)
        rows = await self._fetch(
            f"select * from tam_companies {where} {_COMPANY_ORDER} limit $4 offset $5", *args, limit, offset
        )
        total = await self._fetchval(f"select count(*) from tam_companies {where}", *args)
        return CompanyPage(tuple(map(company_from_row, rows)), int(total))

    async def count_by_status(self, project_id: UUID) -> Mapping[QualificationStatus, int]:
        return status_counts(await self._fetch("select * from tam_count_companies_by_status($1)", project_id))


class PostgresContactRepo(_Repo):
    async def record_company_contacts(
        self, company: Company, contacts: Sequence[Contact], searched_at: datetime
    ) -> int:
        inserted = await self._fetchval(
            "select tam_record_company_contacts($1, $2::jsonb, $3)",
            company.id,
            [contact_payload(c) for c in contacts],
            searched_at,
        )
        return int(inserted)

    async def unchecked_linkedin(self, project_id: UUID) -> builtins.list[Contact]:
        rows = await self._fetch(
            f"""select * from tam_contacts
                 where project_id = $1 and linkedin_url is not null and linkedin_url <> ''
                   and linkedin_checked_at is null {_CONTACT_ORDER}""",
            project_id,
        )
        return [contact_from_row(r) for r in rows]

    async def record_linkedin(self, checks: Sequence[LinkedinCheck], at: datetime) -> None:
        if checks:
            payload = [{"contact_id": str(c.contact_id), "active": c.active, "detail": c.detail} for c in checks]
            await self._fetchval("select tam_record_linkedin($1::jsonb, $2)", payload, at)

    async def list(
        self,
        project_id: UUID,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
        email_status: EmailStatus | None = None,
    ) -> ContactPage:
        search = _search(2, "full_name", "title", "email")
        where = f"where project_id = $1 and {search} and ($3::text is null or email_status = $3)"
        args = (project_id, q or None, email_status.value if email_status else None)
        rows = await self._fetch(
            f"select * from tam_contacts {where} {_CONTACT_ORDER} limit $4 offset $5", *args, limit, offset
        )
        total = await self._fetchval(f"select count(*) from tam_contacts {where}", *args)
        return ContactPage(tuple(map(contact_from_row, rows)), int(total))

    async def stats(self, project_id: UUID) -> ContactStats:
        row = await self._fetchrow("select * from tam_contact_stats($1)", project_id)
        assert row is not None
        return ContactStats(**{k: int(v) for k, v in row.items()})


class PostgresJobRepo(_Repo):
    async def add(self, job: Job) -> Job:
        await self._fetchval(
            """insert into tam_job_queue (id, project_id, job_type, status, progress, items_total, items_done,
                   items_failed, message, error, task_id, attempts, usage, created_at, started_at, finished_at,
                   heartbeat_at, updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, coalesce($14, now()), $15,
                   $16, $17, now())
               on conflict (id) do nothing""",
            job.id,
            job.project_id,
            job.job_type.value,
            job.status.value,
            job.progress,
            job.items_total,
            job.items_done,
            job.items_failed,
            job.message,
            job.error,
            job.task_id,
            job.attempts,
            dict(job.usage.counts),
            job.created_at,
            job.started_at,
            job.finished_at,
            job.heartbeat_at,
        )
        return await self.get(job.id)

    async def get(self, job_id: UUID) -> Job:
        return job_from_row(await self._one("job", job_id, "select * from tam_job_queue where id = $1", job_id))

    async def list(self, project_id: UUID | None = None) -> builtins.list[Job]:
        rows = await self._fetch(
            "select * from tam_job_queue where $1::uuid is null or project_id = $1 order by created_at desc, id",
            project_id,
        )
        return [job_from_row(r) for r in rows]

    async def add_exclusive(self, job: Job) -> Job:
        active = await self._fetchrow(
            "select * from tam_add_job_exclusive($1, $2, $3)", job.id, job.project_id, job.job_type.value
        )
        if active is not None:
            found = job_from_row(active)
            raise ActiveJobExists(active_job_message(found), found.id)
        return await self.get(job.id)

    async def start(
        self, job_id: UUID, at: datetime, *, task_id: str | None = None, stale_before: datetime | None = None
    ) -> Job | None:
        row = await self._fetchrow("select * from tam_start_job($1, $2, $3, $4)", job_id, at, task_id, stale_before)
        return None if row is None else job_from_row(row)

    async def save_progress(
        self, job_id: UUID, progress: Progress, usage: Usage, at: datetime, *, token: int | None = None
    ) -> Job:
        return await self._job(
            "select * from tam_save_job_progress($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
            job_id,
            progress.percent,
            progress.items_total,
            progress.items_done,
            progress.items_failed,
            progress.message,
            dict(usage.counts),
            at,
            token,
        )

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
        return await self._job(
            "select * from tam_finish_job($1, $2, $3, $4, $5, $6)", job_id, status.value, message, error, at, token
        )

    async def release(self, job_id: UUID, token: int, at: datetime) -> None:
        await self._fetchval("select tam_release_job($1, $2, $3)", job_id, token, at)

    async def requeue(self, job_id: UUID, old_task_id: str | None, new_task_id: str, stale_before: datetime) -> bool:
        return bool(
            await self._fetchval(
                "select tam_requeue_job($1, $2, $3, $4)", job_id, old_task_id, new_task_id, stale_before
            )
        )

    async def set_batch(self, job_id: UUID, batch_id: str | None) -> None:
        await self._one(
            "job", job_id, "update tam_job_queue set batch_id = $2 where id = $1 returning id", job_id, batch_id
        )

    async def set_budget(self, job_id: UUID, max_cost_usd: float | None) -> None:
        await self._one(
            "job", job_id, "update tam_job_queue set max_cost_usd = $2 where id = $1 returning id", job_id, max_cost_usd
        )

    async def claim_dispatch(
        self,
        job_id: UUID,
        project_id: UUID,
        job_type: JobType,
        task_id: str,
        at: datetime,
        stale_before: datetime,
    ) -> TaskClaim:
        row = await self._fetchrow(
            "select outcome, previous_task_id, active, (job).* from tam_dispatch_job($1, $2, $3, $4, $5, $6)",
            job_id,
            project_id,
            job_type.value,
            task_id,
            at,
            stale_before,
        )
        assert row is not None  # the function returns one row, or raises NotFound
        return task_claim_from_row(row, job=row)  # the job's columns come expanded

    async def unclaim_task(self, job_id: UUID, task_id: str) -> None:
        await self._fetchval("select tam_unclaim_job_task($1, $2)", job_id, task_id)

    async def cancel(self, job_id: UUID, at: datetime) -> Job:
        return await self._job("select * from tam_cancel_job($1, $2)", job_id, at)

    async def _job(self, sql: str, job_id: UUID, *args: object) -> Job:
        return job_from_row(await self._one("job", job_id, sql, job_id, *args))
