"""Time limits and cancel in a `tam worker` process over PostgreSQL: a first attempt that runs out of
time leaves the job for the second, which resumes it, and the last one fails it with the limit in the
message; a running job cancelled stops within 5 s; a queued job cancelled never starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.e2e.conftest import AUTH, TIMED, JobRow, Pg, create_job, new_project, wait_for
from tests.e2e.test_crash_e2e import assert_monotone, decided, sample_until

pytestmark = [pytest.mark.slow, TIMED]


def test_time_limit_second_attempt_resumes_then_the_job_fails(
    pg_env: dict[str, str],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    env = {
        **pg_env,
        "TAM_SANDBOX_LATENCY": "0.3",
        "TAM_QUALIFY_CONCURRENCY": "2",
        "TAM_QUALIFY_TIME_LIMIT": "2",
    }
    api = make_api(env)
    workers(env)
    project_id = new_project(api, [f"slow{i}.example" for i in range(100)])  # ~15 s of work
    job_id = create_job(api, project_id, "qualify")
    samples: list[JobRow] = []
    first = sample_until(pg, job_id, samples, lambda row: row.attempts >= 1, 20)
    second = sample_until(pg, job_id, samples, lambda row: row.attempts >= 2, 20)
    after_first = decided(pg, project_id)
    done = sample_until(pg, job_id, samples, lambda row: row.status != "running", 20)

    assert second.status == "running"  # the first attempt's time limit left it for the second
    assert 0 < len(after_first) < 100
    assert done.status == "failed", done
    assert done.error and done.error.startswith("time limit of 2 s exceeded"), done.error
    assert done.attempts == 2
    assert second.t - first.t >= 2
    assert_monotone(samples)
    final = decided(pg, project_id)
    assert len(after_first) < len(final) < 100  # the second attempt went on where the first stopped
    for domain, at in after_first.items():
        assert final[domain] == at, f"{domain} was decided again"
    assert done.items_done + done.items_failed == len(final)


def test_cancel_running_within_5_s_and_a_cancelled_queued_job_never_starts(
    pg_env: dict[str, str],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    env = {**pg_env, "TAM_SANDBOX_LATENCY": "0.3", "TAM_QUALIFY_CONCURRENCY": "2"}
    api = make_api(env)
    workers(env, threads=1)  # one job at a time: the second waits in the queue
    running_project = new_project(api, [f"run{i}.example" for i in range(200)])
    queued_project = new_project(api, [f"queued{i}.example" for i in range(20)])
    running = create_job(api, running_project, "qualify")
    queued = create_job(api, queued_project, "qualify")
    wait_for(lambda: pg.job(running).items_done > 2, 30)
    assert pg.job(queued).status == "pending"

    assert api.post(f"/api/tam/jobs/{queued}/cancel", headers=AUTH).json()["status"] == "cancelled"
    asked = time.monotonic()
    assert api.post(f"/api/tam/jobs/{running}/cancel", headers=AUTH).json()["status"] == "cancelled"

    # the running job stops writing within 5 s; what it finished stays
    def settled() -> bool:
        a = decided(pg, running_project)
        time.sleep(1.2)  # longer than one item and than the worker's cancel check
        return a == decided(pg, running_project)

    wait_for(settled, 5, step=0)
    stopped = time.monotonic() - asked
    assert stopped < 5, stopped
    kept = decided(pg, running_project)
    assert 0 < len(kept) < 200
    assert pg.job(running).status == "cancelled"

    # the worker then takes the queued job's message and drops it: a job after it runs, it never does
    after = create_job(api, new_project(api, ["after.example"]), "qualify")
    wait_for(lambda: pg.job(after).status == "completed", 20)
    never = pg.job(queued)
    assert never.status == "cancelled" and never.attempts == 0 and never.started_at is None
    assert decided(pg, queued_project) == {}
    assert decided(pg, running_project) == kept
