"""Profile for benchmark 2: the qualify pipeline of `tam worker` (PostgreSQL store, Redis limiter, the
real Claude adapter against the fake answering at once), in this process under pyinstrument.

Usage: .venv/bin/python bench/profile_overhead.py [--companies 2000]
Prints companies/s, CPU per company and the pyinstrument tree (profiling adds its own overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pyinstrument import Profiler

from fake_process import FakeProcess
from tam.containers import open_services, run_job
from tam.domain.model import Job, JobType, NewCompany, Project
from tam.settings import Settings
from worker_process import create_database, drop_database, flush_redis, migrate, redis_url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=2000)
    parser.add_argument(
        "--server", default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--redis-db", type=int, default=6)
    args = parser.parse_args()
    url = redis_url(args.redis, args.redis_db)
    db = await create_database(args.server)
    try:
        migrate({"TAM_STORE": "postgres", "DATABASE_URL": db})
        with FakeProcess("anthropic", api_key="bench-key", latency=0.0) as fake:
            cfg = Settings(
                tam_store="postgres",
                database_url=db,
                redis_url=url,
                tam_providers="live",
                anthropic_api_key="bench-key",
                anthropic_base_url=fake.url,
                tam_qualify_mode="online",  # one Messages call per company, never a batch
            )
            async with open_services(cfg) as c:
                for n, profile in ((200, False), (args.companies, True)):  # a warm-up, then the profile
                    tag = uuid.uuid4().hex[:6]
                    project = await c.projects.add(Project(name="profile", icp="B2B software"))
                    rows = [NewCompany(name=f"C{i}", domain=f"c{i}-{tag}.example.com") for i in range(n)]
                    await c.companies.add_many(project.id, rows)
                    job = await c.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
                    profiler = Profiler(async_mode="disabled")
                    if profile:
                        profiler.start()
                    started, cpu = time.perf_counter(), time.process_time()
                    await run_job(c, job.id)
                    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                    if profile:
                        profiler.stop()
                        print(f"{n / elapsed:.0f} companies/s, {cpu / n * 1000:.2f} ms CPU per company (profiled)")
                        print(profiler.output_text(unicode=False, color=False))
    finally:
        flush_redis(url)
        await drop_database(args.server, db)


if __name__ == "__main__":
    asyncio.run(main())
