"""`tam export companies|contacts --project ID -o FILE.csv`: every row, paged through the store."""

from __future__ import annotations

import csv
import enum
import os
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer

from tam.domain.model import Company, Contact, EmailStatus, QualificationStatus
from tam.entrypoints.cli.session import ensure_project, fail, opened, parse_id, run

if TYPE_CHECKING:
    from tam.containers import Services

PAGE = 500

COMPANY_COLUMNS = (
    "id", "name", "domain", "description", "country", "employee_range", "linkedin_url", "source", "similarity",
    "qualification_status", "qualification_reason", "qualified_at", "contacts_searched_at", "created_at",
)  # fmt: skip
CONTACT_COLUMNS = (
    "id", "company_id", "company_name", "company_domain", "full_name", "first_name", "last_name", "title",
    "linkedin_url", "email", "email_status", "provider_person_id", "linkedin_active", "linkedin_checked_at",
    "linkedin_detail", "created_at",
)  # fmt: skip


class Table(enum.StrEnum):
    COMPANIES = "companies"
    CONTACTS = "contacts"


# OWASP "CSV injection": a cell a spreadsheet would run as a formula gets a leading single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_RANGE = re.compile(r"^\s*(\d+)\s*,\s*(\d*)\s*$")  # "51,200" (as DiscoLike writes it), "10001,"


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    text = str(value)
    if column == "employee_range" and (match := _RANGE.match(text)):
        low, high = match.groups()
        text = f"{low}-{high}" if high else f"{low}+"
    return neutralised(text)


def neutralised(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        table: Table = typer.Argument(..., help="What to export: companies or contacts."),
        project: str = typer.Option(..., "--project", help="Project id."),
        output: Path = typer.Option(..., "-o", "--output", help="CSV file to write ('-' for stdout)."),
        status: list[str] = typer.Option(
            [],
            "--status",
            help="Only these statuses (repeatable): a qualification status for companies (pending, qualified, "
            "disqualified, error), an email status for contacts (verified, unverified, not_found).",
        ),
    ) -> None:
        """Write all of a project's companies or contacts to a CSV file."""
        project_id = parse_id(project)
        allowed = QualificationStatus if table is Table.COMPANIES else EmailStatus
        values = {s.value for s in allowed}
        for s in status:
            if s not in values:
                fail(f"unknown {table.value} status {s!r}; expected one of: {', '.join(sorted(values))}")

        async def main() -> int:
            async with opened() as services:
                await ensure_project(services, project_id)
                if table is Table.COMPANIES:
                    statuses = [QualificationStatus(s) for s in dict.fromkeys(status)]
                    return write_csv(
                        output, COMPANY_COLUMNS, [r async for r in company_rows(services, project_id, statuses)]
                    )
                return write_csv(
                    output, CONTACT_COLUMNS, [r async for r in contact_rows(services, project_id, set(status))]
                )

        count = run(main)
        if str(output) != "-":
            print(f"wrote {count} {table.value} to {output}")


async def company_rows(
    services: Services, project_id: UUID, statuses: Sequence[QualificationStatus]
) -> AsyncIterator[list[str]]:
    repo = services.companies
    wanted: Sequence[QualificationStatus | None] = statuses or [None]
    for status in wanted:
        offset = 0
        while True:
            page = await repo.list(project_id, status=status, limit=PAGE, offset=offset)
            for company in page.items:
                yield [cell(getattr(company, c), c) for c in COMPANY_COLUMNS]
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break


async def contact_rows(services: Services, project_id: UUID, statuses: set[str]) -> AsyncIterator[list[str]]:
    repo, companies = services.contacts, services.companies
    offset = 0
    while True:
        page = await repo.list(project_id, limit=PAGE, offset=offset)
        wanted: list[Contact] = [
            c for c in page.items if not statuses or (c.email_status is not None and c.email_status.value in statuses)
        ]
        by_id: dict[UUID, Company] = {c.id: c for c in await companies.get_many(list({c.company_id for c in wanted}))}
        for contact in wanted:
            company = by_id.get(contact.company_id)
            extra = {
                "company_name": company.name if company else None,
                "company_domain": company.domain if company else None,
            }
            yield [cell(extra[c] if c in extra else getattr(contact, c), c) for c in CONTACT_COLUMNS]
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break


def write_csv(output: Path, columns: Sequence[str], rows: list[list[str]]) -> int:
    """Write atomically (a failed export never leaves half a file where the old one was), as UTF-8
    with a byte order mark, which Excel needs to read "Müller" or "東京" right (Google Sheets and
    Python's utf-8-sig skip it), readable by others like any new file (0666 less the umask: 0644)."""
    if str(output) == "-":
        import sys

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return len(rows)
    target = output.resolve()
    if not target.parent.is_dir():
        fail(f"cannot write {output}: directory {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600
        with os.fdopen(fd, "w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(rows)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        fail(f"cannot write {output}: {exc.strerror or exc}")
    return len(rows)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
