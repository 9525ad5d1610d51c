"""The composition root: the only module that knows the concrete adapters. `open_services(settings)`
opens the configured store and vendor clients on the running event loop, wires every use case once,
and yields them as one frozen `Services`; entrypoints take what they need from it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

# Only these adapters are imported with the module; a store's, a dispatcher's or a live vendor's adapter
# (supabase, asyncpg, redis, dramatiq, the Claude SDK...) only when the settings select it, so a
# `tam` command does not pay a second of imports for clients it never opens.
from tam.adapters import memory, sandbox
from tam.adapters.inprocess_dispatch import InProcessJobDispatcher
from tam.adapters.metrics import PrometheusCallObserver, PrometheusExposition, forget_exited_processes
from tam.adapters.pacer import paces
from tam.domain.model import Job, JobType
from tam.domain.pricing import PriceTable
from tam.domain.services.contacts import FindContacts
from tam.domain.services.discover import RefineDiscolike, SourceCompanies
from tam.domain.services.dispatch import AttemptEnd, AttemptResult, DispatchJob, JobAttempt, StaleJobSweep
from tam.domain.services.estimate import EstimateJob
from tam.domain.services.linkedin import CheckLinkedin
from tam.domain.services.projects import CreateProject, ImportCompanies
from tam.domain.services.qualify import QualifyCompanies
from tam.domain.services.runner import JobRunner, RunnerSettings
from tam.domain.services.step import Step
from tam.logs import JobCallTally, JobLogContext
from tam.ports.providers import Vendors
from tam.ports.runtime import Clock, JobDispatcher, Pacer
from tam.ports.storage import Store
from tam.settings import Settings

if TYPE_CHECKING:
    from tam.adapters.postgres import PostgresMigrator
    from tam.adapters.sqlite import SqliteMigrator

__all__ = ["Services", "dramatiq_routes", "forget_exited_processes", "migrator", "open_services", "run_job"]
A = TypeVar("A")


def open_store(s: Settings) -> AbstractAsyncContextManager[Store]:
    """The store TAM_STORE names, its connection opened on the running loop."""
    need = f"needed with TAM_STORE={s.tam_store}"
    if s.tam_store == "memory":
        return memory.open_store()
    if s.tam_store == "sqlite":
        from tam.adapters import sqlite

        return sqlite.open_store(s.tam_sqlite_path)
    if s.tam_store == "postgres":
        from tam.adapters import postgres

        return postgres.open_store(s.required("database_url", need))
    from tam.adapters import supabase

    return supabase.open_store(s.required("supabase_url", need), s.required("supabase_service_role_key", need))


def migrator(s: Settings) -> SqliteMigrator | PostgresMigrator:
    """`tam migrate`: Supabase's schema is the same SQL, applied through its Postgres connection string."""
    if s.tam_store == "sqlite":
        from tam.adapters.sqlite import SqliteMigrator

        return SqliteMigrator(s.tam_sqlite_path)
    from tam.adapters.postgres import PostgresMigrator

    return PostgresMigrator(s.required("database_url", f"needed with TAM_STORE={s.tam_store}"))


