"""EstimateJob over the memory store and sandbox providers: per-item figures learned from earlier
jobs, the qualify mode, credits for the other steps, and API/CLI answers."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tam.domain.model import Job, JobStatus, JobType, Usage
from tam.domain.services.estimate import EstimateSettings, as_batch, per_item, qualify_mode
from tests.api.helpers import AUTH, make_client, make_settings, new_project, services


def test_per_item_learns_from_the_newest_jobs_of_that_type_only() -> None:
    project_id = uuid4()
    jobs = [
        Job(project_id, JobType.QUALIFY, items_done=9, items_failed=1, usage=Usage.of(claude_output_tokens=500)),
        Job(project_id, JobType.FIND_CONTACTS, items_done=5, usage=Usage.of(prospeo_credits=50)),
        Job(project_id, JobType.QUALIFY, usage=Usage.of(claude_output_tokens=10_000)),  # no item finished
    ]
    assert per_item(jobs, JobType.QUALIFY, ("claude_output_tokens",)) == 50
    assert per_item(jobs, JobType.FIND_CONTACTS, ("prospeo_credits",)) == 10
    assert per_item(jobs, JobType.CHECK_LINKEDIN, ("brightdata_records",)) is None


def test_qualify_mode_follows_the_setting_and_the_batch_minimum() -> None:
    auto = EstimateSettings(qualify_mode="auto", batch_min=100, batch_available=True)
    assert qualify_mode(auto, 99) == "online"
    assert qualify_mode(auto, 100) == "batch"
    assert qualify_mode(EstimateSettings(qualify_mode="online", batch_available=True), 10**6) == "online"
    assert qualify_mode(EstimateSettings(qualify_mode="batch", batch_available=True), 1) == "batch"
    assert qualify_mode(EstimateSettings(qualify_mode="batch", batch_available=False), 1) == "online"
    assert as_batch(Usage.of(claude_input_tokens=3, prospeo_credits=1)).counts == {
        "claude_batch_input_tokens": 3,
        "prospeo_credits": 1,
    }


def test_estimate_route_answers_without_running_and_matches_the_sandbox_run() -> None:
    settings = make_settings(tam_qualify_mode="online")
    with make_client(settings) as client:
        project_id = new_project(client)
        companies = [{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(40)]
        client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=companies)
        body = {"projectId": project_id, "jobType": "qualify"}
        response = client.post("/api/tam/jobs/estimate", headers=AUTH, json=body)
        assert response.status_code == 200, response.text
        estimate = response.json()
        assert set(estimate) == {"items", "calls", "inputTokens", "outputTokens", "credits", "costUsd", "mode"}
        assert (estimate["items"], estimate["calls"], estimate["mode"]) == (40, 40, "online")
        assert client.get("/api/tam/jobs", headers=AUTH).json()["total"] == 0  # nothing stored

        created = client.post("/api/tam/jobs", headers=AUTH, json=body).json()
        client.portal.call(services(client).dispatcher.join)
        job = client.get(f"/api/tam/jobs/{created['jobId']}", headers=AUTH).json()
        assert job["status"] == JobStatus.COMPLETED
        assert estimate["costUsd"] == pytest.approx(job["costUsd"], rel=0.2)

        after = client.post("/api/tam/jobs/estimate", headers=AUTH, json=body).json()
        assert (after["items"], after["costUsd"]) == (0, 0)

        contacts = client.post(
            "/api/tam/jobs/estimate", headers=AUTH, json={"projectId": project_id, "jobType": "find_contacts"}
        ).json()
        qualified = client.get(f"/api/tam/projects/{project_id}", headers=AUTH).json()
        assert contacts["items"] == qualified["companies"]["qualified"]
        assert contacts["credits"] == contacts["items"] * (1 + 3)  # no history: at most a search and 3 emails
        assert contacts["costUsd"] == 0  # Prospeo credits have no price unless TAM_PRICES sets one


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"projectId": "00000000-0000-0000-0000-000000000000", "jobType": "qualify"}, 404),
        ({"jobType": "qualify"}, 400),
        ({"projectId": "00000000-0000-0000-0000-000000000000", "jobType": "dance"}, 422),
    ],
)
def test_estimate_route_errors(body: dict[str, str], status: int) -> None:
    with make_client() as client:
        response = client.post("/api/tam/jobs/estimate", headers=AUTH, json=body)
        assert response.status_code == status, response.text
        assert "error" in response.json()
