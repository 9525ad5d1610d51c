"""Each failure class, cancellation, the sliding window and progress batching, one behaviour per test."""

from __future__ import annotations

import asyncio

import pytest

from tam.domain.model import Job, JobStatus, JobType, NewCompany, Project, QualificationStatus
from tam.domain.services.calls import RetryPolicy
from tests.unit.harness import Script, ScriptedLinkedin, ScriptedQualifier, World, run_virtual

NAMES = [f"c{i:02d}.com" for i in range(30)]


def qualify(world: World, script: Script, *, limit: int = 3, policy: RetryPolicy | None = None, **kw) -> Job:  # type: ignore[no-untyped-def]
    async def main() -> Job:
        await world.setup(NAMES)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        runner = world.runner(qualifier=ScriptedQualifier(script, world.instrument), limit=limit, policy=policy, **kw)
        return await runner.run(job.id)

    return run_virtual(main)


def statuses(world: World) -> list[QualificationStatus]:
    return [c.qualification_status for c in world.db.companies.values()]


def test_credential_error_fails_the_job_at_once_naming_the_setting() -> None:
    world = World()
    job = qualify(world, Script({"c05.com": ["credential"]}, default="ok"), limit=2)
    assert job.status is JobStatus.FAILED
    assert "FAKE_API_KEY" in (job.error or "")
    assert "left for a retry" in (job.error or "")
    # only the calls already in flight finish; no new company is started after the error
    assert sum(world.instrument.calls.values()) <= 7
    assert QualificationStatus.PENDING in statuses(world)
    assert QualificationStatus.ERROR not in statuses(world)


def test_outage_fails_the_job_and_leaves_unfinished_companies_pending() -> None:
    world = World()
    policy = RetryPolicy(max_attempts=50, outage_after=10, outage_window=20.0)
    job = qualify(world, Script({}, default="transient"), policy=policy)
    assert job.status is JobStatus.FAILED
    assert "looks unavailable" in (job.error or "")
    assert "30 companies left for a retry" in (job.error or "")
    assert set(statuses(world)) == {QualificationStatus.PENDING}


def test_transient_errors_are_retried_without_counting_as_failures() -> None:
    world = World()
    job = qualify(world, Script({n: ["transient", "transient", "ok"] for n in NAMES}))
    assert job.status is JobStatus.COMPLETED
    assert job.items_failed == 0
    assert set(statuses(world)) == {QualificationStatus.QUALIFIED}
    assert all(world.instrument.calls[n] == 3 for n in NAMES)


def test_retry_after_is_honoured() -> None:
    world = World()
    qualify(world, Script({"c00.com": ["limited", "ok"]}, delays={"c00.com": 1.0}), limit=1)
    events = [(t, e) for t, e, key, _ in world.instrument.log if key == "c00.com"]
    (t_end_first,) = [t for t, e in events[:2] if e == "end"]
    t_second = events[2][0]
    assert t_second - t_end_first >= 7.0  # the fake's Retry-After


def test_permanent_error_marks_only_that_company() -> None:
    world = World()
    job = qualify(world, Script({"c03.com": ["permanent"]}))
    assert job.status is JobStatus.COMPLETED
    assert job.items_failed == 1
    assert job.message and "1 failed" in job.message
    bad = next(c for c in world.db.companies.values() if c.domain == "c03.com")
    assert bad.qualification_status is QualificationStatus.ERROR
    assert "invalid" in (bad.qualification_reason or "")


@pytest.mark.parametrize("limit", [1, 4, 10])
def test_the_window_stays_full_while_items_remain(limit: int) -> None:
    """A new call starts the moment one ends: never a batch waiting for its slowest member."""
    world = World()
    delays = {n: 0.5 + (i * 7 % 11) for i, n in enumerate(NAMES)}  # uneven latencies
    qualify(world, Script({}, delays=delays), limit=limit)
    log = world.instrument.log
    started = 0
    for t, event, _, in_flight in log:
        if event == "start":
            started += 1
            if started >= limit:
                assert in_flight == limit
            if started > limit:  # every later start coincides with an end
                assert any(e == "end" and te == t for te, e, _, _ in log)
    assert world.instrument.peak == limit


def test_seed_batches_leave_the_window_half_empty() -> None:
    """The same check catches the seed's design (gather in fixed batches), so it can fail."""
    world = World()

    async def batches() -> None:
        qualifier = ScriptedQualifier(
            Script({}, delays={n: 0.5 + (i % 5) for i, n in enumerate(NAMES)}), world.instrument
        )
        await world.setup(NAMES)
        companies = list(world.db.companies.values())
        for i in range(0, len(companies), 3):
            await asyncio.gather(*(qualifier.qualify(world.project, c) for c in companies[i : i + 3]))

    run_virtual(batches)
    in_flight_at_starts = [f for _, e, _, f in world.instrument.log if e == "start"]
    assert in_flight_at_starts.count(3) == 10  # once per batch, never sustained


