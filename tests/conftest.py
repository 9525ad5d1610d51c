"""Fixtures every suite shares. Servers come from scripts/test (or the defaults below when run by
hand); tests create their own databases and Redis keys, so they never touch anyone else's data."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A PostgreSQL server a test may create databases on (superuser, trust auth)."""
    return os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def xdist_index(worker_id: str) -> int:
    """0 for a serial run ("master") and pytest-xdist's first worker (gw0), 1 for gw1, and so on."""
    return int(worker_id[2:]) if worker_id.startswith("gw") else 0


@pytest.fixture(scope="session")
def redis_server_url(worker_id: str) -> str:
    """A Redis database of this test process's own: the database of TAM_TEST_REDIS_URL (default 0) plus
    the pytest-xdist worker's index, so that parallel workers never share one (the end-to-end tests
    flush it, and their `tam worker` processes consume every queue in it)."""
    base = os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlsplit(base)
    db = int(parts.path.lstrip("/") or 0) + xdist_index(worker_id)
    if db > 15:
        raise RuntimeError(f"Redis database {db} for pytest-xdist {worker_id}: lower the base db or -n ({base})")
    return urlunsplit(parts._replace(path=f"/{db}"))


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


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own, which adds "@group" to a grouped test's id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-xdist schedules tests by id: two tests with one id would run as one, and a group that its
    ids do not name would be spread over the workers. Both are errors, never a quietly smaller run."""
    twice = sorted(nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1)
    if twice:
        raise pytest.UsageError(f"{len(twice)} test ids name more than one test (pytest 9.2?), e.g. {twice[0]}")
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):
        lost = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if lost:
            raise pytest.UsageError(f"pytest-xdist did not put {lost[0]} in its xdist_group (pytest 9.2?)")


# Figures the end-to-end tests measure (tests/e2e/conftest.py `report`), printed after the run. A test's
# lines ride on its report, so that under pytest-xdist they reach the controller, which prints them.
FIGURES_PROPERTY = "measured"
_FIGURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":  # the last report of a test: it carries every line the test recorded
        _FIGURES.extend(value for name, value in report.user_properties if name == FIGURES_PROPERTY)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("e2e measurements")
        for line in _FIGURES:
            terminalreporter.write_line(line)
