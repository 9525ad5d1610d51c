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


# What a Supabase project has before its first migration (supabase/postgres,
# migrations/db/init-scripts/00000000000000-initial-schema.sql): the API roles, with service_role able to
# bypass row-level security, and default privileges that grant them everything the migrating role creates
# in public. Roles belong to the whole cluster: created once if missing, never dropped, and a concurrent
# creation by another test run is not an error.
SUPABASE_ROLES = """
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin noinherit%s', r,
                               case when r = 'service_role' then ' bypassrls' else '' end);
            exception when duplicate_object or unique_violation then null;
            end;
        end if;
    end loop;
end
$$
"""
SUPABASE_DEFAULT_PRIVILEGES = """
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"""


async def create_database(server_url: str, *, migrate: bool, supabase: bool = False) -> str:
    """A new database; `supabase=True` gives it Supabase's roles and default privileges first."""
    name = f"tam_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin(server_url)
    try:
        await conn.execute(f'create database "{name}"')
        if supabase:
            await conn.execute(SUPABASE_ROLES)
    finally:
        await conn.close()
    url = database_url(server_url, name)
    if supabase:
        db = await asyncpg.connect(url, timeout=10)
        try:
            await db.execute(SUPABASE_DEFAULT_PRIVILEGES)
        finally:
            await db.close()
    if migrate:
        await PostgresMigrator(url).run()
    return url


def as_role(url: str, role: str) -> str:
    """The same database, with every statement run as `role` (a startup `role` setting: SET ROLE)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=f"role={role}"))


async def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await _admin(server_url)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()
