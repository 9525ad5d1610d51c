"""The four storage ports over one SQLite file (see database.py for the concurrency rules)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

import aiosqlite

from tam.adapters.sql.rows import (
    company_from_row,
    contact_from_row,
    contact_payload,
    iso,
    job_from_row,
    job_payload,
    new_company_payload,
    project_from_row,
    status_counts,
)
from tam.adapters.sqlite.database import SqliteDatabase
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
    new_id,
)
from tam.ports.providers import LinkedinCheck
from tam.ports.storage import CompanyPage, ContactPage, ContactStats, ImportResult, QualificationRecord

_COMPANY_ORDER = "order by created_at, domain, id"
_CONTACT_ORDER = "order by created_at, full_name, id"


def _search(q: str | None, *columns: str) -> tuple[str, tuple[str, ...]]:
    """The `and (...)` clause of a list's search: a case-insensitive substring of any column
    (instr, not like, so that % and _ in the search are plain characters)."""
    if not q:
        return "", ()
    clause = " or ".join(f"instr(lower(coalesce({c}, '')), lower(?)) > 0" for c in columns)
    return f" and ({clause})", (q,) * len(columns)


def _now() -> str:
    return iso(datetime.now(UTC)) or ""


class _Repo:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db


class SqliteProjectRepo(_Repo):
    async def add(self, project: Project) -> Project:
        async with self._db.write() as conn:
            await conn.execute(
                """insert into tam_projects (id, name, icp, target_titles, target_seniorities, countries,
                       employee_range, max_contacts_per_company, created_at)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do nothing""",
                (
                    str(project.id),
                    project.name,
                    project.icp,
                    json.dumps(list(project.target_titles)),
                    json.dumps(list(project.target_seniorities)),
                    json.dumps(list(project.countries)),
                    project.employee_range,
                    project.max_contacts_per_company,
                    iso(project.created_at) or _now(),
                ),
            )
        return await self.get(project.id)

    async def get(self, project_id: UUID) -> Project:
        row = await self._db.fetchone("select * from tam_projects where id = ?", (str(project_id),))
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return project_from_row(row)

    async def list(self) -> builtins.list[Project]:
        return [project_from_row(r) for r in await self._db.fetch("select * from tam_projects order by created_at, id")]


class SqliteCompanyRepo(_Repo):
    async def add_many(self, project_id: UUID, companies: Sequence[NewCompany]) -> ImportResult:
        if not companies:
            return ImportResult(inserted=0, skipped=0)
        now = _now()
        rows = [(str(new_id()), str(project_id), *new_company_payload(c).values(), now, now) for c in companies]
        async with self._db.write() as conn:
            if not await (await conn.execute("select 1 from tam_projects where id = ?", (str(project_id),))).fetchone():
                raise NotFound(f"project {project_id} not found")
            before = conn.total_changes
            await conn.executemany(
                """insert into tam_companies (id, project_id, name, domain, source, description, country,
                       employee_range, linkedin_url, similarity, created_at, updated_at)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing""",
                rows,
            )
            inserted = conn.total_changes - before
        return ImportResult(inserted=inserted, skipped=len(companies) - inserted)

    async def pending_qualification(self, project_id: UUID) -> builtins.list[Company]:
        rows = await self._db.fetch(
            f"select * from tam_companies where project_id = ? and qualification_status = 'pending' {_COMPANY_ORDER}",
            (str(project_id),),
        )
        return [company_from_row(r) for r in rows]

    async def needing_contacts(self, project_id: UUID) -> builtins.list[Company]:
        rows = await self._db.fetch(
            f"""select * from tam_companies
                 where project_id = ? and qualification_status = 'qualified' and domain <> ''
                   and contacts_searched_at is null {_COMPANY_ORDER}""",
            (str(project_id),),
        )
        return [company_from_row(r) for r in rows]

    async def get_many(self, company_ids: Sequence[UUID]) -> builtins.list[Company]:
        if not company_ids:
            return []
        marks = ",".join("?" * len(company_ids))
        rows = await self._db.fetch(f"select * from tam_companies where id in ({marks})", map(str, company_ids))
        by_id = {c.id: c for c in map(company_from_row, rows)}
        return [by_id[i] for i in company_ids if i in by_id]

    async def record_qualification(
        self, company_id: UUID, status: QualificationStatus, reason: str, at: datetime
    ) -> None:
        async with self._db.write() as conn:
            cursor = await conn.execute(
                """update tam_companies set qualification_status = ?, qualification_reason = ?, qualified_at = ?,
                       updated_at = ? where id = ?""",
                (status.value, reason, iso(at), _now(), str(company_id)),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"company {company_id} not found")

    async def record_qualifications(self, records: Sequence[QualificationRecord]) -> int:
        if not records:
            return 0
        now = _now()
        async with self._db.write() as conn:
            cursor = await conn.executemany(
                """update tam_companies set qualification_status = ?, qualification_reason = ?, qualified_at = ?,
                       updated_at = ? where id = ? and qualification_status = 'pending'""",
                [(r.status.value, r.reason, iso(r.at), now, str(r.company_id)) for r in records],
            )
            return max(cursor.rowcount, 0)

    async def list(
        self,
        project_id: UUID,
        status: QualificationStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
    ) -> CompanyPage:
        search, search_args = _search(q, "name", "domain")
        where = f"where project_id = ? and (? is null or qualification_status = ?){search}"
        args = (str(project_id), status and status.value, status and status.value, *search_args)
        rows = await self._db.fetch(
            f"select * from tam_companies {where} {_COMPANY_ORDER} limit ? offset ?", (*args, limit, offset)
        )
        total = await self._db.fetchone(f"select count(*) from tam_companies {where}", args)
        return CompanyPage(tuple(map(company_from_row, rows)), int(total[0]) if total else 0)

    async def count_by_status(self, project_id: UUID) -> Mapping[QualificationStatus, int]:
        rows = await self._db.fetch(
            "select qualification_status, count(*) as n from tam_companies where project_id = ?"
            " group by qualification_status",
            (str(project_id),),
        )
        return status_counts(rows)


class SqliteContactRepo(_Repo):
    async def record_company_contacts(
        self, company: Company, contacts: Sequence[Contact], searched_at: datetime
    ) -> int:
        now = _now()
        rows = [(*contact_payload(c).values(), iso(c.created_at) or now, c.person_key) for c in contacts]
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "update tam_companies set contacts_searched_at = coalesce(contacts_searched_at, ?), updated_at = ?"
                " where id = ?",
                (iso(searched_at), now, str(company.id)),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"company {company.id} not found")
            before = conn.total_changes
            await conn.executemany(
                """insert into tam_contacts (id, project_id, company_id, full_name, first_name, last_name, title,
                       linkedin_url, email, email_status, provider_person_id, linkedin_active, linkedin_checked_at,
                       linkedin_detail, created_at, person_key)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing""",
                rows,
            )
            return conn.total_changes - before

    async def unchecked_linkedin(self, project_id: UUID) -> builtins.list[Contact]:
        rows = await self._db.fetch(
            f"""select * from tam_contacts
                 where project_id = ? and linkedin_url is not null and linkedin_url <> ''
                   and linkedin_checked_at is null {_CONTACT_ORDER}""",
            (str(project_id),),
        )
        return [contact_from_row(r) for r in rows]

    async def record_linkedin(self, checks: Sequence[LinkedinCheck], at: datetime) -> None:
        if not checks:
            return
        async with self._db.write() as conn:
            for check in checks:
                cursor = await conn.execute(
                    "update tam_contacts set linkedin_active = ?, linkedin_detail = ?, linkedin_checked_at = ?"
                    " where id = ?",
                    (check.active, check.detail, iso(at), str(check.contact_id)),
                )
                if cursor.rowcount == 0:
                    raise NotFound(f"contact {check.contact_id} not found")

    async def list(
        self,
        project_id: UUID,
        limit: int = 100,
        offset: int = 0,
        q: str | None = None,
        email_status: EmailStatus | None = None,
    ) -> ContactPage:
        search, search_args = _search(q, "full_name", "title", "email")
        where = f"where project_id = ? and (? is null or email_status = ?){search}"
        wanted = email_status and email_status.value
        args = (str(project_id), wanted, wanted, *search_args)
        rows = await self._db.fetch(
            f"select * from tam_contacts {where} {_CONTACT_ORDER} limit ? offset ?", (*args, limit, offset)
        )
        total = await self._db.fetchone(f"select count(*) from tam_contacts {where}", args)
        return ContactPage(tuple(map(contact_from_row, rows)), int(total[0]) if total else 0)

    async def stats(self, project_id: UUID) -> ContactStats:
        row = await self._db.fetchone(
            """select count(*), coalesce(sum(coalesce(email, '') <> ''), 0), coalesce(sum(linkedin_active = 1), 0),
                      coalesce(sum(linkedin_active = 0), 0)
                 from tam_contacts where project_id = ?""",
            (str(project_id),),
        )
        assert row is not None
        return ContactStats(*(int(v) for v in row))


_JOB_COLUMNS = (
    "id, project_id, job_type, status, progress, items_total, items_done, items_failed, message, error, task_id,"
    " attempts, usage, started_at, finished_at, heartbeat_at, created_at, updated_at"
)


class SqliteJobRepo(_Repo):
    async def add(self, job: Job) -> Job:
        payload = job_payload(job)
        payload["usage"] = json.dumps(payload["usage"])
        now = _now()
        async with self._db.write() as conn:
            await conn.execute(
                f"insert into tam_job_queue ({_JOB_COLUMNS}) values ({','.join('?' * 18)}) on conflict (id) do nothing",
                (*payload.values(), iso(job.created_at) or now, now),
            )
        return await self.get(job.id)

    async def get(self, job_id: UUID) -> Job:
        row = await self._db.fetchone("select * from tam_job_queue where id = ?", (str(job_id),))
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return job_from_row(row)

    async def list(self, project_id: UUID | None = None) -> builtins.list[Job]:
        key = str(project_id) if project_id else None
        rows = await self._db.fetch(
            "select * from tam_job_queue where ? is null or project_id = ? order by created_at desc, id", (key, key)
        )
        return [job_from_row(r) for r in rows]

    async def add_exclusive(self, job: Job) -> Job:
        async with self._db.write() as conn:  # the write lock makes the check and the insert one step
            active = await self._active_other(conn, job, dispatched=False)
            if active is not None:
                raise ActiveJobExists(active_job_message(active), active.id)
            payload = job_payload(job)
            payload["usage"] = json.dumps(payload["usage"])
            now = _now()
            await conn.execute(
                f"insert into tam_job_queue ({_JOB_COLUMNS}) values ({','.join('?' * 18)}) on conflict (id) do nothing",
                (*payload.values(), iso(job.created_at) or now, now),
            )
        return await self.get(job.id)

    async def start(
        self, job_id: UUID, at: datetime, *, task_id: str | None = None, stale_before: datetime | None = None
    ) -> Job | None:
        started: list[Job] = []

        def rule(job: Job) -> Job:
            new = job.start(at, task_id, stale_before)
            started.extend([new] if new is not None else [])
            return new or job

        await self._apply(job_id, rule)
        return started[0] if started else None

    async def save_progress(
        self, job_id: UUID, progress: Progress, usage: Usage, at: datetime, *, token: int | None = None
    ) -> Job:
        return await self._apply(job_id, lambda job: job.progressed(token, progress, usage, at))

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
        return await self._apply(job_id, lambda job: job.finished_as(status, message, error, at, token))

    async def release(self, job_id: UUID, token: int, at: datetime) -> None:
        await self._apply(job_id, lambda job: job.released(token, at))

    async def requeue(self, job_id: UUID, old_task_id: str | None, new_task_id: str, stale_before: datetime) -> bool:
        done: list[Job] = []

        def rule(job: Job) -> Job:
            new = job.requeued(old_task_id, new_task_id, stale_before, datetime.now(UTC))
            done.extend([new] if new is not None else [])
            return new or job

        await self._apply(job_id, rule)
        return bool(done)

    async def set_batch(self, job_id: UUID, batch_id: str | None) -> None:
        await self._set(job_id, "update tam_job_queue set batch_id = ? where id = ?", batch_id)

    async def set_budget(self, job_id: UUID, max_cost_usd: float | None) -> None:
        await self._set(job_id, "update tam_job_queue set max_cost_usd = ? where id = ?", max_cost_usd)

    async def _set(self, job_id: UUID, sql: str, value: object) -> None:
        async with self._db.write() as conn:
            cursor = await conn.execute(sql, (value, str(job_id)))
            if cursor.rowcount == 0:
                raise NotFound(f"job {job_id} not found")

    async def claim_dispatch(
        self,
        job_id: UUID,
        project_id: UUID,
        job_type: JobType,
        task_id: str,
        at: datetime,
        stale_before: datetime,
    ) -> TaskClaim:
        async with self._db.write() as conn:  # the file's write lock: the read, the decision and the write are one step
            job = await self._row(conn, job_id)
            active = None if job.task_id is not None else await self._active_other(conn, job, dispatched=True)
            claim = job.dispatched(project_id, job_type, task_id, at, stale_before, active)
            await self._write(conn, job, claim.job)
        return claim

    async def unclaim_task(self, job_id: UUID, task_id: str) -> None:
        await self._apply(job_id, lambda job: job.unclaimed(task_id))

    async def cancel(self, job_id: UUID, at: datetime) -> Job:
        return await self.finish(job_id, JobStatus.CANCELLED, None, None, at)

    async def _apply(self, job_id: UUID, rule: Callable[[Job], Job]) -> Job:
        """Read the row, let the entity decide, write what it decided: one write transaction (the
        file's write lock), so concurrent callers in any process see each other's decisions."""
        async with self._db.write() as conn:
            job = await self._row(conn, job_id)
            new = rule(job)
            await self._write(conn, job, new)
            return new

    async def _row(self, conn: aiosqlite.Connection, job_id: UUID) -> Job:
        async with conn.execute("select * from tam_job_queue where id = ?", (str(job_id),)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return job_from_row(row)

    async def _write(self, conn: aiosqlite.Connection, old: Job, new: Job) -> None:
        if new == old:
            return
        await conn.execute(
            """update tam_job_queue set status = ?, progress = ?, items_total = ?, items_done = ?,
                   items_failed = ?, message = ?, error = ?, task_id = ?, attempts = ?, usage = ?, started_at = ?,
                   finished_at = ?, heartbeat_at = ?, updated_at = ? where id = ?""",
            (
                new.status.value,
                new.progress,
                new.items_total,
                new.items_done,
                new.items_failed,
                new.message,
                new.error,
                new.task_id,
                new.attempts,
                json.dumps(dict(new.usage.counts)),
                iso(new.started_at),
                iso(new.finished_at),
                iso(new.heartbeat_at),
                iso(new.updated_at) if new.updated_at != old.updated_at else _now(),
                str(new.id),
            ),
        )

    async def _active_other(self, conn: aiosqlite.Connection, job: Job, dispatched: bool) -> Job | None:
        async with conn.execute(
            """select * from tam_job_queue where project_id = ? and id <> ? and status in ('pending', 'running')
               and lower(replace(job_type, '_', '')) = ? and (task_id is not null or not ?)
               order by created_at limit 1""",
            (str(job.project_id), str(job.id), job.job_type.value.lower(), dispatched),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else job_from_row(row)
