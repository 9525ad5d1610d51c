"""JobRepo contract, run against every storage adapter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from tam.domain.model import Job, JobStatus, JobType, NotFound, Progress, Project, Usage
from tests.contract.conftest import Stores

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def a_job(store: Stores, job_type: JobType = JobType.QUALIFY, project_id: UUID | None = None) -> Job:
    if project_id is None:
        project_id = (await store.projects.add(Project(name="p", icp="icp"))).id
    return await store.jobs.add(Job(project_id=project_id, job_type=job_type))


async def test_a_new_job_has_the_defaults(store: Stores) -> None:
    job = await a_job(store, JobType.FIND_CONTACTS)
    got = await store.jobs.get(job.id)
    assert got == job
    assert (got.job_type, got.status, got.progress, got.attempts) == (JobType.FIND_CONTACTS, JobStatus.PENDING, 0, 0)
    assert (got.items_total, got.items_done, got.items_failed) == (0, 0, 0)
    assert (got.task_id, got.message, got.error, got.usage) == (None, None, None, Usage())
    assert got.created_at is not None and got.updated_at is not None
    assert (got.started_at, got.finished_at, got.heartbeat_at) == (None, None, None)


async def test_adding_the_same_job_twice_keeps_the_first(store: Stores) -> None:
    job = await a_job(store)
    again = await store.jobs.add(job.with_(status=JobStatus.FAILED))
    assert again == job


async def test_start_counts_attempts_and_keeps_the_first_start(store: Stores) -> None:
    job = await a_job(store)
    first = await store.jobs.start(job.id, at(1))
    assert (first.status, first.attempts, first.started_at, first.heartbeat_at) == (JobStatus.RUNNING, 1, at(1), at(1))
    second = await store.jobs.start(job.id, at(5))
    assert (second.attempts, second.started_at, second.heartbeat_at) == (2, at(1), at(5))


async def test_a_job_already_running_may_be_started(store: Stores) -> None:
    job = await store.jobs.add(
        Job(project_id=(await a_job(store)).project_id, job_type=JobType.QUALIFY, status=JobStatus.RUNNING)
    )
    started = await store.jobs.start(job.id, at(1))
    assert (started.status, started.attempts) == (JobStatus.RUNNING, 1)


async def test_progress_never_decreases(store: Stores) -> None:
    job = await a_job(store)
    await store.jobs.start(job.id, at(0))
    await store.jobs.save_progress(
        job.id, Progress(10, 5, 0, "Qualified 5 of 10 companies"), Usage.of(tokens=500), at(1)
    )
    await store.jobs.save_progress(
        job.id, Progress(20, 6, 0, "Qualified 6 of 20 companies"), Usage.of(tokens=600), at(2)
    )
    got = await store.jobs.get(job.id)
    assert got.progress == 50
    assert (got.items_total, got.items_done, got.items_failed, got.message) == (20, 6, 0, "Qualified 6 of 20 companies")
    assert (got.usage, got.heartbeat_at) == (Usage.of(tokens=600), at(2))
    await store.jobs.save_progress(
        job.id, Progress(20, 19, 1, "Qualified 20 of 20 companies, 1 failed"), Usage(), at(3)
    )
    assert (await store.jobs.get(job.id)).progress == 100


async def test_completing_sets_100_and_a_finished_job_stays_finished(store: Stores) -> None:
    job = await a_job(store)
    await store.jobs.start(job.id, at(0))
    done = await store.jobs.finish(job.id, JobStatus.COMPLETED, "Qualified 3 of 3 companies", None, at(9))
    assert (done.status, done.progress, done.message, done.finished_at) == (
        JobStatus.COMPLETED,
        100,
        "Qualified 3 of 3 companies",
        at(9),
    )
    assert await store.jobs.finish(job.id, JobStatus.FAILED, None, "late", at(10)) == done
    assert await store.jobs.cancel(job.id, at(11)) == done
    assert await store.jobs.start(job.id, at(12)) is None
    assert await store.jobs.get(job.id) == done


async def test_failing_keeps_progress_and_message_and_records_the_error(store: Stores) -> None:
    job = await a_job(store)
    await store.jobs.start(job.id, at(0))
    await store.jobs.save_progress(job.id, Progress(4, 1, 0, "Qualified 1 of 4"), Usage(), at(1))
    failed = await store.jobs.finish(job.id, JobStatus.FAILED, None, "ANTHROPIC_API_KEY was refused", at(2))
    assert (failed.status, failed.progress, failed.message, failed.error) == (
        JobStatus.FAILED,
        25,
        "Qualified 1 of 4",
        "ANTHROPIC_API_KEY was refused",
    )


async def test_cancel_stops_a_pending_or_running_job(store: Stores) -> None:
    pending = await a_job(store)
    cancelled = await store.jobs.cancel(pending.id, at(3))
    assert (cancelled.status, cancelled.finished_at) == (JobStatus.CANCELLED, at(3))
    running = await a_job(store, project_id=pending.project_id)
    await store.jobs.start(running.id, at(0))
    assert (await store.jobs.cancel(running.id, at(4))).status is JobStatus.CANCELLED


async def test_the_first_task_id_wins_even_when_claims_race(store: Stores) -> None:
    job = await a_job(store)
    claims = await asyncio.gather(*(store.jobs.claim_task(job.id, f"task-{i}") for i in range(8)))
    assert len(set(claims)) == 1
    assert (await store.jobs.get(job.id)).task_id == claims[0]
    assert await store.jobs.claim_task(job.id, "another") == claims[0]


async def test_list_is_newest_first_and_filters_by_project(store: Stores) -> None:
    first = await a_job(store)
    second = await a_job(store, JobType.CHECK_LINKEDIN, project_id=first.project_id)
    other = await a_job(store)
    assert [j.id for j in await store.jobs.list(first.project_id)] == [second.id, first.id]
    everything = {j.id for j in await store.jobs.list()}
    assert {first.id, second.id, other.id} <= everything


@pytest.mark.parametrize(
    "operation",
    ["get", "start", "save_progress", "finish", "claim_task", "cancel"],
)
async def test_a_missing_job_is_not_found(store: Stores, operation: str) -> None:
    missing = uuid4()
    calls = {
        "get": lambda: store.jobs.get(missing),
        "start": lambda: store.jobs.start(missing, T0),
        "save_progress": lambda: store.jobs.save_progress(missing, Progress(1, 0, 0, "x"), Usage(), T0),
        "finish": lambda: store.jobs.finish(missing, JobStatus.COMPLETED, None, None, T0),
        "claim_task": lambda: store.jobs.claim_task(missing, "t"),
        "cancel": lambda: store.jobs.cancel(missing, T0),
    }
    with pytest.raises(NotFound, match=str(missing)):
        await calls[operation]()
