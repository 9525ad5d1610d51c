"""A worker paused past the heartbeat timeout (SIGSTOP, a long GC, a partition) and then resumed starts no
new paid call once a newer attempt holds the job: the check sits right before each call, after the pacer
admitted it, so a call that was waiting for a slot when the pause began is not made either. What the
paused attempt had paid for is still stored (only over unfinished items)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tam.adapters.memory import LocalLimiter, SystemClock
from tam.domain.model import Company, Job, JobStatus, JobType, Project, Provider, QualificationStatus
from tam.domain.services.dispatch import AttemptEnd, AttemptPolicy, JobAttempt
from tam.domain.services.qualify import QualifyCompanies
from tam.domain.services.runner import JobRunner, RunnerSettings
from tam.ports.providers import Verdict
from tests.unit.harness import Script, ScriptedQualifier, World, run_virtual

NAMES = [f"c{i:02d}.com" for i in range(12)]
PAUSE = 6.0  # longer than the lease check (5 s) and the heartbeat timeout (5 s)


class PausableClock(SystemClock):
    """The monotonic clock jumps by `paused` seconds: the process slept through them."""

    paused = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.paused


class TakenOverWhileAsked(ScriptedQualifier):
    """While it is asked about `first`, the process pauses past the heartbeat timeout and a successor
    attempt takes the job (what a SIGSTOP long enough looks like from inside)."""

    def __init__(self, world: World, clock: PausableClock, job: list[Job], first: str) -> None:
        super().__init__(Script({}), world.instrument)
        self._world, self._clock, self._job, self._first = world, clock, job, first
        self.asked_after_pause: list[str] = []

    async def qualify(self, project: Project, company: Company) -> Verdict:
        if self._clock.paused:
            self.asked_after_pause.append(company.domain)
        elif company.domain == self._first:
            self._clock.paused = PAUSE
            now = self._clock.now()
            successor = await self._world.jobs.start(self._job[0].id, now, stale_before=now + timedelta(seconds=1))
            assert successor is not None and successor.attempts == 2
        return await super().qualify(project, company)


def test_a_resumed_attempt_whose_lease_was_taken_starts_no_new_call() -> None:
    world = World()
    clock = PausableClock()
    job_box: list[Job] = []
    qualifier = TakenOverWhileAsked(world, clock, job_box, NAMES[4])
    # 4 workers over 2 slots: two of them wait in the pacer (with an item) while two calls run
    step = QualifyCompanies(world.companies, qualifier, clock, workers=4)
    runner = JobRunner(
        world.jobs,
        world.projects,
        {JobType.QUALIFY: step},
        LocalLimiter({p.value: 2 for p in Provider}),
        clock,
        # no ticker during the test: only the check before each call can notice the lost lease
        RunnerSettings(flush_interval=1000.0, seed=1, lease_check_after=5.0),
    )

    async def main() -> tuple[Any, Job]:
        await world.setup(NAMES)
        job_box.append(await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY)))
        attempt = JobAttempt(world.jobs, runner, clock, AttemptPolicy(heartbeat_timeout=5.0))
        result = await attempt(job_box[0].id, None)
        return result, await world.jobs.get(job_box[0].id)

    result, job = run_virtual(main)
    assert result.end is AttemptEnd.LEFT and "superseded by attempt 2" in result.detail
    assert qualifier.asked_after_pause == [], "the stale attempt paid for calls after its lease was taken"
    asked = set(world.instrument.calls)
    assert NAMES[4] in asked and len(asked) <= 6  # at most the two calls in flight when it paused
    assert job.status is JobStatus.RUNNING and job.attempts == 2  # the successor's, untouched
    # every answer it had paid for is stored (those companies were still pending)
    done = {c.domain for c in world.db.companies.values() if c.qualification_status is not QualificationStatus.PENDING}
    assert done == asked


class TakenOver(ScriptedQualifier):
    """A successor takes the job while `first` is being asked about (no pause: the ticker notices)."""

    def __init__(self, world: World, clock: SystemClock, job: list[Job], first: str, delays: dict[str, float]) -> None:
        super().__init__(Script({}, delays=delays), world.instrument)
        self._world, self._clock, self._job, self._first = world, clock, job, first

    async def qualify(self, project: Project, company: Company) -> Verdict:
        if company.domain == self._first:
            now = self._clock.now()
            assert await self._world.jobs.start(self._job[0].id, now, stale_before=now + timedelta(seconds=1))
        return await super().qualify(project, company)


def test_answers_paid_for_after_the_lease_was_lost_are_still_stored() -> None:
    """Answers that arrive while a slow write holds the group commit, around the time the attempt learns
    it lost the job, are still stored (over pending companies) before it stops: paid work is kept."""
    import asyncio

    world = World()
    clock = SystemClock()
    job_box: list[Job] = []
    qualifier = TakenOver(world, clock, job_box, NAMES[4], delays={n: 0.7 for n in NAMES})
    record_many = world.companies.record_qualifications

    async def slow(records):  # type: ignore[no-untyped-def]
        await asyncio.sleep(1.5)  # a loaded database
        return await record_many(records)

    world.companies.record_qualifications = slow  # type: ignore[method-assign]
    step = QualifyCompanies(world.companies, qualifier, clock, workers=3)
    runner = JobRunner(
        world.jobs,
        world.projects,
        {JobType.QUALIFY: step},
        LocalLimiter({p.value: 3 for p in Provider}),
        clock,
        RunnerSettings(flush_interval=1.0, seed=1),
    )

    async def main() -> Any:
        await world.setup(NAMES)
        job_box.append(await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY)))
        return await JobAttempt(world.jobs, runner, clock, AttemptPolicy(heartbeat_timeout=5.0))(job_box[0].id, None)

    result = run_virtual(main)
    assert result.end is AttemptEnd.LEFT
    answered = {key for t, event, key, _ in world.instrument.log if event == "end"}
    stored = {c.domain for c in world.db.companies.values() if c.qualification_status != QualificationStatus.PENDING}
    assert NAMES[4] in answered and stored == answered, (sorted(answered), sorted(stored))
