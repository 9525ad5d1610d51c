"""What every data command shares: the services opened once on one event loop, and one-line errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from uuid import UUID

import typer
from rich.console import Console

from tam.domain.model import NotFound, TamError
from tam.settings import ConfigurationError, Settings
from tam.settings import load_settings as checked_settings

if TYPE_CHECKING:  # the composition root is imported by the commands that open the services, not by `--help`
    from tam.containers import Services

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"tam: {message}", file=sys.stderr)
    raise typer.Exit(code)


def parse_id(text: str, what: str = "project") -> UUID:
    try:
        return UUID(text)
    except ValueError:
        fail(f"{text!r} is not a valid {what} id (expected a UUID such as 0b7c6a1e-...)")


CONFIGURATION_EXIT = 2  # a bad environment, told apart from a failed command (1)


def load_settings() -> Settings:
    """The checked settings, or one line naming the variable and its bad value, and exit 2."""
    try:
        return checked_settings()
    except ConfigurationError as exc:
        fail(f"invalid configuration: {exc}", CONFIGURATION_EXIT)


@contextlib.asynccontextmanager
async def opened(settings: Settings | None = None, **overrides: Any) -> AsyncIterator[Services]:
    """The services, their store and clients open for the length of a command."""
    from tam.containers import open_services

    async with open_services(settings or load_settings(), **overrides) as services:
        yield services


async def ensure_project(services: Services, project_id: UUID) -> None:
    try:
        await services.projects.get(project_id)
    except NotFound:
        fail(f"project {project_id} not found")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; a TamError (a user mistake or a refused request) is one line."""
    try:
        return asyncio.run(_call(main))
    except TamError as exc:
        fail(str(exc))


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def wide_console() -> Console:
    """A terminal keeps its width (so does a set COLUMNS); a pipe gets room for whole UUIDs instead of
    rich's 80 columns."""
    return Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=240)
