"""JobRepo.set_budget against every storage adapter: the budget is stored, read back, cleared, and
survives the job's progress and its end."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from tam.domain.model import Job, JobStatus, JobType, NotFound, Progress, Project, Usage
from tests.contract.conftest import Stores

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


async def test_a_budget_is_stored_and_outlives_progress_and_the_end(store: Stores) -> None:
    project = await store.projects.add(Project(name="p", icp="icp"))
    job = await store.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
    assert (await store.jobs.get(job.id)).max_cost_usd is None
    await store.jobs.set_budget(job.id, 12.5)
    assert (await store.jobs.get(job.id)).max_cost_usd == 12.5
    await store.jobs.start(job.id, T0)
    await store.jobs.save_progress(job.id, Progress(10, 4, 0, "Qualified 4 of 10"), Usage.of(claude_input_tokens=9), T0)
    done = await store.jobs.finish(job.id, JobStatus.FAILED, None, "budget of $12.50 reached; 6 companies left", T0)
    assert (done.max_cost_usd, done.usage) == (12.5, Usage.of(claude_input_tokens=9))
    assert [j.max_cost_usd for j in await store.jobs.list(project.id)] == [12.5]
    await store.jobs.set_budget(job.id, None)
    assert (await store.jobs.get(job.id)).max_cost_usd is None


async def test_budget_of_an_unknown_job_is_not_found(store: Stores) -> None:
    with pytest.raises(NotFound):
        await store.jobs.set_budget(uuid4(), 1.0)


async def test_a_batch_id_is_stored_read_back_and_cleared(store: Stores) -> None:
    project = await store.projects.add(Project(name="p", icp="icp"))
    job = await store.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
    assert (await store.jobs.get(job.id)).batch_id is None
    await store.jobs.set_batch(job.id, "msgbatch_0123")
    await store.jobs.start(job.id, T0)
    assert (await store.jobs.get(job.id)).batch_id == "msgbatch_0123"
    await store.jobs.set_batch(job.id, None)
    assert (await store.jobs.get(job.id)).batch_id is None
    with pytest.raises(NotFound):
        await store.jobs.set_batch(uuid4(), "msgbatch_x")
