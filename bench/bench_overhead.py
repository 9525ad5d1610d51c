"""Overhead benchmark (issue 6, benchmark 2): 10,000 companies through `qualify` by a real `tam worker`
process on PostgreSQL, with the fake Claude answering at once (in its own process) and announcing a
rate limit (1,000,000/min) the pacer never waits for.

Setup: a scratch database on the server (`tam migrate`), a private Redis database (REDIS_URL: the
Dramatiq broker and the Redis limiter), `tam worker --processes 1 --threads 1` in its own session with
TAM_PROVIDERS=live and ANTHROPIC_BASE_URL at the fake. For each concurrency (side by side in one run)
the worker is started, warmed up with a 200-company job, and then, per repetition, this process
inserts a project with N pending companies and its job, and dispatches it (the API's DispatchJob, onto
Redis). Measured:

- companies/s end to end: N / (the job's `finished_at`, written by the worker, - the dispatch time);
- SQL statements per company: the fresh database's `xact_commit + xact_rollback` in pg_stat_database
  over the run. tam sends every statement outside an explicit transaction, so each statement is one
  transaction and the counter counts statements (asyncpg's prepare of a new statement and the pool's
  reset query count one each too: they are round trips as well). The count covers the dispatch and
  everything the worker sends; this process sends nothing in the window (it watches the Redis
  message, not the job row), and waits out PostgreSQL's 10 s idle-stats flush before reading;
- the worker's peak RSS: VmHWM of the job-running process (/proc), over its whole life;
- CPU per company in the worker (utime + stime from /proc) and in the fake (its process time).

Usage: .venv/bin/python bench/bench_overhead.py [--companies 10000] [--reps 3] [--concurrency 10,50]
Prints one JSON line (medians) and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import redis

from fake_process import FakeProcess
from tam.adapters.dramatiq_dispatch import QUEUE
from tam.containers import open_services
from tam.domain.model import Job, JobType, NewCompany, Project
from tam.settings import Settings
from worker_process import (
    WorkerProcess,
    add_server_options,
    create_database,
    drop_database,
    flush_redis,
    migrate,
    redis_url,
)

API_KEY = "bench-key"
# The rate limit the fake announces: high enough that the pacer never holds a call back for it, so the
# figures are the worker's cost, not the fake's default budget of 4,000/min (66 calls/s).
FAKE_RPM = 1_000_000
STATS_FLUSH_S = 11  # PostgreSQL 15 backends flush their statistics after at most 10 s idle


def settings(db_url: str, redis: str) -> Settings:
    return Settings(
        tam_store="postgres",
        database_url=db_url,
        redis_url=redis,
        tam_providers="live",
        anthropic_api_key=API_KEY,
        tam_qualify_mode="online",
    )


async def transactions(server: str, db_url: str) -> int:
    name = db_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server)
    try:
        return int(
            await conn.fetchval("select xact_commit + xact_rollback from pg_stat_database where datname = $1", name)
        )
    finally:
        await conn.close()


async def prepare(cfg: Settings, n: int) -> Job:
    """A project with n pending companies and its qualify job, written by this process."""
    async with open_services(cfg) as c:
        tag = uuid.uuid4().hex[:8]
        project = await c.projects.add(Project(name=f"bench {tag}", icp="B2B software in Europe"))
        rows = [NewCompany(name=f"Company {i}", domain=f"c{i:05d}-{tag}.example.com") for i in range(n)]
        await c.companies.add_many(project.id, rows)
        job: Job = await c.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        return job


async def run_job(
    args: argparse.Namespace,
    cfg: Settings,
    db_url: str,
    broker: redis.Redis,
    worker: WorkerProcess,
    fake: FakeProcess,
    n: int,
) -> dict[str, Any]:
    job = await prepare(cfg, n)
    await asyncio.sleep(0.5)  # this process's backends exit (and flush their statistics)
    before = await transactions(args.server, db_url)
    worker_cpu, fake_cpu = worker.cpu_seconds(), fake.stats()["cpu_s"]
    async with open_services(cfg) as c:
        dispatched = time.time()
        await c.dispatch_job.dispatch(job)
        messages = f"dramatiq:{QUEUE}.msgs"
        deadline = time.monotonic() + args.timeout
        while broker.hlen(messages) or broker.llen(f"dramatiq:{QUEUE}"):  # acked once the actor returns
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job.id} did not finish within {args.timeout} s")
            await asyncio.sleep(0.02)
    worker_cpu, fake_cpu = worker.cpu_seconds() - worker_cpu, fake.stats()["cpu_s"] - fake_cpu
    await asyncio.sleep(STATS_FLUSH_S)
    statements = await transactions(args.server, db_url) - before
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "select status, items_done, items_failed, started_at, finished_at from tam_job_queue where id = $1", job.id
        )
    finally:
        await conn.close()
    assert row["status"] == "completed" and row["items_done"] == n, dict(row)
    elapsed = row["finished_at"].timestamp() - dispatched
    return {
        "seconds": elapsed,
        "companies_per_s": n / elapsed,
        "start_latency_s": row["started_at"].timestamp() - dispatched,
        "statements": statements,
        "statements_per_company": statements / n,
        "worker_cpu_ms_per_company": worker_cpu / n * 1000,
        "fake_cpu_ms_per_company": fake_cpu / n * 1000,
    }


async def measure(args: argparse.Namespace, fake: FakeProcess, db_url: str, tmp: Path) -> dict[str, Any]:
    url = redis_url(args.redis, args.redis_db)
    broker = redis.Redis.from_url(url)
    runs: dict[int, list[dict[str, Any]]] = {}
    rss: dict[int, dict[str, float]] = {}
    for concurrency in args.concurrency:
        flush_redis(url)
        env = {
            "TAM_STORE": "postgres",
            "DATABASE_URL": db_url,
            "REDIS_URL": url,
            "TAM_PROVIDERS": "live",
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": fake.url,
            "TAM_QUALIFY_CONCURRENCY": str(concurrency),
            # One Messages call per company: the default (auto) sends jobs this size to Message Batches.
            "TAM_QUALIFY_MODE": "online",
        }
        worker = WorkerProcess(env, tmp / f"worker-c{concurrency}.log", processes=1, threads=1)
        try:
            worker.wait_ready()
            cfg = settings(db_url, url)
            await run_job(args, cfg, db_url, broker, worker, fake, 200)  # warm up: imports, connections
            runs[concurrency] = []
            for _ in range(args.reps):
                runs[concurrency].append(await run_job(args, cfg, db_url, broker, worker, fake, args.companies))
                print(f"c={concurrency}: {runs[concurrency][-1]}", file=sys.stderr)
            rss[concurrency] = {"worker": worker.peak_rss_mb(), "master": worker.master_peak_rss_mb()}
        finally:
            worker.stop()
    flush_redis(url)
    broker.close()

    result: dict[str, Any] = {"bench": "overhead", "companies": args.companies, "reps": args.reps}
    for concurrency in args.concurrency:
        r = runs[concurrency]
        result[f"c{concurrency}"] = {
            **{
                key: round(statistics.median(x[key] for x in r), 4 if "per_company" in key else 2)
                for key in (
                    "seconds",
                    "companies_per_s",
                    "start_latency_s",
                    "statements",
                    "statements_per_company",
                    "worker_cpu_ms_per_company",
                    "fake_cpu_ms_per_company",
                )
            },
            "companies_per_s_all": [round(x["companies_per_s"], 1) for x in r],
            "worker_peak_rss_mb": round(rss[concurrency]["worker"], 1),
            "master_peak_rss_mb": round(rss[concurrency]["master"], 1),
        }
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", default="10,50", help="TAM_QUALIFY_CONCURRENCY values, side by side")
    parser.add_argument("--timeout", type=float, default=300)
    add_server_options(parser, redis_db=6)
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]

    db_url = await create_database(args.server)
    try:
        migrate({"TAM_STORE": "postgres", "DATABASE_URL": db_url})
        with (
            FakeProcess("anthropic", api_key=API_KEY, latency=0.0, rate_limit=FAKE_RPM) as fake,
            tempfile.TemporaryDirectory() as tmp,
        ):
            result = await measure(args, fake, db_url, Path(tmp))
    finally:
        await drop_database(args.server, db_url)

    print(json.dumps(result))
    print()
    print(
        f"{'concurrency':>12}{'s':>8}{'companies/s':>13}{'start s':>9}{'statements':>12}{'per company':>13}"
        f"{'RSS MB':>8}{'worker CPU ms':>15}{'fake CPU ms':>13}"
    )
    for concurrency in args.concurrency:
        r = result[f"c{concurrency}"]
        print(
            f"{concurrency:>12}{r['seconds']:>8.2f}{r['companies_per_s']:>13.0f}{r['start_latency_s']:>9.3f}"
            f"{r['statements']:>12.0f}{r['statements_per_company']:>13.4f}{r['worker_peak_rss_mb']:>8.1f}"
            f"{r['worker_cpu_ms_per_company']:>15.3f}{r['fake_cpu_ms_per_company']:>13.3f}"
        )
    print("(CPU per company: utime + stime of the worker process, process time of the fake Claude)")
    print(
        "targets: >= 1,000 companies/s, <= 1.0 ms of worker CPU per company, <= 0.2 SQL statements per company, "
        "worker peak RSS <= 200 MB"
    )


if __name__ == "__main__":
    asyncio.run(main())
