"""Throwaway PostgreSQL databases on the test server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tam.adapters.postgres import PostgresMigrator

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a private loop in another thread, so a sync fixture works even when an async fixture
    asks for it while the test's loop is running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


async def _admin(server_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(server_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is required for these tests and is not reachable at {server_url} ({exc}); "
            "start it or set TAM_TEST_DATABASE_URL"
        ) from exc


async def create_database(server_url: str, *, migrate: bool) -> str:
    name = f"tam_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin(server_url)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    url = database_url(server_url, name)
    if migrate:
        await PostgresMigrator(url).run()
    return url


async def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await _admin(server_url)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()
