"""The `tam` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer

from tam.domain.model import TamError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    TEXT = "text"


@app.callback()
def tam(
    log_format: LogFormat = typer.Option(
        LogFormat.AUTO,
        "--log-format",
        envvar="TAM_LOG_FORMAT",
        help="Log lines on stderr: json, text, or auto (JSON unless stderr is a terminal).",
    ),
) -> None:
    """Build TAM lists: source, qualify and enrich companies as background jobs."""
    from tam.logs import configure_logging, level_from_env, secrets_of
    from tam.settings import Settings

    json = log_format is LogFormat.JSON or (log_format is LogFormat.AUTO and not sys.stderr.isatty())
    try:
        secrets = secrets_of(Settings())
    except Exception:  # invalid settings are reported by the command that reads them
        secrets = []
    configure_logging(json=json, secrets=secrets, level=level_from_env())


def _register() -> None:
    from tam.entrypoints.cli import demo

    demo.register(app)

    from tam.entrypoints.cli import serve, worker

    serve.register(app)
    worker.register(app)

    from tam.entrypoints.cli import migrate

    migrate.register(app)

    from tam.entrypoints.cli import companies, export, jobs, projects, run

    projects.register(app)
    companies.register(app)
    run.register(app)
    jobs.register(app)
    export.register(app)


def main() -> None:
    _register()
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `tam`, `tam projects`: help
            print(ctx.get_help())
            raise SystemExit(0) from None
        # Usage mistakes stay one line (Click would print a usage block and a boxed error).
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        print(f"tam: {exc.format_message()}{hint}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("tam: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except TamError as exc:
        print(f"tam: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("tam: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)
