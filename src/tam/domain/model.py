"""Entities, value objects and the TamError hierarchy. Pure: no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID, uuid4


class JobType(enum.StrEnum):
    SOURCE_COMPANIES = "sourceCompanies"
    QUALIFY = "qualify"
    FIND_CONTACTS = "findContacts"
    CHECK_LINKEDIN = "checkLinkedin"
    REFINE_DISCOLIKE = "refineDiscolike"

    @classmethod
    def parse(cls, text: str) -> JobType:
        """Accept the camelCase name or its snake_case spelling (`find_contacts`)."""
        found = _JOB_TYPE_KEYS.get(text.replace("_", "").lower())
        if found is None:
            raise InvalidInput(f"unknown jobType {text!r}; expected one of {', '.join(m.value for m in cls)}")
        return found

    @property
    def snake(self) -> str:
        return "".join("_" + c.lower() if c.isupper() else c for c in self.value)


_JOB_TYPE_KEYS = {member.value.lower(): member for member in JobType}


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class QualificationStatus(enum.StrEnum):
    PENDING = "pending"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    ERROR = "error"


class EmailStatus(enum.StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    NOT_FOUND = "not_found"


class CompanySourceKind(enum.StrEnum):
    IMPORT = "import"
    DISCOLIKE = "discolike"
    DISCOLIKE_REFINE = "discolike_refine"
    SANDBOX = "sandbox"


class Provider(enum.StrEnum):
    """Keys of the per-provider concurrency limits."""

    CLAUDE = "claude"
    PROSPEO_SEARCH = "prospeo_search"
    PROSPEO_ENRICH = "prospeo_enrich"
    BRIGHTDATA = "brightdata"
    DISCOLIKE = "discolike"


def new_id() -> UUID:
    return uuid4()


class Pressure(enum.StrEnum):
    """What a provider's answer said about its rate limit, for the concurrency limiter."""

    EASY = "easy"  # served with room to spare: callers may speed up
    NEAR = "near"  # served, but little of the quota is left (rate-limit headers): ease off
    THROTTLED = "throttled"  # refused for the rate limit (429): slow down, wait out any Retry-After


@dataclass(frozen=True, slots=True)
class Cost:
    """What one provider call counts against the provider's rate budgets: requests, and for Claude the
    input tokens that count toward its input limit (cache reads do not) and the output tokens."""

    requests: float = 1
    input_tokens: float = 0
    output_tokens: float = 0

    def __sub__(self, other: Cost) -> Cost:
        return Cost(
            self.requests - other.requests,
            self.input_tokens - other.input_tokens,
            self.output_tokens - other.output_tokens,
        )


