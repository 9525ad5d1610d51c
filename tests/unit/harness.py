"""Instrumented fake providers and a looptime runner for the domain tests.

Each fake follows a script per item: a list of answers, one per attempt ("ok", "no", "transient",
"permanent", "credential"), each taking `delay` virtual seconds. Time is the event loop's, fast-
forwarded by looptime, so nothing here waits on the wall clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import looptime

from tam.adapters.memory import (
    LocalLimiter,
    MemoryCompanyRepo,
    MemoryContactRepo,
    MemoryDatabase,
    MemoryJobRepo,
    MemoryProjectRepo,
    SystemClock,
)
from tam.domain.model import (
    ONE_CALL,
    Company,
    Cost,
    CredentialError,
    EmailStatus,
    Job,
    JobType,
    NewCompany,
    PermanentItemError,
    Person,
    Progress,
    Project,
    Provider,
    TimeLimitExceeded,
    TransientProviderError,
    Usage,
)
from tam.domain.services.calls import RetryPolicy
from tam.domain.services.contacts import FindContacts
from tam.domain.services.dispatch import AttemptEnd, AttemptPolicy, JobAttempt
from tam.domain.services.linkedin import CheckLinkedin
from tam.domain.services.qualify import QualifyCompanies
from tam.domain.services.runner import JobRunner, RunnerSettings
from tam.ports.providers import EmailFound, LinkedinCheck, LinkedinChecks, LinkedinTarget, PeopleFound, Verdict

T = TypeVar("T")


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh event loop whose time jumps ahead whenever every task waits."""
    loop = looptime.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class Instrument:
    """Counts calls in flight and keeps a log of (time, event, key, in_flight)."""

    in_flight: int = 0
    peak: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    log: list[tuple[float, str, str, int]] = field(default_factory=list)

    async def call(self, key: str, answer: str, delay: float) -> str:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.calls[key] += 1
        self.log.append((now(), "start", key, self.in_flight))
        try:
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
            self.log.append((now(), "end", key, self.in_flight))
        if answer == "transient":
            raise TransientProviderError("Fake", f"fake 503 for {key}")
        if answer == "limited":
            raise TransientProviderError("Fake", f"fake 429 for {key}", retry_after=7.0)
        if answer == "permanent":
            raise PermanentItemError("Fake", f"fake says {key} is invalid")
        if answer == "credential":
            raise CredentialError("Fake", "Fake rejected the key (401)", setting="FAKE_API_KEY")
        return answer


@dataclass
class Script:
    answers: dict[str, list[str]]
    delays: dict[str, float] = field(default_factory=dict)
    default: str = "ok"

    def next(self, key: str, attempt: int) -> tuple[str, float]:
        answers = self.answers.get(key, [])
        answer = answers[attempt] if attempt < len(answers) else (answers[-1] if answers else self.default)
        if answer in ("transient", "limited") and attempt >= len(answers):
            answer = self.default
        return answer, self.delays.get(key, 1.0)


class ScriptedQualifier:
    def __init__(self, script: Script, instrument: Instrument) -> None:
        self.script = script
        self.instrument = instrument

    async def qualify(self, project: Project, company: Company) -> Verdict:
        answer, delay = self.script.next(company.domain, self.instrument.calls[company.domain])
        answer = await self.instrument.call(company.domain, answer, delay)
        return Verdict(answer == "ok", f"scripted {answer}", Usage.of(claude_input_tokens=10))

    def cost(self, project: Project, company: Company) -> Cost:
        return ONE_CALL


class ScriptedPeople:
    """Person search and email finder in one: `people[domain]` lists names (repeats allowed)."""

    def __init__(self, people: dict[str, list[str]], script: Script, instrument: Instrument) -> None:
        self.people = people
        self.script = script
        self.instrument = instrument

    async def search(self, project: Project, company: Company, limit: int) -> PeopleFound:
        key = "search:" + company.domain
        answer, delay = self.script.next(key, self.instrument.calls[key])
        await self.instrument.call(key, answer, delay)
        names = self.people.get(company.domain, [])
        found = [
            Person(
                full_name=n,
                provider_person_id=f"{company.domain}/{n}",
                linkedin_url=f"https://linkedin.com/in/{n}-{company.domain}",
            )
            for n in names
        ]
        return PeopleFound(tuple(found), Usage.of(prospeo_credits=1 if found else 0))

    async def find_email(self, person: Person, company: Company) -> EmailFound:
        key = "email:" + (person.provider_person_id or "")
        answer, delay = self.script.next(key, self.instrument.calls[key])
        await self.instrument.call(key, answer, delay)
        return EmailFound(f"{person.full_name}@{company.domain}", EmailStatus.VERIFIED, Usage.of(prospeo_credits=1))


