"""`tam migrate`: create or update the schema of the configured store (TAM_STORE)."""

from __future__ import annotations

import asyncio
import sys

import typer

from tam.domain.model import TamError
from tam.entrypoints.cli.session import load_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate() -> None:
        """Apply the schema migrations not applied yet (safe to run again)."""
        from tam.containers import migrator

        settings = load_settings()
        try:
            if settings.tam_store == "memory":
                print("tam: the memory store has no schema; nothing to migrate")
                return
            ran = asyncio.run(migrator(settings).run())
        except TamError as exc:
            print(f"tam: migrate failed: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except Exception as exc:  # pydantic's settings errors and the like: one line, no traceback
            print(f"tam: migrate failed: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
            raise typer.Exit(1) from None
        where = settings.tam_sqlite_path if settings.tam_store == "sqlite" else "DATABASE_URL"
        if not ran:
            print(f"tam: {settings.tam_store} schema at {where} is up to date")
        for name in ran:
            print(f"applied {name}")