ONE_CALL = Cost()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute budgets (requests, input tokens, output tokens); None is unknown or unlimited."""

    requests: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None

    def values(self) -> tuple[float | None, float | None, float | None]:
        return (self.requests, self.input_tokens, self.output_tokens)


NO_LIMITS = RateLimits()


@dataclass(frozen=True, slots=True)
class RateSignal:
    """What one answer said about the provider's rate limits, from its headers and its usage:
    the per-minute `limits` it announces, what it says is `remaining` now, and what the call really
    `spent` (known only after it, e.g. Claude's tokens), so the pacer corrects its estimate."""

    limits: RateLimits = NO_LIMITS
    remaining: RateLimits = NO_LIMITS
    spent: Cost | None = None


NO_SIGNAL = RateSignal()


@dataclass(frozen=True, slots=True)
class Project:
    name: str
    icp: str
    id: UUID = field(default_factory=new_id)
    target_titles: tuple[str, ...] = ()
    target_seniorities: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    employee_range: str | None = None
    max_contacts_per_company: int = 3
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewCompany:
    """A company about to be added; `domain` is already normalised."""

    name: str
    domain: str
    source: CompanySourceKind = CompanySourceKind.IMPORT
    description: str | None = None
    country: str | None = None
    employee_range: str | None = None
    linkedin_url: str | None = None
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class Company:
    id: UUID
    project_id: UUID
    name: str
    domain: str
    source: CompanySourceKind = CompanySourceKind.IMPORT
    description: str | None = None
    country: str | None = None
    employee_range: str | None = None
    linkedin_url: str | None = None
    similarity: float | None = None
    qualification_status: QualificationStatus = QualificationStatus.PENDING
    qualification_reason: str | None = None
    qualified_at: datetime | None = None
    contacts_searched_at: datetime | None = None
    created_at: datetime | None = None

    @classmethod
    def create(cls, project_id: UUID, new: NewCompany, *, at: datetime | None = None) -> Company:
        return cls(
            id=new_id(),
            project_id=project_id,
            name=new.name,
            domain=new.domain,
            source=new.source,
            description=new.description,
            country=new.country,
            employee_range=new.employee_range,
            linkedin_url=new.linkedin_url,
            similarity=new.similarity,
            created_at=at,
        )


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a person search found; `provider_person_id` feeds the email lookup."""

    full_name: str
    provider_person_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    linkedin_url: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    id: UUID
    project_id: UUID
    company_id: UUID
    full_name: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    linkedin_url: str | None = None
    email: str | None = None
    email_status: EmailStatus | None = None
    provider_person_id: str | None = None
    linkedin_active: bool | None = None
    linkedin_checked_at: datetime | None = None
    linkedin_detail: str | None = None
    created_at: datetime | None = None

    @property
    def person_key(self) -> str:
        """What makes two contacts the same person at one company."""
        return person_key(self.linkedin_url, self.provider_person_id, self.full_name)


def person_key(linkedin_url: str | None, provider_person_id: str | None, full_name: str) -> str:
    if linkedin_url:
        return "li:" + linkedin_url.lower().rstrip("/")
    if provider_person_id:
        return "pid:" + provider_person_id
    return "name:" + " ".join(full_name.lower().split())


@dataclass(frozen=True, slots=True)
class Usage:
    """Metered provider usage, summed per job (tokens, credits, records)."""

    counts: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Usage) -> Usage:
        merged = dict(self.counts)
        for key, value in other.counts.items():
            merged[key] = merged.get(key, 0) + value
        return Usage(merged)

    def __bool__(self) -> bool:
        return any(self.counts.values())

    @classmethod
    def of(cls, **counts: int) -> Usage:
        return cls({k: v for k, v in counts.items() if v})


NO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class Job:
    project_id: UUID
    job_type: JobType
    id: UUID = field(default_factory=new_id)
    status: JobStatus = JobStatus.PENDING
    progress: int = 0
    items_total: int = 0
    items_done: int = 0
    items_failed: int = 0
    message: str | None = None
    error: str | None = None
    task_id: str | None = None
    attempts: int = 0
    usage: Usage = NO_USAGE
    max_cost_usd: float | None = None  # the job's budget: no call is admitted that could pass it
    batch_id: str | None = None  # the Message Batch a qualify job waits on
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    updated_at: datetime | None = None

    def with_(self, **changes: object) -> Job:
        return replace(self, **changes)  # type: ignore[arg-type]

    # --- lifecycle rules: every store persists what these decide (the SQL functions of
    # 20261202000000_tam_durable_jobs.sql and the SQLite queries mirror them; tests/unit/test_job_rules.py
    # checks every store against them). The fencing token of an attempt is `attempts` as it started it.

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.PENDING, JobStatus.RUNNING)

    def held(self, stale_before: datetime) -> bool:
        """Running under a live lease: an attempt started it and its heartbeat is newer than `stale_before`."""
        return (
            self.status is JobStatus.RUNNING
            and self.attempts > 0
            and self.heartbeat_at is not None
            and self.heartbeat_at >= stale_before
        )

    def start(self, at: datetime, task_id: str | None = None, stale_before: datetime | None = None) -> Job | None:
        """A new attempt takes the lease (token = attempts + 1), or None: the job is finished, the
        message carrying `task_id` was superseded by another task, or a live attempt holds it."""
        if self.status.finished:
            return None
        if task_id is not None and self.task_id is not None and task_id != self.task_id:
            return None
        if stale_before is not None and self.held(stale_before):
            return None
        return replace(
            self,
            status=JobStatus.RUNNING,
            attempts=self.attempts + 1,
            started_at=self.started_at or at,
            heartbeat_at=at,
            updated_at=at,
        )

    def progressed(self, token: int | None, progress: Progress, usage: Usage, at: datetime) -> Job:
        """Counts, message, usage and heartbeat from the lease holder of a running job; progress never
        goes back. Anyone else (a stale attempt, or any writer once the job finished) changes nothing."""
        if self.status is not JobStatus.RUNNING or (token is not None and token != self.attempts):
            return self
        return replace(
            self,
            progress=max(self.progress, progress.percent),
            items_total=progress.items_total,
            items_done=progress.items_done,
            items_failed=progress.items_failed,
            message=progress.message,
            usage=usage,
            heartbeat_at=at,
            updated_at=at,
        )

    def finished_as(
        self, status: JobStatus, message: str | None, error: str | None, at: datetime, token: int | None = None
    ) -> Job:
        """Finish once: an active job moves to `status` (completed sets progress 100); a finished job, or
        a stale attempt's request (`token` not the current one), changes nothing."""
        if not self.active or (token is not None and token != self.attempts):
            return self
        return replace(
            self,
            status=status,
            progress=100 if status is JobStatus.COMPLETED else self.progress,
            message=message if message is not None else self.message,
            error=error,
            finished_at=at,
            updated_at=at,
        )

    def released(self, token: int, at: datetime) -> Job:
        """The lease holder lets go without finishing (shutdown, time limit): the next attempt may start
        at once instead of waiting out the heartbeat timeout."""
        if self.status is not JobStatus.RUNNING or token != self.attempts:
            return self
        return replace(self, heartbeat_at=None, updated_at=at)

    def unclaimed(self, task_id: str) -> Job:
        """The broker refused the message for `task_id`: the task id is given back unless an attempt
        already started under it."""
        if self.task_id != task_id or self.attempts > 0 or self.status.finished:
            return self
        return replace(self, task_id=None)

    def requeued(self, old_task_id: str | None, new_task_id: str, stale_before: datetime, at: datetime) -> Job | None:
        """A running job whose attempt is gone (neither a heartbeat nor any other write since
        `stale_before`) gets a new task, so exactly one new message runs it; None when it is not stale
        or another caller got there first. The write itself makes the row fresh for another timeout:
        the new message has that long to start before the job counts as stale again."""
        if self.status is not JobStatus.RUNNING or self.task_id != old_task_id or self.held(stale_before):
            return None
        if self.updated_at is not None and self.updated_at >= stale_before:
            return None
        return replace(self, task_id=new_task_id, updated_at=at)

    def dispatched(
        self,
        project_id: UUID,
        job_type: JobType,
        task_id: str,
        at: datetime,
        stale_before: datetime,
        active: Job | None,
    ) -> TaskClaim:
        """`POST /api/tam/run` on this job, as one decision: refused when the job is of another project
        or type, or finished; kept when it has a live task; requeued under `task_id` when it is running
        and its attempt is gone (`requeued`); else it takes `task_id`, unless `active` (the oldest other
        dispatched job of its type in its project that is not finished) exists: then it is cancelled
        with a message naming that job. The stores persist the result in one step."""
        if self.project_id != project_id:
            return TaskClaim(ClaimOutcome.OTHER_PROJECT, self)
        if self.job_type is not job_type:
            return TaskClaim(ClaimOutcome.OTHER_TYPE, self)
        if self.status.finished:
            return TaskClaim(ClaimOutcome.FINISHED, self)
        if self.task_id is not None:
            requeued = self.requeued(self.task_id, task_id, stale_before, at)
            if requeued is None:
                return TaskClaim(ClaimOutcome.KEPT, self)
            return TaskClaim(ClaimOutcome.REQUEUED, requeued, previous_task_id=self.task_id)
        if active is not None:
            cancelled = self.finished_as(JobStatus.CANCELLED, active_job_message(active), None, at)
            return TaskClaim(ClaimOutcome.REFUSED, cancelled, active=active)
        return TaskClaim(ClaimOutcome.CLAIMED, replace(self, task_id=task_id, updated_at=at))


class ClaimOutcome(enum.StrEnum):
    """What `Job.dispatched` decided (the SQL function tam_dispatch_job returns the same words)."""

    CLAIMED = "claimed"  # the job took the new task id: enqueue it
    REQUEUED = "requeued"  # running with its attempt gone: the new task id replaced the old one; enqueue it
    KEPT = "kept"  # it has a live task already: nothing to enqueue
    REFUSED = "refused"  # another job of its type is active: this one was cancelled (409 naming that one)
    OTHER_PROJECT = "other_project"  # nothing changed (409)
    OTHER_TYPE = "other_type"  # nothing changed (409)
    FINISHED = "finished"  # nothing changed (409)


@dataclass(frozen=True, slots=True)
class TaskClaim:
    """A dispatch's claim of a task id (`Job.dispatched`): the outcome and the job row as it left it."""

    outcome: ClaimOutcome
    job: Job
    previous_task_id: str | None = None  # REQUEUED: the task id that was replaced
    active: Job | None = None  # REFUSED: the active job of the type

    @property
    def enqueue(self) -> bool:
        return self.outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.REQUEUED)

    def refusal(self, job_type: JobType) -> Conflict | None:
        """The 409 this claim answers (None: it stands); `job_type` is the type the caller asked for."""
        job = self.job
        match self.outcome:
            case ClaimOutcome.OTHER_PROJECT:
                return Conflict(f"job {job.id} belongs to another project")
            case ClaimOutcome.OTHER_TYPE:
                return Conflict(f"job {job.id} is a {job.job_type.value} job, not {job_type.value}")
            case ClaimOutcome.FINISHED:
                return Conflict(f"job {job.id} is already {job.status.value}")
            case ClaimOutcome.REFUSED:
                assert self.active is not None
                return ActiveJobExists(active_job_message(self.active), self.active.id)
        return None


