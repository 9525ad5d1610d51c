"""PostgreSQL storage (asyncpg); also Supabase's Postgres through its direct or pooled connection string."""

from tam.adapters.postgres.connection import connect_options, open_pool, postgres_pool
from tam.adapters.postgres.migrations import MIGRATIONS_DIR, PostgresMigrator
from tam.adapters.postgres.repos import PostgresCompanyRepo, PostgresContactRepo, PostgresJobRepo, PostgresProjectRepo

__all__ = [
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
