"""Dashboard list reads (issue 17): what one poll or one click of the companies list asks the store, for a
project of 300 and of 5,000 companies, on SQLite and on real PostgreSQL, side by side.

Reads, each a page of 50 with its total (the API's `GET /api/tam/projects/{id}/companies`): the first page,
the last page, a status filter, a search (`q`) that matches a few rows, a search with a status; and an
export's read of every row, 1,000 at a time. Medians of repeated reads, in milliseconds.

Usage: .venv/bin/python bench/bench_lists.py [--server postgresql://postgres@127.0.0.1:5432/postgres] [--repeat 30]
It creates a scratch PostgreSQL database and a temporary SQLite file and removes both at the end.
Prints one JSON line and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from tam.containers import migrator, open_services
from tam.domain.model import NewCompany, Project, QualificationStatus
from tam.ports.storage import CompanyRepo, QualificationRecord
from tam.settings import Settings

SIZES = (300, 5_000)
PAGE = 50
EXPORT_PAGE = 1_000
WORDS = ("Northwind", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Acme", "Pied")


def companies(n: int) -> list[NewCompany]:
    # One name in 500 carries "Zephyr": the search below matches 0.2% of the rows.
    return [
        NewCompany(
            name=f"{'Zephyr' if i % 500 == 7 else WORDS[i % len(WORDS)]} {i} Logistics GmbH",
            domain=f"company-{i:05d}.example.com",
        )
        for i in range(n)
    ]


async def median_ms(read: Callable[[], Awaitable[object]], repeat: int) -> float:
    await read()  # warm the caches and the prepared statements
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await read()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


async def export_all(repo: CompanyRepo, project_id: UUID) -> int:
    offset = 0
    while True:
        page = await repo.list(project_id, limit=EXPORT_PAGE, offset=offset)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return offset


async def measure(repo: CompanyRepo, project_id: UUID, size: int, repeat: int) -> dict[str, float]:
    last = (size - 1) // PAGE * PAGE
    qualified = QualificationStatus.QUALIFIED
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "first_page": lambda: repo.list(project_id, limit=PAGE),
        "last_page": lambda: repo.list(project_id, limit=PAGE, offset=last),
        "status": lambda: repo.list(project_id, status=qualified, limit=PAGE),
        "search": lambda: repo.list(project_id, limit=PAGE, q="zephyr"),
        "search_status": lambda: repo.list(project_id, status=qualified, limit=PAGE, q="zephyr"),
    }
    result = {name: await median_ms(read, repeat) for name, read in cases.items()}
    result["export_all"] = await median_ms(lambda: export_all(repo, project_id), max(3, repeat // 10))
    return result


async def run_store(settings: Settings, repeat: int) -> dict[str, dict[str, float]]:
    await migrator(settings).run()
    async with open_services(settings) as services:
        projects, repo = services.projects, services.companies
        found: dict[str, dict[str, float]] = {}
        for size in SIZES:
            project = await projects.add(Project(name=f"bench {size}", icp="B2B software companies"))
            await repo.add_many(project.id, companies(size))
            everything = await repo.list(project.id, limit=size)
            at = everything.items[0].created_at
            assert at is not None and everything.total == size
            await repo.record_qualifications(
                [QualificationRecord(c.id, QualificationStatus.QUALIFIED, "fits", at) for c in everything.items[::2]]
            )
            assert (await repo.list(project.id, q="zephyr")).total == sum(1 for i in range(size) if i % 500 == 7)
            found[str(size)] = await measure(repo, project.id, size, repeat)
        return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where a scratch database may be created",
    )
    parser.add_argument("--repeat", type=int, default=30, help="reads per case (the median is reported)")
    args = parser.parse_args()

    result: dict[str, Any] = {"bench": "dashboard_lists", "page": PAGE, "sizes": list(SIZES)}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = Settings(tam_store="sqlite", tam_sqlite_path=str(Path(tmp) / "tam.db"), tam_providers="sandbox")
        result["sqlite"] = await run_store(sqlite, args.repeat)
    name = f"tam_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.server)
    await admin.execute(f'create database "{name}"')
    try:
        url = urlunsplit(urlsplit(args.server)._replace(path="/" + name))
        postgres = Settings(tam_store="postgres", database_url=url, tam_providers="sandbox")
        result["postgres"] = await run_store(postgres, args.repeat)
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()

    print(json.dumps(result))
    print()
    small, large = (str(s) for s in SIZES)
    print(f"{'median ms':<22}" + "".join(f"{f'{store} {n}':>16}" for store in ("sqlite", "postgres") for n in SIZES))
    for case in result["sqlite"][small]:
        cells = [result[store][n][case] for store in ("sqlite", "postgres") for n in (small, large)]
        print(f"{case:<22}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    asyncio.run(main())