def test_cancel_stops_between_items_and_keeps_finished_ones() -> None:
    world = World()

    async def main() -> tuple[Job, int, int]:
        await world.setup(NAMES)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        runner = world.runner(qualifier=ScriptedQualifier(Script({}), world.instrument), limit=3)
        task = asyncio.create_task(runner.run(job.id))
        await asyncio.sleep(4.5)
        await world.jobs.cancel(job.id, world.clock.now())
        started_at_cancel = sum(world.instrument.calls.values())
        done = await task
        return done, started_at_cancel, sum(world.instrument.calls.values())

    job, at_cancel, total = run_virtual(main)
    assert job.status is JobStatus.CANCELLED
    # noticed within the flush interval (1 s = one item here), so at most one more item per worker
    assert total - at_cancel <= 3
    decided = [s for s in statuses(world) if s is not QualificationStatus.PENDING]
    assert 0 < len(decided) < len(NAMES)
    # Once cancelled the row is final (no progress write after it); the answers in flight at the cancel
    # are still stored (they were paid), so the table may hold a few more than the frozen count.
    assert job.items_done <= len(decided) <= job.items_done + 3 + 3


def test_a_cancelled_pending_job_never_starts() -> None:
    world = World()

    async def main() -> Job:
        await world.setup(NAMES)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        await world.jobs.cancel(job.id, world.clock.now())
        return await world.runner(qualifier=ScriptedQualifier(Script({}), world.instrument)).run(job.id)

    job = run_virtual(main)
    assert job.status is JobStatus.CANCELLED
    assert job.attempts == 0
    assert not world.instrument.calls


def test_progress_is_batched_to_about_once_a_second() -> None:
    world = World()
    fast = {n: 0.05 for n in NAMES}  # 30 items at 3 in flight: 60 items/s
    job = qualify(world, Script({}, delays=fast), limit=3)
    assert job.status is JobStatus.COMPLETED
    # 0.5 s of work: the first write, the final write and none per item
    assert len(world.jobs.updates) <= 3
    last = world.jobs.updates[-1][1]
    assert (last.percent, last.message) == (100, "Qualified 30 of 30 companies")


def test_progress_messages_read_like_a_person_wrote_them() -> None:
    world = World()
    job = qualify(world, Script({"c01.com": ["permanent"], "c02.com": ["no"]}, delays={n: 1.0 for n in NAMES}))
    messages = [p.message for _, p in world.jobs.updates]
    assert messages[0] == "Qualified 0 of 30 companies"
    assert any("of 30 companies, 1 failed" in m for m in messages[1:-1])
    assert job.message == "Qualified 30 of 30 companies; the project now has 28 qualified, 1 disqualified, 1 failed"


def test_time_limit_fails_the_job_with_a_clear_error() -> None:
    world = World()

    async def main() -> Job:
        await world.setup(NAMES)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        runner = world.runner(
            qualifier=ScriptedQualifier(Script({}, delays={n: 10.0 for n in NAMES}), world.instrument)
        )
        return await runner.run(job.id, time_limit=25)

    job = run_virtual(main)
    assert job.status is JobStatus.FAILED
    assert job.error == "time limit of 25 s exceeded"


def test_linkedin_batches_count_each_profile() -> None:
    world = World()

    async def main() -> Job:
        from tam.domain.model import Contact, new_id

        await world.setup(["acme.com"])
        company = next(iter(world.db.companies.values()))
        contacts = [
            Contact(
                new_id(),
                world.project.id,
                company.id,
                f"p{i}",
                linkedin_url=f"https://li/{i}{'gone' if i % 3 == 0 else ''}",
            )
            for i in range(8)
        ]
        await world.contacts.record_company_contacts(company, contacts, world.clock.now())
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.CHECK_LINKEDIN))
        return await world.runner(linkedin=ScriptedLinkedin(Script({}), world.instrument)).run(job.id)

    job = run_virtual(main)
    assert (job.items_total, job.items_done, job.status) == (8, 8, JobStatus.COMPLETED)
    assert len(world.instrument.calls) == 3  # batches of 3, 3 and 2
    assert sorted(c.linkedin_active for c in world.db.contacts.values()).count(False) == 3
    assert job.message == "Checked 8 of 8 profiles; the project now has 5 active, 3 inactive"


