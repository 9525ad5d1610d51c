"""Every storage adapter behind one `store` fixture: memory, SQLite and PostgreSQL. PostgreSQL runs twice:
as the schema's owner (a plain PostgreSQL deployment) and as Supabase's service_role on a database shaped
like a Supabase project, with row-level security on (what TAM_STORE=supabase does through PostgREST)."""

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
from tests.support.postgres import as_role


@dataclass(frozen=True)
class Stores:
    kind: str
    projects: ProjectRepo
    companies: CompanyRepo
    contacts: ContactRepo
    jobs: JobRepo


def _postgres_url(request: pytest.FixtureRequest, as_service_role: bool) -> str:
    if as_service_role:
        return as_role(request.getfixturevalue("supabase_database_url"), "service_role")
    url: str = request.getfixturevalue("migrated_database_url")
    return url


@pytest.fixture(params=["memory", "sqlite", "postgres", "postgres_as_service_role"])
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
        pool: Any = await open_pool(_postgres_url(request, kind == "postgres_as_service_role"), max_size=4)
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


@pytest.fixture(params=["owner", "service_role"])
async def pg_pool(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    pool = await open_pool(_postgres_url(request, request.param == "service_role"), max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
