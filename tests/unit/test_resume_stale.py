"""ResumeStaleJobs: on an embedded start, only running jobs whose heartbeat stopped are dispatched again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from tam.adapters.memory import MemoryDatabase, MemoryJobRepo, SystemClock
from tam.domain.model import Job, JobStatus, JobType
from tam.domain.services.dispatch import ResumeStaleJobs


class Recorder:
    def __init__(self) -> None:
        self.dispatched: list[Job] = []

    async def dispatch(self, job: Job) -> str:
        self.dispatched.append(job)
        return job.task_id or ""

    async def ping(self) -> None:
        return None


async def test_only_running_jobs_with_an_old_heartbeat_and_a_task_are_resumed() -> None:
    jobs = MemoryJobRepo(MemoryDatabase())
    now = datetime.now(UTC)
    old, fresh = now - timedelta(seconds=120), now - timedelta(seconds=5)
    project = uuid4()

    def job(status: JobStatus, beat: datetime | None, task: str | None = "t") -> Job:
        return Job(project_id=project, job_type=JobType.QUALIFY, status=status, task_id=task, heartbeat_at=beat)

    stale = await jobs.add(job(JobStatus.RUNNING, old))
    for other in (
        job(JobStatus.RUNNING, fresh),  # its process is alive
        job(JobStatus.RUNNING, old, task=None),  # never triggered
        job(JobStatus.PENDING, None),
        job(JobStatus.COMPLETED, old),
        job(JobStatus.CANCELLED, old),
    ):
        await jobs.add(other)
    recorder = Recorder()
    resumed = await ResumeStaleJobs(jobs, recorder, SystemClock())()
    assert [j.id for j in resumed] == [stale.id]
    assert [j.id for j in recorder.dispatched] == [stale.id]
