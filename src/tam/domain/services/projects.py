"""Use cases around projects that the API and CLI share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from tam.domain.domains import normalise_domain
from tam.domain.model import CompanySourceKind, InvalidInput, NewCompany, Project, RejectedValue
from tam.ports.storage import CompanyRepo, ImportResult, ProjectRepo

# Unicode's White_Space property: what `\s` means to the API's schema (pattern `\S`, checked by
# pydantic-core's regex engine) and to JSON Schema clients. Python's str.strip() also strips U+001C..U+001F,
# so a name such as "\x1f" would pass the schema and then be refused as blank.
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def _trim(text: str) -> str:
    return text.strip(WHITE_SPACE)


class CreateProject:
    """One set of rules for a new project, whether it comes from the API or the CLI: name and ICP
    trimmed and required, blank titles and seniorities dropped, country codes upper case."""

    def __init__(self, projects: ProjectRepo) -> None:
        self._projects = projects

    async def __call__(self, project: Project) -> Project:
        name, icp = _trim(project.name), _trim(project.icp)
        if not name or not icp:
            raise InvalidInput("a project needs a name and an ICP (neither may be blank)")
        return await self._projects.add(
            replace(
                project,
                name=name,
                icp=icp,
                target_titles=tuple(_trim(t) for t in project.target_titles if _trim(t)),
                target_seniorities=tuple(_trim(s) for s in project.target_seniorities if _trim(s)),
                countries=tuple(_trim(c).upper() for c in project.countries if _trim(c)),
            )
        )


@dataclass(frozen=True, slots=True)
class CompanyRow:
    """A company as a user gave it: the domain may be a URL, have `www.`, or be unusable."""

    name: str
    domain: str | None
    description: str | None = None
    country: str | None = None
    employee_range: str | None = None
    linkedin_url: str | None = None


class ImportCompanies:
    def __init__(self, companies: CompanyRepo) -> None:
        self._companies = companies

    async def __call__(self, project_id: UUID, rows: Sequence[CompanyRow]) -> ImportResult:
        accepted: list[NewCompany] = []
        rejected: list[tuple[str, str]] = []
        for row in rows:
            try:
                domain = normalise_domain(row.domain)
                _storable(row)
            except InvalidInput as exc:
                rejected.append((row.domain or "", str(exc)))
                continue
            accepted.append(
                NewCompany(
                    name=row.name.strip() or domain,
                    domain=domain,
                    source=CompanySourceKind.IMPORT,
                    description=row.description,
                    country=row.country.upper() if row.country else None,
                    employee_range=row.employee_range,
                    linkedin_url=row.linkedin_url,
                )
            )
        try:
            result = await self._companies.add_many(project_id, accepted)
        except RejectedValue:
            # one row the database refuses must not sink the others: store them one by one
            result = ImportResult(0, 0)
            for company in accepted:
                try:
                    one = await self._companies.add_many(project_id, [company])
                except RejectedValue as exc:
                    rejected.append((company.domain, str(exc)))
                    continue
                result = ImportResult(result.inserted + one.inserted, result.skipped + one.skipped)
        return replace(result, rejected=tuple(rejected))


def _storable(row: CompanyRow) -> None:
    """Text no database column stores: a NUL character (PostgreSQL refuses it in text)."""
    for name in ("name", "description", "country", "employee_range", "linkedin_url"):
        value = getattr(row, name)
        if value is not None and "\x00" in value:
            raise InvalidInput(f"{name} contains a NUL character")
