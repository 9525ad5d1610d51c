"""`tam migrate` for PostgreSQL and Supabase: the plain-SQL files of supabase/migrations, in order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tam.adapters.postgres.connection import connect, translated_errors
from tam.adapters.sql.errors import StorageError

# Found next to the source tree (the same files `supabase db push` applies).
# In a checkout (or an editable install) the files are read where `supabase db push` reads them; a
# built wheel carries a copy inside the package (pyproject's force-include).
_PACKAGED = Path(__file__).resolve().parent / "sql"
MIGRATIONS_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[4] / "supabase" / "migrations"
_LOCK_KEY = 0x7A6D_6967  # any constant shared by every tam migrator

_LEDGER = """
create table if not exists tam_schema_migrations (
    version text primary key,
    name text not null,
    applied_at timestamptz not null default now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise StorageError(f"migrations directory {directory} not found")
    found = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        found.append(Migration(version, name or path.stem, path.read_text(encoding="utf-8")))
    return found


class PostgresMigrator:
    def __init__(self, database_url: str, directory: Path = MIGRATIONS_DIR) -> None:
        self._url = database_url
        self._directory = directory

    async def run(self) -> list[str]:
        """Apply the migrations not applied yet; return their file names. Safe to run concurrently:
        a transaction-scoped advisory lock (which also holds behind PgBouncer) serialises migrators."""
        migrations = load_migrations(self._directory)
        conn = await connect(self._url)
        try:
            with translated_errors():
                async with conn.transaction():
                    await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_KEY)
                    await conn.execute(_LEDGER)
                    applied = {r["version"] for r in await conn.fetch("select version from tam_schema_migrations")}
                    ran = []
                    for migration in migrations:
                        if migration.version in applied:
                            continue
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "insert into tam_schema_migrations (version, name) values ($1, $2)",
                            migration.version,
                            migration.name,
                        )
                        ran.append(f"{migration.version}_{migration.name}.sql")
                    return ran
        finally:
            await conn.close()