class ScriptedLinkedin:
    max_batch = 3

    def __init__(self, script: Script, instrument: Instrument) -> None:
        self.script = script
        self.instrument = instrument

    async def check(self, targets: Sequence[LinkedinTarget]) -> LinkedinChecks:
        key = "batch:" + ",".join(t.url for t in targets)
        answer, delay = self.script.next(key, self.instrument.calls[key])
        await self.instrument.call(key, answer, delay)
        return LinkedinChecks(
            tuple(LinkedinCheck(t.contact_id, not t.url.endswith("gone"), "scripted") for t in targets),
            Usage.of(brightdata_records=len(targets)),
        )


class RecordingJobRepo(MemoryJobRepo):
    """Keeps every progress write (tests look at the sequence), then stores it."""

    def __init__(self, db: MemoryDatabase) -> None:
        super().__init__(db)
        self.updates: list[tuple[UUID, Progress]] = []

    async def save_progress(
        self, job_id: UUID, progress: Progress, usage: Usage, at: datetime, *, token: int | None = None
    ) -> Job:
        self.updates.append((job_id, progress))
        return await super().save_progress(job_id, progress, usage, at, token=token)


@dataclass
class World:
    """One project's storage (its job repository records progress writes) and a runner wired to
    scripted fakes."""

    db: MemoryDatabase = field(default_factory=MemoryDatabase)
    project: Project = field(default_factory=lambda: Project(name="p", icp="anything", max_contacts_per_company=5))
    instrument: Instrument = field(default_factory=Instrument)

    def __post_init__(self) -> None:
        self.projects = MemoryProjectRepo(self.db)
        self.companies = MemoryCompanyRepo(self.db)
        self.contacts = MemoryContactRepo(self.db)
        self.jobs = RecordingJobRepo(self.db)
        self.clock = SystemClock()

    async def setup(self, domains: Sequence[str]) -> None:
        await self.projects.add(self.project)
        await self.companies.add_many(self.project.id, [NewCompany(name=d, domain=d) for d in domains])

    def runner(
        self,
        *,
        qualifier: Any = None,
        people: Any = None,
        linkedin: Any = None,
        limit: int = 3,
        policy: RetryPolicy | None = None,
        flush_interval: float = 1.0,
    ) -> Attempts:
        limiter = LocalLimiter({p.value: limit for p in Provider})
        steps: dict[JobType, Any] = {}
        if qualifier is not None:
            steps[JobType.QUALIFY] = QualifyCompanies(self.companies, qualifier, self.clock, limit)
        if people is not None:
            steps[JobType.FIND_CONTACTS] = FindContacts(
                self.companies, self.contacts, people, people, self.clock, limit, limit
            )
        if linkedin is not None:
            steps[JobType.CHECK_LINKEDIN] = CheckLinkedin(self.contacts, self.companies, linkedin, self.clock, limit)
        runner = JobRunner(
            self.jobs,
            self.projects,
            steps,
            limiter,
            self.clock,
            RunnerSettings(flush_interval=flush_interval, policy=policy or RetryPolicy(), seed=1),
        )
        return Attempts(self.jobs, runner, self.clock)


@dataclass
class Attempts:
    """Runs a job the way a worker does, through JobAttempt; `last_attempt=False` lets a time limit end
    the attempt resumable (TimeLimitExceeded) instead of failing the job."""

    jobs: MemoryJobRepo
    runner: JobRunner
    clock: SystemClock

    async def run(self, job_id: UUID, time_limit: float | None = None, last_attempt: bool = True) -> Job:
        policy = AttemptPolicy(attempts=1 if last_attempt else 1_000)
        result = await JobAttempt(self.jobs, self.runner, self.clock, policy)(job_id, time_limit)
        if result.end is AttemptEnd.RETRY:
            raise TimeLimitExceeded(result.detail)
        return await self.jobs.get(job_id)
