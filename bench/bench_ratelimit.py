"""Rate-limit benchmark (issue 15): real jobs through the real adapters and JobRunner against the fake
vendors enforcing their documented budgets, side by side for each pacing:

- pacer / pacer-redis: the pacer (rate budgets learned from the vendor's headers, adaptive calls in
  flight, Bright Data's refusal guard; in memory, or in Redis);
- aimd / aimd-redis: the limiter before issue 15 (halve the calls in flight on a 429, wait out
  Retry-After, grow back on answers), without rate budgets and without the refusal guard;
- fixed-window: at most `limit` calls per calendar minute, the textbook fixed window, no adaptation,
  no guard.

Scenarios (targets of the issue):
- rpm: 600 requests/min (the vendor's bucket holds 100), 400 companies, concurrency 50, latency
  log-normal mean 50 ms: >= 95% of the limit, <= 1% of calls answered 429, 0 failed;
- rpm2: the same budget shared by 2 worker processes through Redis (200 companies each);
- tokens: 20,000 input tokens/min (bucket of 6 s), ~500 uncached input tokens per request after a
  cached prefix, 1 s latency: >= 90% of the token budget, <= 1% 429;
- tier1: 50 requests/min (bucket of 6 s) with 2 s latency: <= 1% 429, 0 failed;
- brightdata: a 500-contact checkLinkedin job against a fake that answers 429 above 2 running
  scrapes and blocks the IP after 25 429s in 5 minutes, 0.5 s a scrape, concurrency 5; the adapter
  sends 2 profiles a call instead of up to 20, so the job makes 250 calls and the 429s come: completes,
  never blocked (peak 429s within 5 minutes from the fake's own count);
- brightdata2: the same job split over 2 worker processes sharing Redis (250 contacts each).
Redis per call: every command the Redis pacer's client sent (admissions, releases, renewals, script
loads, connection set-up), counted at the client's connections, over the calls the pacer admitted.

Usage: .venv/bin/python bench/bench_ratelimit.py [--scenarios rpm,rpm2,tokens,tier1,brightdata,brightdata2]
Prints one JSON line and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_process import FakeProcess
from tam.adapters.memory import LocalLimiter
from tam.adapters.pacer import Pace, paces
from tam.adapters.redis_limiter import RedisLimiter
from tam.containers import open_services
from tam.containers import run_job as run_qualify
from tam.domain.model import ONE_CALL, Company, Contact, Cost, Job, JobType, NewCompany, Project
from tam.settings import Settings

KEY = "bench-key"
DESCRIPTION = (
    "Builds routing and dispatch software for mid-sized freight forwarders, with customs filing, "
    "carrier rate comparison, shipment tracking and invoicing in one place. "
) * 12  # ~2,000 characters: about 500 uncached input tokens per request


class FixedWindow(LocalLimiter):
    """At most `per_minute` admissions per calendar minute, in flight up to the capacity."""

    def __init__(self, caps: Mapping[str, Pace], per_minute: float) -> None:
        super().__init__(caps, adaptive=False, pace=False)
        self._per_minute = per_minute
        self._window = -1
        self._count = 0

    @asynccontextmanager
    async def slot(self, provider: str, cost: Cost = ONE_CALL) -> AsyncIterator[Any]:
        while True:
            window = int(time.monotonic() // 60)
            if window != self._window:
                self._window, self._count = window, 0
            if self._count < self._per_minute:
                self._count += 1
                break
            await asyncio.sleep((window + 1) * 60 - time.monotonic())
        async with super().slot(provider, cost) as admission:
            yield admission


def make_limiter(config: str, settings: Settings, redis_url: str, prefix: str, per_minute: float) -> Any:
    caps = paces(settings.concurrency, settings.rate_limits)
    if not config.startswith("pacer"):  # the limiter before issue 15 had no refusal guard either
        caps = {k: replace(v, guard=None) for k, v in caps.items()}
    if config == "pacer":
        return LocalLimiter(caps)
    if config == "pacer-redis":
        return RedisLimiter(redis_url, caps, prefix=prefix)
    if config == "aimd":
        return LocalLimiter(caps, pace=False)
    if config == "aimd-redis":
        return RedisLimiter(redis_url, caps, prefix=prefix, pace=False)
    if config == "fixed-window":
        return FixedWindow(caps, per_minute)
    raise ValueError(config)


async def run_job(
    config: str,
    job_type: JobType,
    fake_url: str,
    items: int,
    db: str,
    concurrency: int,
    redis_url: str,
    prefix: str,
    per_minute: float,
    reset: Any = None,
    settle: float = 0.0,
    batch: int = 0,
) -> dict[str, Any]:
    reset = reset or (lambda: None)
    settings = Settings(
        tam_store="sqlite",
        tam_sqlite_path=db,
        tam_providers="live",
        anthropic_api_key=KEY,
        anthropic_base_url=fake_url,
        bright_data_api_key=KEY,
        bright_data_base_url=fake_url,
        tam_qualify_concurrency=concurrency,
        tam_check_linkedin_concurrency=concurrency,
    )
    limiter = make_limiter(config, settings, redis_url, prefix, per_minute)
    async with contextlib.AsyncExitStack() as stack:
        if hasattr(limiter, "aclose"):
            stack.push_async_callback(limiter.aclose)
        container = await stack.enter_async_context(open_services(settings, limiter=limiter))
        projects, companies, jobs = container.projects, container.companies, container.jobs
        project = await projects.add(Project(name=f"bench {config}", icp="B2B software for logistics companies"))
        tag = uuid.uuid4().hex[:6]
        rows = [
            NewCompany(name=f"C{i}", domain=f"c{i}-{tag}.example.com", description=DESCRIPTION) for i in range(items)
        ]
        await companies.add_many(project.id, rows)
        if job_type is JobType.CHECK_LINKEDIN:
            await add_contacts(container, project.id, items)
            if batch:  # fewer profiles per call than the vendor's 20: more calls, more pressure
                container.vendors.linkedin_checker.max_batch = batch
        if job_type is JobType.QUALIFY:  # imports the SDK and opens a connection before the clock starts
            warm_up = Company(uuid.uuid4(), project.id, "warm-up", f"warm-up-{tag}.example.com")
            t0 = time.perf_counter()
            await container.vendors.qualifier.qualify(project, warm_up)
            print(f"warm-up {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            # The warm-up call did not go through the pacer: let the vendor's buckets refill first.
            await asyncio.sleep(settle)
        await asyncio.to_thread(reset)
        job = await jobs.add(Job(project_id=project.id, job_type=job_type))
        started, began = time.perf_counter(), time.time()
        notes: list[str] = []
        watcher = asyncio.create_task(watch_messages(jobs, job.id, notes))
        try:
            done = await run_qualify(container, job.id)
        finally:
            watcher.cancel()
        elapsed = time.perf_counter() - started
    # counted after the limiter closed: it sends the releases still held
    redis_state = getattr(limiter, "redis", None)
    redis_commands = redis_state.commands if redis_state is not None else None
    return {
        "seconds": elapsed,
        "span": (began, began + elapsed),  # wall clock: several processes' jobs overlap, not coincide
        "done": done.items_done,
        "failed": done.items_failed,
        "status": done.status.value,
        "error": done.error,
        "input_tokens": done.usage.counts.get("claude_input_tokens", 0)
        + done.usage.counts.get("claude_cache_write_tokens", 0),
        "admitted": getattr(limiter, "admitted", 0),
        "paused_note": next((n for n in notes if "paused" in n), None),
        "redis_commands": redis_commands,
    }


async def watch_messages(jobs: Any, job_id: uuid.UUID, notes: list[str]) -> None:
    """The job's progress messages while it runs (a paused provider says why there)."""
    while True:
        await asyncio.sleep(0.5)
        message = (await jobs.get(job_id)).message
        if message and message not in notes[-1:]:
            notes.append(message)


