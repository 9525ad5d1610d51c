"""Connecting to PostgreSQL, including Supabase's direct (5432) and pooled (6543, PgBouncer) strings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from tam.adapters.sql.errors import MIGRATE_HINT, RejectedValue, StorageError, StorageUnreachable
from tam.domain.model import NotFound

SUPABASE_POOLER_PORT = 6543


def connect_options(url: str) -> tuple[str, dict[str, Any]]:
    """The DSN asyncpg accepts and the options this server needs.

    A transaction pooler (Supabase's port 6543, or `pgbouncer=true`) hands each transaction to any
    backend, so prepared statements cannot be cached per connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise StorageError("DATABASE_URL must start with postgresql:// or postgres://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    pgbouncer = any(k == "pgbouncer" and v.lower() in ("1", "true", "yes") for k, v in query)
    kept = [(k, v) for k, v in query if k != "pgbouncer"]  # asyncpg would send it as a server setting
    dsn = urlunsplit(parts._replace(query=urlencode(kept)))
    options: dict[str, Any] = {}
    try:
        port = parts.port
    except ValueError:
        raise StorageError("DATABASE_URL has an invalid port") from None
    if pgbouncer or port == SUPABASE_POOLER_PORT:
        options["statement_cache_size"] = 0
    return dsn, options


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool. asyncpg's default sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` after every use (a second round trip
    per statement), but tam takes no session-level lock, cursor, LISTEN or SET on pooled connections;
    asyncpg still rolls back a transaction left open."""


async def connect(url: str) -> asyncpg.Connection:
    dsn, options = connect_options(url)
    with translated_errors():
        conn = await asyncpg.connect(dsn, timeout=10, **options)
    await _init_connection(conn)
    return conn


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    dsn, options = connect_options(url)
    with translated_errors():
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            timeout=10,
            **options,
        )
    return pool


@asynccontextmanager
async def postgres_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool that connects on first use (min_size=0): a process starts while PostgreSQL is down,
    each query then fails with a StorageError naming it, and the first one after it returns works."""
    pool = await open_pool(url, min_size=0)
    try:
        yield pool
    finally:
        await pool.close()


# SQLSTATE classes of an unavailable server: connection exception, insufficient resources (too many
# connections), operator intervention (shutdown, restart); and transaction rollbacks worth a retry.
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_RETRYABLE = ("40001", "40P01")
# Program limit exceeded (54000: an index row too large, say): the value is the problem, not the server.
_LIMIT_CLASS = "54"


@contextmanager
def translated_errors() -> Iterator[None]:
    """asyncpg's errors as domain errors: P0002 from the tam_* functions is NotFound; an unreachable
    server is StorageUnreachable (weather); a value the server refuses as data is RejectedValue."""
    try:
        yield
    except asyncpg.NoDataFoundError as exc:
        raise NotFound(str(exc)) from None
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"referenced row not found ({exc.constraint_name})") from None
    except asyncpg.UndefinedTableError:
        raise StorageError(MIGRATE_HINT) from None
    except asyncpg.InvalidPasswordError:
        raise StorageError("PostgreSQL refused the credentials in DATABASE_URL") from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise StorageError(f"PostgreSQL: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise StorageUnreachable(f"cannot reach PostgreSQL ({type(exc).__name__}: {exc.strerror or exc})") from None
    except asyncpg.InterfaceError as exc:
        if isinstance(exc, ValueError):  # asyncpg could not encode an argument (a number out of range)
            raise RejectedValue(f"the database refused a value: {_first_line(exc)}") from None
        raise StorageUnreachable(f"PostgreSQL connection problem: {type(exc).__name__}") from None
    except asyncpg.InternalClientError as exc:  # a connection closed under us
        raise StorageUnreachable(f"PostgreSQL connection problem: {type(exc).__name__}") from None
    except (asyncpg.DataError, asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as exc:
        raise RejectedValue(f"the database refused a value: {_first_line(exc)}") from None
    except asyncpg.PostgresError as exc:
        state = exc.sqlstate or ""
        if state[:2] in _UNAVAILABLE_CLASSES or state in _RETRYABLE:
            raise StorageUnreachable(f"PostgreSQL unavailable ({state}: {_first_line(exc)})") from None
        if state[:2] == _LIMIT_CLASS:  # a value too large to store or index
            raise RejectedValue(f"the database refused a value as too large: {_first_line(exc)}") from None
        raise StorageError(f"PostgreSQL error {state}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    """asyncpg's text of an error: its message line, without the DETAIL and HINT lines after it."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
