"""Request and response bodies of the HTTP API. Requests are strict (no coercion, no unknown fields)
so that /openapi.json, generated from these models, describes exactly what the app accepts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

from tam.domain.model import (
    CompanySourceKind,
    EmailStatus,
    InvalidInput,
    JobStatus,
    JobType,
    QualificationStatus,
)

JOB_TYPE_SPELLINGS = tuple(t.value for t in JobType) + tuple(t.snake for t in JobType)


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", alias_generator=to_camel, frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


# A plain string, so that an unknown job type gets the design's 422 rather than a validation 400; the
# document still lists the accepted spellings, and `job_type_of` accepts exactly those.
JobTypeText = Annotated[
    str,
    Field(
        description="One of the job types, camelCase or snake_case; anything else is answered with 422.",
        json_schema_extra={"enum": list(JOB_TYPE_SPELLINGS)},
    ),
]


def _integral(value: object) -> object:
    # JSON Schema counts 8.0 as an integer, so the document promises it; strict pydantic would not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _usage_counts(value: object) -> object:
    # A job's Usage arrives as the domain object; the API shows its counts.
    counts = getattr(value, "counts", value)
    return dict(counts) if isinstance(counts, Mapping) else counts


def job_type_of(text: str) -> JobType:
    if text not in JOB_TYPE_SPELLINGS:
        raise InvalidInput(f"unknown jobType {text[:60]!r}; expected one of {', '.join(t.value for t in JobType)}")
    return JobType.parse(text)


Text = Annotated[str, Field(max_length=10_000)]
ShortText = Annotated[str, Field(max_length=500)]


class RunRequest(_Request):
    job_id: UUID
    job_type: JobTypeText
    project_id: UUID


class RunResponse(_Response):
    triggered: bool
    task_id: str


class CreateJobRequest(_Request):
    project_id: UUID
    job_type: JobTypeText
    max_cost_usd: Annotated[
        float | None,
        Field(
            ge=0,
            le=1_000_000,
            description="Budget in US dollars: no call is made whose worst case could take the job past it; "
            "the job then ends failed saying how many items are left, and a later job resumes them",
        ),
    ] = None


class EstimateRequest(_Request):
    project_id: UUID
    job_type: JobTypeText


class EstimateOut(_Response):
    items: Annotated[int, Field(description="Items the job would work on now (e.g. pending companies)")]
    calls: Annotated[int, Field(description="Provider calls it would make (at most, for contact searches)")]
    input_tokens: Annotated[int, Field(description="Claude input tokens, cache reads and writes included")]
    output_tokens: Annotated[int, Field(description="Claude output tokens")]
    credits: Annotated[int, Field(description="Prospeo credits, Bright Data records or DiscoLike records")]
    cost_usd: Annotated[float, Field(description="What that costs in US dollars by the price table")]
    mode: Annotated[str, Field(description="online, or batch (Message Batches at half price) for a qualify")]


class CreatedJob(_Response):
    job_id: UUID
    task_id: str


class JobOut(_Response):
    id: UUID
    project_id: UUID
    job_type: JobType
    status: JobStatus
    progress: int
    items_total: int
    items_done: int
    items_failed: int
    message: str | None
    error: str | None
    task_id: str | None
    attempts: int
    usage: Annotated[
        dict[str, int],
        BeforeValidator(_usage_counts),
        Field(description="Metered provider usage so far: tokens, credits, records, by unit"),
    ] = {}
    max_cost_usd: Annotated[float | None, Field(description="The job's budget in US dollars, if any")] = None
    cost_usd: Annotated[
        float,
        Field(
            description="What the usage cost in US dollars, from the price table (built-in prices per Claude "
            "model, overridable with TAM_PRICES; batch tokens at half price; provider units priced when set)"
        ),
    ] = 0.0
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field(  # type: ignore[prop-decorator]
        description="Share of the job's Claude input tokens (online and batched) that were read from the "
        "prompt cache: cache reads / (uncached input + cache writes + cache reads), 0 to 1; null before any "
        "Claude call"
    )
    @property
    def cache_hit_ratio(self) -> float | None:
        def tokens(kind: str) -> int:  # online and batched calls alike
            return self.usage.get(f"claude_{kind}_tokens", 0) + self.usage.get(f"claude_batch_{kind}_tokens", 0)

        read = tokens("cache_read")
        total = tokens("input") + tokens("cache_write") + read
        return round(read / total, 4) if total else None


class JobList(_Response):
    items: list[JobOut]
    total: int


class CreateProjectRequest(_Request):
    # Not blank (CreateProject's rule, also in the schema so clients see it): some non-space character.
    name: Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S")]
    icp: Annotated[str, Field(max_length=10_000, pattern=r"\S")]
    target_titles: Annotated[list[ShortText], Field(max_length=100)] = []
    target_seniorities: Annotated[list[ShortText], Field(max_length=100)] = []
    countries: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]], Field(max_length=300)] = []
    employee_range: Annotated[str, Field(pattern=r"^\d+,\d+$")] | None = None
    max_contacts_per_company: Annotated[int, Field(ge=1, le=100), BeforeValidator(_integral)] = 3


class ProjectOut(_Response):
    id: UUID
    name: str
    icp: str
    target_titles: list[str]
    target_seniorities: list[str]
    countries: list[str]
    employee_range: str | None
    max_contacts_per_company: int
    created_at: datetime | None


class ProjectList(_Response):
    items: list[ProjectOut]
    total: int


class CompanyCounts(_Response):
    pending: int
    qualified: int
    disqualified: int
    error: int
    total: int


class ContactCounts(_Response):
    total: int
    with_email: int
    linkedin_active: int
    linkedin_inactive: int


class ProjectDetail(ProjectOut):
    companies: CompanyCounts
    contacts: ContactCounts


class CompanyIn(_Request):
    name: ShortText
    domain: ShortText | None
    description: Text | None = None
    country: ShortText | None = None
    employee_range: ShortText | None = None
    linkedin_url: ShortText | None = None


class Rejected(_Response):
    domain: str
    reason: str


class ImportOut(_Response):
    inserted: int
    skipped: int
    rejected: list[Rejected]


class CompanyOut(_Response):
    id: UUID
    project_id: UUID
    name: str
    domain: str
    source: CompanySourceKind
    description: str | None
    country: str | None
    employee_range: str | None
    linkedin_url: str | None
    similarity: float | None
    qualification_status: QualificationStatus
    qualification_reason: str | None
    qualified_at: datetime | None
    contacts_searched_at: datetime | None
    created_at: datetime | None


class CompanyPageOut(_Response):
    items: list[CompanyOut]
    total: int


class ContactOut(_Response):
    id: UUID
    project_id: UUID
    company_id: UUID
    full_name: str
    first_name: str | None
    last_name: str | None
    title: str | None
    linkedin_url: str | None
    email: str | None
    email_status: EmailStatus | None
    linkedin_active: bool | None
    linkedin_checked_at: datetime | None
    linkedin_detail: str | None
    created_at: datetime | None


class ContactPageOut(_Response):
    items: list[ContactOut]
    total: int


class Health(_Response):
    status: str


class Readiness(_Response):
    status: str
    database: str
    broker: str


class Error(_Response):
    error: str
    # With 409 when another job of the same type is already active for the project: that job's id.
    job_id: UUID | None = None


# Query strings arrive as text, so these are validated leniently (a numeric string is a number).
class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, frozen=True)


class Page(_Query):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0


Search = Annotated[
    str | None,
    # No NUL: PostgreSQL text cannot hold one, so it is a 400 here rather than a storage error.
    Field(
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="Only rows containing this text (case-insensitive); blank: no search",
    ),
]


class CompanyQuery(Page):
    status: QualificationStatus | None = None
    q: Annotated[Search, Field(description="Only companies whose name or domain contains this text")] = None


class ContactQuery(Page):
    email_status: EmailStatus | None = None
    q: Annotated[Search, Field(description="Only contacts whose name, title or email contains this text")] = None


class JobQuery(_Query):
    project_id: UUID | None = None
