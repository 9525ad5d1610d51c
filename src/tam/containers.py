"""The composition root: the only module that knows the concrete adapters."""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from dependency_injector import containers, providers

from tam.adapters.brightdata import BrightDataLinkedinChecker
from tam.adapters.claude import ClaudeQualifier
from tam.adapters.claude_batches import ClaudeBatchQualifier
from tam.adapters.claude_forecast import ClaudeUsageForecaster
from tam.adapters.discolike import DiscolikeCompanySource
from tam.adapters.dramatiq_dispatch import ACTOR_NAMES, QUEUE, DramatiqJobDispatcher, build_redis_broker
from tam.adapters.inprocess_dispatch import InProcessJobDispatcher
from tam.adapters.memory import (
    LocalLimiter,
    MemoryCompanyRepo,
    MemoryContactRepo,
    MemoryDatabase,
    MemoryJobRepo,
    MemoryProjectRepo,
    StoreProgressSink,
    SystemClock,
)
from tam.adapters.metrics import PrometheusCallObserver, PrometheusExposition, forget_dead_processes
from tam.adapters.pacer import Pace
from tam.adapters.postgres import (
    PostgresCompanyRepo,
    PostgresContactRepo,
    PostgresJobRepo,
    PostgresMigrator,
    PostgresProjectRepo,
    postgres_pool,
)
from tam.adapters.prospeo import ProspeoEmailFinder, ProspeoPersonSearch
from tam.adapters.redis_limiter import RedisLimiter
from tam.adapters.sandbox import (
    SandboxBehaviour,
    SandboxCompanySource,
    SandboxEmailFinder,
    SandboxLinkedinChecker,
    SandboxPersonSearch,
    SandboxQualifier,
    SandboxUsageForecaster,
)
from tam.adapters.sqlite import (
    SqliteCompanyRepo,
    SqliteContactRepo,
    SqliteJobRepo,
    SqliteMigrator,
    SqliteProjectRepo,
    sqlite_database,
)
from tam.adapters.supabase import (
    SupabaseCompanyRepo,
    SupabaseContactRepo,
    SupabaseJobRepo,
    SupabaseProjectRepo,
    supabase_client,
)
from tam.domain.model import InvalidInput, Job, JobType, Provider
from tam.domain.services.contacts import FindContacts
from tam.domain.services.discover import RefineDiscolike, SourceCompanies
from tam.domain.services.dispatch import AttemptEnd, AttemptPolicy, DispatchJob, JobAttempt, StaleJobSweep
from tam.domain.services.estimate import EstimateJob, EstimateSettings
from tam.domain.services.linkedin import CheckLinkedin
from tam.domain.services.projects import CreateProject, ImportCompanies
from tam.domain.services.qualify import QualifyCompanies
from tam.domain.services.runner import JobRunner, RunnerSettings
from tam.logs import JobCallTally, JobLogContext
from tam.settings import Settings


def _redis_url(settings: Settings) -> str | None:
    return settings.redis_url.get_secret_value() if settings.redis_url else None


def _database_url(settings: Settings) -> str:
    if settings.database_url is None or not settings.database_url.get_secret_value():
        raise InvalidInput(f"DATABASE_URL is not set (needed with TAM_STORE={settings.tam_store})")
    return settings.database_url.get_secret_value()


# Storage resources open on the running event loop (`await container.init_resources()`); each is
# None unless TAM_STORE selects it, so initialising every resource opens only the configured store.
async def _sqlite_database(settings: Settings) -> AsyncIterator[Any]:
    if settings.tam_store != "sqlite":
        yield None
        return
    await SqliteMigrator(settings.tam_sqlite_path).run()  # the embedded store keeps its own schema current
    async with sqlite_database(settings.tam_sqlite_path) as db:
        yield db


async def _postgres_pool(settings: Settings) -> AsyncIterator[Any]:
    if settings.tam_store != "postgres":
        yield None
        return
    async with postgres_pool(_database_url(settings)) as pool:
        yield pool


