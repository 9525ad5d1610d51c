"""JobRepo contract, run against every storage adapter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from tam.domain.model import (
    ActiveJobExists,
    ClaimOutcome,
    Conflict,
    Job,
    JobStatus,
    JobType,
    NotFound,
    Progress,
    Project,
    TaskClaim,
    Usage,
)
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


LATER = datetime.now(UTC) + timedelta(hours=1)  # a stale_before past every write: any lease has expired


async def claim(store: Stores, job: Job, task_id: str, *, stale_before: datetime = T0, **asked: object) -> TaskClaim:
    """`claim_dispatch` as `POST /api/tam/run` makes it, for the job's own project and type unless asked."""
    project_id = asked.get("project_id", job.project_id)
    job_type = asked.get("job_type", job.job_type)
    assert isinstance(project_id, UUID) and isinstance(job_type, JobType)
    return await store.jobs.claim_dispatch(job.id, project_id, job_type, task_id, at(2), stale_before)


async def test_dispatch_claims_a_task_once_then_keeps_it(store: Stores) -> None:
    job = await a_job(store)
    first = await claim(store, job, "task-1")
    assert (first.outcome, first.enqueue, first.job.task_id, first.job.status) == (
        ClaimOutcome.CLAIMED,
        True,
        "task-1",
        JobStatus.PENDING,
    )
    again = await claim(store, job, "task-2")
    assert (again.outcome, again.enqueue, again.job.task_id) == (ClaimOutcome.KEPT, False, "task-1")
    assert (await store.jobs.get(job.id)).task_id == "task-1"


async def test_the_first_task_id_wins_even_when_dispatches_race(store: Stores) -> None:
    job = await a_job(store)
    claims = await asyncio.gather(*(claim(store, job, f"task-{i}") for i in range(8)))
    assert [c.outcome for c in claims].count(ClaimOutcome.CLAIMED) == 1
    assert len({c.job.task_id for c in claims}) == 1
    assert (await store.jobs.get(job.id)).task_id == claims[0].job.task_id


async def test_dispatch_requeues_a_running_job_whose_attempt_is_gone(store: Stores) -> None:
    job = await a_job(store)
    await claim(store, job, "task-1")
    await store.jobs.start(job.id, at(1), task_id="task-1")
    live = await claim(store, job, "task-2")  # the heartbeat (at 1) is newer than stale_before (T0)
    assert (live.outcome, live.job.task_id) == (ClaimOutcome.KEPT, "task-1")
    gone = await claim(store, job, "task-3", stale_before=LATER)
    assert (gone.outcome, gone.enqueue, gone.previous_task_id) == (ClaimOutcome.REQUEUED, True, "task-1")
    assert (gone.job.task_id, gone.job.status, gone.job.attempts) == ("task-3", JobStatus.RUNNING, 1)
    assert (await store.jobs.get(job.id)).task_id == "task-3"


async def test_dispatch_cancels_a_second_job_of_the_type_while_one_is_dispatched(store: Stores) -> None:
    first = await a_job(store, JobType.FIND_CONTACTS)
    second = await a_job(store, JobType.FIND_CONTACTS, project_id=first.project_id)
    other_type = await a_job(store, JobType.QUALIFY, project_id=first.project_id)
    await claim(store, first, "task-1")
    refused = await claim(store, second, "task-2")
    assert (refused.outcome, refused.enqueue, refused.active and refused.active.id) == (
        ClaimOutcome.REFUSED,
        False,
        first.id,
    )
    cancelled = await store.jobs.get(second.id)
    assert cancelled == refused.job
    assert (cancelled.status, cancelled.task_id, cancelled.finished_at) == (JobStatus.CANCELLED, None, at(2))
    assert cancelled.message == f"job {first.id} of type findContacts is already pending for this project"
    error = refused.refusal(JobType.FIND_CONTACTS)
    assert isinstance(error, ActiveJobExists) and error.job_id == first.id
    assert (await claim(store, other_type, "task-3")).outcome is ClaimOutcome.CLAIMED  # another type is fine


@pytest.mark.parametrize("mismatch", ["other_project", "other_type", "finished"])
async def test_dispatch_refuses_a_request_that_does_not_match_and_changes_nothing(store: Stores, mismatch: str) -> None:
    job = await a_job(store)
    if mismatch == "finished":
        job = await store.jobs.finish(job.id, JobStatus.COMPLETED, "done", None, at(1))
    asked = {"other_project": {"project_id": uuid4()}, "other_type": {"job_type": JobType.FIND_CONTACTS}}
    got = await claim(store, job, "task-1", **asked.get(mismatch, {}))
    assert (got.outcome, got.enqueue, got.job) == (ClaimOutcome(mismatch), False, job)
    assert await store.jobs.get(job.id) == job
    messages = {
        "other_project": f"job {job.id} belongs to another project",
        "other_type": f"job {job.id} is a qualify job, not findContacts",
        "finished": f"job {job.id} is already completed",
    }
    error = got.refusal(JobType.FIND_CONTACTS if mismatch == "other_type" else JobType.QUALIFY)
    assert isinstance(error, Conflict) and str(error) == messages[mismatch]


async def test_list_is_newest_first_and_filters_by_project(store: Stores) -> None:
    first = await a_job(store)
    second = await a_job(store, JobType.CHECK_LINKEDIN, project_id=first.project_id)
    other = await a_job(store)
    assert [j.id for j in await store.jobs.list(first.project_id)] == [second.id, first.id]
    everything = {j.id for j in await store.jobs.list()}
    assert {first.id, second.id, other.id} <= everything


@pytest.mark.parametrize(
    "operation",
    ["get", "start", "save_progress", "finish", "claim_dispatch", "cancel"],
)
async def test_a_missing_job_is_not_found(store: Stores, operation: str) -> None:
    missing = uuid4()
    calls = {
        "get": lambda: store.jobs.get(missing),
        "start": lambda: store.jobs.start(missing, T0),
        "save_progress": lambda: store.jobs.save_progress(missing, Progress(1, 0, 0, "x"), Usage(), T0),
        "finish": lambda: store.jobs.finish(missing, JobStatus.COMPLETED, None, None, T0),
        "claim_dispatch": lambda: store.jobs.claim_dispatch(missing, uuid4(), JobType.QUALIFY, "t", T0, T0),
        "cancel": lambda: store.jobs.cancel(missing, T0),
    }
    with pytest.raises(NotFound, match=str(missing)):
        await calls[operation]()