def active_job_message(active: Job) -> str:
    """Why a second job of a type is refused (the SQL functions write the same text)."""
    return f"job {active.id} of type {active.job_type.value} is already {active.status.value} for this project"


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running job, as written to tam_job_queue."""

    items_total: int
    items_done: int
    items_failed: int
    message: str

    @property
    def percent(self) -> int:
        if self.items_total <= 0:
            return 0
        return min(100, (self.items_done + self.items_failed) * 100 // self.items_total)


# --- errors -------------------------------------------------------------------------------------


class TamError(Exception):
    """Root of every error tam raises on purpose; the message is safe to show a user."""


class InvalidInput(TamError):
    """The caller sent something unusable (bad domain, unknown job type, ...)."""


class RejectedValue(InvalidInput):
    """The database refused a value as data (a NUL byte in text, a value too long, a failed check):
    bad input (400), never an outage."""


class NotFound(TamError):
    pass


class Conflict(TamError):
    """The request contradicts the stored state (job of another project, already finished)."""


class ActiveJobExists(Conflict):
    """Another job of the same type is already active for the project."""

    def __init__(self, message: str, job_id: UUID) -> None:
        super().__init__(message)
        self.job_id = job_id


class LeaseLost(TamError):
    """This attempt no longer holds its job: a newer attempt took it over (fencing) and this one stops."""


class InfrastructureError(TamError):
    """The database or the broker cannot be reached right now: weather, not a bug. A job waits it out
    (up to TAM_OUTAGE_TOLERANCE); a request answers 503."""


class StorageUnavailable(InfrastructureError):
    pass


class BrokerUnavailable(InfrastructureError):
    pass


class TimeLimitExceeded(TamError):
    """An attempt ran out of time; the next attempt resumes where it stopped."""


class ProviderError(TamError):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(message)
        self.provider = provider


class TransientProviderError(ProviderError):
    """429, 529, 5xx, timeouts: try again later; never an item failure on its own. `throttled` means
    the provider refused the call for its rate limit (429), which slows down everyone sharing it."""

    def __init__(
        self, provider: str, message: str, *, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after
        self.throttled = throttled


class PermanentItemError(ProviderError):
    """This item cannot be processed (bad input, malformed answer); the job goes on. `usage` is what
    the paid calls that came to nothing cost, so the job's usage still counts it."""

    def __init__(self, provider: str, message: str, *, usage: Usage = NO_USAGE) -> None:
        super().__init__(provider, message)
        self.usage = usage


class CredentialError(ProviderError):
    """401/403/no credits: the job fails at once; `setting` names the variable to fix."""

    def __init__(self, provider: str, message: str, *, setting: str) -> None:
        super().__init__(provider, message)
        self.setting = setting


class ProviderPaused(ProviderError):
    """The pacer holds every call to this provider back for `wait` seconds (a guard against being
    blocked by the vendor); not a failure of any call. The message says why, for the job's message."""

    def __init__(self, provider: str, message: str, *, wait: float) -> None:
        super().__init__(provider, message)
        self.wait = wait


class ProviderOutage(ProviderError):
    """Too many consecutive transient failures: the job fails, unfinished items stay for a retry."""