async def add_contacts(container: Any, project_id: uuid.UUID, count: int) -> None:
    companies, contacts = container.companies, container.contacts
    page = await companies.list(project_id, None, limit=count)
    company = page.items[0]
    people = [
        Contact(
            id=uuid.uuid4(),
            project_id=project_id,
            company_id=company.id,
            full_name=f"Person {i}",
            linkedin_url=f"https://www.linkedin.com/in/person-{i}-{company.domain.split('.')[0]}-{i}",
        )
        for i in range(count)
    ]
    await contacts.record_company_contacts(company, people, datetime.now(UTC))


def _child(args: tuple[Any, ...], out: Any) -> None:
    out.put(asyncio.run(run_job(*args)))


def run_in_processes(args_list: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(a, queue)) for a in args_list]
    for p in procs:
        p.start()
    results = [queue.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return results


SCENARIOS: dict[str, dict[str, Any]] = {
    "rpm": {
        "vendor": "anthropic",
        "knobs": {"latency": 0.05, "sigma": 0.5, "rate_limit": 600, "rate_burst": 100},
        "items": 400,
        "concurrency": 50,
        "limit": 600,
        "configs": ["pacer", "pacer-redis", "aimd", "fixed-window"],
    },
    "rpm2": {
        "vendor": "anthropic",
        "knobs": {"latency": 0.05, "sigma": 0.5, "rate_limit": 600, "rate_burst": 100},
        "items": 200,
        "processes": 2,
        "concurrency": 50,
        "limit": 600,
        "configs": ["pacer-redis", "aimd-redis"],
    },
    "tokens": {
        "vendor": "anthropic",
        "knobs": {
            "latency": 1.0,
            "sigma": 0.3,
            "rate_limit": 4000,
            "options": {"input_tpm": 20_000, "token_burst_seconds": 6},
        },
        "items": 45,
        "concurrency": 10,
        "limit": 4000,
        "token_limit": 20_000,
        "settle": 6.0,
        "configs": ["pacer", "aimd"],
    },
    "tier1": {
        "vendor": "anthropic",
        "knobs": {"latency": 2.0, "sigma": 0.3, "rate_limit": 50, "rate_burst": 5},
        "items": 40,
        "concurrency": 10,
        "limit": 50,
        "settle": 6.0,
        "configs": ["pacer", "aimd", "fixed-window"],
    },
    "brightdata": {
        "vendor": "brightdata",
        "knobs": {"latency": 0.5, "sigma": 0.3, "options": {"max_running": 2}},
        "items": 500,
        "batch": 2,
        "job": JobType.CHECK_LINKEDIN,
        "concurrency": 5,
        "limit": 0,
        "configs": ["pacer", "pacer-redis", "aimd", "fixed-window"],
    },
    "brightdata2": {
        "vendor": "brightdata",
        "knobs": {"latency": 0.5, "sigma": 0.3, "options": {"max_running": 2}},
        "items": 250,
        "processes": 2,
        "batch": 2,
        "job": JobType.CHECK_LINKEDIN,
        "concurrency": 5,
        "limit": 0,
        "configs": ["pacer-redis", "aimd-redis"],
    },
}


async def scenario(name: str, spec: dict[str, Any], redis_url: str, tmp: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for config in spec["configs"]:
        with FakeProcess(spec["vendor"], api_key=KEY, **spec["knobs"]) as fake:
            prefix = f"tambench-{uuid.uuid4().hex[:8]}"
            job_type = spec.get("job", JobType.QUALIFY)
            per_minute = spec["limit"] or 10_000
            count = spec.get("processes", 1)
            base = (config, job_type, fake.url, spec["items"])
            rest = (spec["concurrency"], redis_url, prefix, per_minute)
            settle, batch = spec.get("settle", 0.0), spec.get("batch", 0)
            if count == 1:
                db = str(Path(tmp) / f"{name}-{config}.db")
                runs = [await run_job(*base, db, *rest, fake.reset, settle, batch)]
            else:
                args = [
                    (*base, str(Path(tmp) / f"{name}-{config}-{i}.db"), *rest, None, settle, batch)
                    for i in range(count)
                ]
                runs = await asyncio.to_thread(run_in_processes, args)
            stats = fake.stats()
        # from the first job's start to the last one's end (processes start their jobs apart)
        seconds = max(r["span"][1] for r in runs) - min(r["span"][0] for r in runs)
        done = sum(r["done"] for r in runs)
        row = {
            "seconds": round(seconds, 1),
            "done": done,
            "failed": sum(r["failed"] for r in runs),
            "status": ",".join(sorted({r["status"] for r in runs})),
            "calls": stats["requests"],
            "throttled_share": round(stats["throttled"] / max(stats["requests"], 1), 4),
        }
        if all(r["redis_commands"] is not None for r in runs):
            admitted = sum(r["admitted"] for r in runs)
            row["admitted"] = admitted
            row["redis_per_call"] = round(sum(r["redis_commands"] for r in runs) / max(admitted, 1), 3)
        if spec["limit"] and name != "tokens":
            row["of_limit"] = round(done / seconds * 60 / spec["limit"], 3)
        if "token_limit" in spec:
            row["of_limit"] = round(sum(r["input_tokens"] for r in runs) / seconds * 60 / spec["token_limit"], 3)
        if spec["vendor"] == "brightdata":
            row["peak_429s_in_5min"] = stats.get("refusals_peak", 0)
            row["ip_blocked"] = bool(stats.get("ip_blocked", 0))
            paused = [r["paused_note"] for r in runs if r["paused_note"]]
            if paused:
                row["paused_note"] = paused[0][:200]
        errors = {r["error"] for r in runs if r["error"]}
        if errors:
            row["error"] = "; ".join(sorted(errors))[:160]
        out[config] = row
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--configs", default="", help="only these pacings (comma-separated)")
    parser.add_argument("--redis", default=os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    result: dict[str, Any] = {"bench": "ratelimit"}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios.split(","):
            spec = dict(SCENARIOS[name])
            if args.configs:
                spec["configs"] = [c for c in args.configs.split(",") if c in spec["configs"]]
            result[name] = await scenario(name, spec, args.redis, tmp)
    print(json.dumps(result))
    print()
    columns = ("seconds", "done", "failed", "calls", "throttled_share", "of_limit", "admitted", "redis_per_call")
    print(f"{'scenario':<11}{'pacing':<14}" + "".join(f"{c[:12]:>13}" for c in columns) + "  notes")
    for name in args.scenarios.split(","):
        for config, row in result[name].items():
            notes = ", ".join(
                f"{k}={row[k]}" for k in ("status", "peak_429s_in_5min", "ip_blocked", "paused_note") if k in row
            )
            cells = "".join(f"{row.get(c, '-')!s:>13}" for c in columns)
            print(f"{name:<11}{config:<14}{cells}  {notes}")
    print(
        "targets: rpm/rpm2 of_limit >= 0.95, 429 share <= 0.01, 0 failed; tokens of_limit >= 0.90, 429 <= 0.01; "
        "tier1 429 <= 0.01, 0 failed; brightdata completed, never blocked; <= 1 Redis command per admitted call"
    )


if __name__ == "__main__":
    asyncio.run(main())
