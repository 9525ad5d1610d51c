"""A message whose job is gone (deleted with its project while the message waited in the queue) ends
its attempt quietly: nothing runs, nothing is written, and no error reaches the broker (which would
otherwise log a traceback and dead-letter the message)."""

from __future__ import annotations

import uuid

from tam.domain.model import Job, JobStatus, JobType
from tam.domain.services.dispatch import AttemptEnd, AttemptPolicy, JobAttempt
from tests.unit.harness import Script, ScriptedQualifier, World, run_virtual


def test_a_message_for_a_deleted_job_is_dropped_without_running_anything() -> None:
    async def main() -> None:
        world = World()
        await world.setup(["a.com", "b.com"])
        qualifier = ScriptedQualifier(Script({}), world.instrument)
        attempts = world.runner(qualifier=qualifier)
        kept = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))

        result = await JobAttempt(world.jobs, attempts.runner, world.clock, AttemptPolicy())(uuid.uuid4(), None)

        assert result.end is AttemptEnd.LEFT and result.job is None
        assert "no such job" in result.detail
        assert sum(world.instrument.calls.values()) == 0  # no paid call
        assert world.jobs.updates == []  # and no write, to this job or any other
        assert (await world.jobs.get(kept.id)).status is JobStatus.PENDING

    run_virtual(main)
