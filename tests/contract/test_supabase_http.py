"""The Supabase adapter at the HTTP level: each call's method, path, query and Prefer header as
PostgREST expects them, and PostgREST-shaped errors. (The SQL behind each RPC is tested in
test_sql_functions.py against real PostgreSQL.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import respx

from tam.adapters.sql.errors import StorageError
from tam.adapters.supabase import (
    SupabaseCompanyRepo,
    SupabaseContactRepo,
    SupabaseJobRepo,
    SupabaseProjectRepo,
    create_supabase_client,
)
from tam.domain.model import (
    ActiveJobExists,
    ClaimOutcome,
    EmailStatus,
    Job,
    JobStatus,
    JobType,
    NewCompany,
    NotFound,
    Progress,
    Project,
    QualificationStatus,
    Usage,
)
from tam.ports.storage import QualificationRecord

BASE = "http://supabase.test"
REST = BASE + "/rest/v1"
KEY = "service-role-key"
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PROJECT_ID = uuid4()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    client = await create_supabase_client(BASE, KEY, retry=False)
    yield client
    await client.postgrest.aclose()


@pytest.fixture
def api() -> respx.MockRouter:
    with respx.mock(base_url=REST, assert_all_called=False) as router:
        yield router


def job_row(**overrides: object) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid4()),
        "project_id": str(PROJECT_ID),
        "job_type": "find_contacts",
        "status": "running",
        "progress": 40,
        "items_total": 10,
        "items_done": 4,
        "items_failed": 0,
        "message": "Searched 4 of 10 companies",
        "error": None,
        "task_id": None,
        "attempts": 1,
        "usage": {"credits": 4},
        "created_at": "2026-11-29T10:00:00.123456+00:00",
        "started_at": "2026-11-29T10:00:01+00:00",
        "finished_at": None,
        "heartbeat_at": "2026-11-29T10:00:05Z",
        "updated_at": "2026-11-29T10:00:05+00:00",
    }
    return {**row, **overrides}


def sent(route: respx.Route) -> httpx.Request:
    assert route.call_count == 1
    return route.calls.last.request


def assert_authenticated(request: httpx.Request) -> None:
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_add_many_is_one_rpc_with_the_rows(client: Any, api: respx.MockRouter) -> None:
    route = api.post("/rpc/tam_add_companies").respond(200, json=[{"inserted": 1, "skipped": 1}])
    result = await SupabaseCompanyRepo(client).add_many(
        PROJECT_ID, [NewCompany("Zürich AG", "zurich.ch"), NewCompany("Dup", "zurich.ch")]
    )
    assert (result.inserted, result.skipped) == (1, 1)
    request = sent(route)
    assert_authenticated(request)
    body = json.loads(request.content)
    assert body["p_project_id"] == str(PROJECT_ID)
    assert [c["domain"] for c in body["p_companies"]] == ["zurich.ch", "zurich.ch"]
    assert body["p_companies"][0]["name"] == "Zürich AG"
    assert body["p_companies"][0]["source"] == "import"


async def test_pending_qualification_filters_orders_and_pages(client: Any, api: respx.MockRouter) -> None:
    route = api.get("/tam_companies").respond(200, json=[])
    assert await SupabaseCompanyRepo(client).pending_qualification(PROJECT_ID) == []
    request = sent(route)
    params = request.url.params
    assert params["select"] == "*"
    assert params["project_id"] == f"eq.{PROJECT_ID}"
    assert params["qualification_status"] == "eq.pending"
    assert params["order"] == "created_at.asc,domain.asc,id.asc"
    assert (params["offset"], params["limit"]) == ("0", "1000")


async def test_needing_contacts_asks_for_never_searched_qualified_companies(client: Any, api: respx.MockRouter) -> None:
    route = api.get("/tam_companies").respond(200, json=[])
    await SupabaseCompanyRepo(client).needing_contacts(PROJECT_ID)
    params = sent(route).url.params
    assert params["qualification_status"] == "eq.qualified"
    assert params["contacts_searched_at"] == "is.null"
    assert params["domain"] == "neq."


async def test_list_asks_for_an_exact_count(client: Any, api: respx.MockRouter) -> None:
    route = api.get("/tam_contacts").respond(200, json=[], headers={"content-range": "*/42"})
    page = await SupabaseContactRepo(client).list(PROJECT_ID, limit=20, offset=40)
    assert page.total == 42
    request = sent(route)
    assert "count=exact" in request.headers["prefer"]
    assert (request.url.params["offset"], request.url.params["limit"]) == ("40", "20")


async def test_a_search_is_one_quoted_ilike_per_column_in_an_or_filter(client: Any, api: respx.MockRouter) -> None:
    companies = api.get("/tam_companies").respond(200, json=[], headers={"content-range": "*/0"})
    await SupabaseCompanyRepo(client).list(PROJECT_ID, status=QualificationStatus.QUALIFIED, q="Acme (EU), Inc.")
    params = sent(companies).url.params
    assert params["qualification_status"] == "eq.qualified"
    # Reserved characters (,.:()) are safe inside quotes (docs.postgrest.org, URL grammar, reserved characters).
    assert params["or"] == '(name.ilike."*Acme (EU), Inc.*",domain.ilike."*Acme (EU), Inc.*")'
    contacts = api.get("/tam_contacts").respond(200, json=[], headers={"content-range": "*/0"})
    # What quoting cannot carry, and the pattern's own wildcards, match any one character instead.
    await SupabaseContactRepo(client).list(PROJECT_ID, q='a"b\\c*d%e_f', email_status=EmailStatus.NOT_FOUND)
    assert sent(contacts).url.params["email_status"] == "eq.not_found"
    assert sent(contacts).url.params["or"] == (
        '(full_name.ilike."*a_b_c_d_e_f*",title.ilike."*a_b_c_d_e_f*",email.ilike."*a_b_c_d_e_f*")'
    )


async def test_an_offset_past_the_end_is_an_empty_page(client: Any, api: respx.MockRouter) -> None:
    api.get("/tam_companies", params={"select": "*"}).respond(
        416,
        json={"code": "PGRST103", "message": "Requested range not satisfiable", "details": None, "hint": None},
    )
    api.get("/tam_companies", params={"select": "id"}).respond(200, json=[], headers={"content-range": "0-0/7"})
    page = await SupabaseCompanyRepo(client).list(PROJECT_ID, offset=500)
    assert (page.items, page.total) == ((), 7)


async def test_adding_a_project_twice_reads_back_the_stored_one(client: Any, api: respx.MockRouter) -> None:
    project = Project(name="Société — 東京", icp="x")
    stored = {
        "id": str(project.id),
        "name": project.name,
        "icp": "x",
        "target_titles": [],
        "target_seniorities": [],
        "countries": [],
        "employee_range": None,
        "max_contacts_per_company": 3,
        "created_at": "2026-11-29T10:00:00+00:00",
    }
    insert = api.post("/tam_projects").respond(
        409,
        json={
            "code": "23505",
            "details": f"Key (id)=({project.id}) already exists.",
            "hint": None,
            "message": 'duplicate key value violates unique constraint "tam_projects_pkey"',
        },
    )
    read = api.get("/tam_projects").respond(200, json=[stored])
    got = await SupabaseProjectRepo(client).add(project)
    assert got.name == "Société — 東京"
    request = sent(insert)
    assert "return=representation" in request.headers["prefer"]
    assert json.loads(request.content)["name"] == "Société — 東京"
    assert sent(read).url.params["id"] == f"eq.{project.id}"


async def test_a_missing_row_is_not_found(client: Any, api: respx.MockRouter) -> None:
    api.get("/tam_job_queue").respond(200, json=[])
    with pytest.raises(NotFound):
        await SupabaseJobRepo(client).get(uuid4())
    api.patch("/tam_companies").respond(200, json=[])
    from tam.domain.model import QualificationStatus

    with pytest.raises(NotFound):
        await SupabaseCompanyRepo(client).record_qualification(uuid4(), QualificationStatus.QUALIFIED, "ok", AT)


async def test_a_function_raising_no_data_found_is_not_found(client: Any, api: respx.MockRouter) -> None:
    job_id = uuid4()
    api.post("/rpc/tam_dispatch_job").respond(
        404, json={"code": "P0002", "message": f"job {job_id} not found", "details": None, "hint": None}
    )
    with pytest.raises(NotFound, match=str(job_id)):
        await SupabaseJobRepo(client).claim_dispatch(job_id, PROJECT_ID, JobType.QUALIFY, "task-1", AT, AT)


async def test_claim_dispatch_is_one_rpc_and_reads_its_answer(client: Any, api: respx.MockRouter) -> None:
    job = job_row(task_id="earlier-task")
    route = api.post("/rpc/tam_dispatch_job").respond(
        200, json=[{"outcome": "kept", "previous_task_id": None, "job": job, "active": None}]
    )
    got = await SupabaseJobRepo(client).claim_dispatch(
        UUID(job["id"]), PROJECT_ID, JobType.FIND_CONTACTS, "mine", AT, datetime(2026, 11, 29, 9, 59, tzinfo=UTC)
    )
    assert (got.outcome, got.enqueue, got.job.task_id, got.job.job_type) == (
        ClaimOutcome.KEPT,
        False,
        "earlier-task",
        JobType.FIND_CONTACTS,
    )
    assert json.loads(sent(route).content) == {
        "p_job_id": job["id"],
        "p_project_id": str(PROJECT_ID),
        "p_job_type": "findContacts",
        "p_task_id": "mine",
        "p_at": "2026-11-29T12:00:00.000000+00:00",
        "p_stale_before": "2026-11-29T09:59:00.000000+00:00",
    }


async def test_claim_dispatch_names_the_active_job_of_the_type(client: Any, api: respx.MockRouter) -> None:
    active = job_row(task_id="its-task")
    cancelled = job_row(status="cancelled", message=f"job {active['id']} of type findContacts is already running")
    api.post("/rpc/tam_dispatch_job").respond(
        200, json=[{"outcome": "refused", "previous_task_id": None, "job": cancelled, "active": active}]
    )
    got = await SupabaseJobRepo(client).claim_dispatch(
        UUID(cancelled["id"]), PROJECT_ID, JobType.FIND_CONTACTS, "mine", AT, AT
    )
    assert (got.outcome, got.job.status) == (ClaimOutcome.REFUSED, JobStatus.CANCELLED)
    refusal = got.refusal(JobType.FIND_CONTACTS)
    assert isinstance(refusal, ActiveJobExists) and str(refusal.job_id) == active["id"]


async def test_job_transitions_are_rpcs_returning_the_row(client: Any, api: respx.MockRouter) -> None:
    row = job_row()
    start = api.post("/rpc/tam_start_job").respond(200, json=row)
    finish = api.post("/rpc/tam_finish_job").respond(200, json={**row, "status": "completed", "progress": 100})
    cancel = api.post("/rpc/tam_cancel_job").respond(200, json={**row, "status": "completed", "progress": 100})
    repo = SupabaseJobRepo(client)
    started = await repo.start(uuid4(), AT)
    assert (started.job_type, started.usage, started.heartbeat_at) == (
        JobType.FIND_CONTACTS,
        Usage.of(credits=4),
        datetime(2026, 11, 29, 10, 0, 5, tzinfo=UTC),
    )
    done = await repo.finish(started.id, JobStatus.COMPLETED, "done", None, AT)
    assert (done.status, done.progress) == (JobStatus.COMPLETED, 100)
    assert json.loads(sent(finish).content)["p_status"] == "completed"
    assert json.loads(sent(start).content)["p_at"] == "2026-11-29T12:00:00.000000+00:00"
    assert (await repo.cancel(started.id, AT)).status is JobStatus.COMPLETED
    assert cancel.called


async def test_many_verdicts_are_one_rpc(client: Any, api: respx.MockRouter) -> None:
    route = api.post("/rpc/tam_record_qualifications").respond(200, json=2)
    a, b = uuid4(), uuid4()
    records = [
        QualificationRecord(a, QualificationStatus.QUALIFIED, "fits", AT),
        QualificationRecord(b, QualificationStatus.DISQUALIFIED, "too small", AT),
    ]
    assert await SupabaseCompanyRepo(client).record_qualifications(records) == 2
    assert await SupabaseCompanyRepo(client).record_qualifications([]) == 0
    assert route.call_count == 1
    assert json.loads(sent(route).content) == {
        "p_rows": [
            {"company_id": str(a), "status": "qualified", "reason": "fits", "at": "2026-11-29T12:00:00.000000+00:00"},
            {
                "company_id": str(b),
                "status": "disqualified",
                "reason": "too small",
                "at": "2026-11-29T12:00:00.000000+00:00",
            },
        ]
    }


async def test_save_progress_sends_counts_percent_and_usage(client: Any, api: respx.MockRouter) -> None:
    route = api.post("/rpc/tam_save_job_progress").respond(200, json=job_row())
    job_id = uuid4()
    await SupabaseJobRepo(client).save_progress(job_id, Progress(150, 44, 1, "45 of 150"), Usage.of(tokens=9), AT)
    assert json.loads(sent(route).content) == {
        "p_job_id": str(job_id),
        "p_progress": 30,
        "p_items_total": 150,
        "p_items_done": 44,
        "p_items_failed": 1,
        "p_message": "45 of 150",
        "p_usage": {"tokens": 9},
        "p_at": "2026-11-29T12:00:00.000000+00:00",
        "p_token": None,
    }


async def test_jobs_list_newest_first(client: Any, api: respx.MockRouter) -> None:
    route = api.get("/tam_job_queue").respond(200, json=[job_row(), job_row(job_type="qualify")])
    jobs = await SupabaseJobRepo(client).list(PROJECT_ID)
    assert [j.job_type for j in jobs] == [JobType.FIND_CONTACTS, JobType.QUALIFY]
    params = sent(route).url.params
    assert params["order"] == "created_at.desc,id.asc"
    assert params["project_id"] == f"eq.{PROJECT_ID}"


async def test_adding_a_job_inserts_then_reads(client: Any, api: respx.MockRouter) -> None:
    job = Job(project_id=PROJECT_ID, job_type=JobType.QUALIFY)
    insert = api.post("/tam_job_queue").respond(201, json=[job_row(id=str(job.id), job_type="qualify")])
    api.get("/tam_job_queue").respond(200, json=[job_row(id=str(job.id), job_type="qualify", status="pending")])
    got = await SupabaseJobRepo(client).add(job)
    assert (got.id, got.status) == (job.id, JobStatus.PENDING)
    body = json.loads(sent(insert).content)
    assert (body["job_type"], body["status"], body["usage"]) == ("qualify", "pending", {})


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (404, {"code": "PGRST205", "message": "Could not find the table 'public.tam_job_queue'"}, "tam migrate"),
        (401, {"code": "PGRST301", "message": "JWSError"}, "SUPABASE_SERVICE_ROLE_KEY"),
        (500, {"code": "XX000", "message": "internal"}, "Supabase error XX000"),
    ],
)
async def test_postgrest_errors_become_storage_errors(
    client: Any, api: respx.MockRouter, status: int, error: dict[str, str], expected: str
) -> None:
    api.get("/tam_job_queue").respond(status, json={**error, "details": None, "hint": None})
    with pytest.raises(StorageError, match=expected):
        await SupabaseJobRepo(client).list()


@pytest.mark.parametrize(
    "error",
    [
        {"code": "22P05", "message": "unsupported Unicode escape sequence"},  # a NUL byte in JSON text
        {"code": "54000", "message": "index row size 3696 exceeds btree version 4 maximum 2704"},
        {"code": "23514", "message": 'new row violates check constraint "tam_companies_domain_check"'},
    ],
)
async def test_a_value_the_database_refuses_is_bad_input_not_an_outage(
    client: Any, api: respx.MockRouter, error: dict[str, str]
) -> None:
    from tam.domain.model import RejectedValue

    api.post("/tam_projects").respond(400, json={**error, "details": None, "hint": None})
    with pytest.raises(RejectedValue, match=error["message"][:20]):
        await SupabaseProjectRepo(client).add(Project(name="p", icp="i"))


async def test_a_network_failure_is_a_storage_outage(client: Any, api: respx.MockRouter) -> None:
    """Weather, not a bug: a job waits it out (StorageUnavailable), a request answers 503."""
    from tam.domain.model import StorageUnavailable

    api.post("/rpc/tam_contact_stats").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(StorageUnavailable, match="cannot reach Supabase"):
        await SupabaseContactRepo(client).stats(PROJECT_ID)
    api.get("/tam_job_queue").respond(
        503, json={"code": "PGRST001", "message": "Database client error. Retrying the connection.", "details": None}
    )
    with pytest.raises(StorageUnavailable, match="PGRST001"):
        await SupabaseJobRepo(client).list()


async def test_contacts_are_recorded_and_checked_through_rpcs(client: Any, api: respx.MockRouter) -> None:
    from tam.domain.model import Company, Contact
    from tam.ports.providers import LinkedinCheck

    company = Company(id=uuid4(), project_id=PROJECT_ID, name="A", domain="a.com")
    person = Contact(id=uuid4(), project_id=PROJECT_ID, company_id=company.id, full_name="Zoë", email="z@a.com")
    record = api.post("/rpc/tam_record_company_contacts").respond(200, json=1)
    check = api.post("/rpc/tam_record_linkedin").respond(200, json=1)
    repo = SupabaseContactRepo(client)
    assert await repo.record_company_contacts(company, [person], AT) == 1
    body = json.loads(sent(record).content)
    assert (body["p_company_id"], body["p_searched_at"]) == (str(company.id), "2026-11-29T12:00:00.000000+00:00")
    assert body["p_contacts"][0] | {"id": "-"} == {
        "id": "-",
        "project_id": str(PROJECT_ID),
        "company_id": str(company.id),
        "full_name": "Zoë",
        "first_name": None,
        "last_name": None,
        "title": None,
        "linkedin_url": None,
        "email": "z@a.com",
        "email_status": None,
        "provider_person_id": None,
        "linkedin_active": None,
        "linkedin_checked_at": None,
        "linkedin_detail": None,
    }
    await repo.record_linkedin([LinkedinCheck(person.id, False, "dead_page")], AT)
    assert json.loads(sent(check).content)["p_checks"] == [
        {"contact_id": str(person.id), "active": False, "detail": "dead_page"}
    ]
