"""One SQLite file shared by a process's API and worker: WAL so reads never wait for the writer, a
single writer connection behind an asyncio lock so this process's writes never collide, and a busy
timeout for writers in other processes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from tam.adapters.sql.errors import MIGRATE_HINT, StorageError
from tam.domain.model import NotFound

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 10_000


@contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" in str(exc):
            raise NotFound("referenced row not found") from None
        raise StorageError(f"SQLite refused the write: {exc}") from None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise StorageError(MIGRATE_HINT) from None
        raise StorageError(f"SQLite: {exc}") from None


def _ensure_parent(path: str) -> None:
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


async def _open(path: str) -> aiosqlite.Connection:
    with translated_errors():
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("pragma journal_mode = wal")
        await conn.execute("pragma synchronous = normal")
        await conn.execute("pragma foreign_keys = on")
    return conn


class SqliteDatabase:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> SqliteDatabase:
        if self.path != ":memory:":
            await asyncio.to_thread(_ensure_parent, self.path)
        self._writer = await _open(self.path)
        # ":memory:" is one database per connection, so there the writer also reads.
        self._reader = self._writer if self.path == ":memory:" else await _open(self.path)
        return self

    async def close(self) -> None:
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._writer = self._reader = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; BEGIN IMMEDIATE takes the file's write lock up front (no upgrade deadlock)."""
        if self._writer is None:
            raise StorageError("the SQLite database is not open")
        async with self._lock:
            conn = self._writer
            with translated_errors():
                await self._begin(conn)
                try:
                    yield conn
                except BaseException:
                    await conn.execute("rollback")
                    raise
                await conn.execute("commit")

    @staticmethod
    async def _begin(conn: aiosqlite.Connection) -> None:
        try:
            await conn.execute("begin immediate")
        except sqlite3.OperationalError as exc:
            if "within a transaction" not in str(exc):
                raise
            # A write cancelled while its BEGIN was on the way (a time limit, a cancelled job) left
            # that transaction open on this connection: nothing of it was committed, so drop it.
            await conn.execute("rollback")
            await conn.execute("begin immediate")

    async def fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        conn = self._reader
        if conn is None:
            raise StorageError("the SQLite database is not open")
        with translated_errors():
            async with conn.execute(sql, tuple(params)) as cursor:
                return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None


@asynccontextmanager
async def sqlite_database(path: str | Path) -> AsyncIterator[SqliteDatabase]:
    db = await SqliteDatabase(path).open()
    try:
        yield db
    finally:
        await db.close()


class SqliteMigrator:
    def __init__(self, path: str | Path, directory: Path = MIGRATIONS_DIR) -> None:
        self._path = str(path)
        self._directory = directory

    async def run(self) -> list[str]:
        """Apply the migrations not applied yet, each in its own write transaction; return their names."""
        async with sqlite_database(self._path) as db:
            async with db.write() as conn:
                await conn.execute(
                    "create table if not exists tam_schema_migrations (version text primary key, name text not null,"
                    " applied_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00'))"
                )
            ran = []
            for path in sorted(self._directory.glob("*.sql")):
                version, _, name = path.stem.partition("_")
                async with db.write() as conn:
                    async with conn.execute("select 1 from tam_schema_migrations where version = ?", (version,)) as cur:
                        if await cur.fetchone():
                            continue
                    for statement in _statements(path.read_text(encoding="utf-8")):
                        await conn.execute(statement)
                    await conn.execute(
                        "insert into tam_schema_migrations (version, name) values (?, ?)", (version, name)
                    )
                ran.append(path.name)
            return ran


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