async def _supabase_client(settings: Settings) -> AsyncIterator[Any]:
    if settings.tam_store != "supabase":
        yield None
        return
    key = settings.supabase_service_role_key
    if not settings.supabase_url or key is None or not key.get_secret_value():
        raise InvalidInput("SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY must be set with TAM_STORE=supabase")
    async with supabase_client(settings.supabase_url, key.get_secret_value()) as client:
        yield client


async def _closing(adapter: Any) -> AsyncIterator[Any]:
    """A client-owning adapter as a resource: its connections close with the container."""
    try:
        yield adapter
    finally:
        await adapter.aclose()


def _claude_forecaster(settings: Settings) -> ClaudeUsageForecaster:
    """Forecasts from the requests a ClaudeQualifier of these settings would send (it makes no call)."""
    qualifier = ClaudeQualifier(api_key=None, model=settings.tam_claude_model, effort=settings.tam_claude_effort)
    # One retry may follow an answer cut at max_tokens, with twice the room (ClaudeQualifier.qualify).
    return ClaudeUsageForecaster(
        lambda project, company, retry: qualifier.request_params(project, company, attempt=retry), bigger_retries=1
    )


def _claude_batches(settings: Settings) -> ClaudeBatchQualifier:
    """Message Batches with the very requests and answer reading of the online ClaudeQualifier."""
    qualifier = ClaudeQualifier(api_key=None, model=settings.tam_claude_model)
    return ClaudeBatchQualifier(qualifier, api_key=settings.anthropic_api_key, base_url=settings.anthropic_base_url)


def _no_batches() -> None:
    return None  # the sandbox simulates online calls only


def _estimate_settings(settings: Settings) -> EstimateSettings:
    return EstimateSettings(
        batch_available=settings.tam_providers == "live",
        qualify_mode=settings.tam_qualify_mode,
        batch_min=settings.tam_qualify_batch_min,
        source_max_records=settings.tam_source_companies_max_records,
        refine_max_records=settings.tam_refine_discolike_max_records,
    )


# Bright Data blocks an IP that gets 25 or more 429s within 5 minutes, until support lifts it
# (docs.brightdata.com/products/scrapers/limits): we stop well before, across every worker.
BRIGHT_DATA_GUARD = (10, 300.0)
_GUARD_REASON = (
    "Bright Data answered {most} 429s (too many requests) within {minutes:g} minutes; calls to it are paused "
    "so that it does not block this IP (it blocks at 25)"
)


