"""Project routes: create and read a project, import and list its companies, list its contacts."""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tam.domain.model import InvalidInput, Project, QualificationStatus
from tam.domain.services.projects import CompanyRow
from tam.entrypoints.api.errors import BadRequest
from tam.entrypoints.api.http import by_method, parse_body, parse_body_as, parse_query, reply, services
from tam.entrypoints.api.schemas import (
    CompanyCounts,
    CompanyIn,
    CompanyOut,
    CompanyPageOut,
    CompanyQuery,
    ContactCounts,
    ContactOut,
    ContactPageOut,
    ContactQuery,
    CreateProjectRequest,
    ImportOut,
    ProjectDetail,
    ProjectList,
    ProjectOut,
    Rejected,
)

COMPANY_ROWS = TypeAdapter(list[CompanyIn])


async def create_project(request: Request) -> JSONResponse:
    body = await parse_body(request, CreateProjectRequest)
    try:
        project = await services(request).create_project(
            Project(
                name=body.name,
                icp=body.icp,
                target_titles=tuple(body.target_titles),
                target_seniorities=tuple(body.target_seniorities),
                countries=tuple(body.countries),
                employee_range=body.employee_range,
                max_contacts_per_company=body.max_contacts_per_company,
            )
        )
    except InvalidInput as exc:  # a blank name or ICP: an invalid field, as the schema's own checks
        raise BadRequest(str(exc)) from None
    return reply(ProjectOut.model_validate(project), status=201)


async def list_projects(request: Request) -> JSONResponse:
    found = await services(request).projects.list()
    return reply(ProjectList(items=[ProjectOut.model_validate(p) for p in found], total=len(found)))


async def get_project(request: Request) -> JSONResponse:
    s = services(request)
    project_id = request.path_params["project_id"]
    project = await s.projects.get(project_id)
    by_status = await s.companies.count_by_status(project_id)
    stats = await s.contacts.stats(project_id)
    counts = {s.value: by_status.get(s, 0) for s in QualificationStatus}
    detail = ProjectDetail.model_validate(
        {
            **ProjectOut.model_validate(project).model_dump(),
            "companies": CompanyCounts(**counts, total=sum(counts.values())),
            "contacts": ContactCounts.model_validate(stats),
        }
    )
    return reply(detail)


async def import_companies(request: Request) -> JSONResponse:
    s = services(request)
    project_id = request.path_params["project_id"]
    rows = await parse_body_as(request, COMPANY_ROWS)
    await s.projects.get(project_id)
    result = await s.import_companies(
        project_id,
        [
            CompanyRow(
                name=r.name,
                domain=r.domain,
                description=r.description,
                country=r.country,
                employee_range=r.employee_range,
                linkedin_url=r.linkedin_url,
            )
            for r in rows
        ],
    )
    rejected = [Rejected(domain=d, reason=why) for d, why in result.rejected]
    return reply(ImportOut(inserted=result.inserted, skipped=result.skipped, rejected=rejected))


async def list_companies(request: Request) -> JSONResponse:
    s = services(request)
    project_id = request.path_params["project_id"]
    query = parse_query(request, CompanyQuery)
    await s.projects.get(project_id)
    page = await s.companies.list(project_id, query.status, query.limit, query.offset, q=_search(query.q))
    return reply(CompanyPageOut(items=[CompanyOut.model_validate(x) for x in page.items], total=page.total))


async def list_contacts(request: Request) -> JSONResponse:
    s = services(request)
    project_id = request.path_params["project_id"]
    query = parse_query(request, ContactQuery)
    await s.projects.get(project_id)
    page = await s.contacts.list(
        project_id, query.limit, query.offset, q=_search(query.q), email_status=query.email_status
    )
    return reply(ContactPageOut(items=[ContactOut.model_validate(x) for x in page.items], total=page.total))


def _search(q: str | None) -> str | None:
    return (q or "").strip() or None


routes = [
    Route("/api/tam/projects", by_method(post=create_project, get=list_projects), methods=["GET", "POST"]),
    Route("/api/tam/projects/{project_id:uuid}", get_project, methods=["GET"]),
    Route(
        "/api/tam/projects/{project_id:uuid}/companies",
        by_method(post=import_companies, get=list_companies),
        methods=["GET", "POST"],
    ),
    Route("/api/tam/projects/{project_id:uuid}/contacts", list_contacts, methods=["GET"]),
]
