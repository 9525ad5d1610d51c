"""`tam migrate`, run as the real command: on a fresh PostgreSQL database and a fresh SQLite file,
twice, and its failures (one line on stderr, exit 1, never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tam.adapters.postgres.migrations import MIGRATIONS_DIR
from tam.adapters.sqlite.database import MIGRATIONS_DIR as SQLITE_MIGRATIONS
from tests.support.postgres import create_database, drop_database, run_sync


def tam_migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAM_", "DATABASE_URL", "SUPABASE_"))}
    return subprocess.run(
        [sys.executable, "-c", "from tam.entrypoints.cli import main; main()", "migrate"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def fresh_database(postgres_server_url: str) -> Iterator[str]:
    url = run_sync(create_database(postgres_server_url, migrate=False))
    yield url
    run_sync(drop_database(postgres_server_url, url))


def test_migrate_postgres_twice(fresh_database: str) -> None:
    env = {"TAM_STORE": "postgres", "DATABASE_URL": fresh_database}
    first = tam_migrate(env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"applied {p.name}" for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
    assert first.stdout.splitlines()[0] == "applied 20261129000001_tam_schema.sql"
    second = tam_migrate(env)
    assert (second.returncode, second.stdout.strip()) == (0, "tam: postgres schema at DATABASE_URL is up to date")


def test_migrate_sqlite_twice(tmp_path: Path) -> None:
    env = {"TAM_STORE": "sqlite", "TAM_SQLITE_PATH": str(tmp_path / "nested" / "tam.db")}
    first = tam_migrate(env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"applied {p.name}" for p in sorted(SQLITE_MIGRATIONS.glob("*.sql"))]
    assert first.stdout.splitlines()[0] == "applied 0001_tam_schema.sql"
    second = tam_migrate(env)
    assert second.returncode == 0 and "up to date" in second.stdout


@pytest.mark.parametrize(
    ("env", "message", "code"),
    [
        ({"TAM_STORE": "postgres"}, "TAM_STORE=postgres needs DATABASE_URL", 2),
        ({"TAM_STORE": "supabase"}, "DATABASE_URL is not set", 1),
        ({"TAM_STORE": "postgres", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, "cannot reach", 1),
        ({"TAM_STORE": "postgres", "DATABASE_URL": "mysql://x"}, "must start with postgresql://", 2),
        ({"TAM_STORE": "oracle"}, "TAM_STORE='oracle'", 2),
    ],
)
def test_a_failure_is_one_line_on_stderr(env: dict[str, str], message: str, code: int) -> None:
    result = tam_migrate(env)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
