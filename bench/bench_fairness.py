"""Scale-out and fairness benchmark (issue 6, benchmark 5): 10 projects' qualify jobs at once on 2 `tam
worker` processes that share a global Claude cap of 10 (REDIS_URL set, so the RedisLimiter holds the
cap across both), against the fake Claude with log-normal latency (mean 50 ms, sigma 0.5), in its own
process, counting the requests it has in flight.

Per repetition: 10 projects of N pending companies each and their jobs are written to a scratch
PostgreSQL database, the 10 jobs are dispatched together (onto Redis), and this process samples the
job rows every 20 ms. Reported (medians over repetitions; "max" is the worst job of a repetition):
- the fake's peak of requests in flight (never above 10);
- each job's time from its dispatch to its first progress with an item done (within 2 s);
- each job's makespan (dispatch to `finished_at`): slowest / fastest (<= 1.5).
Side by side, as `--configs` THREADS[:PREFETCH]: workers with `--threads 5` (2 x 5 = 10 jobs at once;
`tam worker` lets a process hold only as many messages as it has threads), the same with Dramatiq's
default prefetch of 2 x threads (`5:10`: one worker may take jobs it cannot start while the other
idles), and the default `--threads 4` (8 jobs at once: two jobs wait for a free thread).

Usage: .venv/bin/python bench/bench_fairness.py [--companies 100] [--reps 3] [--configs 5,5:10,4]
Prints one JSON line and a table.
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
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg

from fake_process import FakeProcess
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
PROJECTS = 10
CAP = 10
WORKERS = 2


async def create_jobs(cfg: Settings, projects: int, n: int) -> list[Job]:
    async with open_services(cfg) as c:
        jobs = []
        for p in range(projects):
            tag = uuid.uuid4().hex[:8]
            project = await c.projects.add(Project(name=f"fair {p} {tag}", icp="B2B software"))
            rows = [NewCompany(name=f"C{i}", domain=f"c{i:04d}-{tag}.example.com") for i in range(n)]
            await c.companies.add_many(project.id, rows)
            jobs.append(await c.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY)))
        return jobs


async def one_run(cfg: Settings, db_url: str, fake: FakeProcess, n: int, limit_s: float) -> dict[str, Any]:
    jobs = await create_jobs(cfg, PROJECTS, n)
    ids = [job.id for job in jobs]
    fake.reset()
    dispatched: dict[UUID, float] = {}
    async with open_services(cfg) as c:
        dispatch = c.dispatch_job
        for job in jobs:
            dispatched[job.id] = time.time()
            await dispatch.dispatch(job)
    first_item: dict[UUID, float] = {}
    conn = await asyncpg.connect(db_url)
    try:
        deadline = time.monotonic() + limit_s
        while True:
            rows = await conn.fetch(
                "select id, status, items_done, items_failed, finished_at from tam_job_queue where id = any($1)", ids
            )
            now = time.time()
            for row in rows:
                if row["items_done"] + row["items_failed"] > 0:
                    first_item.setdefault(row["id"], now)
            if all(row["status"] in ("completed", "failed", "cancelled") for row in rows):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs not finished within {limit_s} s")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    assert all(row["status"] == "completed" and row["items_done"] == n for row in rows), [dict(r) for r in rows]
    makespans = [row["finished_at"].timestamp() - dispatched[row["id"]] for row in rows]
    starts = [first_item[i] - dispatched[i] for i in ids]
    stats = fake.stats()
    all_done = max(row["finished_at"].timestamp() for row in rows) - min(dispatched.values())
    return {
        "peak_in_flight": stats["peak_in_flight"],
        "requests": stats["requests"],
        "first_progress_max_s": max(starts),
        "first_progress_median_s": statistics.median(starts),
        "makespan_min_s": min(makespans),
        "makespan_max_s": max(makespans),
        "slowest_over_fastest": max(makespans) / min(makespans),
        "all_done_s": all_done,
        "ideal_s": sum(fake.served()) / CAP,
    }


async def measure(args: argparse.Namespace, fake: FakeProcess, db_url: str, tmp: Path) -> dict[str, Any]:
    url = redis_url(args.redis, args.redis_db)
    cfg = Settings(tam_store="postgres", database_url=db_url, redis_url=url, tam_providers="live")
    env = {
        "TAM_STORE": "postgres",
        "DATABASE_URL": db_url,
        "REDIS_URL": url,
        "TAM_PROVIDERS": "live",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.url,
        "TAM_QUALIFY_CONCURRENCY": str(CAP),  # the Claude cap, global through Redis
    }
    result: dict[str, Any] = {}
    for config in args.configs:
        threads = int(config.split(":")[0])
        prefetch = {"dramatiq_queue_prefetch": config.split(":")[1]} if ":" in config else {}
        flush_redis(url)
        workers = [
            WorkerProcess({**env, **prefetch}, tmp / f"w{config}-{i}.log", processes=1, threads=threads)
            for i in range(WORKERS)
        ]
        try:
            for worker in workers:
                worker.wait_ready()
            await one_run(cfg, db_url, fake, 5, args.timeout)  # warm up both workers
            runs = [await one_run(cfg, db_url, fake, args.companies, args.timeout) for _ in range(args.reps)]
        finally:
            for worker in workers:
                worker.stop()
        for run in runs:
            print(f"{config}: {run}", file=sys.stderr)
        summary = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
        summary["peak_in_flight"] = max(r["peak_in_flight"] for r in runs)  # the worst, not the median
        summary["first_progress_max_s_all"] = [round(r["first_progress_max_s"], 2) for r in runs]
        summary["slowest_over_fastest_all"] = [round(r["slowest_over_fastest"], 2) for r in runs]
        result[config] = summary
    flush_redis(url)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=100, help="companies per project")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--configs", default="5,5:10,4", help="THREADS[:PREFETCH] per worker, side by side")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=120)
    add_server_options(parser, redis_db=7)
    args = parser.parse_args()
    args.configs = args.configs.split(",")

    db_url = await create_database(args.server)
    try:
        migrate({"TAM_STORE": "postgres", "DATABASE_URL": db_url})
        knobs = {"api_key": API_KEY, "latency": args.latency, "sigma": 0.5, "seed": 5}
        with FakeProcess("anthropic", **knobs) as fake, tempfile.TemporaryDirectory() as tmp:
            measured = await measure(args, fake, db_url, Path(tmp))
    finally:
        await drop_database(args.server, db_url)

    result = {
        "bench": "fairness",
        "projects": PROJECTS,
        "companies_per_project": args.companies,
        "workers": WORKERS,
        "claude_cap": CAP,
        "latency_mean_s": args.latency,
        "reps": args.reps,
        **measured,
    }
    print(json.dumps(result))
    print()
    print(
        f"{'threads:prefetch':>17}{'peak':>6}{'first progress max s':>22}{'makespan min s':>16}{'max s':>8}"
        f"{'slowest/fastest':>17}{'all done s':>12}{'ideal s':>9}"
    )
    for config in args.configs:
        r = result[config]
        print(
            f"{config:>17}{r['peak_in_flight']:>6}{r['first_progress_max_s']:>22.2f}{r['makespan_min_s']:>16.2f}"
            f"{r['makespan_max_s']:>8.2f}{r['slowest_over_fastest']:>17.2f}{r['all_done_s']:>12.2f}{r['ideal_s']:>9.2f}"
        )
    print("targets: peak in flight <= 10, each job's first progress within 2 s, slowest / fastest <= 1.5")


if __name__ == "__main__":
    asyncio.run(main())