def test_time_limit_on_a_first_attempt_leaves_the_job_for_the_retry_to_resume() -> None:
    from tam.domain.model import TimeLimitExceeded

    world = World()
    qualifier = ScriptedQualifier(Script({}, delays={n: 10.0 for n in NAMES}), world.instrument)

    async def main() -> tuple[Job, Job]:
        await world.setup(NAMES)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        runner = world.runner(qualifier=qualifier)
        with pytest.raises(TimeLimitExceeded):
            await runner.run(job.id, time_limit=25, last_attempt=False)
        between = await world.jobs.get(job.id)
        return between, await runner.run(job.id, time_limit=1000, last_attempt=True)

    between, job = run_virtual(main)
    assert between.status is JobStatus.RUNNING
    assert 0 < between.items_done < len(NAMES)
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 2
    # only the three companies in flight when time ran out are asked again
    assert sum(world.instrument.calls.values()) <= len(NAMES) + 3


def test_the_closing_message_covers_every_attempt_of_a_resumed_job() -> None:
    from tam.domain.model import Contact, TimeLimitExceeded, new_id

    world = World()
    slow = Script({}, delays={f"batch:https://li/{i}": 10.0 for i in range(12)})

    async def main() -> Job:
        await world.setup(["acme.com"])
        company = next(iter(world.db.companies.values()))
        contacts = [
            Contact(new_id(), world.project.id, company.id, f"p{i}", linkedin_url=f"https://li/{i}") for i in range(12)
        ]
        await world.contacts.record_company_contacts(company, contacts, world.clock.now())
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.CHECK_LINKEDIN))
        linkedin = ScriptedLinkedin(slow, world.instrument)
        linkedin.max_batch = 1
        runner = world.runner(linkedin=linkedin, limit=2)
        with pytest.raises(TimeLimitExceeded):
            await runner.run(job.id, time_limit=25, last_attempt=False)
        return await runner.run(job.id, time_limit=1000, last_attempt=True)

    job = run_virtual(main)
    assert job.status is JobStatus.COMPLETED and job.attempts == 2
    # the second attempt checked only what the first left, but the message counts the whole project
    assert job.message == "Checked 12 of 12 profiles; the project now has 12 active, 0 inactive"


def test_verdicts_are_group_committed_as_they_arrive_not_at_progress_flushes() -> None:
    """Each verdict is written as soon as the write before it ends: only answers that arrived during
    a write wait in memory (at most the window's width), even with no progress flush at all."""
    world = World()
    batches: list[int] = []
    record_many = world.companies.record_qualifications

    async def counting(records):  # type: ignore[no-untyped-def]
        batches.append(len(records))
        return await record_many(records)

    world.companies.record_qualifications = counting  # type: ignore[method-assign]
    job = qualify(world, Script({}, delays={n: 0.1 for n in NAMES}), flush_interval=1000.0)
    assert job.status is JobStatus.COMPLETED
    assert sum(batches) == len(NAMES)
    assert max(batches) <= 3  # the window's width
    assert len(batches) >= len(NAMES) // 3


def test_one_wired_runner_runs_two_qualify_jobs_side_by_side_each_with_its_own_buffer() -> None:
    """Steps and the runner hold no per-attempt state: the same instances serve two jobs at once, and
    each job stores and counts exactly its own project's verdicts."""
    world = World()
    other = Project(name="q", icp="anything else")
    script = Script({"c03.com": ["no"], "d03.com": ["permanent"]}, default="ok")

    async def main() -> tuple[Job, Job]:
        await world.setup(NAMES)
        await world.projects.add(other)
        await world.companies.add_many(
            other.id, [NewCompany(name=f"d{i:02d}", domain=f"d{i:02d}.com") for i in range(20)]
        )
        runner = world.runner(qualifier=ScriptedQualifier(script, world.instrument), limit=4)
        first = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        second = await world.jobs.add(Job(project_id=other.id, job_type=JobType.QUALIFY))
        return await asyncio.gather(runner.run(first.id), runner.run(second.id))  # type: ignore[return-value]

    first, second = run_virtual(main)
    assert (first.status, first.items_total, first.items_done, first.items_failed) == (JobStatus.COMPLETED, 30, 30, 0)
    assert (second.status, second.items_total, second.items_done, second.items_failed) == (
        JobStatus.COMPLETED,
        20,
        19,
        1,
    )
    by_project = {(c.project_id, c.qualification_status) for c in world.db.companies.values()}
    assert (world.project.id, QualificationStatus.DISQUALIFIED) in by_project  # c03: "no"
    assert (other.id, QualificationStatus.ERROR) in by_project  # d03: permanent
    assert (world.project.id, QualificationStatus.PENDING) not in by_project
    assert (other.id, QualificationStatus.PENDING) not in by_project
    assert sum(1 for c in world.db.companies.values() if c.project_id == other.id) == 20
    assert "Qualified 30 of 30 companies" in (first.message or "")
    assert "Qualified 20 of 20 companies" in (second.message or "")
