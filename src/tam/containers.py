"""The composition root: the only module that knows the concrete adapters."""

from __future__ import annotations

from dependency_injector import containers, providers

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
from tam.adapters.sandbox import (
    SandboxBehaviour,
    SandboxCompanySource,
    SandboxEmailFinder,
    SandboxLinkedinChecker,
    SandboxPersonSearch,
    SandboxQualifier,
)
from tam.domain.model import JobType, Provider
from tam.domain.services.contacts import FindContacts
from tam.domain.services.discover import RefineDiscolike, SourceCompanies
from tam.domain.services.dispatch import DispatchJob, ExecuteJob
from tam.domain.services.linkedin import CheckLinkedin
from tam.domain.services.projects import ImportCompanies
from tam.domain.services.qualify import QualifyCompanies
from tam.domain.services.runner import JobRunner, RunnerSettings
from tam.settings import Settings


def _redis_url(settings: Settings) -> str | None:
    return settings.redis_url.get_secret_value() if settings.redis_url else None


def _capacities(settings: Settings) -> dict[str, int]:
    return {p.value: settings.concurrency(p) for p in Provider}


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    store_kind = providers.Callable(lambda s: s.tam_store, settings)
    providers_kind = providers.Callable(lambda s: s.tam_providers, settings)

    clock = providers.Singleton(SystemClock)
    runner_settings = providers.Object(RunnerSettings())

    # --- storage ---------------------------------------------------------------------------
    memory_db = providers.Singleton(MemoryDatabase)
    projects = providers.Selector(store_kind, memory=providers.Singleton(MemoryProjectRepo, memory_db))
    companies = providers.Selector(store_kind, memory=providers.Singleton(MemoryCompanyRepo, memory_db))
    contacts = providers.Selector(store_kind, memory=providers.Singleton(MemoryContactRepo, memory_db))
    jobs = providers.Selector(store_kind, memory=providers.Singleton(MemoryJobRepo, memory_db))

    # --- providers ---------------------------------------------------------------------------
    sandbox = providers.Singleton(
        SandboxBehaviour,
        clock=clock,
        seed=settings.provided.tam_sandbox_seed,
        latency=settings.provided.tam_sandbox_latency,
        fault_rate=settings.provided.tam_sandbox_fault_rate,
    )
    qualifier = providers.Selector(providers_kind, sandbox=providers.Singleton(SandboxQualifier, sandbox))
    company_source = providers.Selector(providers_kind, sandbox=providers.Singleton(SandboxCompanySource, sandbox))
    person_search = providers.Selector(providers_kind, sandbox=providers.Singleton(SandboxPersonSearch, sandbox))
    email_finder = providers.Selector(providers_kind, sandbox=providers.Singleton(SandboxEmailFinder, sandbox))
    linkedin_checker = providers.Selector(providers_kind, sandbox=providers.Singleton(SandboxLinkedinChecker, sandbox))
    limiter = providers.Singleton(LocalLimiter, providers.Callable(_capacities, settings))

    # --- use cases ---------------------------------------------------------------------------
    progress = providers.Singleton(StoreProgressSink, jobs)
    steps = providers.Dict(
        {
            JobType.SOURCE_COMPANIES: providers.Factory(
                SourceCompanies, companies, company_source, settings.provided.tam_source_companies_max_records
            ),
            JobType.QUALIFY: providers.Factory(
                QualifyCompanies, companies, qualifier, clock, settings.provided.tam_qualify_concurrency
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
    runner = providers.Factory(JobRunner, jobs, projects, steps, limiter, progress, clock, runner_settings)
    import_companies = providers.Factory(ImportCompanies, companies)

    # --- dispatch: Dramatiq on Redis when REDIS_URL is set, else jobs run in this process -----
    dispatch_kind = providers.Callable(lambda s: "redis" if s.redis_url else "inprocess", settings)
    broker = providers.Singleton(build_redis_broker, providers.Callable(_redis_url, settings))
    actor_names = providers.Object(ACTOR_NAMES)
    queue_name = providers.Object(QUEUE)
    execute_job = providers.Factory(ExecuteJob, jobs, runner, clock)
    dispatcher = providers.Selector(
        dispatch_kind,
        redis=providers.Singleton(DramatiqJobDispatcher, broker),
        inprocess=providers.Singleton(InProcessJobDispatcher, execute_job, settings.provided.time_limit),
    )
    dispatch_job = providers.Factory(DispatchJob, jobs, projects, dispatcher, clock)


def build_container(settings: Settings | None = None) -> Container:
    return Container(settings=settings or Settings())
