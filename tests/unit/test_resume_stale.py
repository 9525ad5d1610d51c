"""StaleJobSweep: only running jobs whose heartbeat stopped are enqueued again, each under a new task id,
and only once however many sweepers run at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
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
    """A broker that holds the messages of `queued` (waiting in the queue or being run); every other
    message is gone."""

    def __init__(self, queued: Collection[str] = ()) -> None:
        self.dispatched: list[Job] = []
        self.queued = set(queued)
        self.asked: list[set[str]] = []

    async def holds(self, task_ids: Collection[str]) -> set[str]:
        self.asked.append(set(task_ids))
        return self.queued & set(task_ids)

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


async def test_a_dispatched_job_that_never_started_goes_again_only_if_its_message_is_gone() -> None:
    """Pending (or running, as the frontend inserts rows) with a task for a heartbeat timeout, never
    started: a job still waiting in the queue keeps its place; one whose message was lost (acknowledged
    without running, say) is enqueued again: a pending job under its own task id, so a message that
    turns up after all runs the same task."""
    db = MemoryDatabase()
    jobs = MemoryJobRepo(db)
    now = datetime.now(UTC)
    old = now - timedelta(seconds=120)

    def job(status: JobStatus, task: str) -> Job:
        return Job(project_id=uuid4(), job_type=JobType.QUALIFY, status=status, task_id=task, created_at=old)

    lost_pending = await jobs.add(job(JobStatus.PENDING, "lost-p"))
    queued_pending = await jobs.add(job(JobStatus.PENDING, "queued-p"))
    lost_running = await jobs.add(job(JobStatus.RUNNING, "lost-r"))
    queued_running = await jobs.add(job(JobStatus.RUNNING, "queued-r"))
    just_dispatched = await jobs.add(job(JobStatus.PENDING, "new-p"))
    for job_id, row in db.jobs.items():
        db.jobs[job_id] = row.with_(updated_at=now if job_id == just_dispatched.id else old)
    broker = Recorder(queued={"queued-p", "queued-r"})
    clock = WatchClock()
    dispatch = DispatchJob(jobs, MemoryProjectRepo(db), broker, clock, heartbeat_timeout=60)
    sweep = StaleJobSweep(jobs, dispatch, clock, 60)
    assert await sweep() == []  # watching first
    clock.watched += 61

    resumed = await sweep()
    assert sorted(j.id for j in resumed) == sorted([lost_pending.id, lost_running.id])
    # one question to the broker, about the jobs dispatched a while ago only
    assert broker.asked == [{"lost-p", "queued-p", "lost-r", "queued-r"}]
    sent = {j.id: j.task_id for j in broker.dispatched}
    assert sent[lost_pending.id] == "lost-p"  # the same task: no write, the lost one cannot come back twice
    assert (await jobs.get(lost_pending.id)).status is JobStatus.PENDING
    assert sent[lost_running.id] not in (None, "lost-r")  # running: the atomic swap to a new task
    assert (await jobs.get(lost_running.id)).task_id == sent[lost_running.id]
    for kept in (queued_pending, queued_running, just_dispatched):
        assert (await jobs.get(kept.id)).task_id == kept.task_id and kept.id not in sent

    # once enqueued again, the broker holds them: the next sweep sends nothing more
    broker.queued |= {t for t in sent.values() if t}
    assert await sweep() == []
