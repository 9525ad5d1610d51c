"""SQLite storage: the embedded default (TAM_SQLITE_PATH)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tam.adapters.sqlite.database import SqliteDatabase, SqliteMigrator, sqlite_database
from tam.adapters.sqlite.repos import SqliteCompanyRepo, SqliteContactRepo, SqliteJobRepo, SqliteProjectRepo
from tam.ports.storage import Store

__all__ = [
    "open_store",
    "SqliteCompanyRepo",
    "SqliteContactRepo",
    "SqliteDatabase",
    "SqliteJobRepo",
    "SqliteMigrator",
    "SqliteProjectRepo",
    "sqlite_database",
]


@asynccontextmanager
async def open_store(path: str | Path) -> AsyncIterator[Store]:
    """The four repositories over one database file, its schema brought up to date first."""
    await SqliteMigrator(path).run()  # the embedded store keeps its own schema current
    async with sqlite_database(path) as db:
        yield Store(SqliteProjectRepo(db), SqliteCompanyRepo(db), SqliteContactRepo(db), SqliteJobRepo(db))