def paces(settings: Settings) -> dict[str, Pace]:
    """How each provider is paced: calls in flight, per-minute budgets, learning, refusal guard."""
    out = {}
    for p in Provider:
        guard = BRIGHT_DATA_GUARD if p is Provider.BRIGHTDATA else None
        reason = _GUARD_REASON.format(most=guard[0], minutes=guard[1] / 60) if guard else ""
        learns = p in (Provider.CLAUDE, Provider.PROSPEO_SEARCH, Provider.PROSPEO_ENRICH)  # limits in headers
        out[p.value] = Pace(settings.concurrency(p), settings.rate_limits(p), learns, guard, reason)
    return out


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    store_kind = providers.Callable(lambda s: s.tam_store, settings)
    providers_kind = providers.Callable(lambda s: s.tam_providers, settings)

    clock = providers.Singleton(SystemClock)
    prices = providers.Singleton(Settings.prices, settings)  # turns a job's usage into dollars
    runner_settings = providers.Factory(
        lambda s: RunnerSettings(
            outage_tolerance=s.tam_outage_tolerance, lease_check_after=s.tam_worker_heartbeat_timeout / 3
        ),
        settings,
    )
    attempt_policy = providers.Factory(
        lambda s: AttemptPolicy(
            heartbeat_timeout=s.tam_worker_heartbeat_timeout, outage_tolerance=s.tam_outage_tolerance
        ),
        settings,
    )
    heartbeat_timeout = providers.Callable(lambda s: s.tam_worker_heartbeat_timeout, settings)

    # --- storage ---------------------------------------------------------------------------
    memory_db = providers.Singleton(MemoryDatabase)
    sqlite_db = providers.Resource(_sqlite_database, settings)
    postgres_pool = providers.Resource(_postgres_pool, settings)
    supabase_client = providers.Resource(_supabase_client, settings)
    projects = providers.Selector(
        store_kind,
        memory=providers.Singleton(MemoryProjectRepo, memory_db),
        sqlite=providers.Singleton(SqliteProjectRepo, sqlite_db),
        postgres=providers.Singleton(PostgresProjectRepo, postgres_pool),
        supabase=providers.Singleton(SupabaseProjectRepo, supabase_client),
    )
    companies = providers.Selector(
        store_kind,
        memory=providers.Singleton(MemoryCompanyRepo, memory_db),
        sqlite=providers.Singleton(SqliteCompanyRepo, sqlite_db),
        postgres=providers.Singleton(PostgresCompanyRepo, postgres_pool),
        supabase=providers.Singleton(SupabaseCompanyRepo, supabase_client),
    )
    contacts = providers.Selector(
        store_kind,
        memory=providers.Singleton(MemoryContactRepo, memory_db),
        sqlite=providers.Singleton(SqliteContactRepo, sqlite_db),
        postgres=providers.Singleton(PostgresContactRepo, postgres_pool),
        supabase=providers.Singleton(SupabaseContactRepo, supabase_client),
    )
    jobs = providers.Selector(
        store_kind,
        memory=providers.Singleton(MemoryJobRepo, memory_db),
        sqlite=providers.Singleton(SqliteJobRepo, sqlite_db),
        postgres=providers.Singleton(PostgresJobRepo, postgres_pool),
        supabase=providers.Singleton(SupabaseJobRepo, supabase_client),
    )
    # `tam migrate`: Supabase's schema is the same SQL, applied through its Postgres connection string.
    migrator = providers.Selector(
        store_kind,
        sqlite=providers.Factory(SqliteMigrator, settings.provided.tam_sqlite_path),
        postgres=providers.Factory(PostgresMigrator, providers.Callable(_database_url, settings)),
        supabase=providers.Factory(PostgresMigrator, providers.Callable(_database_url, settings)),
    )

    # --- providers ---------------------------------------------------------------------------
    sandbox = providers.Singleton(
        SandboxBehaviour,
        clock=clock,
        seed=settings.provided.tam_sandbox_seed,
        latency=settings.provided.tam_sandbox_latency,
        fault_rate=settings.provided.tam_sandbox_fault_rate,
    )
    # Live adapters are built without checking keys: a missing key fails the first call (and so
    # only the job that needs it) with a CredentialError naming the variable.
    qualifier = providers.Selector(
        providers_kind,
        sandbox=providers.Singleton(SandboxQualifier, sandbox),
        live=providers.Resource(
            _closing,
            providers.Factory(
                ClaudeQualifier,
                api_key=settings.provided.anthropic_api_key,
                model=settings.provided.tam_claude_model,
                effort=settings.provided.tam_claude_effort,
                base_url=settings.provided.anthropic_base_url,
                concurrency=settings.provided.tam_qualify_concurrency,
            ),
        ),
    )
    company_source = providers.Selector(
        providers_kind,
        sandbox=providers.Singleton(SandboxCompanySource, sandbox),
        live=providers.Resource(
            _closing,
            providers.Factory(
                DiscolikeCompanySource,
                api_key=settings.provided.discolike_api_key,
                base_url=settings.provided.discolike_base_url,
                concurrency=settings.provided.tam_source_companies_concurrency,
            ),
        ),
    )
    person_search = providers.Selector(
        providers_kind,
        sandbox=providers.Singleton(SandboxPersonSearch, sandbox),
        live=providers.Resource(
            _closing,
            providers.Factory(
                ProspeoPersonSearch,
                api_key=settings.provided.prospeo_api_key,
                base_url=settings.provided.prospeo_base_url,
                concurrency=settings.provided.tam_find_contacts_concurrency,
            ),
        ),
    )
    email_finder = providers.Selector(
        providers_kind,
        sandbox=providers.Singleton(SandboxEmailFinder, sandbox),
        live=providers.Resource(
            _closing,
            providers.Factory(
                ProspeoEmailFinder,
                api_key=settings.provided.prospeo_api_key,
                base_url=settings.provided.prospeo_base_url,
                concurrency=settings.provided.tam_find_contacts_enrich_concurrency,
            ),
        ),
    )
    linkedin_checker = providers.Selector(
        providers_kind,
        sandbox=providers.Singleton(SandboxLinkedinChecker, sandbox),
        live=providers.Resource(
            _closing,
            providers.Factory(
                BrightDataLinkedinChecker,
                api_key=settings.provided.bright_data_api_key,
                base_url=settings.provided.bright_data_base_url,
                dataset_id=settings.provided.bright_data_dataset_id,
                concurrency=settings.provided.tam_check_linkedin_concurrency,
            ),
        ),
    )
    batch_qualifier = providers.Selector(
        providers_kind,
        sandbox=providers.Callable(_no_batches),
        live=providers.Resource(_closing, providers.Factory(_claude_batches, settings)),
    )
    forecaster = providers.Selector(
        providers_kind,
        sandbox=providers.Singleton(SandboxUsageForecaster),
        live=providers.Singleton(_claude_forecaster, settings),
    )
    # Limits hold across every worker process when REDIS_URL is set, else within this one.
    limiter_kind = providers.Callable(lambda s: "redis" if s.redis_url else "local", settings)
    limiter = providers.Selector(
        limiter_kind,
        redis=providers.Resource(
            _closing,
            providers.Factory(RedisLimiter, settings.provided.redis_url, providers.Callable(paces, settings)),
        ),
        local=providers.Singleton(LocalLimiter, providers.Callable(paces, settings)),
    )

    # --- use cases ---------------------------------------------------------------------------
    progress = providers.Singleton(StoreProgressSink, jobs)
    steps = providers.Dict(
        {
            JobType.SOURCE_COMPANIES: providers.Factory(
                SourceCompanies, companies, company_source, settings.provided.tam_source_companies_max_records
            ),
            JobType.QUALIFY: providers.Factory(
                QualifyCompanies,
                companies,
                qualifier,
                clock,
                settings.provided.tam_qualify_concurrency,
                forecaster=forecaster,
                batches=batch_qualifier,
                jobs=jobs,
                mode=settings.provided.tam_qualify_mode,
                batch_min=settings.provided.tam_qualify_batch_min,
                poll_interval=settings.provided.tam_qualify_batch_poll,
            ),
            JobType.FIND_CONTACTS: providers.Factory(
                FindContacts,
                companies,
                contacts,
                person_search,
                email_finder,
                clock,
                settings.provided.tam_find_contacts_concurrency,
                settings.provided.tam_find_contacts_enrich_concurrency,
            ),
            JobType.CHECK_LINKEDIN: providers.Factory(
                CheckLinkedin,
                contacts,
                companies,
                linkedin_checker,
                clock,
                settings.provided.tam_check_linkedin_concurrency,
            ),
            JobType.REFINE_DISCOLIKE: providers.Factory(
                RefineDiscolike, companies, company_source, settings.provided.tam_refine_discolike_max_records
            ),
        }
    )
    # --- metrics: provider calls counted where they happen; PROMETHEUS_MULTIPROC_DIR (prometheus_client's
    # own variable) makes every process on the host write there and /metrics sum them.
    call_observer = providers.Singleton(
        PrometheusCallObserver, providers.Callable(os.environ.get, "PROMETHEUS_MULTIPROC_DIR")
    )
    metrics = providers.Factory(PrometheusExposition, call_observer, jobs, prices)

    # the runner's calls also count towards the attempt's summary line (tam.logs.JobCallTally)
    runner = providers.Factory(
        JobRunner,
        jobs,
        projects,
        steps,
        limiter,
        progress,
        clock,
        runner_settings,
        providers.Singleton(JobCallTally, call_observer),
        prices=prices,
    )
    import_companies = providers.Factory(ImportCompanies, companies)
    create_project = providers.Factory(CreateProject, projects)
    estimate_job = providers.Factory(
        EstimateJob,
        projects,
        companies,
        contacts,
        jobs,
        forecaster,
        prices,
        providers.Callable(_estimate_settings, settings),
    )

    # --- dispatch: Dramatiq on Redis when REDIS_URL is set, else jobs run in this process -----
    dispatch_kind = providers.Callable(lambda s: "redis" if s.redis_url else "inprocess", settings)
    broker = providers.Singleton(
        build_redis_broker,
        providers.Callable(_redis_url, settings),
        providers.Callable(lambda s: int(s.tam_worker_heartbeat_timeout * 1000), settings),
    )
    actor_names = providers.Object(ACTOR_NAMES)
    queue_name = providers.Object(QUEUE)
    # One delivery of a job (built fresh per delivery: its runner's steps hold that attempt's buffers).
    # It runs with job_id/project_id/job_type/attempt on every log line, and logs when its attempt
    # starts or resumes and ends (tam.logs).
    job_attempt = providers.Factory(
        JobLogContext, providers.Factory(JobAttempt, jobs, runner, clock, attempt_policy), jobs, heartbeat_timeout
    )
    dispatcher = providers.Selector(
        dispatch_kind,
        redis=providers.Singleton(DramatiqJobDispatcher, broker),
        inprocess=providers.Singleton(InProcessJobDispatcher, job_attempt.provider, settings.provided.time_limit),
    )
    dispatch_job = providers.Factory(
        DispatchJob, jobs, projects, dispatcher, clock, heartbeat_timeout=heartbeat_timeout
    )
    # jobs whose attempt vanished (no heartbeat for the timeout) are enqueued again: `tam worker` sweeps
    # periodically, embedded `tam serve` too
    stale_job_sweep = providers.Factory(StaleJobSweep, jobs, dispatch_job, clock, heartbeat_timeout)


