"""Dispatch races that really race: a store that holds every caller between reading the job and
claiming its task, so concurrent `POST /api/tam/run`s interleave exactly where a missing claim guard
would enqueue twice. Run against every store."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from tam.adapters.memory import SystemClock
from tam.domain.model import ActiveJobExists, Job, JobStatus, JobType, Project
from tam.domain.services.dispatch import DispatchJob
from tests.contract.conftest import Stores


class PausingJobs:
    """Every `get` waits until `callers` of them have read the row: all readers see it unclaimed."""

    def __init__(self, inner: Any, callers: int) -> None:
        self._inner = inner
        self._barrier = asyncio.Barrier(callers)

    async def get(self, job_id: UUID) -> Job:
        job = await self._inner.get(job_id)
        await self._barrier.wait()
        return job  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Recorder:
    def __init__(self) -> None:
        self.dispatched: list[Job] = []

    async def dispatch(self, job: Job) -> str:
        self.dispatched.append(job)
        return job.task_id or ""


async def test_concurrent_runs_of_one_job_enqueue_it_once(store: Stores) -> None:
    project = await store.projects.add(Project(name="p", icp="icp"))
    job = await store.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY, status=JobStatus.RUNNING))
    recorder = Recorder()
    dispatch = DispatchJob(PausingJobs(store.jobs, 8), store.projects, recorder, SystemClock())
    task_ids = await asyncio.gather(*(dispatch.trigger(job.id, JobType.QUALIFY, project.id) for _ in range(8)))
    assert len(set(task_ids)) == 1
    assert [j.task_id for j in recorder.dispatched] == task_ids[:1]


async def test_two_rows_of_one_type_dispatched_together_run_one_and_cancel_the_other(store: Stores) -> None:
    project = await store.projects.add(Project(name="p", icp="icp"))
    rows = [  # made by the frontend, one of them with the other spelling of the type
        await store.jobs.add(Job(project_id=project.id, job_type=JobType.FIND_CONTACTS, status=JobStatus.RUNNING))
        for _ in range(2)
    ]
    recorder = Recorder()
    dispatch = DispatchJob(PausingJobs(store.jobs, 2), store.projects, recorder, SystemClock())
    outcomes = await asyncio.gather(
        *(dispatch.trigger(row.id, JobType.FIND_CONTACTS, project.id) for row in rows), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, ActiveJobExists)]
    assert len(refused) == 1 and len(recorder.dispatched) == 1, outcomes
    winner = recorder.dispatched[0]
    loser = await store.jobs.get(next(r.id for r in rows if r.id != winner.id))
    assert refused[0].job_id == winner.id
    assert loser.status is JobStatus.CANCELLED and str(winner.id) in (loser.message or "")


async def test_create_refuses_a_second_active_job_of_the_type_even_when_racing(store: Stores) -> None:
    project = await store.projects.add(Project(name="p", icp="icp"))
    dispatch = DispatchJob(store.jobs, store.projects, Recorder(), SystemClock())
    outcomes = await asyncio.gather(
        *(dispatch.create(project.id, JobType.QUALIFY) for _ in range(4)), return_exceptions=True
    )
    created = [o for o in outcomes if isinstance(o, tuple)]
    assert len(created) == 1, outcomes
    assert all(isinstance(o, ActiveJobExists) and o.job_id == created[0][0].id for o in outcomes if o not in created)
    other_type, _ = await dispatch.create(project.id, JobType.FIND_CONTACTS)  # another type is fine
    assert other_type.job_type is JobType.FIND_CONTACTS
    with pytest.raises(ActiveJobExists):
        await dispatch.create(project.id, JobType.QUALIFY)
