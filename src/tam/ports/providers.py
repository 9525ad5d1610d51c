"""Paid provider ports. Each call is one billable request; adapters raise only TamError subclasses:

- TransientProviderError: try again later (429, 529, 5xx, timeout), with `retry_after` when known;
- PermanentItemError: this item cannot be done (bad input, malformed answer after a retry);
- CredentialError: the key or account is unusable; the whole job must stop.

Every result is an `Answer`: besides its value and usage it carries a `RateSignal` (the vendor's
rate-limit headers and what the call really spent), which the pacer learns from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from tam.domain.model import (
    NO_SIGNAL,
    NO_USAGE,
    Company,
    Cost,
    EmailStatus,
    NewCompany,
    Person,
    Project,
    RateSignal,
    Usage,
)


class Answer(Protocol):
    """What every provider port returns: a frozen result with what the call used and its rate signal."""

    @property
    def usage(self) -> Usage: ...

    @property
    def rate(self) -> RateSignal: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    qualified: bool
    reason: str
    usage: Usage = NO_USAGE
    rate: RateSignal = NO_SIGNAL


class LLMQualifier(Protocol):
    async def qualify(self, project: Project, company: Company) -> Verdict:
        """Decide whether `company` fits the project's ICP. Not idempotent on the provider's bill."""
        ...

    def cost(self, project: Project, company: Company) -> Cost:
        """What `qualify` is expected to count against the rate budgets, before it is sent: input
        tokens that count toward the input limit (cache reads excluded) and the output tokens reserved
        (`max_tokens`). The answer's `rate.spent` corrects it afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class DiscoveryQuery:
    icp_text: str
    countries: tuple[str, ...] = ()
    employee_range: str | None = None
    seed_domains: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    max_records: int = 100


@dataclass(frozen=True, slots=True)
class Discovery:
    companies: tuple[NewCompany, ...]
    usage: Usage = NO_USAGE
    rate: RateSignal = NO_SIGNAL


class CompanySource(Protocol):
    async def discover(self, query: DiscoveryQuery) -> Discovery:
        """Companies matching the ICP (or like the seeds), domains normalised, source set."""
        ...


@dataclass(frozen=True, slots=True)
class PeopleFound:
    people: tuple[Person, ...]
    usage: Usage = NO_USAGE
    rate: RateSignal = NO_SIGNAL


class PersonSearch(Protocol):
    async def search(self, project: Project, company: Company, limit: int) -> PeopleFound:
        """At most `limit` people at `company` matching the project's titles and seniorities.
        Nothing found is an empty result, not an error."""
        ...


@dataclass(frozen=True, slots=True)
class EmailFound:
    email: str | None
    status: EmailStatus
    usage: Usage = NO_USAGE
    rate: RateSignal = NO_SIGNAL


class EmailFinder(Protocol):
    async def find_email(self, person: Person, company: Company) -> EmailFound:
        """The person's work email; no match is `EmailStatus.NOT_FOUND`, not an error."""
        ...


@dataclass(frozen=True, slots=True)
class LinkedinTarget:
    contact_id: UUID
    url: str
    company_name: str
    company_domain: str
    company_linkedin_url: str | None = None


@dataclass(frozen=True, slots=True)
class LinkedinCheck:
    """`active` is None when this profile could not be checked (`detail` says why)."""

    contact_id: UUID
    active: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class LinkedinChecks:
    checks: tuple[LinkedinCheck, ...]
    usage: Usage = NO_USAGE
    rate: RateSignal = NO_SIGNAL


class LinkedinChecker(Protocol):
    max_batch: int

    async def check(self, targets: Sequence[LinkedinTarget]) -> LinkedinChecks:
        """One check per target (at most `max_batch` targets per call)."""
        ...


@dataclass(frozen=True, slots=True)
class CallForecast:
    """What one qualify call should use (`expected`) and the most it can use, its own retries
    included (`worst`: every input token at the dearest input rate, every answer at max_tokens)."""

    expected: Usage
    worst: Usage


class UsageForecaster(Protocol):
    def qualify_call(
        self, project: Project, company: Company, *, warm_cache: bool, output_tokens: float | None = None
    ) -> CallForecast:
        """Forecast one qualify call for `company` without making it. `warm_cache`: an earlier call of
        the same job already wrote the shared prompt prefix to the cache. `output_tokens`: the
        output per call measured on earlier jobs, if any (else the adapter's own guess)."""
        ...


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A Message Batch's `request_counts`; `ended` once every request has its result."""

    batch_id: str
    ended: bool
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """One company's result in a batch: a verdict, or `retry` (errored for a passing reason, expired,
    canceled: ask again), or a permanent `error`. `usage` is billed at batch price."""

    company_id: UUID
    verdict: Verdict | None = None
    error: str | None = None
    retry: bool = False
    usage: Usage = NO_USAGE


class BatchQualifier(Protocol):
    max_requests: int

    def capacity(self, project: Project, companies: Sequence[Company]) -> int:
        """How many of `companies`, from the first, one batch can hold (request count and size limits)."""
        ...

    async def submit(self, project: Project, companies: Sequence[Company]) -> str:
        """Create one Message Batch asking about each company (at most `capacity`); its id."""
        ...

    async def progress(self, batch_id: str) -> BatchProgress: ...

    def answers(self, batch_id: str) -> AsyncIterator[BatchAnswer]:
        """The results of an ended batch, streamed (not in request order)."""
        ...

    async def cancel(self, batch_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Vendors:
    """The provider adapters a deployment uses (TAM_PROVIDERS: live or sandbox)."""

    qualifier: LLMQualifier
    company_source: CompanySource
    person_search: PersonSearch
    email_finder: EmailFinder
    linkedin_checker: LinkedinChecker
    forecaster: UsageForecaster  # what a call would use: estimates, and each call's worst case for budgets
    batches: BatchQualifier | None = None  # Message Batches (live only: the sandbox simulates online calls)
