"""Fixtures every suite shares. Servers come from scripts/test (or the defaults below when run by
hand); tests create their own databases and Redis keys, so they never touch anyone else's data."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A PostgreSQL server a test may create databases on (superuser, trust auth)."""
    return os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    return os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def migrated_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database with `tam migrate` applied, dropped at the end of the session.
    A missing server is an error, never a skip."""
    from tests.support.postgres import create_database, drop_database, run_sync

    url = run_sync(create_database(postgres_server_url, migrate=True))
    try:
        yield url
    finally:
        run_sync(drop_database(postgres_server_url, url))


@pytest.fixture(scope="session")
def supabase_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database shaped like a Supabase project (roles anon, authenticated, service_role and
    their default privileges, set up before the migrations), with `tam migrate` applied; connect with
    tests.support.postgres.as_role(url, role) to act as one of those roles."""
    from tests.support.postgres import create_database, drop_database, run_sync

    url = run_sync(create_database(postgres_server_url, migrate=True, supabase=True))
    try:
        yield url
    finally:
        run_sync(drop_database(postgres_server_url, url))
