"""Properties of the job runner over any companies and any pattern of provider answers and delays."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tam.domain.model import Job, JobStatus, JobType, QualificationStatus
from tam.domain.services.calls import RetryPolicy
from tests.unit.harness import Instrument, Script, ScriptedPeople, ScriptedQualifier, World, run_virtual

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, outage_after=10_000)

domains = st.lists(st.from_regex(r"[a-z]{1,8}\.(com|io)", fullmatch=True), min_size=0, max_size=25, unique=True)
answer = st.sampled_from(["ok", "no", "permanent", "transient", "limited"])
delay = st.floats(min_value=0.01, max_value=5.0)


@st.composite
def scripts(draw: st.DrawFn) -> tuple[list[str], Script]:
    names = draw(domains)
    answers = {d: draw(st.lists(answer, min_size=1, max_size=5)) for d in names}
    delays = {d: draw(delay) for d in names}
    return names, Script(answers, delays)


def expected_status(answers: list[str], max_attempts: int) -> QualificationStatus:
    """What the runner must decide for one company given its scripted answers."""
    for attempt in range(max_attempts):
        a = answers[attempt] if attempt < len(answers) else "ok"
        if a in ("transient", "limited"):
            continue
        if a == "permanent":
            return QualificationStatus.ERROR
        return QualificationStatus.QUALIFIED if a == "ok" else QualificationStatus.DISQUALIFIED
    return QualificationStatus.ERROR  # every attempt was transient: gave up on the item


# Fixed examples run every time, whatever Hypothesis draws: a failed item among finished ones must be
# counted as failed (and as progress), never as done or pending.
FAILED_AMONG_OTHERS = (
    ["a.com", "b.io", "c.com", "d.io"],
    Script({"a.com": ["ok"], "b.io": ["permanent"], "c.com": ["transient", "no"], "d.io": ["ok"]}),
)
CRASH_AFTER_A_FAILED_ITEM = (
    ["a.com", "b.io", "c.com", "d.io"],
    Script(
        {"a.com": ["ok"], "b.io": ["permanent"], "c.com": ["transient", "no"], "d.io": ["ok"]},
        {"a.com": 0.5, "b.io": 0.4, "c.com": 3.0, "d.io": 6.0},
    ),
)


@EXAMPLES
@example(case=FAILED_AMONG_OTHERS, limit=1)
@example(case=FAILED_AMONG_OTHERS, limit=4)
@given(case=scripts(), limit=st.integers(1, 6))
def test_every_company_ends_in_exactly_one_final_state(case: tuple[list[str], Script], limit: int) -> None:
    names, script = case
    world = World()
    qualifier = ScriptedQualifier(script, world.instrument)

    async def main() -> Job:
        await world.setup(names)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        return await world.runner(qualifier=qualifier, limit=limit, policy=POLICY).run(job.id)

    job = run_virtual(main)

    assert job.status is JobStatus.COMPLETED
    assert job.progress == 100
    companies = list(world.db.companies.values())
    assert sorted(c.domain for c in companies) == sorted(names)  # nothing stored twice
    for c in companies:
        assert c.qualification_status is expected_status(script.answers[c.domain], POLICY.max_attempts)
    failed = sum(1 for c in companies if c.qualification_status is QualificationStatus.ERROR)
    assert (job.items_total, job.items_done, job.items_failed) == (len(names), len(names) - failed, failed)
    percents = [p.percent for _, p in world.jobs.updates]
    assert percents == sorted(percents), "progress went backwards"
    assert world.instrument.peak <= limit
    # a decided company is never asked again
    for c in companies:
        answers = script.answers[c.domain]
        decided_at = next((i for i, a in enumerate(answers) if a not in ("transient", "limited")), len(answers))
        assert world.instrument.calls[c.domain] == min(decided_at + 1, POLICY.max_attempts)


@EXAMPLES
@example(case=CRASH_AFTER_A_FAILED_ITEM, limit=2, crash_after=2.0)  # b.io failed and was stored before the crash
@example(case=CRASH_AFTER_A_FAILED_ITEM, limit=4, crash_after=0.45)  # b.io failed, maybe not yet stored
@given(case=scripts(), limit=st.integers(1, 5), crash_after=st.floats(0.0, 30.0))
def test_crash_and_resume_decides_every_company_once(
    case: tuple[list[str], Script], limit: int, crash_after: float
) -> None:
    """The first attempt is killed at an arbitrary moment; the second resumes and finishes."""
    names, script = case
    world = World()
    qualifier = ScriptedQualifier(script, world.instrument)
    decisions: Counter[str] = Counter()
    record = world.companies.record_qualification
    record_many = world.companies.record_qualifications

    async def counting_record(company_id, status, reason, at):  # type: ignore[no-untyped-def]
        decisions[world.db.companies[company_id].domain] += 1
        await record(company_id, status, reason, at)

    async def counting_record_many(records):  # type: ignore[no-untyped-def]
        for r in records:
            decisions[world.db.companies[r.company_id].domain] += 1
        return await record_many(records)

    world.companies.record_qualification = counting_record  # type: ignore[method-assign]
    world.companies.record_qualifications = counting_record_many  # type: ignore[method-assign]

    async def main() -> tuple[Job, dict[str, int]]:
        await world.setup(names)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        runner = world.runner(qualifier=qualifier, limit=limit, policy=POLICY)
        first = asyncio.create_task(runner.run(job.id))
        await asyncio.sleep(crash_after)
        first.cancel()  # the worker process dies: nothing after this point of attempt 1 runs
        await asyncio.gather(first, return_exceptions=True)
        calls_before = dict(world.instrument.calls)
        decided_before = {d for d, n in decisions.items() if n}
        finished = await world.runner(qualifier=qualifier, limit=limit, policy=POLICY).run(job.id)
        repeat_calls = {d: world.instrument.calls[d] - calls_before.get(d, 0) for d in decided_before}
        return finished, repeat_calls

    job, repeat_calls = run_virtual(main)

    assert job.status is JobStatus.COMPLETED
    assert job.progress == 100
    assert all(n == 0 for n in repeat_calls.values()), f"finished companies asked again: {repeat_calls}"
    assert sorted(decisions) == sorted(names)
    assert set(decisions.values()) <= {1}, f"a company was decided twice: {decisions}"
    assert all(c.qualification_status is not QualificationStatus.PENDING for c in world.db.companies.values())
    assert job.items_done + job.items_failed == job.items_total == len(names)


@EXAMPLES
@given(
    people=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}\.com", fullmatch=True),
        st.lists(st.sampled_from(["ana", "ben", "cleo", "dev", "eli", "fay"]), max_size=8),
        max_size=12,
    ),
    flaky=st.sets(st.sampled_from(["ana", "ben", "cleo"])),
    limit=st.integers(1, 4),
)
def test_contacts_are_unique_per_person_and_each_company_searched_once(
    people: dict[str, list[str]], flaky: set[str], limit: int
) -> None:
    world = World()
    answers = {f"email:{d}/{n}": ["transient", "ok"] for d in people for n in flaky}
    finder = ScriptedPeople(people, Script(answers), world.instrument)

    async def main() -> Job:
        await world.setup(list(people))
        for c in world.db.companies.values():
            await world.companies.record_qualification(c.id, QualificationStatus.QUALIFIED, "fits", world.clock.now())
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.FIND_CONTACTS))
        return await world.runner(people=finder, limit=limit, policy=POLICY).run(job.id)

    job = run_virtual(main)

    assert job.status is JobStatus.COMPLETED
    contacts = list(world.db.contacts.values())
    keys = [(c.company_id, c.person_key) for c in contacts]
    assert len(keys) == len(set(keys)), "a person was stored twice"
    urls = [c.linkedin_url for c in contacts]
    assert len(urls) == len(set(urls))
    expected = sum(min(len(set(names)), world.project.max_contacts_per_company) for names in people.values())
    assert len(contacts) == expected
    assert all(c.email and c.email_status == "verified" for c in contacts)
    assert all(world.instrument.calls[f"search:{d}"] == 1 for d in people)
    assert all(c.contacts_searched_at is not None for c in world.db.companies.values())
    assert world.instrument.peak <= 2 * limit  # search and enrich slots are separate providers


def test_instrument_counts_calls() -> None:
    """The harness itself: a fake that is never called reports nothing."""
    inst = Instrument()
    assert inst.peak == 0 and not inst.calls


@EXAMPLES
@given(case=scripts(), limit=st.integers(1, 5), time_limit=st.floats(0.05, 20.0))
def test_counts_written_never_go_back_across_a_time_limited_attempt(
    case: tuple[list[str], Script], limit: int, time_limit: float
) -> None:
    """The first attempt runs out of time at an arbitrary moment (its counts so far are written), the
    second resumes: every row a progress write left has items done, failed and progress no lower than
    the one before (the e2e suite once saw items_done go 22 -> 21 between two attempts)."""
    from tam.domain.model import TimeLimitExceeded

    names, script = case
    world = World()
    qualifier = ScriptedQualifier(script, world.instrument)
    rows: list[Job] = []
    save = world.jobs.save_progress

    async def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        row = await save(*args, **kwargs)
        rows.append(row)
        return row

    world.jobs.save_progress = recording  # type: ignore[method-assign]

    async def main() -> Job:
        await world.setup(names)
        job = await world.jobs.add(Job(project_id=world.project.id, job_type=JobType.QUALIFY))
        runner = world.runner(qualifier=qualifier, limit=limit, policy=POLICY)
        with contextlib.suppress(TimeLimitExceeded):
            await runner.run(job.id, time_limit=time_limit, last_attempt=False)
        return await runner.run(job.id, last_attempt=True)

    job = run_virtual(main)
    assert job.status is JobStatus.COMPLETED
    for before, after in itertools.pairwise(rows):
        assert after.items_done >= before.items_done, (before, after)
        assert after.items_done + after.items_failed >= before.items_done + before.items_failed, (before, after)
        assert after.progress >= before.progress, (before, after)
    assert job.items_done + job.items_failed == job.items_total == len(names)
