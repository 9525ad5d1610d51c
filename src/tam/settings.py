"""Configuration from the environment (design section 6)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tam.domain.model import InvalidInput, JobType, Provider, RateLimits
from tam.domain.pricing import PriceTable
from tam.domain.services.dispatch import AttemptPolicy
from tam.domain.services.estimate import EstimateSettings
from tam.domain.services.runner import RunnerSettings

BATCH_TIME_LIMIT = 25 * 3600.0  # a Message Batch expires 24 h after it is created


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    service_api_key: SecretStr | None = None

    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    tam_claude_model: str = "claude-sonnet-5-5"
    # output_config.effort on models that take it; a model without the level gets the next lower one.
    tam_claude_effort: Literal["low", "medium", "high", "xhigh", "max"] = "low"
    prospeo_api_key: SecretStr | None = None
    prospeo_base_url: str = "https://api.prospeo.io"
    bright_data_api_key: SecretStr | None = None
    bright_data_base_url: str = "https://api.brightdata.com"
    bright_data_dataset_id: str = "gd_l1viktl72bvl7bjuj0"
    discolike_api_key: SecretStr | None = None
    discolike_base_url: str = "https://api.discolike.com/v1"

    tam_store: Literal["sqlite", "postgres", "supabase", "memory"] = "sqlite"
    tam_sqlite_path: str = "./tam.db"
    database_url: SecretStr | None = None
    supabase_url: str | None = None
    supabase_service_role_key: SecretStr | None = None
    redis_url: SecretStr | None = None
    # Seconds without a heartbeat before a worker counts as dead and its jobs go to another worker.
    tam_worker_heartbeat_timeout: float = Field(15, ge=2, le=600)
    # Seconds a job waits out a database or Redis outage (results held, writes retried) before its
    # attempt ends, leaving the job to resume.
    tam_outage_tolerance: float = Field(600, ge=0)

    tam_providers: Literal["live", "sandbox"] = "live"
    tam_sandbox_seed: int = 7
    tam_sandbox_latency: float = Field(0.3, ge=0)  # mean seconds per simulated call
    tam_sandbox_fault_rate: float = Field(0.0, ge=0, le=1)

    tam_source_companies_concurrency: int = Field(1, ge=1)
    tam_source_companies_time_limit: float = Field(300, gt=0)
    tam_source_companies_max_records: int = Field(150, ge=5, le=10_000)
    tam_qualify_concurrency: int = Field(10, ge=1)
    tam_qualify_time_limit: float = Field(600, gt=0)
    tam_find_contacts_concurrency: int = Field(5, ge=1)
    tam_find_contacts_enrich_concurrency: int = Field(10, ge=1)
    tam_find_contacts_time_limit: float = Field(1800, gt=0)
    tam_check_linkedin_concurrency: int = Field(5, ge=1)
    tam_check_linkedin_time_limit: float = Field(1800, gt=0)
    tam_refine_discolike_concurrency: int = Field(1, ge=1)
    tam_refine_discolike_time_limit: float = Field(300, gt=0)
    tam_refine_discolike_max_records: int = Field(50, ge=5, le=10_000)

    # online: one Messages call per company; batch: Message Batches at half price; auto: batch from
    # tam_qualify_batch_min pending companies.
    tam_qualify_mode: Literal["online", "batch", "auto"] = "auto"
    tam_qualify_batch_min: int = Field(1000, ge=1)
    tam_qualify_batch_poll: float = Field(30.0, gt=0, le=3600)  # seconds between looks at a running batch

    # JSON overriding the built-in price table (tam.domain.pricing): per model USD per million tokens,
    # per provider USD per unit (Prospeo credit, Bright Data record, DiscoLike record).
    tam_prices: str | None = None

    @field_validator("tam_prices")
    @classmethod
    def _valid_prices(cls, value: str | None) -> str | None:
        if value:
            try:
                PriceTable.parse("", json.loads(value))
            except ValueError as exc:
                raise ValueError(f"not JSON ({exc})") from None
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    def prices(self) -> PriceTable:
        return PriceTable.parse(self.tam_claude_model, json.loads(self.tam_prices) if self.tam_prices else None)

    def required(self, name: str, reason: str) -> str:
        """A setting this configuration needs (a URL, a key), or InvalidInput naming its variable."""
        value = getattr(self, name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not text:
            raise InvalidInput(f"{name.upper()} is not set ({reason})")
        return str(text)

    def estimate_settings(self) -> EstimateSettings:
        return EstimateSettings(
            batch_available=self.tam_providers == "live",
            qualify_mode=self.tam_qualify_mode,
            batch_min=self.tam_qualify_batch_min,
            source_max_records=self.tam_source_companies_max_records,
            refine_max_records=self.tam_refine_discolike_max_records,
        )

    def runner_settings(self) -> RunnerSettings:
        # a worker paused for a third of the heartbeat timeout checks its lease before another paid call
        hb = self.tam_worker_heartbeat_timeout
        return RunnerSettings(outage_tolerance=self.tam_outage_tolerance, lease_check_after=hb / 3)

    def attempt_policy(self) -> AttemptPolicy:
        return AttemptPolicy(
            heartbeat_timeout=self.tam_worker_heartbeat_timeout, outage_tolerance=self.tam_outage_tolerance
        )

    # Rate budgets per minute. Unset: learned from the vendor's rate-limit headers (Claude, Prospeo),
    # or none (Bright Data, DiscoLike: calls in flight and 429s still pace them).
    tam_claude_rpm: float | None = Field(None, gt=0)
    tam_claude_input_tpm: float | None = Field(None, gt=0)
    tam_claude_output_tpm: float | None = Field(None, gt=0)
    tam_prospeo_rpm: float | None = Field(None, gt=0)
    tam_bright_data_rpm: float | None = Field(None, gt=0)
    tam_discolike_rpm: float | None = Field(None, gt=0)

    def time_limit(self, job_type: JobType) -> float:
        limit = float(getattr(self, f"tam_{job_type.snake}_time_limit"))
        # A qualify that may run as a Message Batch waits on it for up to 24 h (then the batch expires):
        # unless TAM_QUALIFY_TIME_LIMIT is set, its attempts get that long.
        batches = job_type is JobType.QUALIFY and self.tam_qualify_mode != "online"
        if batches and "tam_qualify_time_limit" not in self.model_fields_set:
            return max(limit, BATCH_TIME_LIMIT)
        return limit

    def concurrency(self, provider: Provider) -> int:
        return {
            Provider.CLAUDE: self.tam_qualify_concurrency,
            Provider.PROSPEO_SEARCH: self.tam_find_contacts_concurrency,
            Provider.PROSPEO_ENRICH: self.tam_find_contacts_enrich_concurrency,
            Provider.BRIGHTDATA: self.tam_check_linkedin_concurrency,
            Provider.DISCOLIKE: max(self.tam_source_companies_concurrency, self.tam_refine_discolike_concurrency),
        }[provider]

    def rate_limits(self, provider: Provider) -> RateLimits:
        """The configured per-minute budgets of a provider (Prospeo's apply to search and enrich each,
        as its plans limit each endpoint group)."""
        return {
            Provider.CLAUDE: RateLimits(self.tam_claude_rpm, self.tam_claude_input_tpm, self.tam_claude_output_tpm),
            Provider.PROSPEO_SEARCH: RateLimits(self.tam_prospeo_rpm),
            Provider.PROSPEO_ENRICH: RateLimits(self.tam_prospeo_rpm),
            Provider.BRIGHTDATA: RateLimits(self.tam_bright_data_rpm),
            Provider.DISCOLIKE: RateLimits(self.tam_discolike_rpm),
        }[provider]


class ConfigurationError(Exception):
    """A setting is missing or has a value tam cannot use; the message names the variable."""


_URL_SCHEMES = {"database_url": ("postgresql://", "postgres://"), "redis_url": ("redis://", "rediss://", "unix://")}


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment, checked as a whole: one ConfigurationError naming the
    variable and its bad value (never a secret's value) instead of pydantic's report or a later
    traceback."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(describe_invalid(exc)) from None
    for name, schemes in _URL_SCHEMES.items():
        value = getattr(settings, name)
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith(schemes):
            raise ConfigurationError(f"{name.upper()} must start with {' or '.join(schemes)}")
    if settings.tam_store == "postgres" and not _given(settings.database_url):
        raise ConfigurationError("TAM_STORE=postgres needs DATABASE_URL (a postgresql:// connection string)")
    return settings


def _given(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value())


def describe_invalid(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    field = Settings.model_fields.get(name.lower())
    secret = field is not None and "SecretStr" in str(field.annotation)
    shown = "" if secret else f"={first.get('input')!r}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "literal_error":
        message = message.replace("Input should be", "expected")
    return f"{name}{shown}: {message}"