def _live_vendors(s: Settings, stack: contextlib.AsyncExitStack) -> Vendors:
    """Built without checking keys: a missing key fails the first call (and so only the job that needs
    it) with a CredentialError naming the variable. `reader` builds requests and reads answers only."""
    from tam.adapters import brightdata, claude, discolike, prospeo
    from tam.adapters.claude_batches import ClaudeBatchQualifier
    from tam.adapters.claude_forecast import ClaudeUsageForecaster

    def live(adapter: A) -> A:  # a client-owning adapter: its connections close with the services
        stack.push_async_callback(adapter.aclose)  # type: ignore[attr-defined]
        return adapter

    reader = claude.ClaudeQualifier(api_key=None, model=s.tam_claude_model, effort=s.tam_claude_effort)
    key, url, p_key, p_url = s.anthropic_api_key, s.anthropic_base_url, s.prospeo_api_key, s.prospeo_base_url
    return Vendors(
        live(claude.ClaudeQualifier(api_key=key, base_url=url, model=s.tam_claude_model, effort=s.tam_claude_effort,
                                    concurrency=s.tam_qualify_concurrency)),
        live(discolike.DiscolikeCompanySource(api_key=s.discolike_api_key, base_url=s.discolike_base_url,
                                              concurrency=s.tam_source_companies_concurrency)),
        live(prospeo.ProspeoPersonSearch(api_key=p_key, base_url=p_url, concurrency=s.tam_find_contacts_concurrency)),
        live(prospeo.ProspeoEmailFinder(api_key=p_key, base_url=p_url,
                                        concurrency=s.tam_find_contacts_enrich_concurrency)),
        live(brightdata.BrightDataLinkedinChecker(api_key=s.bright_data_api_key, base_url=s.bright_data_base_url,
                                                  dataset_id=s.bright_data_dataset_id,
                                                  concurrency=s.tam_check_linkedin_concurrency)),
        # One retry may follow an answer cut at max_tokens, with twice the room (ClaudeQualifier.qualify).
        ClaudeUsageForecaster(lambda p, c, again: reader.request_params(p, c, attempt=again), bigger_retries=1),
        live(ClaudeBatchQualifier(claude.ClaudeQualifier(api_key=None, model=s.tam_claude_model), api_key=key,
                                  base_url=url)),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Services(Store):
    """The store's repositories and everything else the entrypoints use, opened and wired once (per
    process, or per CLI command)."""

    settings: Settings
    clock: Clock
    prices: PriceTable  # turns a job's usage into dollars
    vendors: Vendors
    limiter: Pacer
    attempt: JobLogContext[AttemptResult]  # one delivery of a job (JobAttempt, with its log context), for every job
    dispatcher: JobDispatcher
    dispatch_job: DispatchJob
    stale_job_sweep: StaleJobSweep  # one per process, so it remembers what it watched
    create_project: CreateProject
    import_companies: ImportCompanies
    metrics: PrometheusExposition
    estimate_job: EstimateJob


def _steps(s: Settings, st: Store, v: Vendors, clock: Clock) -> dict[JobType, Step[Any]]:
    c, limits = st.companies, (s.tam_qualify_mode, s.tam_qualify_batch_min, s.tam_qualify_batch_poll)
    return {
        JobType.SOURCE_COMPANIES: SourceCompanies(c, v.company_source, s.tam_source_companies_max_records),
        JobType.QUALIFY: QualifyCompanies(c, v.qualifier, clock, s.tam_qualify_concurrency, v.forecaster,
                                          v.batches, st.jobs, *limits),
        JobType.FIND_CONTACTS: FindContacts(c, st.contacts, v.person_search, v.email_finder, clock,
                                            s.tam_find_contacts_concurrency, s.tam_find_contacts_enrich_concurrency),
        JobType.CHECK_LINKEDIN: CheckLinkedin(st.contacts, c, v.linkedin_checker, clock,
                                              s.tam_check_linkedin_concurrency),
        JobType.REFINE_DISCOLIKE: RefineDiscolike(c, v.company_source, s.tam_refine_discolike_max_records),
    }  # fmt: skip


@contextlib.asynccontextmanager
async def open_services(
    s: Settings,
    *,
    dispatcher: JobDispatcher | None = None,
    limiter: Pacer | None = None,
    runner_settings: RunnerSettings | None = None,
) -> AsyncIterator[Services]:
    """Open the store (TAM_STORE), the vendor clients (TAM_PROVIDERS), the limiter and the dispatcher
    (both on Redis when REDIS_URL is set, else in this process) on the running loop; close them after."""
    async with contextlib.AsyncExitStack() as stack:
        st = await stack.enter_async_context(open_store(s))
        clock, prices, hb = memory.SystemClock(), s.prices(), s.tam_worker_heartbeat_timeout
        sandboxed = (clock, s.tam_sandbox_seed, s.tam_sandbox_latency, s.tam_sandbox_fault_rate)
        v = sandbox.sandbox_vendors(*sandboxed) if s.tam_providers == "sandbox" else _live_vendors(s, stack)
        if limiter is None and s.redis_url:  # limits hold across every worker process, else within this one
            from tam.adapters.redis_limiter import RedisLimiter

            limiter = redis = RedisLimiter(s.redis_url, paces(s.concurrency, s.rate_limits))
            stack.push_async_callback(redis.aclose)
        limiter = limiter or memory.LocalLimiter(paces(s.concurrency, s.rate_limits))
        # provider calls are counted where they happen; PROMETHEUS_MULTIPROC_DIR (prometheus_client's own
        # variable) makes every process on the host write there and /metrics sum them
        observer = PrometheusCallObserver(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        tally = JobCallTally(observer)  # the calls also count towards the attempt's `attempt ended` line
        run = runner_settings or s.runner_settings()
        runner = JobRunner(st.jobs, st.projects, _steps(s, st, v, clock), limiter, clock, run, tally, prices=prices)
        attempt = JobLogContext(JobAttempt(st.jobs, runner, clock, s.attempt_policy()), st.jobs, hb)
        if dispatcher is None and s.redis_url:
            from tam.adapters.dramatiq_dispatch import DramatiqJobDispatcher

            dispatcher = DramatiqJobDispatcher(redis_broker(s))
        dispatcher = dispatcher or InProcessJobDispatcher(attempt, s.time_limit)
        stack.push_async_callback(dispatcher.aclose)  # first to close: embedded jobs stop (they stay `running`)
        dispatch = DispatchJob(st.jobs, st.projects, dispatcher, clock, heartbeat_timeout=hb)
        yield Services(
            st.projects, st.companies, st.contacts, st.jobs, s, clock, prices, v, limiter, attempt, dispatcher,
            dispatch, StaleJobSweep(st.jobs, dispatch, clock, hb), CreateProject(st.projects),
            ImportCompanies(st.companies), PrometheusExposition(observer, st.jobs, prices),
            EstimateJob(st.projects, st.companies, st.contacts, st.jobs, v.forecaster, prices, s.estimate_settings()),
        )  # fmt: skip


def redis_broker(s: Settings) -> Any:
    """The Dramatiq broker on REDIS_URL, without actors (`tam worker` declares them)."""
    from tam.adapters.dramatiq_dispatch import build_redis_broker

    url = s.required("redis_url", "the job broker")
    return build_redis_broker(url, int(s.tam_worker_heartbeat_timeout * 1000))


def dramatiq_routes() -> tuple[dict[JobType, str], str]:
    """The Dramatiq actor name of each job type and their queue, shared by the dispatcher and `tam worker`."""
    from tam.adapters.dramatiq_dispatch import ACTOR_NAMES, QUEUE

    return ACTOR_NAMES, QUEUE


async def run_job(services: Services, job_id: UUID, time_limit: float | None = None) -> Job:
    """Run a job to its end in this process, attempt after attempt as a worker would (demo, tests)."""
    for _ in range(10):
        if (await services.attempt(job_id, time_limit, None)).end is not AttemptEnd.RETRY:
            break
    return await services.jobs.get(job_id)
