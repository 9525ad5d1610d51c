"""Dispatch races that really race: concurrent `POST /api/tam/run`s reach the store's one-step claim
(`claim_dispatch`) together, where a missing guard would enqueue twice or let two jobs of a type run.
Run against every store."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tam.adapters.memory import SystemClock
from tam.adapters.postgres import PostgresJobRepo, PostgresProjectRepo, open_pool
from tam.domain.model import ActiveJobExists, Job, JobStatus, JobType, Project, TaskClaim
from tam.domain.services.dispatch import DispatchJob
from tests.contract.conftest import Stores
from tests.support.tcp_proxy import PgRoundTrips, TcpProxy


class TogetherJobs:
    """Every `claim_dispatch` waits until `callers` of them are ready, then all call the store at once.
    (The use case reads nothing before its one claim, so the store's own atomicity is what is tested.)"""

    def __init__(self, inner: Any, callers: int) -> None:
        self._inner = inner
        self._barrier = asyncio.Barrier(callers)

    async def claim_dispatch(self, *args: Any) -> TaskClaim:
        await self._barrier.wait()
        return await self._inner.claim_dispatch(*args)  # type: ignore[no-any-return]

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
    dispatch = DispatchJob(TogetherJobs(store.jobs, 8), store.projects, recorder, SystemClock())
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
    dispatch = DispatchJob(TogetherJobs(store.jobs, 2), store.projects, recorder, SystemClock())
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


async def test_a_dispatch_is_one_postgresql_round_trip(migrated_database_url: str) -> None:
    """`POST /api/tam/run` validates the job and claims its task in one statement: counted on the wire
    (Sync and Query messages the client sends), after a first dispatch has prepared the statement."""
    url = urlsplit(migrated_database_url)
    round_trips = PgRoundTrips()
    proxy = TcpProxy((url.hostname or "127.0.0.1", url.port or 5432), tap=round_trips)
    proxy.open()
    pool = await open_pool(
        urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}", query="sslmode=disable")),
        min_size=1,
        max_size=1,
    )
    try:
        projects, jobs = PostgresProjectRepo(pool), PostgresJobRepo(pool)
        recorder = Recorder()
        dispatch = DispatchJob(jobs, projects, recorder, SystemClock())
        rows = []
        for _ in range(4):
            project = await projects.add(Project(name="p", icp="icp"))
            rows.append(await jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY)))
        await dispatch.trigger(rows[0].id, JobType.QUALIFY, rows[0].project_id)  # prepares the statement
        counted = []
        for job in rows[1:]:
            before = round_trips.count
            await dispatch.trigger(job.id, JobType.QUALIFY, job.project_id)
            again = round_trips.count
            await dispatch.trigger(job.id, JobType.QUALIFY, job.project_id)  # kept: no second enqueue
            counted.append((again - before, round_trips.count - again))
        assert counted == [(1, 1)] * 3
        assert [j.id for j in recorder.dispatched] == [j.id for j in rows]
    finally:
        await pool.close()
        proxy.close()
