"""The routes around jobs and projects, in process over the memory store and sandbox providers."""

from __future__ import annotations

import time
from uuid import uuid4

from tests.api.helpers import AUTH, RecordingDispatcher, make_client, make_settings, new_project, services


def test_health_needs_no_key_but_everything_else_does() -> None:
    with make_client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 401
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/readyz", headers=AUTH).json() == {"status": "ready", "database": "ok", "broker": "embedded"}
        assert client.get("/openapi.json", headers=AUTH).json()["openapi"].startswith("3.1")


def test_project_create_import_and_read_back() -> None:
    with make_client() as client:
        project_id = new_project(client, targetTitles=["COO"], countries=["us"], maxContactsPerCompany=2)
        rows = [
            {"name": "Acme", "domain": "https://www.Acme.com/about"},
            {"name": "Acme again", "domain": "acme.com"},
            {"name": "Beta", "domain": "beta.io", "country": "de", "employeeRange": "51,200"},
            {"name": "Nowhere", "domain": "not a domain"},
            {"name": "Null", "domain": None},
        ]
        imported = client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=rows).json()
        project = client.get(f"/api/tam/projects/{project_id}", headers=AUTH).json()
        companies = client.get(f"/api/tam/projects/{project_id}/companies?limit=1", headers=AUTH).json()
        pending = client.get(f"/api/tam/projects/{project_id}/companies?status=pending", headers=AUTH).json()
        contacts = client.get(f"/api/tam/projects/{project_id}/contacts", headers=AUTH).json()

    assert imported["inserted"] == 2
    assert imported["skipped"] == 1
    assert [r["domain"] for r in imported["rejected"]] == ["not a domain", ""]
    assert project["countries"] == ["US"]
    assert project["maxContactsPerCompany"] == 2
    assert project["companies"] == {"pending": 2, "qualified": 0, "disqualified": 0, "error": 0, "total": 2}
    assert project["contacts"]["total"] == 0
    assert companies["total"] == 2
    assert len(companies["items"]) == 1
    assert companies["items"][0]["domain"] == "acme.com"
    assert companies["items"][0]["qualificationStatus"] == "pending"
    assert pending["total"] == 2
    assert contacts == {"items": [], "total": 0}


def test_lists_search_with_q_and_combine_it_with_status_and_paging() -> None:
    with make_client() as client:
        project_id = new_project(client)
        rows = [{"name": f"Company {i}", "domain": f"c{i}.example"} for i in range(30)]
        rows.append({"name": "Northwind", "domain": "northwind.com"})
        client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=rows)
        base = f"/api/tam/projects/{project_id}"
        north = client.get(f"{base}/companies", params={"q": "  NORTH "}, headers=AUTH).json()
        ones = client.get(f"{base}/companies", params={"q": "c1", "limit": 5, "offset": 5}, headers=AUTH).json()
        pending = client.get(f"{base}/companies", params={"q": "north", "status": "pending"}, headers=AUTH).json()
        none = client.get(f"{base}/companies", params={"q": "north", "status": "qualified"}, headers=AUTH).json()
        blank = client.get(f"{base}/companies", params={"q": ""}, headers=AUTH).json()
        contacts = client.get(f"{base}/contacts", params={"q": "anyone", "emailStatus": "verified"}, headers=AUTH)
        bad_status = client.get(f"{base}/contacts", params={"emailStatus": "maybe"}, headers=AUTH)
        too_long = client.get(f"{base}/companies", params={"q": "x" * 201}, headers=AUTH)
        nul = client.get(f"{base}/contacts", params={"q": "a\x00b"}, headers=AUTH)

    assert (north["total"], [c["name"] for c in north["items"]]) == (1, ["Northwind"])
    assert ones["total"] == 11 and len(ones["items"]) == 5  # c1, c10..c19
    assert pending["total"] == 1 and none["total"] == 0
    assert blank["total"] == 31
    assert contacts.json() == {"items": [], "total": 0}
    assert bad_status.status_code == 400 and "emailStatus" in bad_status.json()["error"]
    assert too_long.status_code == 400 and "q" in too_long.json()["error"]
    assert nul.status_code == 400 and "q" in nul.json()["error"]


