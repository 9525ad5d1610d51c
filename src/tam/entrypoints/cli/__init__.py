"""The `tam` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import sys

import typer

from tam.domain.model import TamError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def tam() -> None:
    """Build TAM lists: source, qualify and enrich companies as background jobs."""


def _register() -> None:
    from tam.entrypoints.cli import demo

    demo.register(app)

    from tam.entrypoints.cli import serve, worker

    serve.register(app)
    worker.register(app)

    from tam.entrypoints.cli import migrate

    migrate.register(app)


def main() -> None:
    _register()
    try:
        app()
    except TamError as exc:
        print(f"tam: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
