"""A `tam` command imports the adapters its settings select, not every vendor's and store's client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("supabase", "asyncpg", "redis", "dramatiq", "anthropic", "httpx", "aiosqlite")

# The CLI with its commands registered (what `tam` does), then the services opened and closed on a
# SQLite store with sandbox providers and no REDIS_URL (what `tam projects list` does).
PROBE = """
import asyncio, json, sys
import tam.entrypoints.cli as cli
cli._register()
registered = sorted(m for m in {heavy} if m in sys.modules)
from tam.entrypoints.cli.session import opened
from tam.settings import Settings

async def main():
    async with opened(Settings(tam_store="sqlite", tam_sqlite_path={db!r}, tam_providers="sandbox")):
        pass

asyncio.run(main())
print(json.dumps([registered, sorted(m for m in {heavy} if m in sys.modules)]))
"""


def test_a_sqlite_command_loads_no_other_store_broker_or_vendor_client(tmp_path: Path) -> None:
    settings = ("TAM_", "REDIS_", "DATABASE_", "SUPABASE_", "ANTHROPIC_")  # none inherited: SQLite, no Redis
    env = {k: v for k, v in os.environ.items() if not k.startswith(settings)}
    probe = PROBE.format(heavy=HEAVY, db=str(tmp_path / "tam.db"))
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    registered, opened = json.loads(out.stdout.splitlines()[-1])
    assert registered == []  # `tam --help`: no store or client at all
    assert opened == ["aiosqlite"]  # the SQLite store's driver, and nothing else of HEAVY