def test_project_errors() -> None:
    with make_client() as client:
        missing = uuid4()
        assert client.get(f"/api/tam/projects/{missing}", headers=AUTH).status_code == 404
        assert client.get(f"/api/tam/projects/{missing}/companies", headers=AUTH).status_code == 404
        assert client.post(f"/api/tam/projects/{missing}/companies", headers=AUTH, json=[]).status_code == 404
        assert client.get("/api/tam/projects/not-a-uuid", headers=AUTH).status_code == 404
        bad = client.post("/api/tam/projects", headers=AUTH, json={"name": "x"})
        assert bad.status_code == 400
        assert "icp" in bad.json()["error"]
        project_id = new_project(client)
        limit = client.get(f"/api/tam/projects/{project_id}/companies?limit=0", headers=AUTH)
        assert limit.status_code == 400
        assert "limit" in limit.json()["error"]
        not_array = client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json={"name": "a"})
        assert not_array.status_code == 400


def test_create_job_runs_it_and_lists_it() -> None:
    settings = make_settings()
    with make_client(settings) as client:
        project_id = new_project(client)
        client.post(
            f"/api/tam/projects/{project_id}/companies",
            headers=AUTH,
            json=[{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(5)],
        )
        created = client.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"})
        assert created.status_code == 201
        job_id = created.json()["jobId"]
        client.portal.call(services(client).dispatcher.join)
        job = client.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json()
        listed = client.get(f"/api/tam/jobs?projectId={project_id}", headers=AUTH).json()
        everything = client.get("/api/tam/jobs", headers=AUTH).json()
        other = client.get(f"/api/tam/jobs?projectId={uuid4()}", headers=AUTH).json()

    assert job["status"] == "completed"
    assert job["taskId"] == created.json()["taskId"]
    assert job["attempts"] == 1
    assert [j["id"] for j in listed["items"]] == [job_id]
    assert everything["total"] == 1
    assert other == {"items": [], "total": 0}


def test_create_job_errors() -> None:
    with make_client(recorder=RecordingDispatcher()) as client:
        project_id = new_project(client)
        assert (
            client.post(
                "/api/tam/jobs", headers=AUTH, json={"projectId": str(uuid4()), "jobType": "qualify"}
            ).status_code
            == 404
        )
        assert (
            client.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "x"}).status_code
            == 422
        )
        assert client.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id}).status_code == 400
        assert client.get(f"/api/tam/jobs/{uuid4()}", headers=AUTH).status_code == 404
        assert client.post(f"/api/tam/jobs/{uuid4()}/cancel", headers=AUTH).status_code == 404


def test_cancel_a_queued_job_so_it_never_starts() -> None:
    recorder = RecordingDispatcher()
    settings = make_settings()
    with make_client(settings, recorder) as client:
        project_id = new_project(client)
        job_id = client.post(
            "/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"}
        ).json()["jobId"]
        cancelled = client.post(f"/api/tam/jobs/{job_id}/cancel", headers=AUTH).json()
        again = client.post(f"/api/tam/jobs/{job_id}/cancel", headers=AUTH).json()
        # the worker picks the message up later: the job is already final, so nothing runs
        attempt = services(client).attempt
        after = client.portal.call(attempt, recorder.dispatched[0].id, None).job
        rerun = client.post(
            "/api/tam/run", headers=AUTH, json={"jobId": job_id, "jobType": "qualify", "projectId": project_id}
        )

    assert cancelled["status"] == "cancelled"
    assert again["status"] == "cancelled"
    assert after.status.value == "cancelled"
    assert after.attempts == 0
    assert rerun.status_code == 409


def test_cancel_over_http_stops_a_running_job_and_keeps_finished_items() -> None:
    """The route's side of cancel; how fast a job stops is proven on virtual time (tests/unit) and in a
    worker process (tests/e2e)."""
    settings = make_settings(tam_sandbox_latency=0.2, tam_qualify_concurrency=2)
    with make_client(settings) as client:
        project_id = new_project(client)
        client.post(
            f"/api/tam/projects/{project_id}/companies",
            headers=AUTH,
            json=[{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(200)],
        )
        job_id = client.post(
            "/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"}
        ).json()["jobId"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json()["itemsDone"] == 0:
            assert time.monotonic() < deadline, "the job never finished an item"
            time.sleep(0.05)
        cancelled = client.post(f"/api/tam/jobs/{job_id}/cancel", headers=AUTH).json()
        client.portal.call(services(client).dispatcher.join)
        job = client.get(f"/api/tam/jobs/{job_id}", headers=AUTH).json()
        counts = client.get(f"/api/tam/projects/{project_id}", headers=AUTH).json()["companies"]

    assert cancelled["status"] == "cancelled"
    assert job["status"] == "cancelled"
    assert 0 < counts["qualified"] + counts["disqualified"] + counts["error"] < 200
    assert counts["pending"] > 0
