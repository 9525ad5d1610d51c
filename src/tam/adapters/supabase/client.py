"""supabase-py's async client with the service-role key, and PostgREST errors as domain errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from tam.adapters.sql.errors import MIGRATE_HINT, RejectedValue, StorageError, StorageUnreachable
from tam.domain.model import NotFound

T = TypeVar("T")

UNIQUE_VIOLATION = "23505"
_NOT_FOUND = {"P0002", "23503", "PGRST116"}  # raised by tam_* functions, foreign key, .single()
# PostgREST could not connect to (or lost) its database, or it timed out (PGRST000-PGRST003)
_UNREACHABLE = {"PGRST000", "PGRST001", "PGRST002", "PGRST003"}
_REJECTED_CLASSES = ("22", "54")  # data exception (a NUL byte, a bad number), program limit (too large)
_REJECTED = {"23502", "23514"}  # not null, check violation
_MISSING_TABLE = {"42P01", "42883", "PGRST202", "PGRST205"}  # table or function not in the schema cache


async def create_supabase_client(url: str, service_role_key: str, *, retry: bool = True) -> AsyncClient:
    """No network call happens here; sessions are not persisted (a service key needs none)."""
    options = AsyncClientOptions(
        auto_refresh_token=False, persist_session=False, postgrest_client_retry=retry, postgrest_client_timeout=30
    )
    return await acreate_client(url, service_role_key, options=options)


@asynccontextmanager
async def supabase_client(url: str, service_role_key: str) -> AsyncIterator[AsyncClient]:
    client = await create_supabase_client(url, service_role_key)
    try:
        yield client
    finally:
        await client.postgrest.aclose()


async def call(request: Callable[[], Awaitable[T]]) -> T:
    try:
        return await request()
    except APIError as exc:
        raise translate(exc) from None
    except httpx.TransportError as exc:  # weather: a job waits it out, a request answers 503
        raise StorageUnreachable(f"cannot reach Supabase ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise StorageError(f"cannot reach Supabase ({type(exc).__name__})") from None


def translate(exc: APIError) -> Exception:
    code, message = exc.code or "", exc.message or "request refused"
    if code in _NOT_FOUND:
        return NotFound(message)
    if code in _UNREACHABLE:
        return StorageUnreachable(f"Supabase cannot reach its database ({code}: {message})")
    if code in _MISSING_TABLE:
        return StorageError(f"{MIGRATE_HINT} (Supabase: {message})")
    if code in ("401", "403", "PGRST301", "PGRST302", "42501"):
        return StorageError(f"Supabase refused the key; check SUPABASE_SERVICE_ROLE_KEY ({message})")
    if code[:2] in _REJECTED_CLASSES or code in _REJECTED:  # bad input (400), as on PostgreSQL
        return RejectedValue(f"the database refused a value: {message}")
    return StorageError(f"Supabase error {code}: {message}")


def rows(data: Any) -> list[dict[str, Any]]:
    """PostgREST answers a function that returns one row with an object, a set with an array."""
    if data is None:
        return []
    return [data] if isinstance(data, dict) else list(data)
