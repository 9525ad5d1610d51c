"""The four storage ports over Supabase's REST API (PostgREST). Atomic work goes through the tam_*
SQL functions by RPC (POST /rest/v1/rpc/<name>); plain reads and single-row writes are table queries."""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from postgrest import CountMethod
from postgrest.exceptions import APIError
from supabase import AsyncClient

from tam.adapters.sql.rows import (
    company_from_row,
    contact_from_row,
    contact_payload,
    iso,
    job_from_row,
    job_payload,
    new_company_payload,
    project_from_row,
    project_payload,
    qualification_payload,
    status_counts,
    task_claim_from_row,
)
from tam.adapters.supabase.client import UNIQUE_VIOLATION, call, rows, translate
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

PAGE = 1000  # Supabase's default max-rows: longer lists are read page by page
_IDS_PER_REQUEST = 100  # keeps `id=in.(...)` well inside URL length limits
_RANGE_NOT_SATISFIABLE = "PGRST103"


class _Repo:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _rpc(self, name: str, params: dict[str, Any]) -> Any:
        response = await call(self._client.rpc(name, params).execute)
        return response.data

    async def _all(self, table: str, order: Sequence[str], **filters: Any) -> builtins.list[dict[str, Any]]:
        found: builtins.list[dict[str, Any]] = []
        while True:
            query = self._filtered(self._client.table(table).select("*"), filters)
            for column in order:
                desc = column.startswith("-")
                query = query.order(column.lstrip("-"), desc=desc)
            response = await call(query.range(len(found), len(found) + PAGE - 1).execute)
            found.extend(response.data)
            if len(response.data) < PAGE:
                return found

    async def _page(
        self, table: str, order: Sequence[str], limit: int, offset: int, **filters: Any
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        query = self._filtered(self._client.table(table).select("*", count=CountMethod.exact), filters)
        for column in order:
            query = query.order(column)
        try:
            response = await query.range(offset, offset + limit - 1).execute()
        except APIError as exc:
            if exc.code != _RANGE_NOT_SATISFIABLE:  # an offset past the end: no rows, count them apart
                raise translate(exc) from None
            head = self._filtered(self._client.table(table).select("id", count=CountMethod.exact), filters)
            counted = await call(head.limit(1).execute)
            return [], counted.count or 0
        return response.data, response.count or 0

    @staticmethod
    def _filtered(query: Any, filters: Mapping[str, Any]) -> Any:
        for column, value in filters.items():
            if value is None:
                query = query.is_(column, "null")
            elif isinstance(value, _Or):
                query = query.or_(value.conditions)
            elif isinstance(value, tuple):  # (operator, value), e.g. ("neq", "")
                query = query.filter(column, value[0], value[1])
            else:
                query = query.eq(column, str(value))
        return query

    async def _insert_once(self, table: str, payload: dict[str, Any]) -> None:
        """Insert a row by id; the same id again is a no-op (idempotent add)."""
        try:
            await self._client.table(table).insert(payload).execute()
        except APIError as exc:
            if exc.code != UNIQUE_VIOLATION:
                raise translate(exc) from None


class SupabaseProjectRepo(_Repo):
    async def add(self, project: Project) -> Project:
        payload = project_payload(project)
        if project.created_at:
            payload["created_at"] = iso(project.created_at)
        await self._insert_once("tam_projects", payload)
        return await self.get(project.id)

    async def get(self, project_id: UUID) -> Project:
        response = await call(self._client.table("tam_projects").select("*").eq("id", str(project_id)).execute)
        if not response.data:
            raise NotFound(f"project {project_id} not found")
        return project_from_row(response.data[0])

    async def list(self) -> builtins.list[Project]:
        return [project_from_row(r) for r in await self._all("tam_projects", ("created_at", "id"))]


@dataclass(frozen=True, slots=True)
class _Or:
    """A PostgREST `or=(...)` filter for `_filtered`."""

    conditions: str


def _search(q: str, *columns: str) -> _Or:
    """The list search as one PostgREST `or` filter: `col.ilike."*q*"` per column. The value is quoted so
    that PostgREST's reserved characters (`,.:()`) are plain text; the characters quoting cannot carry
    (`"` and `\\`) and the pattern's own wildcards (`*`, `%`, `_`) become `_`, which matches any one
    character: such a search finds a superset, never an error and never another filter."""
    pattern = re.sub(r'["\\*%_]', "_", q)
    return _Or(",".join(f'{c}.ilike."*{pattern}*"' for c in columns))


_COMPANY_ORDER = ("created_at", "domain", "id")
_CONTACT_ORDER = ("created_at", "full_name", "id")


class SupabaseCompanyRepo(_Repo):
    async def add_many(self, project_id: UUID, companies: Sequence[NewCompany]) -> ImportResult:
        if not companies:
            return ImportResult(inserted=0, skipped=0)
        data = await self._rpc(
            "tam_add_companies",
            {"p_project_id": str(project_id), "p_companies": [new_company_payload(c) for c in companies]},
        )
        (row,) = rows(data)
        return ImportResult(inserted=int(row["inserted"]), skipped=int(row["skipped"]))

    async def pending_qualification(self, project_id: UUID) -> builtins.list[Company]:
        found = await self._all("tam_companies", _COMPANY_ORDER, project_id=project_id, qualification_status="pending")
        return [company_from_row(r) for r in found]

    async def needing_contacts(self, project_id: UUID) -> builtins.list[Company]:
        found = await self._all(
            "tam_companies",
            _COMPANY_ORDER,
            project_id=project_id,
            qualification_status="qualified",
            domain=("neq", ""),
            contacts_searched_at=None,
        )
        return [company_from_row(r) for r in found]

    async def get_many(self, company_ids: Sequence[UUID]) -> builtins.list[Company]:
        by_id: dict[UUID, Company] = {}
        for start in range(0, len(company_ids), _IDS_PER_REQUEST):
            chunk = [str(i) for i in company_ids[start : start + _IDS_PER_REQUEST]]
            response = await call(self._client.table("tam_companies").select("*").in_("id", chunk).execute)
            by_id.update((c.id, c) for c in map(company_from_row, response.data))
        return [by_id[i] for i in company_ids if i in by_id]

    async def record_qualification(
        self, company_id: UUID, status: QualificationStatus, reason: str, at: datetime
    ) -> None:
        change = {"qualification_status": status.value, "qualification_reason": reason, "qualified_at": iso(at)}
        response = await call(self._client.table("tam_companies").update(change).eq("id", str(company_id)).execute)
        if not response.data:
            raise NotFound(f"company {company_id} not found")

    async def record_qualifications(self, records: Sequence[QualificationRecord]) -> int:
        if not records:
            return 0
        return int(await self._rpc("tam_record_qualifications", {"p_rows": qualification_payload(records)}))

    async def list(
        self,
        project_id: UUID,
        status: QualificationStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
    ) -> CompanyPage:
        filters: dict[str, Any] = {"project_id": project_id}
        if status is not None:
            filters["qualification_status"] = status.value
        if q:
            filters["or"] = _search(q, "name", "domain")
        found, total = await self._page("tam_companies", _COMPANY_ORDER, limit, offset, **filters)
        return CompanyPage(tuple(map(company_from_row, found)), total)

    async def count_by_status(self, project_id: UUID) -> Mapping[QualificationStatus, int]:
        return status_counts(rows(await self._rpc("tam_count_companies_by_status", {"p_project_id": str(project_id)})))


class SupabaseContactRepo(_Repo):
    async def record_company_contacts(
        self, company: Company, contacts: Sequence[Contact], searched_at: datetime
    ) -> int:
        inserted = await self._rpc(
            "tam_record_company_contacts",
            {
                "p_company_id": str(company.id),
                "p_contacts": [contact_payload(c) for c in contacts],
                "p_searched_at": iso(searched_at),
            },
        )
        return int(inserted)

    async def unchecked_linkedin(self, project_id: UUID) -> builtins.list[Contact]:
        found = await self._all(
            "tam_contacts",
            _CONTACT_ORDER,
            project_id=project_id,
            linkedin_url=("neq", ""),  # also excludes null
            linkedin_checked_at=None,
        )
        return [contact_from_row(r) for r in found]

    async def record_linkedin(self, checks: Sequence[LinkedinCheck], at: datetime) -> None:
        if checks:
            payload = [{"contact_id": str(c.contact_id), "active": c.active, "detail": c.detail} for c in checks]
            await self._rpc("tam_record_linkedin", {"p_checks": payload, "p_at": iso(at)})

    async def list(
        self,
        project_id: UUID,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
        email_status: EmailStatus | None = None,
    ) -> ContactPage:
        filters: dict[str, Any] = {"project_id": project_id}
        if email_status is not None:
            filters["email_status"] = email_status.value
        if q:
            filters["or"] = _search(q, "full_name", "title", "email")
        found, total = await self._page("tam_contacts", _CONTACT_ORDER, limit, offset, **filters)
        return ContactPage(tuple(map(contact_from_row, found)), total)

    async def stats(self, project_id: UUID) -> ContactStats:
        (row,) = rows(await self._rpc("tam_contact_stats", {"p_project_id": str(project_id)}))
        return ContactStats(
            total=int(row["total"]),
            with_email=int(row["with_email"]),
            linkedin_active=int(row["linkedin_active"]),
            linkedin_inactive=int(row["linkedin_inactive"]),
        )


class SupabaseJobRepo(_Repo):
    async def add(self, job: Job) -> Job:
        payload = job_payload(job)
        if job.created_at:
            payload["created_at"] = iso(job.created_at)
        await self._insert_once("tam_job_queue", payload)
        return await self.get(job.id)

    async def get(self, job_id: UUID) -> Job:
        response = await call(self._client.table("tam_job_queue").select("*").eq("id", str(job_id)).execute)
        if not response.data:
            raise NotFound(f"job {job_id} not found")
        return job_from_row(response.data[0])

    async def list(self, project_id: UUID | None = None) -> builtins.list[Job]:
        filters = {} if project_id is None else {"project_id": project_id}
        return [job_from_row(r) for r in await self._all("tam_job_queue", ("-created_at", "id"), **filters)]

    async def add_exclusive(self, job: Job) -> Job:
        found = rows(
            await self._rpc(
                "tam_add_job_exclusive",
                {"p_id": str(job.id), "p_project_id": str(job.project_id), "p_job_type": job.job_type.value},
            )
        )
        if found:
            active = job_from_row(found[0])
            raise ActiveJobExists(active_job_message(active), active.id)
        return await self.get(job.id)

    async def start(
        self, job_id: UUID, at: datetime, *, task_id: str | None = None, stale_before: datetime | None = None
    ) -> Job | None:
        found = rows(
            await self._rpc(
                "tam_start_job",
                {"p_job_id": str(job_id), "p_at": iso(at), "p_task_id": task_id, "p_stale_before": iso(stale_before)},
            )
        )
        return job_from_row(found[0]) if found else None

    async def save_progress(
        self, job_id: UUID, progress: Progress, usage: Usage, at: datetime, *, token: int | None = None
    ) -> Job:
        return await self._job(
            "tam_save_job_progress",
            {
                "p_job_id": str(job_id),
                "p_progress": progress.percent,
                "p_items_total": progress.items_total,
                "p_items_done": progress.items_done,
                "p_items_failed": progress.items_failed,
                "p_message": progress.message,
                "p_usage": dict(usage.counts),
                "p_at": iso(at),
                "p_token": token,
            },
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
            "tam_finish_job",
            {
                "p_job_id": str(job_id),
                "p_status": status.value,
                "p_message": message,
                "p_error": error,
                "p_at": iso(at),
                "p_token": token,
            },
        )

    async def set_batch(self, job_id: UUID, batch_id: str | None) -> None:
        update = self._client.table("tam_job_queue").update({"batch_id": batch_id}).eq("id", str(job_id))
        if not (await call(update.execute)).data:
            raise NotFound(f"job {job_id} not found")

    async def set_budget(self, job_id: UUID, max_cost_usd: float | None) -> None:
        update = self._client.table("tam_job_queue").update({"max_cost_usd": max_cost_usd}).eq("id", str(job_id))
        if not (await call(update.execute)).data:
            raise NotFound(f"job {job_id} not found")

    async def release(self, job_id: UUID, token: int, at: datetime) -> None:
        await self._rpc("tam_release_job", {"p_job_id": str(job_id), "p_token": token, "p_at": iso(at)})

    async def requeue(self, job_id: UUID, old_task_id: str | None, new_task_id: str, stale_before: datetime) -> bool:
        params = {
            "p_job_id": str(job_id),
            "p_old_task_id": old_task_id,
            "p_new_task_id": new_task_id,
            "p_stale_before": iso(stale_before),
        }
        return bool(await self._rpc("tam_requeue_job", params))

    async def claim_dispatch(
        self,
        job_id: UUID,
        project_id: UUID,
        job_type: JobType,
        task_id: str,
        at: datetime,
        stale_before: datetime,
    ) -> TaskClaim:
        params = {
            "p_job_id": str(job_id),
            "p_project_id": str(project_id),
            "p_job_type": job_type.value,
            "p_task_id": task_id,
            "p_at": iso(at),
            "p_stale_before": iso(stale_before),
        }
        (row,) = rows(await self._rpc("tam_dispatch_job", params))
        return task_claim_from_row(row)

    async def unclaim_task(self, job_id: UUID, task_id: str) -> None:
        await self._rpc("tam_unclaim_job_task", {"p_job_id": str(job_id), "p_task_id": task_id})

    async def cancel(self, job_id: UUID, at: datetime) -> Job:
        return await self._job("tam_cancel_job", {"p_job_id": str(job_id), "p_at": iso(at)})

    async def _job(self, function: str, params: dict[str, Any]) -> Job:
        (row,) = rows(await self._rpc(function, params))
        return job_from_row(row)
