"""A qualify job through the API against the fake Anthropic: the job's usage counts cache reads and writes,
refusals and answers cut at max_tokens, and the job output shows the cache hit ratio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tam_fakes import FakeServer
from tests.api.helpers import AUTH, make_client, make_settings, new_project, services
from tests.contract.provider_fakes import KEY as VENDOR_KEY
from tests.contract.provider_fakes import fake


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeServer]:
    with fake("anthropic") as running:
        yield running


def test_job_output_shows_usage_failures_and_cache_hit_ratio(anthropic: FakeServer) -> None:
    anthropic.state.reset()
    anthropic.state.latency = 0.02  # ten calls in flight overlap, as they do against the API
    anthropic.state.inject("refusal")
    anthropic.state.inject("max_tokens", times=2)
    settings = make_settings(tam_providers="live", anthropic_api_key=VENDOR_KEY, anthropic_base_url=anthropic.url)
    with make_client(settings) as client:
        project_id = new_project(client, icp="B2B SaaS for logistics companies in Europe, 50-500 employees")
        companies = [{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(150)]
        client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=companies)
        created = client.post("/api/tam/jobs", headers=AUTH, json={"projectId": project_id, "jobType": "qualify"})
        client.portal.call(services(client).dispatcher.join)
        job = client.get(f"/api/tam/jobs/{created.json()['jobId']}", headers=AUTH).json()
        stored = client.get(f"/api/tam/projects/{project_id}/companies?limit=100", headers=AUTH).json()

    assert job["status"] == "completed", job
    assert (job["itemsDone"], job["itemsFailed"]) == (148, 2)
    usage = job["usage"]
    assert usage["claude_refusals"] == 1
    assert usage["claude_max_tokens_stops"] == 2
    # 151 paid calls (150 companies, plus the retry with more room), every one counted.
    assert len(anthropic.state.calls("/v1/messages")) == 151
    read, write, plain = (
        usage["claude_cache_read_tokens"],
        usage["claude_cache_write_tokens"],
        usage["claude_input_tokens"],
    )
    assert job["cacheHitRatio"] == round(read / (read + write + plain), 4)
    assert job["cacheHitRatio"] >= 0.85  # the target for a 150-company job
    errors = [c["qualificationReason"] for c in stored["items"] if c["qualificationStatus"] == "error"]
    assert len(errors) == 2
    assert any("refused to answer" in e for e in errors) and any("max_tokens" in e for e in errors)
