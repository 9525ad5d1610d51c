"""Rows of the tam tables as domain objects, and domain objects as JSON-ready payloads.

Rows come as asyncpg records (UUID, datetime, list), sqlite3 rows (text, JSON text, 0/1) or PostgREST
JSON (strings); the readers accept all three."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tam.domain.model import (
    ClaimOutcome,
    Company,
    CompanySourceKind,
    Contact,
    EmailStatus,
    Job,
    JobStatus,
    JobType,
    NewCompany,
    Project,
    QualificationStatus,
    TaskClaim,
    Usage,
)
from tam.ports.storage import QualificationRecord

Row = Any  # asyncpg.Record, sqlite3.Row or dict: all index by column name


def as_uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def as_datetime(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """UTC, fixed width, so text columns sort in time order."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(str(v) for v in value)  # type: ignore[attr-defined]


def _mapping(value: object) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return {str(k): int(v) for k, v in dict(value).items()}  # type: ignore[call-overload]


def _bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def project_from_row(row: Row) -> Project:
    return Project(
        id=as_uuid(row["id"]),
        name=row["name"],
        icp=row["icp"],
        target_titles=_strings(row["target_titles"]),
        target_seniorities=_strings(row["target_seniorities"]),
        countries=_strings(row["countries"]),
        employee_range=row["employee_range"],
        max_contacts_per_company=int(row["max_contacts_per_company"]),
        created_at=as_datetime(row["created_at"]),
    )


def company_from_row(row: Row) -> Company:
    return Company(
        id=as_uuid(row["id"]),
        project_id=as_uuid(row["project_id"]),
        name=row["name"],
        domain=row["domain"],
        source=CompanySourceKind(row["source"]),
        description=row["description"],
        country=row["country"],
        employee_range=row["employee_range"],
        linkedin_url=row["linkedin_url"],
        similarity=_float(row["similarity"]),
        qualification_status=QualificationStatus(row["qualification_status"]),
        qualification_reason=row["qualification_reason"],
        qualified_at=as_datetime(row["qualified_at"]),
        contacts_searched_at=as_datetime(row["contacts_searched_at"]),
        created_at=as_datetime(row["created_at"]),
    )


def contact_from_row(row: Row) -> Contact:
    status = row["email_status"]
    return Contact(
        id=as_uuid(row["id"]),
        project_id=as_uuid(row["project_id"]),
        company_id=as_uuid(row["company_id"]),
        full_name=row["full_name"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        title=row["title"],
        linkedin_url=row["linkedin_url"],
        email=row["email"],
        email_status=EmailStatus(status) if status else None,
        provider_person_id=row["provider_person_id"],
        linkedin_active=_bool(row["linkedin_active"]),
        linkedin_checked_at=as_datetime(row["linkedin_checked_at"]),
        linkedin_detail=row["linkedin_detail"],
        created_at=as_datetime(row["created_at"]),
    )


def _optional(row: Row, key: str) -> Any:
    """A column a store may not have yet (a database not migrated since it was added)."""
    try:
        return row[key]
    except (KeyError, IndexError):
        return None


def _optional_float(row: Row, key: str) -> float | None:
    value = _optional(row, key)
    return None if value is None else float(value)


def job_from_row(row: Row) -> Job:
    return Job(
        id=as_uuid(row["id"]),
        project_id=as_uuid(row["project_id"]),
        job_type=JobType.parse(row["job_type"]),
        status=JobStatus(row["status"]),
        progress=int(row["progress"]),
        items_total=int(row["items_total"]),
        items_done=int(row["items_done"]),
        items_failed=int(row["items_failed"]),
        message=row["message"],
        error=row["error"],
        task_id=row["task_id"],
        attempts=int(row["attempts"]),
        usage=Usage(_mapping(row["usage"])),
        max_cost_usd=_optional_float(row, "max_cost_usd"),
        batch_id=_optional(row, "batch_id"),
        created_at=as_datetime(row["created_at"]),
        started_at=as_datetime(row["started_at"]),
        finished_at=as_datetime(row["finished_at"]),
        heartbeat_at=as_datetime(row["heartbeat_at"]),
        updated_at=as_datetime(row["updated_at"]),
    )


def task_claim_from_row(row: Row, job: Row | None = None) -> TaskClaim:
    """A row of tam_dispatch_job: outcome, previous_task_id, the job row (`job`, or the row itself when
    its columns were expanded) and the active job's as JSON (or null)."""
    active = row["active"]
    return TaskClaim(
        ClaimOutcome(row["outcome"]),
        job_from_row(row["job"] if job is None else job),
        previous_task_id=row["previous_task_id"],
        active=None if active is None else job_from_row(active),
    )


def new_company_payload(company: NewCompany) -> dict[str, Any]:
    return {
        "name": company.name,
        "domain": company.domain,
        "source": company.source.value,
        "description": company.description,
        "country": company.country,
        "employee_range": company.employee_range,
        "linkedin_url": company.linkedin_url,
        "similarity": company.similarity,
    }


def qualification_payload(records: Sequence[QualificationRecord]) -> list[dict[str, Any]]:
    """The rows tam_record_qualifications takes."""
    return [
        {"company_id": str(r.company_id), "status": r.status.value, "reason": r.reason, "at": iso(r.at)}
        for r in records
    ]


def contact_payload(contact: Contact) -> dict[str, Any]:
    return {
        "id": str(contact.id),
        "project_id": str(contact.project_id),
        "company_id": str(contact.company_id),
        "full_name": contact.full_name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "title": contact.title,
        "linkedin_url": contact.linkedin_url,
        "email": contact.email,
        "email_status": contact.email_status.value if contact.email_status else None,
        "provider_person_id": contact.provider_person_id,
        "linkedin_active": contact.linkedin_active,
        "linkedin_checked_at": iso(contact.linkedin_checked_at),
        "linkedin_detail": contact.linkedin_detail,
    }


def project_payload(project: Project) -> dict[str, Any]:
    return {
        "id": str(project.id),
        "name": project.name,
        "icp": project.icp,
        "target_titles": list(project.target_titles),
        "target_seniorities": list(project.target_seniorities),
        "countries": list(project.countries),
        "employee_range": project.employee_range,
        "max_contacts_per_company": project.max_contacts_per_company,
    }


def job_payload(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "project_id": str(job.project_id),
        "job_type": job.job_type.value,
        "status": job.status.value,
        "progress": job.progress,
        "items_total": job.items_total,
        "items_done": job.items_done,
        "items_failed": job.items_failed,
        "message": job.message,
        "error": job.error,
        "task_id": job.task_id,
        "attempts": job.attempts,
        "usage": dict(job.usage.counts),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "heartbeat_at": iso(job.heartbeat_at),
    }


def status_counts(rows: list[Row]) -> dict[QualificationStatus, int]:
    counts = dict.fromkeys(QualificationStatus, 0)
    for row in rows:
        counts[QualificationStatus(row["qualification_status"])] = int(row["n"])
    return counts
