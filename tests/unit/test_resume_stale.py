"""StaleJobSweep: only running jobs whose heartbeat stopped are enqueued again, each under a new task id,
and only once however many sweepers run at the same time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from tam.adapters.memory import MemoryDatabase, MemoryJobRepo, MemoryProjectRepo, SystemClock
from tam.domain.model import Job, JobStatus, JobType
from tam.domain.services.dispatch import DispatchJob, StaleJobSweep


class WatchClock(SystemClock):
    watched = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.watched


class Recorder:
    def __init__(self) -> None:
        self.dispatched: list[Job] = []

    async def dispatch(self, job: Job) -> str:
        self.dispatched.append(job)
        return job.task_id or ""

    async def ping(self) -> None:
        return None


async def test_only_running_jobs_with_an_old_heartbeat_and_a_task_are_resumed_once() -> None:
    db = MemoryDatabase()
    jobs = MemoryJobRepo(db)
    now = datetime.now(UTC)
    old, fresh = now - timedelta(seconds=120), now - timedelta(seconds=5)

    def job(status: JobStatus, beat: datetime | None, task: str | None = "t", attempts: int = 1) -> Job:
        return Job(
            project_id=uuid4(),
            job_type=JobType.QUALIFY,
            status=status,
            task_id=task,
            heartbeat_at=beat,
            attempts=attempts,
            created_at=old,
        )

    stale = await jobs.add(job(JobStatus.RUNNING, old))
    for other in (
        job(JobStatus.RUNNING, fresh),  # its process is alive
        job(JobStatus.RUNNING, old, task=None),  # never triggered
        job(JobStatus.PENDING, None),
        job(JobStatus.COMPLETED, old),
        job(JobStatus.CANCELLED, old),
    ):
        await jobs.add(other)
    for job_id, row in db.jobs.items():  # nothing written since the heartbeat stopped
        db.jobs[job_id] = row.with_(updated_at=row.heartbeat_at or old)
    recorder = Recorder()
    clock = WatchClock()
    dispatch = DispatchJob(jobs, MemoryProjectRepo(db), recorder, clock, heartbeat_timeout=60)
    sweepers = [StaleJobSweep(jobs, dispatch, clock, 60) for _ in range(3)]
    # a sweeper judges only after watching for a heartbeat timeout (the holders of jobs may have been
    # cut off by an outage that has just ended)
    assert [await sweep() for sweep in sweepers] == [[], [], []]
    clock.watched += 61
    sweeps = await asyncio.gather(*(sweep() for sweep in sweepers))
    assert sorted(j.id for sweep in sweeps for j in sweep) == [stale.id]
    assert [j.id for j in recorder.dispatched] == [stale.id]
    requeued = await jobs.get(stale.id)
    assert requeued.task_id not in (None, "t")  # a new message; the old one, if it ever comes, is ignored
    assert recorder.dispatched[0].task_id == requeued.task_id
