"""Profile for benchmark 2: the qualify pipeline of `tam worker` (PostgreSQL store, Redis limiter, the
real Claude adapter against the fake answering at once), in this process, under yappi on the CPU clock
(what a busy worker pays, not where it waits).

The fake announces a rate limit of 1,000,000 requests a minute, so the pacer never holds a call back
for the vendor's budget: this measures CPU, not the rate limit (the fake's default is 4,000/min).

Usage: .venv/bin/python bench/profile_overhead.py [--companies 2000] [--top 40] [--no-profile] [--uvloop]
       [--limiter local] [--callers NAME ...]
--limiter local keeps the pacer's state in memory (no REDIS_URL): the difference is the Redis pacer's cost.
Prints companies/s, CPU per company (this process, and the fake's) and yappi's functions by own CPU
time and by CPU time with callees (profiling adds its own overhead: compare the unprofiled figure).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_process import FakeProcess
from tam.containers import open_services, run_job
from tam.domain.model import Job, JobType, NewCompany, Project
from tam.settings import Settings
from worker_process import create_database, drop_database, flush_redis, migrate, redis_url

FAKE_RPM = 1_000_000


def yappi_callers(stats: Any, target: Any) -> list[tuple[str, int]]:
    """(caller, number of calls) of one function, from yappi's call graph."""
    found = []
    for s in stats:
        for child in s.children:
            if child.full_name == target.full_name:
                found.append((f"{s.name} {Path(s.module).name}:{s.lineno}", child.ncall))
    return found


async def main(args: argparse.Namespace) -> None:
    url = redis_url(args.redis, args.redis_db)
    db = await create_database(args.server)
    try:
        migrate({"TAM_STORE": "postgres", "DATABASE_URL": db})
        with FakeProcess("anthropic", api_key="bench-key", latency=0.0, rate_limit=FAKE_RPM) as fake:
            cfg = Settings(
                tam_store="postgres",
                database_url=db,
                redis_url=url if args.limiter == "redis" else None,
                tam_providers="live",
                anthropic_api_key="bench-key",
                anthropic_base_url=fake.url,
                tam_qualify_mode="online",  # one Messages call per company, never a batch
                tam_qualify_concurrency=args.concurrency,
            )
            async with open_services(cfg) as c:
                for n, profile in ((200, False), (args.companies, not args.no_profile)):  # warm-up, then measure
                    tag = uuid.uuid4().hex[:6]
                    project = await c.projects.add(Project(name="profile", icp="B2B software"))
                    rows = [NewCompany(name=f"C{i}", domain=f"c{i}-{tag}.example.com") for i in range(n)]
                    await c.companies.add_many(project.id, rows)
                    job = await c.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
                    if profile:
                        import yappi

                        yappi.set_clock_type("cpu")
                        yappi.start(builtins=True)
                    fake_cpu = fake.stats()["cpu_s"]
                    started, cpu = time.perf_counter(), time.process_time()
                    await run_job(c, job.id)
                    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                    fake_cpu = fake.stats()["cpu_s"] - fake_cpu
                    if n == 200:
                        continue
                    print(
                        f"{n / elapsed:.0f} companies/s, CPU per company: {cpu / n * 1000:.3f} ms here"
                        f"{' (profiled)' if profile else ''}, {fake_cpu / n * 1000:.3f} ms in the fake"
                    )
                    if profile:
                        yappi.stop()
                        stats = yappi.get_func_stats()
                        for key, title in (("tsub", "own CPU"), ("ttot", "CPU with callees")):
                            out = io.StringIO()
                            stats.sort(key, "desc")
                            print(f"\n== top {args.top} by {title} (ms per company)")
                            for s in list(stats)[: args.top]:
                                value = s.tsub if key == "tsub" else s.ttot
                                where = f"{Path(s.module).name}:{s.lineno}"
                                print(f"{value / n * 1000:8.4f}  {s.ncall / n:7.2f} calls  {s.name}  {where}")
                            del out
                        for name in args.callers:
                            for s in stats:
                                if s.name == name:
                                    print(f"\n== callers of {name} ({Path(s.module).name}:{s.lineno})")
                                    for parent in sorted(yappi_callers(stats, s), key=lambda p: -p[1])[:8]:
                                        print(f"{parent[1] / n:7.2f} calls from  {parent[0]}")
    finally:
        flush_redis(url)
        await drop_database(args.server, db)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--callers", nargs="*", default=[], help="print who calls these functions (by name)")
    parser.add_argument("--no-profile", action="store_true", help="measure CPU only, without yappi")
    parser.add_argument(
        "--limiter", choices=("redis", "local"), default="redis", help="local: the pacer's state in memory"
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument(
        "--server", default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--redis-db", type=int, default=6)
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
