"""SQLite storage: the embedded default (TAM_SQLITE_PATH)."""

from tam.adapters.sqlite.database import SqliteDatabase, SqliteMigrator, sqlite_database
from tam.adapters.sqlite.repos import SqliteCompanyRepo, SqliteContactRepo, SqliteJobRepo, SqliteProjectRepo

__all__ = [
    "SqliteCompanyRepo",
    "SqliteContactRepo",
    "SqliteDatabase",
    "SqliteJobRepo",
    "SqliteMigrator",
    "SqliteProjectRepo",
    "sqlite_database",
]
