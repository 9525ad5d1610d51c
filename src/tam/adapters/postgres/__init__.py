"""PostgreSQL storage (asyncpg); also Supabase's Postgres through its direct or pooled connection string."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tam.adapters.postgres.connection import connect_options, open_pool, postgres_pool
from tam.adapters.postgres.migrations import MIGRATIONS_DIR, PostgresMigrator
from tam.adapters.postgres.repos import PostgresCompanyRepo, PostgresContactRepo, PostgresJobRepo, PostgresProjectRepo
from tam.ports.storage import Store

__all__ = [
    "open_store",
    "MIGRATIONS_DIR",
    "PostgresCompanyRepo",
    "PostgresContactRepo",
    "PostgresJobRepo",
    "PostgresMigrator",
    "PostgresProjectRepo",
    "connect_options",
    "open_pool",
    "postgres_pool",
]


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    """The four repositories over one pool (DATABASE_URL)."""
    async with postgres_pool(url) as pool:
        yield Store(
            PostgresProjectRepo(pool), PostgresCompanyRepo(pool), PostgresContactRepo(pool), PostgresJobRepo(pool)
        )
