"""Runs `tam` as a subprocess over a private SQLite file with sandbox providers and no Redis."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TAM = str(Path(sys.executable).parent / "tam")


@dataclass
class Cli:
    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [TAM, *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            umask=0o022,  # a user's usual umask, whatever the test runner's
        )
        if check:
            assert result.returncode == 0, f"tam {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result

    def rows(self, table: str, project_id: str) -> list[dict[str, Any]]:
        """Read the store the CLI wrote, straight from its SQLite file."""
        with contextlib.closing(sqlite3.connect(self.env["TAM_SQLITE_PATH"])) as db:
            db.row_factory = sqlite3.Row
            found = db.execute(f"select * from {table} where project_id = ?", (project_id,)).fetchall()
        return [dict(r) for r in found]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAM_") and k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        TAM_STORE="sqlite",
        TAM_SQLITE_PATH=str(tmp_path / "tam.db"),
        TAM_PROVIDERS="sandbox",
        TAM_SANDBOX_LATENCY="0.005",
        TAM_SOURCE_COMPANIES_MAX_RECORDS="40",
        TAM_REFINE_DISCOLIKE_MAX_RECORDS="10",
        TAM_LOG_FORMAT="json",
        COLUMNS="200",
    )
    return Cli(tmp_path, env)
