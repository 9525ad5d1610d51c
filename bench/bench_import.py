"""Storage benchmark (issue 3), against real PostgreSQL.

1. Import 10,000 companies in one call (target >= 5,000 rows/s), then the same 10,000 again (all skipped).
2. Progress writes of a running job whose items finish fast: a qualify job over those companies with
   sandbox providers (thousands of items/s); the runner batches progress, so writes stay near 1/s.

Usage: .venv/bin/python bench/bench_import.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
It creates a scratch database on that server and drops it at the end. Prints one JSON line and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tam.containers import migrator, open_services, run_job
from tam.domain.model import Job, JobType, NewCompany, Project
from tam.settings import Settings

ROWS = 10_000


class Counted:
    """Counts the calls of one method of an object (here: the job repository's progress writes)."""

    def __init__(self, target: Any, name: str) -> None:
        self.calls = 0
        inner = getattr(target, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await inner(*args, **kwargs)

        setattr(target, name, counted)


def companies(n: int) -> list[NewCompany]:
    return [NewCompany(name=f"Company {i} GmbH — Zürich", domain=f"company-{i:05d}.example.com") for i in range(n)]


async def run(database_url: str, latency: float, concurrency: int) -> dict[str, Any]:
    settings = Settings(
        tam_store="postgres",
        database_url=database_url,
        tam_providers="sandbox",
        tam_sandbox_latency=latency,
        tam_qualify_concurrency=concurrency,
    )
    await migrator(settings).run()
    async with open_services(settings) as services:
        project = await services.projects.add(Project(name="bench", icp="B2B software companies"))
        rows = companies(ROWS)

        started = time.perf_counter()
        first = await services.companies.add_many(project.id, rows)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = await services.companies.add_many(project.id, rows)
        second_s = time.perf_counter() - started

        writes = Counted(services.jobs, "save_progress")
        job = await services.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        started = time.perf_counter()
        done = await run_job(services, job.id)
        job_s = time.perf_counter() - started

    return {
        "bench": "storage_import",
        "rows": ROWS,
        "import_inserted": first.inserted,
        "import_skipped": first.skipped,
        "import_seconds": round(first_s, 3),
        "import_rows_per_s": round(ROWS / first_s),
        "reimport_inserted": second.inserted,
        "reimport_skipped": second.skipped,
        "reimport_seconds": round(second_s, 3),
        "reimport_rows_per_s": round(ROWS / second_s),
        "job_items": done.items_done + done.items_failed,
        "job_status": done.status.value,
        "job_progress": done.progress,
        "job_seconds": round(job_s, 2),
        "job_items_per_s": round((done.items_done + done.items_failed) / job_s),
        "progress_writes": writes.calls,
        "progress_writes_per_s": round(writes.calls / job_s, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where a scratch database may be created",
    )
    parser.add_argument("--latency", type=float, default=0.02, help="mean simulated Claude latency (s)")
    parser.add_argument("--concurrency", type=int, default=50, help="qualify concurrency")
    args = parser.parse_args()

    name = f"tam_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.server)
    await admin.execute(f'create database "{name}"')
    try:
        result = await run(urlunsplit(urlsplit(args.server)._replace(path="/" + name)), args.latency, args.concurrency)
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()

    print(json.dumps(result))
    r = result
    table = [
        ("import 10,000 companies (rows/s)", f"{r['import_rows_per_s']:,}"),
        ("  inserted / skipped", f"{r['import_inserted']} / {r['import_skipped']}"),
        ("same import again (rows/s)", f"{r['reimport_rows_per_s']:,}"),
        ("  inserted / skipped", f"{r['reimport_inserted']} / {r['reimport_skipped']}"),
        ("qualify job: items finished per second", f"{r['job_items_per_s']:,}"),
        ("qualify job: progress writes per second", f"{r['progress_writes_per_s']}"),
        ("  writes / seconds", f"{r['progress_writes']} / {r['job_seconds']}"),
    ]
    print()
    print(f"{'measure':<44}{'value':>16}")
    for label, value in table:
        print(f"{label:<44}{value:>16}")


if __name__ == "__main__":
    asyncio.run(main())
