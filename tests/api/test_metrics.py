"""/metrics after a job: jobs and items from the store, provider calls from the run, in Prometheus's
text format; and a scrape needs the key like every other route."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import AUTH, make_client, make_settings, new_project, services


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_jobs_items_and_provider_calls() -> None:
    # Every call to the simulated Claude fails transiently one time in three (429, 503 or a timeout)
    # and is retried, so throttles and retries show up beside the successes.
    settings = make_settings(tam_sandbox_fault_rate=0.35, tam_sandbox_seed=3)
    with make_client(settings) as client:
        assert client.get("/metrics").status_code == 401
        project_id = new_project(client)
        companies = [{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(12)]
        client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=companies)
        created = client.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"})
        client.portal.call(services(client).dispatcher.join)
        job = client.get(f"/api/tam/jobs/{created.json()['jobId']}", headers=AUTH).json()
        response = client.get("/metrics", headers=AUTH)

    assert job["status"] == "completed", job
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    def total(name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)

    assert value("tam_jobs", job_type="qualify", status="completed") == 1
    assert value("tam_jobs", job_type="findContacts", status="running") == 0
    assert value("tam_job_items_done", job_type="qualify") == 12
    assert value("tam_job_items_failed", job_type="qualify") == job["itemsFailed"]
    assert value("tam_job_usage", job_type="qualify", unit="claude_input_tokens") > 0
    assert job["costUsd"] > 0
    assert value("tam_cost_usd_total", job_type="qualify") == pytest.approx(job["costUsd"], rel=1e-3)

    assert value("tam_provider_call_seconds_count", provider="claude", outcome="ok") == 12
    assert value("tam_provider_call_seconds_sum", provider="claude", outcome="ok") >= 0
    assert value("tam_provider_call_seconds_bucket", provider="claude", outcome="ok", le="+Inf") == 12
    failures = total("tam_provider_call_seconds_count", provider="claude") - 12
    assert failures > 0
    assert value("tam_provider_retries_total", provider="claude") == failures  # every failure was retried
    throttled = value("tam_provider_call_seconds_count", provider="claude", outcome="throttled")
    assert value("tam_provider_throttled_total", provider="claude") == throttled > 0
    assert value("tam_provider_calls_in_flight", provider="claude") == 0
