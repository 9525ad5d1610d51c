"""Every storage adapter behind one `store` fixture: memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tam.adapters.memory import MemoryCompanyRepo, MemoryContactRepo, MemoryDatabase, MemoryJobRepo, MemoryProjectRepo
from tam.adapters.postgres import (
    PostgresCompanyRepo,
    PostgresContactRepo,
    PostgresJobRepo,
    PostgresProjectRepo,
    open_pool,
)
from tam.adapters.sqlite import (
    SqliteCompanyRepo,
    SqliteContactRepo,
    SqliteJobRepo,
    SqliteMigrator,
    SqliteProjectRepo,
    sqlite_database,
)
from tam.ports.storage import CompanyRepo, ContactRepo, JobRepo, ProjectRepo


@dataclass(frozen=True)
class Stores:
    kind: str
    projects: ProjectRepo
    companies: CompanyRepo
    contacts: ContactRepo
    jobs: JobRepo


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    kind: str = request.param
    if kind == "memory":
        db = MemoryDatabase()
        yield Stores(kind, MemoryProjectRepo(db), MemoryCompanyRepo(db), MemoryContactRepo(db), MemoryJobRepo(db))
    elif kind == "sqlite":
        path = tmp_path / "tam.db"
        await SqliteMigrator(path).run()
        async with sqlite_database(path) as sdb:
            yield Stores(
                kind, SqliteProjectRepo(sdb), SqliteCompanyRepo(sdb), SqliteContactRepo(sdb), SqliteJobRepo(sdb)
            )
    else:
        url: str = request.getfixturevalue("migrated_database_url")
        pool: Any = await open_pool(url, max_size=4)
        try:
            yield Stores(
                kind,
                PostgresProjectRepo(pool),
                PostgresCompanyRepo(pool),
                PostgresContactRepo(pool),
                PostgresJobRepo(pool),
            )
        finally:
            await pool.close()


@pytest.fixture
async def pg_pool(migrated_database_url: str) -> AsyncIterator[Any]:
    pool = await open_pool(migrated_database_url, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
