"""Workers that die: SIGKILL mid-qualify and a fresh worker resumes it; a job that kills every worker
that runs it stops after 3 deliveries; SIGTERM shuts a worker down without losing anything. API ->
Redis -> `tam worker` processes -> PostgreSQL."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tam_fakes import FakeServer
from tam_fakes.anthropic import expected_qualified
from tests.e2e.conftest import TIMED, VENDOR_KEY, JobRow, Pg, create_job, live_env, new_project, report, wait_for

pytestmark = [pytest.mark.slow, TIMED]

_DOMAIN = re.compile(r"^Domain:\s*(\S+)", re.MULTILINE)


def asked_domain(body: Any) -> str:
    content = body["messages"][-1]["content"]
    text = content if isinstance(content, str) else "\n".join(b.get("text", "") for b in content)
    match = _DOMAIN.search(text)
    assert match, text
    return match.group(1)


def decided(pg: Pg, project_id: str) -> dict[str, Any]:
    """domain -> qualified_at of every company no longer pending."""
    return {d: r["qualified_at"] for d, r in pg.companies(project_id).items() if r["qualification_status"] != "pending"}


def assert_monotone(samples: list[JobRow]) -> None:
    for before, after in itertools.pairwise(samples):
        assert after.progress >= before.progress, (before, after)
        assert after.items_done >= before.items_done, (before, after)


def sample_until(pg: Pg, job_id: str, samples: list[JobRow], done: Callable[[JobRow], bool], timeout: float) -> JobRow:
    def probe() -> JobRow | None:
        row = pg.job(job_id)
        samples.append(row)
        return row if done(row) else None

    return wait_for(probe, timeout, step=0.05, what="job state")


def test_sigkill_mid_qualify_resumes_on_a_new_worker(
    pg_env: dict[str, str],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    with FakeServer("anthropic", api_key=VENDOR_KEY, latency=0.25) as claude:
        others = dict.fromkeys(("prospeo", "brightdata", "discolike"), claude)  # not called by qualify
        env = {**pg_env, **live_env({"anthropic": claude, **others}), "TAM_QUALIFY_CONCURRENCY": "4"}
        api = make_api(env)
        first = workers(env)
        domains = [f"kill{i}.example" for i in range(120)]  # 120 at 0.25 s, 4 at a time: ~7.5 s
        project_id = new_project(api, domains)
        job_id = create_job(api, project_id, "qualify")
        samples: list[JobRow] = []
        sample_until(pg, job_id, samples, lambda row: row.items_done >= 20, 30)

        killed_at = first.kill()
        log_at_kill = len(claude.state.requests)
        before = decided(pg, project_id)
        at_kill = pg.job(job_id)
        assert at_kill.status == "running" and at_kill.attempts == 1
        assert 20 <= len(before) < 120

        workers(env, ready=False)
        resumed = sample_until(
            pg,
            job_id,
            samples,
            lambda row: row.heartbeat_at != at_kill.heartbeat_at or row.items_done > at_kill.items_done,
            60,
        )
        done = sample_until(pg, job_id, samples, lambda row: row.status != "running", 60)
        finished_at = time.monotonic()
        requests = list(claude.state.requests)

    report(
        f"SIGKILL -> resumed progress (heartbeat/attempt on the new worker): {resumed.t - killed_at:.1f} s; "
        f"SIGKILL -> completed: {finished_at - killed_at:.1f} s "
        f"(heartbeat timeout {env['TAM_WORKER_HEARTBEAT_TIMEOUT']} s, worker boot included)"
    )
    assert done.status == "completed", done
    assert done.t - killed_at < 60
    assert done.progress == 100 and done.attempts == 2
    assert done.items_done + done.items_failed == 120
    assert_monotone(samples)

    # every company decided exactly once: the ones decided before the kill kept their decision time
    after = pg.companies(project_id)
    assert set(after) == set(domains)
    for domain, row in after.items():
        want = "qualified" if expected_qualified(domain) else "disqualified"
        assert row["qualification_status"] == want, domain
        if domain in before:
            assert row["qualified_at"] == before[domain], f"{domain} was decided again"
    # and the fake was never asked again about a company decided before the kill
    asked_before = [asked_domain(r.body) for r in requests[:log_at_kill]]
    asked_after = [asked_domain(r.body) for r in requests[log_at_kill:]]
    assert not set(asked_after) & set(before)
    assert len(asked_after) == len(set(asked_after))
    # only companies asked but not stored at the kill were asked twice: the calls in flight (each
    # verdict is written as soon as the write before it ends, so none waits in a buffer for long)
    twice = set(asked_before) & set(asked_after)
    assert twice <= set(asked_before) - set(before)
    assert len(twice) <= 4
    assert set(asked_before) | set(asked_after) == set(domains)


def test_a_job_that_kills_every_worker_stops_after_three_deliveries(
    pg_env: dict[str, str],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    # a short heartbeat timeout so that each redelivery comes after ~3 s rather than 15
    env = {**pg_env, "TAM_WORKER_HEARTBEAT_TIMEOUT": "3", "TAM_SANDBOX_LATENCY": "0.3", "TAM_QUALIFY_CONCURRENCY": "2"}
    api = make_api(env)
    project_id = new_project(api, [f"poison{i}.example" for i in range(60)])
    job_id = create_job(api, project_id, "qualify")
    started = time.monotonic()
    for delivery in (1, 2, 3):
        worker = workers(env, ready=False)
        # the job kills its worker as soon as that worker starts on it
        wait_for(lambda n=delivery: pg.job(job_id).attempts >= n, 30, what=f"delivery {delivery}")
        worker.kill()
    assert pg.job(job_id).status == "running"

    workers(env, ready=False)
    done = wait_for(lambda: (row := pg.job(job_id)).status != "running" and row, 30, what="poison job stopped")
    report(f"poison job: 3 deliveries killed, failed {time.monotonic() - started:.1f} s after it was created")
    assert done.status == "failed"
    assert done.attempts == 3  # the fourth delivery did not start it
    assert done.error and "3 deliveries" in done.error and "poison" in done.error
    time.sleep(1)
    assert pg.job(job_id).status == "failed"


def test_sigterm_stops_cleanly_and_the_job_resumes_on_the_next_worker(
    pg_env: dict[str, str],
    workers: Callable[..., Any],
    make_api: Callable[[dict[str, str]], TestClient],
    pg: Pg,
) -> None:
    env = {**pg_env, "TAM_SANDBOX_LATENCY": "0.3", "TAM_QUALIFY_CONCURRENCY": "2"}
    api = make_api(env)
    first = workers(env)
    domains = [f"term{i}.example" for i in range(60)]  # ~9 s of work
    project_id = new_project(api, domains)
    job_id = create_job(api, project_id, "qualify")
    samples: list[JobRow] = []
    sample_until(pg, job_id, samples, lambda row: row.items_done >= 6, 30)

    asked = time.monotonic()
    first.stop()  # SIGTERM to the dramatiq master
    shutdown = time.monotonic() - asked
    assert first.proc.returncode == 0, first.log.read_text()[-2000:]
    at_stop = pg.job(job_id)
    before = decided(pg, project_id)
    assert at_stop.status == "running" and at_stop.attempts == 1  # not failed, not lost: left to resume
    assert len(before) < 60
    time.sleep(0.5)
    assert decided(pg, project_id) == before, "the stopped worker went on writing"

    workers(env, ready=False)
    done = sample_until(pg, job_id, samples, lambda row: row.status != "running", 90)
    report(f"SIGTERM: worker exited {shutdown:.1f} s after the signal; the job resumed on the next worker")
    assert shutdown < 10
    assert done.status == "completed", done
    assert done.attempts == 2 and done.progress == 100
    assert done.items_done + done.items_failed == 60
    assert_monotone(samples)
    after = pg.companies(project_id)
    assert set(after) == set(domains)
    assert all(row["qualification_status"] != "pending" for row in after.values())
    for domain, at in before.items():
        assert after[domain]["qualified_at"] == at, f"{domain} was decided again"