async def provide(provider: Any) -> Any:
    """Call a provider; with an async resource (a database pool) in its graph the result is awaitable."""
    value = provider()
    if inspect.isawaitable(value):
        value = await value
    return value


async def run_job(container: Container, job_id: UUID, time_limit: float | None = None) -> Job:
    """Run a job to its end in this process (the demo, benchmarks, tests), attempt after attempt, the
    way a worker would, and return its row."""
    for _ in range(10):
        attempt = await provide(container.job_attempt)
        if (await attempt(job_id, time_limit, None)).end is not AttemptEnd.RETRY:
            break
    jobs = await provide(container.jobs)
    return await jobs.get(job_id)  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def resources_open(container: Container) -> AsyncIterator[Container]:
    """Open the container's resources (database pool or file) on the running loop, close them after."""
    started = container.init_resources()
    if inspect.isawaitable(started):
        await started
    try:
        yield container
    finally:
        stopped = container.shutdown_resources()
        if inspect.isawaitable(stopped):
            await stopped


def build_container(settings: Settings | None = None) -> Container:
    return Container(settings=settings or Settings())


def forget_exited_processes() -> None:
    """After `tam worker`'s processes have exited: drop their calls in flight from /metrics
    (PROMETHEUS_MULTIPROC_DIR), which a scrape would otherwise do only at the next scrape."""
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        forget_dead_processes(directory)
