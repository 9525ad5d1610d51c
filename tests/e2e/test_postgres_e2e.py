"""HTTP API -> Redis -> `tam worker` process -> PostgreSQL, for every job type, live against the fake
vendor servers, with what was stored checked item by item; and the seed's flow (a job row inserted as
`running`, then `POST /api/tam/run`) with the time to its first progress update measured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from tam_fakes import FakeServer
from tam_fakes.anthropic import expected_qualified
from tam_fakes.brightdata import expected_active
from tam_fakes.prospeo import email_outcome
from tests.e2e.conftest import AUTH, Pg, create_job, live_env, new_project, report, wait_for

pytestmark = pytest.mark.slow

ORDER = ["sourceCompanies", "qualify", "findContacts", "checkLinkedin", "refineDiscolike"]


def finished(api: TestClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json()
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(done, timeout, step=0.1, what=f"job {job_id} finished")


def test_every_job_type_through_a_worker_into_postgres(
    pg_env: dict[str, str],
    fakes: dict[str, FakeServer],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    env = {
        **pg_env,
        **live_env(fakes),
        "TAM_SOURCE_COMPANIES_MAX_RECORDS": "24",
        "TAM_REFINE_DISCOLIKE_MAX_RECORDS": "10",
    }
    api = make_api(env)
    worker = workers(env)
    project_id = new_project(
        api,
        targetTitles=["Head of Sales", "VP Sales"],
        targetSeniorities=["Head", "Vice President"],
        countries=["US", "GB"],
        employeeRange="51,500",
        maxContactsPerCompany=2,
    )
    jobs = {}
    for job_type in ORDER:
        jobs[job_type] = finished(api, create_job(api, project_id, job_type))
        assert jobs[job_type]["status"] == "completed", jobs[job_type]
        assert jobs[job_type]["progress"] == 100
        assert jobs[job_type]["attempts"] == 1
    worker.stop()
    pid = UUID(project_id)

    # sourceCompanies: the fake's 24 records less its two unusable domains; refine: new ones, pending
    companies = pg.fetch(
        "select id, domain, source, qualification_status, qualification_reason, qualified_at"
        " from tam_companies where project_id = $1",
        pid,
    )
    sourced = [c for c in companies if c["source"] == "discolike"]
    refined = [c for c in companies if c["source"] == "discolike_refine"]
    assert len(sourced) == 22
    assert refined and all(c["qualification_status"] == "pending" for c in refined)
    # qualify: every sourced company decided as the fake decides it, with its reason
    for c in sourced:
        assert c["qualification_status"] == ("qualified" if expected_qualified(c["domain"]) else "disqualified")
        assert c["qualification_reason"] and c["qualified_at"] is not None
    assert jobs["qualify"]["itemsDone"] == 22 and jobs["qualify"]["itemsFailed"] == 0
    # each company asked of Claude exactly once
    asked = [r.body["messages"][-1]["content"] for r in fakes["anthropic"].state.calls("/v1/messages")]
    assert len(asked) == 22

    # findContacts: contacts only at qualified companies, each email as Prospeo's fake found it
    contacts = pg.fetch(
        "select company_id, provider_person_id, email, email_status, linkedin_url, linkedin_active,"
        " linkedin_checked_at, linkedin_detail from tam_contacts where project_id = $1",
        pid,
    )
    qualified = {c["id"] for c in sourced if c["qualification_status"] == "qualified"}
    assert contacts and {c["company_id"] for c in contacts} <= qualified
    searched = pg.fetch("select id from tam_companies where project_id = $1 and contacts_searched_at is not null", pid)
    assert {r["id"] for r in searched} == qualified
    for contact in contacts:
        outcome = email_outcome(contact["provider_person_id"] or "")
        want = {"VERIFIED": "verified", "UNVERIFIED": "unverified"}.get(outcome, "not_found")
        assert contact["email_status"] == want
        assert (contact["email"] is not None) == (want != "not_found")
        # checkLinkedin: every profile checked, active as Bright Data's fake says
        assert contact["linkedin_active"] is expected_active(contact["linkedin_url"] or "")
        assert contact["linkedin_checked_at"] is not None and contact["linkedin_detail"]
    assert jobs["findContacts"]["itemsDone"] + jobs["findContacts"]["itemsFailed"] == len(qualified)
    assert jobs["checkLinkedin"]["itemsDone"] + jobs["checkLinkedin"]["itemsFailed"] == len(contacts)

    # the API reads the same rows back
    listed = api.get(f"/api/tam/projects/{project_id}/contacts?limit=1000", headers=AUTH).json()
    assert listed["total"] == len(contacts)
    counts = api.get(f"/api/tam/projects/{project_id}", headers=AUTH).json()["companies"]
    assert counts["qualified"] == len(qualified) and counts["pending"] == len(refined)


def test_seed_flow_running_row_then_run_with_first_progress_timed(
    pg_env: dict[str, str],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    api = make_api(pg_env)
    workers(pg_env)
    domains = [f"seed{i}.example" for i in range(40)]  # 40 at 0.05 s, 10 at a time: about 0.2 s
    project_id = new_project(api, domains)
    # the frontend's edge function: insert the row as `running` itself, then call /api/tam/run
    job_id = str(
        pg.fetchval(
            "insert into tam_job_queue (project_id, job_type, status) values ($1, 'qualify', 'running') returning id",
            UUID(project_id),
        )
    )
    body = {"jobId": job_id, "jobType": "qualify", "projectId": project_id}
    posted = time.monotonic()
    answer = api.post("/api/tam/run", headers=AUTH, json=body)
    answered = time.monotonic()
    assert answer.status_code == 200, answer.text
    assert answer.json()["triggered"] is True
    task_id = answer.json()["taskId"]
    again = api.post("/api/tam/run", headers=AUTH, json=body)
    assert again.status_code == 200 and again.json()["taskId"] == task_id  # no second enqueue

    started = wait_for(lambda: (row := pg.job(job_id)).attempts > 0 and row, 20, step=0.005)
    progress = wait_for(lambda: (row := pg.job(job_id)).items_total > 0 and row, 20, step=0.005)
    item = wait_for(lambda: (row := pg.job(job_id)).items_done > 0 and row, 20, step=0.005)

    job = finished(api, job_id)
    assert job["status"] == "completed" and job["progress"] == 100 and job["attempts"] == 1
    assert job["taskId"] == task_id
    decided = pg.companies(project_id)
    assert set(decided) == set(domains)
    assert all(c["qualification_status"] in ("qualified", "disqualified") for c in decided.values())
    assert job["itemsDone"] + job["itemsFailed"] == 40
    report(
        "POST /api/tam/run (worker already running): answered in "
        f"{(answered - posted) * 1000:.0f} ms; job started (attempt counted, heartbeat) after "
        f"{(started.t - posted) * 1000:.0f} ms; first progress write (itemsTotal, message) after "
        f"{(progress.t - posted) * 1000:.0f} ms; first item done (itemsDone > 0) after "
        f"{(item.t - posted) * 1000:.0f} ms"
    )
