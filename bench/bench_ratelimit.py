"""Rate-limit benchmark (issue 6, benchmark 4): a qualify job through the real ClaudeQualifier and
JobRunner, configured concurrency 50, against the fake Claude enforcing a requests-per-minute limit
(a token bucket; 429 with Retry-After beyond it; latency log-normal, mean 50 ms, sigma 0.5).

Side by side, on the same fake: tam with the in-process limiter, tam with the Redis limiter (the
pressure shared through Redis), and the same runner with adaptation switched off (fixed 50 in flight).
Scaled by default to 3,000/min with a one-second burst (50 requests) and 1,000 companies (~20 s per
configuration): at 600/min a run takes ~100 s, and at 6,000/min this 2-core machine's client CPU
(~150 calls/s through the SDK) is itself close to the limit, so even the fixed window barely hits it.

Usage: .venv/bin/python bench/bench_ratelimit.py [--limit 3000] [--burst 50] [--companies 1000] [--reps 3]
Prints one JSON line (medians) and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dependency_injector import providers

from fake_process import FakeProcess
from tam.adapters.memory import LocalLimiter
from tam.adapters.redis_limiter import RedisLimiter
from tam.containers import build_container, provide
from tam.domain.model import Job, JobType, NewCompany, Project, Provider
from tam.settings import Settings

CONCURRENCY = 50
API_KEY = "bench-key"
CONFIGS = ("local", "redis", "fixed")


async def one_run(config: str, args: argparse.Namespace, fake: FakeProcess, db: str) -> dict[str, float]:
    settings = Settings(
        tam_store="sqlite",
        tam_sqlite_path=db,
        tam_providers="live",
        anthropic_api_key=API_KEY,
        anthropic_base_url=fake.url,
        tam_qualify_concurrency=CONCURRENCY,
    )
    container = build_container(settings)
    caps = {p.value: settings.concurrency(p) for p in Provider}
    limiter: Any
    if config == "redis":
        limiter = RedisLimiter(args.redis, caps, prefix=f"tambench-{uuid.uuid4().hex[:8]}")
    else:
        limiter = LocalLimiter(caps, adaptive=config == "local")
    container.limiter.override(providers.Object(limiter))
    await container.init_resources()
    try:
        projects = await provide(container.projects)
        companies = await provide(container.companies)
        jobs = await provide(container.jobs)
        qualifier = await provide(container.qualifier)
        project = await projects.add(Project(name=f"bench {config}", icp="B2B software companies"))
        tag = uuid.uuid4().hex[:6]
        rows = [NewCompany(name=f"C{i}", domain=f"c{i}-{tag}.example.com") for i in range(args.companies)]
        await companies.add_many(project.id, rows)
        runner = await provide(container.runner)
        job = await jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        warm_up = (await companies.pending_qualification(project.id))[0]
        await qualifier.qualify(project, warm_up)  # imports the SDK, opens a connection
        await asyncio.sleep(args.burst / (args.limit / 60))  # let the bucket refill after the warm-up call
        fake.reset()
        started = time.perf_counter()
        done = await runner.run(job.id)
        elapsed = time.perf_counter() - started
        stats = fake.stats()
    finally:
        if isinstance(limiter, RedisLimiter):
            await limiter.aclose()
        await (await provide(container.qualifier)).aclose()
        await container.shutdown_resources()
    return {
        "seconds": elapsed,
        "per_minute": done.items_done / elapsed * 60,
        "of_limit": done.items_done / elapsed * 60 / args.limit,
        "done": done.items_done,
        "failed": done.items_failed,
        "calls": stats["requests"],
        "throttled_share": stats["throttled"] / max(stats["requests"], 1),
        "peak_in_flight": stats["peak_in_flight"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=3000, help="requests per minute the fake admits")
    parser.add_argument("--burst", type=float, default=50, help="token-bucket size (requests)")
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--redis", default=os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    configs = args.configs.split(",")

    runs: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    knobs = {"api_key": API_KEY, "latency": 0.05, "sigma": 0.5, "rate_limit": args.limit, "rate_burst": args.burst}
    with FakeProcess("anthropic", **knobs) as fake, tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.reps):
            for config in configs:
                runs[config].append(await one_run(config, args, fake, str(Path(tmp) / f"{config}.db")))

    result: dict[str, Any] = {
        "bench": "ratelimit",
        "limit_per_minute": args.limit,
        "burst": args.burst,
        "companies": args.companies,
        "concurrency": CONCURRENCY,
        "reps": args.reps,
    }
    for config in configs:
        result[config] = {key: round(statistics.median(r[key] for r in runs[config]), 3) for key in runs[config][0]}
    print(json.dumps(result))
    print()
    print(f"{'limiter':<10}{'s':>8}{'/min':>9}{'of limit':>10}{'failed':>8}{'calls':>7}{'429 share':>11}{'peak':>6}")
    for config in configs:
        r = result[config]
        print(
            f"{config:<10}{r['seconds']:>8.1f}{r['per_minute']:>9.0f}{r['of_limit']:>10.2f}{r['failed']:>8.0f}"
            f"{r['calls']:>7.0f}{r['throttled_share']:>11.3f}{r['peak_in_flight']:>6.0f}"
        )
    print("targets: >= 0.90 of the limit, 0 failed, <= 0.05 of calls answered 429")


if __name__ == "__main__":
    asyncio.run(main())
